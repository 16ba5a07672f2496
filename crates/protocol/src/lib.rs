//! The control protocol spoken between `ringmasterd` and `ringmasterctl`.
//!
//! Theory of operation: a client connects to the daemon's Unix socket and
//! writes one JSON object per line (`{"id":1,"cmd":"status","args":{...}}`);
//! the daemon answers each request with one line carrying the same `id` and
//! either `"ok":true` with a `result` or `"ok":false` with an `error` whose
//! `kind` is stable for scripts. Parsing happens in two steps ([`Envelope`]
//! then [`Request::from_envelope`]) so that every failure names what was
//! wrong: invalid JSON, an unknown command (with a suggestion), or bad
//! arguments for a known command.
//!
//! This crate holds only data types and pure helpers; it pulls in nothing of
//! the daemon, so the ctl client stays small.

mod command;
mod names;
mod reply;
mod request;
pub mod signals;
mod socket;
mod suggest;

pub use command::Command;
pub use names::{ProcessName, ProcessNameError, ProcessState, shown_name};
pub use reply::{
    ActionOutcome, ActionResult, ErrorBody, ErrorKind, Event, ExitInfo, HealthInfo, MaintailResult,
    Output, PidEntry, PidResult, ProcessInfo, ProcessStats, ReloadAction, ReloadResult, ReloadStep,
    ReopenResult, Reply, ReplyError, Response, Scaled, ShutdownResult, SocketInfo, SocketsResult,
    StatsResult, StatusResult, StreamLine, TailResult, TreeStats, VersionResult,
};
pub use request::{
    COMMANDS, Envelope, MaintailArgs, NamesArgs, Request, RequestError, RestartArgs, ScaleArgs,
    SignalArgs, StatsArgs, TailArgs,
};
pub use socket::{SOCKET_ENV, default_socket_path};
pub use suggest::did_you_mean;

/// `1 process`, `2 processes`: a count with the word for it, as every
/// message of the daemon and the ctl says it.
pub fn plural(count: usize, one: &str, many: &str) -> String {
    format!("{count} {}", if count == 1 { one } else { many })
}

/// Version of the wire protocol; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon accepts, in bytes (newline excluded).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

#[cfg(test)]
mod docs_tests {
    //! docs/protocol.md stays true: every command and error kind is documented.

    const DOC: &str = include_str!("../../../docs/protocol.md");

    #[test]
    fn every_command_is_documented() {
        let headings: Vec<&str> = DOC.lines().filter(|l| l.starts_with("### ")).collect();
        for command in crate::COMMANDS {
            let needle = format!("`{command}`");
            assert!(
                headings.iter().any(|h| h.contains(&needle)),
                "docs/protocol.md has no heading for {command}"
            );
        }
    }

    #[test]
    fn every_error_kind_is_documented() {
        use crate::ErrorKind as K;
        for kind in [
            K::BadRequest,
            K::LineTooLong,
            K::UnknownCommand,
            K::BadArgs,
            K::NotFound,
            K::ShuttingDown,
            K::BadConfig,
            K::PermissionDenied,
            K::Busy,
            K::Timeout,
            K::Internal,
        ] {
            let name = serde_json::to_value(kind).unwrap();
            let row = format!("| `{}` |", name.as_str().unwrap());
            assert!(
                DOC.contains(&row),
                "docs/protocol.md does not document {row}"
            );
        }
    }
}
