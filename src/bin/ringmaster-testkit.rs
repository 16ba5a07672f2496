//! `ringmaster-testkit`: the child process used by tests and benchmarks.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    std::process::exit(ringmaster_testkit::run(&args));
}
