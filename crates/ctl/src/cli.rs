//! The command line: the options, and the entry point that runs one
//! command or an interactive session.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::client::socket_path;
use crate::commands::{Command, execute, exit_code};
use crate::out::errln;

/// Control a running ringmasterd.
#[derive(Debug, Parser)]
#[command(name = "ringmasterctl", version, about, disable_help_subcommand = true)]
pub struct Cli {
    /// Control socket of the daemon (before or after the command).
    #[arg(short = 's', long, value_name = "SOCKET", global = true)]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this configuration file.
    #[arg(
        short = 'c',
        long,
        value_name = "CONFIG",
        conflicts_with = "socket",
        global = true
    )]
    pub config: Option<PathBuf>,
    /// Print the daemon's result objects as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command; without one, an interactive session.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The first argument that is not an option (nor an option's value): where
/// the command goes.
fn first_word(args: &[std::ffi::OsString]) -> Option<&str> {
    let mut words = args.iter().skip(1).map(|a| a.to_str().unwrap_or_default());
    while let Some(word) = words.next() {
        match word {
            "-s" | "--socket" | "-c" | "--config" => {
                words.next();
            }
            w if w.starts_with('-') => {}
            w => return Some(w),
        }
    }
    None
}

/// Entry point of the `ringmasterctl` binary.
pub fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let Some(message) = first_word(&args).and_then(crate::commands::foreign_command) {
        errln!("ringmasterctl: {message}");
        return ExitCode::from(exit_code::USAGE);
    }
    let cli = Cli::parse_from(crate::commands::supervisorctl_tail(&args));
    let path = match socket_path(cli.socket.as_deref(), cli.config.as_deref()) {
        Ok(path) => path,
        Err(err) => {
            errln!("ringmasterctl: {err}");
            return ExitCode::from(exit_code::USAGE);
        }
    };
    let code = match &cli.command {
        Some(command) => execute(&path, command, cli.json, None),
        None => crate::repl::run(&path, cli.json),
    };
    ExitCode::from(code)
}
