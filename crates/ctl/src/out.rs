//! Writing to stdout and stderr the way Unix tools do: when the reader
//! goes away (`ringmasterctl tail -f web | head`), the program ends quietly,
//! killed by SIGPIPE as `cat` would be, instead of panicking in `println!`.

use std::io::Write;

/// Writes `text` to stdout and flushes it. A closed pipe ends the program
/// by SIGPIPE; any other failure (a full disk) is said on stderr and ends
/// it with status 1.
pub(crate) fn stdout(text: &str) {
    let mut out = std::io::stdout().lock();
    if let Err(err) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            // Rust ignores SIGPIPE; take its default action now. Should
            // that fail, exit with the status a shell reports for it.
            let _ = signal_hook::low_level::emulate_default_handler(signal_hook::consts::SIGPIPE);
            std::process::exit(128 + signal_hook::consts::SIGPIPE);
        }
        stderr(&format!("ringmasterctl: cannot write the output: {err}\n"));
        std::process::exit(1);
    }
}

/// Writes `text` to stderr; if even that fails there is nobody to tell.
pub(crate) fn stderr(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(text.as_bytes()).and_then(|()| err.flush());
}

/// `print!` to stdout through [`stdout`].
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::stdout(&format!($($arg)*)) };
}

/// `println!` to stdout through [`stdout`].
macro_rules! outln {
    ($($arg:tt)*) => { $crate::out::stdout(&format!("{}\n", format_args!($($arg)*))) };
}

/// `eprintln!` through [`stderr`].
macro_rules! errln {
    ($($arg:tt)*) => { $crate::out::stderr(&format!("{}\n", format_args!($($arg)*))) };
}

pub(crate) use {errln, out, outln};
