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

mod names;
mod reply;
mod request;
pub mod signals;
mod socket;
mod suggest;

pub use names::{ProcessName, ProcessNameError, ProcessState};
pub use reply::{
    ActionOutcome, ActionResult, ErrorBody, ErrorKind, ExitInfo, PidEntry, PidResult, ProcessInfo,
    Reply, ShutdownResult, StatusResult, VersionResult,
};
pub use request::{COMMANDS, Envelope, NamesArgs, Request, RequestError, SignalArgs};
pub use socket::{SOCKET_ENV, default_socket_path};
pub use suggest::did_you_mean;

/// Version of the wire protocol; bumped on incompatible changes.
pub const PROTOCOL_VERSION: u32 = 1;

/// Longest request line the daemon accepts, in bytes (newline excluded).
pub const MAX_LINE_BYTES: usize = 1024 * 1024;
