//! Replies: the envelope and the result objects of each command.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::command::Command;
use crate::names::{ProcessName, ProcessState};

/// Stable error kinds, the `error.kind` field scripts can match on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The line is not JSON or not a request envelope.
    BadRequest,
    /// The line is longer than [`crate::MAX_LINE_BYTES`].
    LineTooLong,
    /// The command is not one the daemon knows.
    UnknownCommand,
    /// The command's arguments are missing or malformed.
    BadArgs,
    /// A name matches no watcher or process.
    NotFound,
    /// The daemon is shutting down and takes no new work.
    ShuttingDown,
    /// `reread`/`reload`: the configuration file has errors (named with
    /// file, line and key); nothing changed.
    BadConfig,
    /// The peer is not allowed to use the socket.
    PermissionDenied,
    /// The daemon already serves as many connections as it allows (or has
    /// no file descriptor left); this one is closed. Try again.
    Busy,
    /// The connection was idle too long, or a request line was not
    /// completed in time; it is closed.
    Timeout,
    /// An error inside the daemon; a bug worth reporting.
    Internal,
}

/// The `error` object of a failed reply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Stable kind.
    pub kind: ErrorKind,
    /// Human-readable message naming what was wrong.
    pub message: String,
}

/// One reply line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    /// The id of the request this answers.
    #[serde(default)]
    pub id: Value,
    /// Whether the request succeeded.
    pub ok: bool,
    /// The command's result object when `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<Value>,
    /// What went wrong when not `ok`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

impl Reply {
    /// A successful reply carrying `result`.
    pub fn success(id: Value, result: &impl Serialize) -> Self {
        match serde_json::to_value(result) {
            Ok(result) => Self {
                id,
                ok: true,
                result: Some(result),
                error: None,
            },
            Err(err) => Self::failure(
                id,
                ErrorKind::Internal,
                format!("cannot encode result: {err}"),
            ),
        }
    }

    /// A failed reply.
    pub fn failure(id: Value, kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            id,
            ok: false,
            result: None,
            error: Some(ErrorBody {
                kind,
                message: message.into(),
            }),
        }
    }

    /// The reply as one wire line, newline included.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).unwrap_or_else(|err| {
            format!(r#"{{"id":null,"ok":false,"error":{{"kind":"internal","message":"cannot encode reply: {err}"}}}}"#)
        });
        line.push('\n');
        line
    }
}

/// How a process last ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code when it exited normally.
    pub code: Option<i32>,
    /// Signal name (`KILL`) when a signal killed it.
    pub signal: Option<String>,
    /// `exit status 1` or `killed by SIGKILL`.
    pub description: String,
}

/// One process as `status` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// `web:2`.
    pub name: ProcessName,
    /// The `GROUP:NAME` it is also known by (supervisord's naming), when
    /// the configuration gives one (`process_name`, `[groups]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Current state.
    pub state: ProcessState,
    /// Pid while the process is alive.
    pub pid: Option<i32>,
    /// Unix time (seconds) when the current process was spawned.
    pub started_at: Option<f64>,
    /// Seconds since it was spawned, while alive.
    pub uptime_secs: Option<f64>,
    /// Automatic restarts since the daemon started.
    pub restarts: u32,
    /// How the previous run ended.
    pub last_exit: Option<ExitInfo>,
    /// Why the process is in a non-running state (spawn error, gave up...).
    pub reason: Option<String>,
    /// A log file of this process that cannot be written right now.
    #[serde(default)]
    pub log_error: Option<String>,
    /// Output bytes that could not be written to its log files.
    #[serde(default)]
    pub log_lost_bytes: u64,
    /// A one-shot job that ran to its end with one of its `exit_codes`
    /// (EXITED, no restart coming): a success.
    #[serde(default)]
    pub completed: bool,
    /// Its health check, when the watcher has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthInfo>,
    /// The cgroup its process tree runs in, when the daemon gives each
    /// process one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    /// Unix time of its most recent spawn, kept after that run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_start: Option<f64>,
    /// Unix time its most recent run ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_stop: Option<f64>,
    /// Its stdout log file, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdout_log: Option<String>,
    /// Its stderr log file (the stdout one when merged), when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stderr_log: Option<String>,
}

/// Where a process stands with its watcher's `health` check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthInfo {
    /// Checks failed in a row, now (0: healthy).
    pub failures: u32,
    /// Failures in a row that restart it (the watcher's `failures`).
    pub threshold: u32,
    /// Checks of the current process so far.
    pub checks: u64,
    /// Why the last failed check failed (kept across restarts).
    pub last_failure: Option<String>,
    /// Restarts its health check caused since the daemon started.
    pub restarts: u32,
}

