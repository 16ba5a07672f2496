//! Requests: the envelope every line carries and the typed commands.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::Command;
use crate::reply::ErrorKind;
use crate::suggest::did_you_mean;

/// Every command the daemon understands, as spelled on the wire.
pub const COMMANDS: &[&str] = Command::NAMES;

/// One request line before its command is interpreted.
#[derive(Debug, Clone, Deserialize)]
pub struct Envelope {
    /// Echoed back in the reply; any JSON value, `null` when absent.
    #[serde(default)]
    pub id: Value,
    /// The command name, e.g. `status`.
    pub cmd: String,
    /// The command's arguments; `null` or absent means none.
    #[serde(default)]
    pub args: Value,
}

/// Arguments naming watchers (`web`), processes (`web:2`) or `all`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NamesArgs {
    /// The names; their meaning when empty depends on the command.
    #[serde(default)]
    pub names: Vec<String>,
}

/// Arguments of `restart`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestartArgs {
    /// Watchers (`web`), processes (`web:2`) or `all`.
    #[serde(default)]
    pub names: Vec<String>,
    /// Replace the processes a few at a time, each next one once the last
    /// new one is ready, instead of all at once.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rolling: bool,
    /// With `rolling`: how many may be down at once (default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_unavailable: Option<u32>,
}

/// Arguments of `signal`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignalArgs {
    /// Signal name or number: `HUP`, `SIGHUP` or `1`.
    pub signal: String,
    /// Watchers, processes or `all`.
    pub names: Vec<String>,
}

/// Arguments of `stats`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatsArgs {
    /// Watchers, processes or `all`; none means every process.
    #[serde(default)]
    pub names: Vec<String>,
    /// Also sum each process with all its descendants.
    #[serde(default)]
    pub tree: bool,
}

/// Arguments of `incr` and `decr`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleArgs {
    /// The watcher.
    pub name: String,
    /// How many processes to add or remove (default 1).
    #[serde(default)]
    pub count: Option<u32>,
}

/// Arguments of `maintail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintailArgs {
    /// How many lines from the end (all that is kept when absent).
    #[serde(default)]
    pub lines: Option<usize>,
}

/// Arguments of `tail`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TailArgs {
    /// One watcher (all its processes) or process.
    pub name: String,
    /// `stdout` (default) or `stderr`.
    #[serde(default)]
    pub stream: Option<String>,
    /// How many lines from the end (default: all that is kept, 64 KiB).
    #[serde(default)]
    pub lines: Option<usize>,
    /// Keep streaming new output until the client closes.
    #[serde(default)]
    pub follow: bool,
}

/// A request the daemon understands, one variant per command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// One entry per process; empty names means every process.
    Status(NamesArgs),
    /// Start the named processes and wait until they run or fail.
    Start(NamesArgs),
    /// Stop the named processes and wait until they are gone.
    Stop(NamesArgs),
    /// Stop then start the named processes (all at once, or rolling).
    Restart(RestartArgs),
    /// Send a signal to the named processes.
    Signal(SignalArgs),
    /// The daemon's pid when no names are given, else the processes' pids.
    Pid(NamesArgs),
    /// The last output of a process or watcher, optionally followed.
    Tail(TailArgs),
    /// The daemon's own recent log.
    Maintail(MaintailArgs),
    /// Empty the log files of the named processes.
    Clear(NamesArgs),
    /// Add processes to a watcher (lowest free slots first) and wait until
    /// they run or fail.
    Incr(ScaleArgs),
    /// Stop a watcher's highest slots and wait until they are gone.
    Decr(ScaleArgs),
    /// CPU, memory and descriptors of processes, from /proc.
    Stats(StatsArgs),
    /// Read the configuration file again and say what a reload would do.
    Reread,
    /// Read the configuration file again and apply the difference.
    Reload,
    /// Reopen every log file by name (after an external rotation).
    Reopen,
    /// Stream every state change until the client closes.
    Events,
    /// Stop everything and exit the daemon.
    Shutdown,
    /// The daemon's version and protocol version.
    Version,
    /// The sockets the daemon bound for its workers.
    Sockets,
}

/// Why a request line could not be turned into a [`Request`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct RequestError {
    /// Stable kind for the reply's `error.kind`.
    pub kind: ErrorKind,
    /// Human-readable explanation naming the request.
    pub message: String,
}

impl RequestError {
    fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
}

