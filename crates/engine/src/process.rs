//! One supervised process and what the engine remembers about it.

use std::time::{Instant, SystemTime};

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::Pid;
use ringmaster_logs::{Pump, Tap};
use ringmaster_protocol::{ExitInfo, ProcessInfo, ProcessName, ProcessState, signals};
use ringmaster_spawn::Exit;
use tokio_util::time::delay_queue;

/// Index of a process in the engine's table.
pub(crate) type ProcId = usize;

/// Progress of a stop: the signal has been sent, SIGKILL comes at `kill_at`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct StopProgress {
    /// When SIGKILL is due.
    pub kill_at: Instant,
    /// Whether SIGKILL was sent.
    pub killed: bool,
    /// Whether the leader has been reaped (the group may still be alive).
    pub leader_reaped: bool,
    /// Whether signals go to the whole process group.
    pub group: bool,
    /// The process group (the leader's pid).
    pub pgid: Pid,
    /// Set when the leader exited on its own and what is left of its
    /// group is being stopped: how it ended, and the state it ended in,
    /// dealt with once the group is gone (unless a request decided
    /// otherwise meanwhile).
    pub leader_exit: Option<(Exit, ProcessState)>,
}

/// One process slot (`web:2`); survives restarts.
#[derive(Debug)]
pub(crate) struct Process {
    pub name: ProcessName,
    /// Index of its watcher in the configuration.
    pub watcher: usize,
    pub state: ProcessState,
    pub pid: Option<Pid>,
    /// The pid of the most recent spawn, kept after it ends (for events).
    pub last_pid: Option<Pid>,
    pub spawned_at: Option<Instant>,
    pub spawned_wall: Option<SystemTime>,
    /// Automatic restarts since the daemon started.
    pub restarts: u32,
    /// Consecutive quick failures (reset on reaching RUNNING or a manual start).
    pub quick_failures: u32,
    /// The pending deadline; its meaning follows from the state.
    pub timer: Option<delay_queue::Key>,
    pub last_exit: Option<Exit>,
    pub reason: Option<String>,
    pub stopping: Option<StopProgress>,
    /// Start again as soon as the current stop completes (restart, or a
    /// start that arrived while stopping).
    pub start_after_stop: bool,
    /// Pumps of the live process's pipes.
    pub pumps: Vec<Pump>,
    /// Tail buffers of stdout and stderr, kept across restarts.
    pub taps: [Arc<Tap>; 2],
    /// Log files that cannot be written right now: (stream, why).
    pub log_errors: Vec<(String, String)>,
    /// Output bytes that could not be written to log files, ever; the
    /// log writers add to it as bytes are lost.
    pub log_lost: Arc<AtomicU64>,
    /// `GROUP:NAME`, supervisord's name for it, when configured.
    pub alias: Option<String>,
    /// A stop or restart of several priority levels will act on it when
    /// its level's turn comes; requests waiting on it wait until then.
    pub held: bool,
    /// A slot above the watcher's numprocesses after `decr`: stopped, never
    /// restarted, invisible to names and `status`; `incr` revives it.
    pub retired: bool,
}

impl Process {
    pub fn new(name: ProcessName, watcher: usize) -> Self {
        Self {
            alias: None,
            held: false,
            retired: false,
            name,
            watcher,
            state: ProcessState::Stopped,
            pid: None,
            last_pid: None,
            spawned_at: None,
            spawned_wall: None,
            restarts: 0,
            quick_failures: 0,
            timer: None,
            last_exit: None,
            reason: None,
            stopping: None,
            start_after_stop: false,
            pumps: Vec::new(),
            taps: [Tap::new(), Tap::new()],
            log_errors: Vec::new(),
            log_lost: Arc::default(),
        }
    }

    /// The process as `status` reports it.
    pub fn info(&self) -> ProcessInfo {
        let alive = self.pid.is_some();
        ProcessInfo {
            name: self.name.clone(),
            alias: self.alias.clone(),
            state: self.state,
            pid: self.pid.map(Pid::as_raw),
            started_at: self
                .spawned_wall
                .filter(|_| alive)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
            uptime_secs: self
                .spawned_at
                .filter(|_| alive)
                .map(|t| t.elapsed().as_secs_f64()),
            restarts: self.restarts,
            last_exit: self.last_exit.map(exit_info),
            reason: self.reason.clone(),
            log_error: (!self.log_errors.is_empty()).then(|| {
                self.log_errors
                    .iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            log_lost_bytes: self.log_lost.load(Ordering::Relaxed),
        }
    }
}

/// `exit status 1` / `killed by SIGKILL`.
pub(crate) fn describe_exit(exit: Exit) -> String {
    match exit {
        Exit::Code(code) => format!("exit status {code}"),
        Exit::Signal { signal, core } => format!(
            "killed by SIG{}{}",
            signals::name(signal),
            if core { " (core dumped)" } else { "" }
        ),
    }
}

/// The protocol's view of an exit.
pub(crate) fn exit_info(exit: Exit) -> ExitInfo {
    match exit {
        Exit::Code(code) => ExitInfo {
            code: Some(code),
            signal: None,
            description: describe_exit(exit),
        },
        Exit::Signal { signal, .. } => ExitInfo {
            code: None,
            signal: Some(signals::name(signal)),
            description: describe_exit(exit),
        },
    }
}