/// One process in the result of `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// `web:2`.
    pub name: ProcessName,
    /// Its `GROUP:NAME`, when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Current state.
    pub state: ProcessState,
    /// Pid while alive; the figures below are `null` otherwise.
    pub pid: Option<i32>,
    /// CPU used over the sampling window, in percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory.
    pub rss_bytes: Option<u64>,
    /// Open file descriptors.
    pub fds: Option<u64>,
    /// Threads.
    pub threads: Option<u64>,
    /// Automatic restarts since the daemon started.
    pub restarts: u32,
    /// Seconds since it was spawned, while alive.
    pub uptime_secs: Option<f64>,
    /// With `tree`: the process and all its descendants together.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tree: Option<TreeStats>,
}

/// A process and its descendants, summed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeStats {
    /// How many processes (the process itself included).
    pub processes: u32,
    /// Their CPU over the sampling window, in percent of one core.
    pub cpu_percent: f64,
    /// Their resident memory (shared pages counted in each).
    pub rss_bytes: u64,
    /// Memory charged to the process's cgroup, where the memory
    /// controller is enabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
}

/// Result of `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsResult {
    /// The sampling window CPU figures cover, in seconds.
    pub window_secs: f64,
    /// One entry per process, in configuration order.
    pub processes: Vec<ProcessStats>,
}

/// Result of `reread` and `reload`: the difference between the running
/// configuration and the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadResult {
    /// Whether the difference was applied (`reload`) or only computed.
    pub applied: bool,
    /// Watchers in the file only: started (if autostart).
    pub added: Vec<String>,
    /// Watchers no longer in the file: stopped and forgotten.
    pub removed: Vec<String>,
    /// Watchers whose processes would be spawned differently: restarted.
    pub changed: Vec<String>,
    /// Watchers whose only change is numprocesses: scaled, not restarted.
    pub scaled: Vec<Scaled>,
    /// Watchers left as they are (same pids).
    pub unchanged: Vec<String>,
    /// Daemon settings that changed in the file but only apply when the
    /// daemon starts (`daemon.socket`, ...).
    pub not_applied: Vec<String>,
    /// What the reload does (or, for `reread`, would do) to each process
    /// of an added, removed, changed or scaled watcher.
    #[serde(default)]
    pub processes: Vec<ReloadAction>,
    /// Sockets in the file only: bound.
    #[serde(default)]
    pub sockets_added: Vec<String>,
    /// Sockets whose address or options changed: bound again (their
    /// watchers are changed, so their processes get the new one).
    #[serde(default)]
    pub sockets_changed: Vec<String>,
    /// Sockets no longer in the file: closed.
    #[serde(default)]
    pub sockets_removed: Vec<String>,
}

/// What a reload does to one process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReloadAction {
    /// The process.
    pub name: ProcessName,
    /// Its state before the reload.
    pub from: ProcessState,
    /// What happens to it.
    pub action: ReloadStep,
}

/// The step a reload takes for one process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadStep {
    /// Stopped and started again with the new settings.
    Restart,
    /// Started (a new process, or one that had failed or exited).
    Start,
    /// Stopped (its watcher was removed or scaled down).
    Stop,
    /// Left stopped (stopped by hand); the new settings apply when it is
    /// next started.
    Leave,
}

impl ReloadStep {
    /// The verb for text output: `restart`, `start`, `stop`, `leave stopped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Restart => "restart",
            Self::Start => "start",
            Self::Stop => "stop",
            Self::Leave => "leave stopped",
        }
    }
}

/// A watcher whose numprocesses changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scaled {
    /// The watcher.
    pub name: String,
    /// Processes before.
    pub from: u32,
    /// Processes after.
    pub to: u32,
}

/// Result of `status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResult {
    /// One entry per process, in configuration order.
    pub processes: Vec<ProcessInfo>,
}

/// What happened to one process in `start`, `stop`, `restart` or `signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionOutcome {
    /// `web:2`.
    pub name: ProcessName,
    /// What people read it as: its `GROUP:NAME` when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Whether the action reached its goal for this process.
    pub ok: bool,
    /// The state when the outcome was decided.
    pub state: ProcessState,
    /// Pid at that moment, if alive.
    pub pid: Option<i32>,
    /// `started`, `already running`, or the reason for a failure.
    pub message: String,
}

/// Result of `start`, `stop`, `restart` and `signal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ActionResult {
    /// One outcome per targeted process.
    pub processes: Vec<ActionOutcome>,
}

/// One process's pid in `pid NAME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidEntry {
    /// `web:2`.
    pub name: ProcessName,
    /// What people read it as: its `GROUP:NAME` when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// Pid, or null when not alive.
    pub pid: Option<i32>,
}

/// Result of `pid`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PidResult {
    /// The daemon's pid when no names were given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<i32>,
    /// The named processes' pids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub processes: Vec<PidEntry>,
}