impl Request {
    /// This request's command.
    pub fn command(&self) -> Command {
        match self {
            Self::Status(_) => Command::Status,
            Self::Start(_) => Command::Start,
            Self::Stop(_) => Command::Stop,
            Self::Restart(_) => Command::Restart,
            Self::Signal(_) => Command::Signal,
            Self::Pid(_) => Command::Pid,
            Self::Tail(_) => Command::Tail,
            Self::Maintail(_) => Command::Maintail,
            Self::Clear(_) => Command::Clear,
            Self::Incr(_) => Command::Incr,
            Self::Decr(_) => Command::Decr,
            Self::Stats(_) => Command::Stats,
            Self::Reread => Command::Reread,
            Self::Reload => Command::Reload,
            Self::Reopen => Command::Reopen,
            Self::Events => Command::Events,
            Self::Shutdown => Command::Shutdown,
            Self::Version => Command::Version,
            Self::Sockets => Command::Sockets,
        }
    }

    /// Parses one request line into its envelope's id and the typed request.
    /// The id is returned even when the command is bad, so the error reply
    /// can carry it.
    pub fn parse_line(line: &[u8]) -> (Value, Result<Self, RequestError>) {
        let value: Value = match serde_json::from_slice(line) {
            Ok(value) => value,
            Err(err) => {
                return (
                    Value::Null,
                    Err(RequestError::new(
                        ErrorKind::BadRequest,
                        format!("invalid JSON: {err}"),
                    )),
                );
            }
        };
        let id = value.get("id").cloned().unwrap_or(Value::Null);
        let envelope: Envelope = match serde_json::from_value(value) {
            Ok(envelope) => envelope,
            Err(err) => {
                return (
                    id,
                    Err(RequestError::new(
                        ErrorKind::BadRequest,
                        format!(
                            "bad request envelope: {err} (expected {{\"id\":N,\"cmd\":\"...\",\"args\":{{...}}}})"
                        ),
                    )),
                );
            }
        };
        (id, Self::from_envelope(&envelope))
    }

    /// Interprets a parsed envelope.
    pub fn from_envelope(envelope: &Envelope) -> Result<Self, RequestError> {
        let cmd = envelope.cmd.as_str();
        let args = &envelope.args;
        let Some(command) = Command::from_name(cmd) else {
            let hint = did_you_mean(cmd, COMMANDS.iter().copied())
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            return Err(RequestError::new(
                ErrorKind::UnknownCommand,
                format!("unknown command '{cmd}'{hint}"),
            ));
        };
        match command {
            Command::Status => parse_args(cmd, args).map(Self::Status),
            Command::Start => require_names(cmd, parse_args(cmd, args)?).map(Self::Start),
            Command::Stop => require_names(cmd, parse_args(cmd, args)?).map(Self::Stop),
            Command::Restart => {
                let args: RestartArgs = parse_args(cmd, args)?;
                if args.names.is_empty() {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("{cmd}: names must list at least one watcher, process or 'all'"),
                    ));
                }
                if args.max_unavailable == Some(0) {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("{cmd}: max_unavailable must be at least 1"),
                    ));
                }
                Ok(Self::Restart(args))
            }
            Command::Signal => {
                let args: SignalArgs = parse_args(cmd, args)?;
                if args.names.is_empty() {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        "signal: names must list at least one watcher, process or 'all'",
                    ));
                }
                if crate::signals::parse(&args.signal).is_none() {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("signal: unknown signal '{}'", args.signal),
                    ));
                }
                Ok(Self::Signal(args))
            }
            Command::Pid => parse_args(cmd, args).map(Self::Pid),
            Command::Tail => {
                let args: TailArgs = parse_args(cmd, args)?;
                if args.name.is_empty() {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        "tail: name is required",
                    ));
                }
                if let Some(stream) = args
                    .stream
                    .as_deref()
                    .filter(|s| !matches!(*s, "stdout" | "stderr"))
                {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("tail: stream must be stdout or stderr, not '{stream}'"),
                    ));
                }
                Ok(Self::Tail(args))
            }
            Command::Incr | Command::Decr => {
                let args: ScaleArgs = parse_args(cmd, args)?;
                if args.name.is_empty() {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("{cmd}: name (a watcher) is required"),
                    ));
                }
                if args.count == Some(0) {
                    return Err(RequestError::new(
                        ErrorKind::BadArgs,
                        format!("{cmd}: count must be at least 1"),
                    ));
                }
                Ok(if command == Command::Incr {
                    Self::Incr(args)
                } else {
                    Self::Decr(args)
                })
            }
            Command::Stats => parse_args(cmd, args).map(Self::Stats),
            Command::Maintail => parse_args(cmd, args).map(Self::Maintail),
            Command::Clear => require_names(cmd, parse_args(cmd, args)?).map(Self::Clear),
            Command::Reread => no_args(cmd, args).map(|()| Self::Reread),
            Command::Reload => no_args(cmd, args).map(|()| Self::Reload),
            Command::Reopen => no_args(cmd, args).map(|()| Self::Reopen),
            Command::Events => no_args(cmd, args).map(|()| Self::Events),
            Command::Shutdown => no_args(cmd, args).map(|()| Self::Shutdown),
            Command::Version => no_args(cmd, args).map(|()| Self::Version),
            Command::Sockets => no_args(cmd, args).map(|()| Self::Sockets),
        }
    }

    /// The request as a wire line (without the newline).
    pub fn to_line(&self, id: u64) -> String {
        let args = match self {
            Self::Status(a) | Self::Start(a) | Self::Stop(a) | Self::Pid(a) | Self::Clear(a) => {
                serde_json::to_value(a)
            }
            Self::Maintail(a) => serde_json::to_value(a),
            Self::Restart(a) => serde_json::to_value(a),
            Self::Signal(a) => serde_json::to_value(a),
            Self::Tail(a) => serde_json::to_value(a),
            Self::Incr(a) | Self::Decr(a) => serde_json::to_value(a),
            Self::Stats(a) => serde_json::to_value(a),
            Self::Reread
            | Self::Reload
            | Self::Reopen
            | Self::Events
            | Self::Shutdown
            | Self::Version
            | Self::Sockets => Ok(Value::Null),
        }
        .unwrap_or(Value::Null);
        let mut object = serde_json::Map::new();
        object.insert("id".into(), Value::from(id));
        object.insert("cmd".into(), Value::from(self.command().name()));
        if !args.is_null() {
            object.insert("args".into(), args);
        }
        Value::Object(object).to_string()
    }
}

