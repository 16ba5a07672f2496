//! `ringmasterctl`: the control client of ringmaster.

fn main() -> std::process::ExitCode {
    ringmaster_ctl::main()
}