/// A state change, streamed by `events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened, RFC 3339 UTC.
    pub time: String,
    /// `web:2`.
    pub process: ProcessName,
    /// What people read it as: its `GROUP:NAME` when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// The state it left.
    pub from: ProcessState,
    /// The state it entered.
    pub to: ProcessState,
    /// The pid concerned (the new one on STARTING, the one that ended on an exit).
    pub pid: Option<i32>,
    /// How the process ended, when the change is due to an exit.
    pub exit: Option<ExitInfo>,
    /// Why, when there is a reason (spawn error, retry delay, gave up...).
    pub reason: Option<String>,
}

/// One line of a stream (`events`): an item, or how many were skipped
/// because the client read too slowly.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamLine {
    /// The id of the request that opened the stream.
    pub id: Value,
    /// The next event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<Event>,
    /// Events dropped for this client since the previous line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skipped: Option<u64>,
    /// Output of a followed process (`tail` with follow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Output>,
}

/// Output of one process's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Output {
    /// `web:2`.
    pub name: ProcessName,
    /// What people read it as: its `GROUP:NAME` when configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alias: Option<String>,
    /// `stdout` or `stderr`.
    pub stream: String,
    /// The bytes, as text (invalid UTF-8 replaced).
    pub data: String,
    /// Bytes this client missed just before `data`, when it read too slowly.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub skipped_bytes: u64,
}

#[allow(clippy::trivially_copy_pass_by_ref)]
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Result of `tail` without follow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TailResult {
    /// One entry per process.
    pub processes: Vec<Output>,
}

/// Result of `maintail`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MaintailResult {
    /// The daemon's recent log lines, as written to its stderr.
    pub log: String,
}

/// Result of `reopen`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReopenResult {
    /// How many open log files were asked to reopen.
    pub files: usize,
}

/// Result of `shutdown`, sent once every process is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShutdownResult {
    /// How many processes were stopped.
    pub stopped: usize,
}

/// Result of `version`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    /// The daemon's version.
    pub version: String,
    /// The protocol version it speaks.
    pub protocol: u32,
}

/// Result of `sockets`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketsResult {
    /// Every socket, by name.
    pub sockets: Vec<SocketInfo>,
}

/// One socket the daemon bound.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketInfo {
    /// Its name.
    pub name: String,
    /// Its address as configured.
    pub address: String,
    /// Where it is bound (with port 0, the port the kernel chose).
    pub bound: String,
    /// The watchers it is passed to.
    pub watchers: Vec<String>,
}

/// The result of a request that succeeded, one variant per command (but
/// `events`, which answers with a stream). On the wire it is exactly its
/// result object: the variant is known from the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Response {
    /// `status`.
    Status(StatusResult),
    /// `start`.
    Start(ActionResult),
    /// `stop`.
    Stop(ActionResult),
    /// `restart`.
    Restart(ActionResult),
    /// `signal`.
    Signal(ActionResult),
    /// `pid`.
    Pid(PidResult),
    /// `tail` (without `follow`).
    Tail(TailResult),
    /// `maintail`.
    Maintail(MaintailResult),
    /// `clear`.
    Clear(ActionResult),
    /// `incr`.
    Incr(ActionResult),
    /// `decr`.
    Decr(ActionResult),
    /// `stats`.
    Stats(StatsResult),
    /// `reread`.
    Reread(ReloadResult),
    /// `reload`.
    Reload(ReloadResult),
    /// `reopen`.
    Reopen(ReopenResult),
    /// `shutdown`.
    Shutdown(ShutdownResult),
    /// `version`.
    Version(VersionResult),
    /// `sockets`.
    Sockets(SocketsResult),
}

impl Response {
    /// The result object of a reply to `command`, typed.
    pub fn parse(command: Command, result: Value) -> Result<Self, serde_json::Error> {
        use serde_json::from_value as typed;
        Ok(match command {
            Command::Status => Self::Status(typed(result)?),
            Command::Start => Self::Start(typed(result)?),
            Command::Stop => Self::Stop(typed(result)?),
            Command::Restart => Self::Restart(typed(result)?),
            Command::Signal => Self::Signal(typed(result)?),
            Command::Pid => Self::Pid(typed(result)?),
            Command::Tail => Self::Tail(typed(result)?),
            Command::Maintail => Self::Maintail(typed(result)?),
            Command::Clear => Self::Clear(typed(result)?),
            Command::Incr => Self::Incr(typed(result)?),
            Command::Decr => Self::Decr(typed(result)?),
            Command::Stats => Self::Stats(typed(result)?),
            Command::Reread => Self::Reread(typed(result)?),
            Command::Reload => Self::Reload(typed(result)?),
            Command::Reopen => Self::Reopen(typed(result)?),
            Command::Shutdown => Self::Shutdown(typed(result)?),
            Command::Version => Self::Version(typed(result)?),
            Command::Sockets => Self::Sockets(typed(result)?),
            Command::Events => {
                return Err(serde::de::Error::custom(
                    "events answers with a stream, not a result",
                ));
            }
        })
    }