fn parse_args<T: serde::de::DeserializeOwned + Default>(
    cmd: &str,
    args: &Value,
) -> Result<T, RequestError> {
    if args.is_null() {
        return Ok(T::default());
    }
    serde_json::from_value(args.clone())
        .map_err(|err| RequestError::new(ErrorKind::BadArgs, format!("{cmd}: bad args: {err}")))
}

fn require_names(cmd: &str, args: NamesArgs) -> Result<NamesArgs, RequestError> {
    if args.names.is_empty() {
        return Err(RequestError::new(
            ErrorKind::BadArgs,
            format!("{cmd}: names must list at least one watcher, process or 'all'"),
        ));
    }
    Ok(args)
}

fn no_args(cmd: &str, args: &Value) -> Result<(), RequestError> {
    match args {
        Value::Null => Ok(()),
        Value::Object(map) if map.is_empty() => Ok(()),
        _ => Err(RequestError::new(
            ErrorKind::BadArgs,
            format!("{cmd}: takes no arguments"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        let request = Request::Signal(SignalArgs {
            signal: "HUP".into(),
            names: vec!["web".into()],
        });
        let line = request.to_line(7);
        let (id, parsed) = Request::parse_line(line.as_bytes());
        assert_eq!(id, Value::from(7));
        assert_eq!(parsed.unwrap(), request);
    }

    #[test]
    fn errors_have_kinds() {
        let (_, r) = Request::parse_line(b"{nope");
        assert_eq!(r.unwrap_err().kind, ErrorKind::BadRequest);
        let (id, r) = Request::parse_line(br#"{"id":3,"cmd":"stauts"}"#);
        assert_eq!(id, Value::from(3));
        let err = r.unwrap_err();
        assert_eq!(err.kind, ErrorKind::UnknownCommand);
        assert!(err.message.contains("did you mean 'status'"), "{err}");
        // Every command is in the one table did-you-mean reads, tail too.
        let (_, r) = Request::parse_line(br#"{"cmd":"tial"}"#);
        let err = r.unwrap_err();
        assert!(err.message.contains("did you mean 'tail'"), "{err}");
        let (_, r) = Request::parse_line(br#"{"id":3,"cmd":"start"}"#);
        assert_eq!(r.unwrap_err().kind, ErrorKind::BadArgs);
        let (_, r) = Request::parse_line(br#"{"id":3,"cmd":"status","args":{"nmes":[]}}"#);
        assert_eq!(r.unwrap_err().kind, ErrorKind::BadArgs);
        let (_, r) =
            Request::parse_line(br#"{"cmd":"signal","args":{"signal":"NOPE","names":["a"]}}"#);
        assert_eq!(r.unwrap_err().kind, ErrorKind::BadArgs);
    }
}
