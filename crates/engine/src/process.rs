//! One supervised process and what the engine remembers about it.

use std::time::SystemTime;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use nix::unistd::Pid;
use ringmaster_logs::{Pump, Tap};
use ringmaster_protocol::{
    ActionOutcome, ExitInfo, HealthInfo, ProcessInfo, ProcessName, ProcessState, signals,
};

use crate::lifecycle::{self, Life, Settings, describe_exit};
use crate::table::WatcherId;
use ringmaster_config::{StderrSink, WatcherConfig};
use ringmaster_spawn::Exit;
use tokio_util::time::delay_queue;

/// A process slot's id in the engine's table.
pub(crate) type ProcId = crate::table::SlotId;

/// A start held back by `depends_on`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Gate {
    /// Started once these watchers (named, comma-separated) are ready.
    Waiting(String),
    /// Not started: a dependency failed (the reason, as status shows it).
    Blocked(String),
}

/// A hook a slot's life waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PendingHook {
    /// `before_start` or `before_stop`.
    pub point: ringmaster_config::HookPoint,
    /// The hook's pid.
    pub pid: Pid,
    /// What follows it (`before_stop`: the stop or restart asked for).
    pub then: Option<crate::lifecycle::Input>,
}

/// A slot's health checks: failures in a row of the current process, and
/// what outlives it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct HealthState {
    /// Checks failed in a row (the current process; 0 when healthy).
    pub failures: u32,
    /// Checks of the current process.
    pub checks: u64,
    /// Why the last failed check failed.
    pub last_failure: Option<String>,
    /// Restarts the health check caused.
    pub restarts: u32,
}

/// One process slot (`web:2`); survives restarts.
#[derive(Debug)]
pub(crate) struct Process {
    pub name: ProcessName,
    /// Its watcher.
    pub watcher: WatcherId,
    /// Where it is in its lifecycle (see [`crate::lifecycle`]).
    pub life: Life,
    /// The pid of the most recent spawn, kept after it ends (for events).
    pub last_pid: Option<Pid>,
    /// Wall-clock time of the most recent spawn, for `status`.
    pub spawned_wall: Option<SystemTime>,
    /// Wall-clock time the most recent run ended.
    pub ended_wall: Option<SystemTime>,
    /// The pending deadline; its meaning follows from the phase.
    pub timer: Option<delay_queue::Key>,
    /// Pumps of the live process's pipes.
    pub pumps: Vec<Pump>,
    /// Tail buffers of stdout and stderr, kept across restarts.
    pub taps: [Arc<Tap>; 2],
    /// Log files that cannot be written right now: (stream, why).
    pub log_errors: Vec<(String, String)>,
    /// Output bytes that could not be written to log files, ever; the
    /// log writers add to it as bytes are lost.
    pub log_lost: Arc<AtomicU64>,
    /// Output bytes read from stdout and stderr, ever (`/metrics`).
    pub log_bytes: [Arc<AtomicU64>; 2],
    /// The cgroup of its current (or last) run, until found empty.
    pub cgroup: Option<ringmaster_cgroup::Leaf>,
    /// `GROUP:NAME`, supervisord's name for it, when configured.
    pub alias: Option<String>,
    /// A stop or restart of several priority levels will act on it when
    /// its level's turn comes; requests waiting on it wait until then.
    pub held: bool,
    /// A start is queued for it (the engine starts queued slots a few at a
    /// time, answering requests in between); requests wait on it.
    pub queued: bool,
    /// Where its start stands with the watcher's `depends_on`: waiting for
    /// a dependency to be ready, or not started because one failed.
    pub gate: Option<Gate>,
    /// Its health check's count and memory.
    pub health: HealthState,
    /// A hook its life waits for: `before_start` (the spawn follows) or
    /// `before_stop` (the stop follows).
    pub hook: Option<PendingHook>,
    /// A slot above the watcher's numprocesses after `decr`: stopped, never
    /// restarted, invisible to names and `status`; `incr` revives it.
    pub retired: bool,
}

impl Process {
    pub fn new(name: ProcessName, watcher: WatcherId) -> Self {
        Self {
            alias: None,
            held: false,
            queued: false,
            gate: None,
            health: HealthState::default(),
            hook: None,
            retired: false,
            name,
            watcher,
            life: Life::default(),
            last_pid: None,
            spawned_wall: None,
            ended_wall: None,
            timer: None,
            pumps: Vec::new(),
            taps: [Tap::new(), Tap::new()],
            log_errors: Vec::new(),
            log_lost: Arc::default(),
            log_bytes: [Arc::default(), Arc::default()],
            cgroup: None,
        }
    }