    /// The per-process outcomes of a command that acts on processes.
    pub fn actions(&self) -> Option<&ActionResult> {
        match self {
            Self::Start(a)
            | Self::Stop(a)
            | Self::Restart(a)
            | Self::Signal(a)
            | Self::Incr(a)
            | Self::Decr(a)
            | Self::Clear(a) => Some(a),
            _ => None,
        }
    }
}

/// Why a reply carries no [`Response`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ReplyError {
    /// The daemon refused the request.
    #[error("{}", .0.message)]
    Refused(ErrorBody),
    /// The reply does not hold what the command answers with.
    #[error("malformed reply: {0}")]
    Malformed(String),
}

impl Reply {
    /// A successful reply carrying `response`.
    pub fn answer(id: Value, response: &Response) -> Self {
        Self::success(id, response)
    }

    /// The typed result of this reply to `command`, or why there is none.
    pub fn into_response(self, command: Command) -> Result<Response, ReplyError> {
        if !self.ok {
            return Err(ReplyError::Refused(self.error.unwrap_or(ErrorBody {
                kind: ErrorKind::Internal,
                message: "no error given".to_owned(),
            })));
        }
        let result = self
            .result
            .ok_or_else(|| ReplyError::Malformed("no result".to_owned()))?;
        Response::parse(command, result).map_err(|e| ReplyError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod response_tests {
    use super::*;

    /// Each response is, on the wire, exactly its result object, and reads
    /// back as the same response.
    #[test]
    fn responses_are_their_result_objects_on_the_wire() {
        let action = ActionResult {
            processes: vec![ActionOutcome {
                name: ProcessName::new("web", 1),
                alias: None,
                ok: true,
                state: ProcessState::Running,
                pid: Some(42),
                message: "running".into(),
            }],
        };
        let cases = [
            (
                Command::Status,
                Response::Status(StatusResult {
                    processes: Vec::new(),
                }),
            ),
            (Command::Start, Response::Start(action.clone())),
            (Command::Decr, Response::Decr(action.clone())),
            (
                Command::Pid,
                Response::Pid(PidResult {
                    daemon: Some(1),
                    processes: Vec::new(),
                }),
            ),
            (Command::Reread, Response::Reread(ReloadResult::default())),
            (Command::Reopen, Response::Reopen(ReopenResult { files: 3 })),
            (
                Command::Shutdown,
                Response::Shutdown(ShutdownResult { stopped: 2 }),
            ),
            (
                Command::Sockets,
                Response::Sockets(SocketsResult {
                    sockets: vec![SocketInfo {
                        name: "web".into(),
                        address: "tcp://127.0.0.1:0".into(),
                        bound: "tcp://127.0.0.1:40123".into(),
                        watchers: vec!["web".into()],
                    }],
                }),
            ),
            (
                Command::Version,
                Response::Version(VersionResult {
                    version: "1.0".into(),
                    protocol: 1,
                }),
            ),
        ];
        for (command, response) in cases {
            let wire = serde_json::to_value(&response).unwrap();
            let inner = match &response {
                Response::Start(a) | Response::Decr(a) => serde_json::to_value(a),
                Response::Status(s) => serde_json::to_value(s),
                Response::Pid(p) => serde_json::to_value(p),
                Response::Reread(r) => serde_json::to_value(r),
                Response::Reopen(r) => serde_json::to_value(r),
                Response::Shutdown(s) => serde_json::to_value(s),
                Response::Version(v) => serde_json::to_value(v),
                Response::Sockets(s) => serde_json::to_value(s),
                _ => unreachable!(),
            }
            .unwrap();
            assert_eq!(wire, inner, "{command}");
            let reply = Reply::answer(Value::from(7), &response);
            assert_eq!(reply.into_response(command).unwrap(), response);
        }
    }

    #[test]
    fn a_refusal_or_a_wrong_result_is_no_response() {
        let refused = Reply::failure(Value::Null, ErrorKind::NotFound, "no watcher 'x'");
        assert_eq!(
            refused
                .into_response(Command::Start)
                .unwrap_err()
                .to_string(),
            "no watcher 'x'"
        );
        let wrong = Reply::success(Value::Null, &serde_json::json!({"files": 1}));
        assert!(matches!(
            wrong.into_response(Command::Status),
            Err(ReplyError::Malformed(_))
        ));
        let events = Reply::success(Value::Null, &serde_json::json!({}));
        assert!(events.into_response(Command::Events).is_err());
    }
}
