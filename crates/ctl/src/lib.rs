//! `ringmasterctl`: a small blocking client for the control protocol, the
//! command-line front end, and the text formatting of replies.
//!
//! Theory of operation: the client is deliberately synchronous (std
//! `UnixStream`, one request line out, one reply line in) so that a
//! one-shot command costs a process start and a round trip, nothing more.

mod cli;
mod client;
mod commands;
mod format;
mod out;
mod repl;

pub use cli::{Cli, main};
pub use client::{Client, CtlError, socket_path};
pub use commands::{Command, exit_code};