    /// The protocol's state.
    pub fn state(&self) -> ProcessState {
        self.life.phase.state()
    }

    /// The live leader's pid.
    pub fn pid(&self) -> Option<Pid> {
        self.life.phase.pid()
    }

    /// The name people read it by: its alias, else `web:1`.
    pub fn shown(&self) -> String {
        ringmaster_protocol::shown_name(&self.name, self.alias.as_deref())
    }

    /// What a request that acted on it says of it now.
    pub fn outcome(&self, ok: bool, message: impl Into<String>) -> ActionOutcome {
        ActionOutcome {
            name: self.name.clone(),
            alias: self.alias.clone(),
            ok,
            state: self.state(),
            pid: self.pid().map(Pid::as_raw),
            message: message.into(),
        }
    }

    /// Whether a start of it is on its way though it is not STARTING
    /// yet: queued, waiting for its dependencies, or for its before_start
    /// hook.
    pub fn start_pending(&self) -> bool {
        self.queued
            || matches!(self.gate, Some(Gate::Waiting(_)))
            || self
                .hook
                .as_ref()
                .is_some_and(|h| h.point == ringmaster_config::HookPoint::BeforeStart)
    }

    /// Why it is where it is, as `status` says. A slot whose start waits
    /// (in the start queue, or for a dependency) is still STOPPED:
    /// nothing runs yet, and the reason says what it waits for.
    fn reason(&self) -> Option<String> {
        if self.pid().is_some() {
            return self.life.reason.clone();
        }
        match &self.gate {
            Some(Gate::Waiting(names)) => Some(format!("waiting for {names}")),
            Some(Gate::Blocked(why)) => Some(why.clone()),
            None if self.queued => Some(START_QUEUED.to_owned()),
            None if self.hook.is_some() => Some("running its before_start hook".to_owned()),
            None => self.life.reason.clone(),
        }
    }

    /// The process as `status` reports it (its watcher's `settings` say
    /// whether an exit completed a one-shot job).
    pub fn info(&self, settings: &WatcherConfig) -> ProcessInfo {
        let alive = self.pid().is_some();
        ProcessInfo {
            name: self.name.clone(),
            alias: self.alias.clone(),
            state: self.state(),
            pid: self.pid().map(Pid::as_raw),
            started_at: self
                .spawned_wall
                .filter(|_| alive)
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64()),
            uptime_secs: self.life.phase.since().map(|t| t.elapsed().as_secs_f64()),
            restarts: self.life.restarts,
            last_exit: self.life.last_exit.map(exit_info),
            reason: self.reason(),
            log_error: (!self.log_errors.is_empty()).then(|| {
                self.log_errors
                    .iter()
                    .map(|(_, why)| why.as_str())
                    .collect::<Vec<_>>()
                    .join("; ")
            }),
            log_lost_bytes: self.log_lost.load(Ordering::Relaxed),
            completed: lifecycle::completed(&self.life, Settings::of(settings)),
            health: settings.health.as_ref().map(|health| HealthInfo {
                failures: self.health.failures,
                threshold: health.failures,
                checks: self.health.checks,
                last_failure: self.health.last_failure.clone(),
                restarts: self.health.restarts,
            }),
            cgroup: self
                .cgroup
                .as_ref()
                .map(|leaf| leaf.path().display().to_string()),
            last_start: self.spawned_wall.map(unix_seconds),
            last_stop: self.ended_wall.map(unix_seconds),
            stdout_log: log_path(&settings.stdout, self.name.wid),
            stderr_log: match &settings.stderr {
                StderrSink::Stdout => log_path(&settings.stdout, self.name.wid),
                StderrSink::Sink(sink) => log_path(sink, self.name.wid),
            },
        }
    }
}

/// Seconds since the epoch of `time`.
fn unix_seconds(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// The file `sink` writes for slot `wid`, if it writes one.
fn log_path(sink: &ringmaster_config::OutputSink, wid: u32) -> Option<String> {
    match sink {
        ringmaster_config::OutputSink::File(file) => Some(file.path.render(wid)),
        ringmaster_config::OutputSink::Null => None,
    }
}

/// The reason `status` gives for a slot whose start is queued.
const START_QUEUED: &str = "start queued";

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
