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
    /// Control socket of the daemon.
    #[arg(short = 's', long, value_name = "SOCKET")]
    pub socket: Option<PathBuf>,
    /// Read the socket path from this configuration file.
    #[arg(short = 'c', long, value_name = "CONFIG", conflicts_with = "socket")]
    pub config: Option<PathBuf>,
    /// Print the daemon's result objects as JSON.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command; without one, an interactive session.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Entry point of the `ringmasterctl` binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
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
