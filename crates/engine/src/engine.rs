//! The engine task: owns every process and applies Supervisor's state rules.

mod checking;
mod dependencies;
mod handlers;
mod hooks;
mod metrics;
mod multiproc;
mod reload;
mod rolls;
mod sequences;
#[cfg(test)]
mod tests;
mod trees;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use nix::unistd::Pid;
use ringmaster_config::{Config, HookPoint, ReadyCheck, WatcherConfig};
use ringmaster_logs::{LineWatch, LogHub, LogNotice, PumpReport, Stream};
use ringmaster_protocol::{Event, ProcessState, Reply, Response, ShutdownResult, signals};
use ringmaster_spawn::Exit;
use serde_json::Value;
use tokio::net::UnixListener;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::time::DelayQueue;

use crate::EngineError;
use crate::checks::{CheckEvent, Checked, Checks, Purpose};
use crate::control::{self, Authorizer, Input, SocketFile};
use crate::exits::ExitWatch;
use crate::jobs::Job;
use crate::launch;
use crate::lifecycle::{self, Context, Effect, Phase, Settings};
use crate::listeners::Listeners;
use crate::notify::Notifier;
use crate::notify_ready::NotifyReady;
use crate::os::{Children, DaemonSignal, SignalSource};
use crate::process::ProcId;
use crate::refusal::Refusal;
use crate::sequence::Sequence;
use crate::system::System;
use crate::table::{Table, WatcherId};

/// After SIGKILL at the shutdown deadline, how long to wait for reaps.
const KILL_GRACE: Duration = Duration::from_secs(5);
/// How long pumps may take to drain at exit.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);
/// Events buffered per `events` client before it is told it skipped some
/// (the channel allocates every slot up front; each holds an Arc).
const EVENT_BUFFER: usize = 1024;

/// Most slots started per turn of the loop: a start of 1000 processes
/// interleaves with requests instead of holding them for a second.
const START_BATCH: usize = 8;
/// A turn stops starting slots once it has spent this long: on a machine
/// busy with the children's own start-up a spawn can take milliseconds,
/// and `status` should not wait for eight of them (with 1000 file-logged
/// processes starting and a client asking `status` without pause: 8 per
/// turn gave a worst answer of 48-58 ms, this 27-35 ms).
const START_TURN: Duration = Duration::from_millis(2);

/// How long processes the daemon adopted get between SIGTERM and SIGKILL
/// once every watcher is down.
const ADOPTED_GRACE: Duration = Duration::from_secs(2);

/// A shutdown in progress.
struct Shutdown {
    fast: bool,
    deadline: Instant,
    killed_all: bool,
    /// The last phase: adopted processes still alive after every watcher
    /// stopped are being ended.
    sweep: Option<Sweep>,
    waiters: Vec<(Value, oneshot::Sender<Reply>)>,
    stopped: usize,
    /// Watchers whose "stopped" line has been logged.
    announced: std::collections::HashSet<WatcherId>,
}

/// Ending the processes the daemon adopted (orphans of its children, or
/// every orphan when it is PID 1), which no watcher stops.
struct Sweep {
    /// When SIGKILL replaces SIGTERM.
    kill_at: Instant,
    /// Pids already sent the signal of the current phase.
    signalled: std::collections::HashSet<Pid>,
    killed: bool,
}

/// What asked for a shutdown.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Trigger {
    /// A `shutdown` request on the socket: graceful.
    Request,
    /// SIGTERM or SIGINT: graceful.
    Signal(&'static str),
    /// SIGQUIT: fast.
    Quit,
    /// An essential process gave up: graceful, and the daemon exits with
    /// its code.
    Essential,
}

impl Trigger {
    fn name(self) -> &'static str {
        match self {
            Self::Request => "shutdown request",
            Self::Signal(name) => name,
            Self::Quit => "SIGQUIT",
            Self::Essential => "an essential process ended",
        }
    }
}

/// Waits for the next tick of `interval`, or forever without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// The supervisor state and its event loop.
pub(crate) struct Engine {
    config: Config,
    system: System,
    /// Fork, reap and signal: the kernel, or a test's script.
    os: Box<dyn Children + Send>,
    /// Every watcher and process slot.
    procs: Table,
    by_pid: HashMap<Pid, ProcId>,
    timers: DelayQueue<ProcId>,
    jobs: Vec<Job>,
    logs: LogHub,
    /// Pumps draining after their process ended: the process, what the
    /// pump did, and the process's log_lost_bytes once it is done.
    drains: JoinSet<(String, PumpReport, u64)>,
    shutdown: Option<Shutdown>,
    events: broadcast::Sender<Arc<Event>>,
    log_notices: mpsc::UnboundedReceiver<LogNotice>,
    /// Watches the children's pidfds (see exits.rs) ...
    exit_watch: ExitWatch,
    /// ... and says here which child exited.
    exited: mpsc::UnboundedReceiver<Pid>,
    /// Whether every child spawned so far came with a pidfd: then SIGCHLD
    /// is only for the orphans, and their sweep can wait a little.
    all_watched: bool,
    /// When the orphans are next swept (after a SIGCHLD).
    sweep_at: Option<Instant>,
    /// systemd's notify protocol (a no-op without NOTIFY_SOCKET).
    notify: Notifier,
    /// Whether the autostart processes have been launched (readiness is
    /// judged only after).
    started: bool,
    /// The exit code an essential process ended with: the daemon's own.
    exit_code: i32,
    /// Stops and restarts of several priority levels, in progress.
    sequences: Vec<Sequence<ProcId>>,
    /// Slots to start, in order, a batch per turn of the loop (see
    /// [`START_BATCH`]).
    start_queue: std::collections::VecDeque<ProcId>,
    /// The sockets bound for the workers (`[sockets.NAME]`).
    listeners: Listeners,
    /// Checks polling STARTING (readiness) and RUNNING (health) processes
    /// ...
    checks: Checks,
    /// ... and their results (and the passes of log checks).
    check_passed: mpsc::UnboundedReceiver<CheckEvent>,
    /// `ready = { cmd }` and `health = { cmd }` commands running: their
    /// pid, the slot and process they check, and for which check.
    probes: HashMap<Pid, (Checked, Purpose)>,
    /// The socket of `ready = { notify = true }`, bound at the first spawn
    /// that needs it ...
    notify_ready: Option<NotifyReady>,
    /// ... and its `READY=1` senders, each with its ancestors.
    notified: (
        mpsc::UnboundedSender<Vec<Pid>>,
        mpsc::UnboundedReceiver<Vec<Pid>>,
    ),
    /// Rolling restarts in progress.
    rolls: Vec<rolls::ActiveRoll>,
    /// Slots whose start waits for their `depends_on` to be ready.
    awaiting: Vec<ProcId>,
    /// Hook commands running: their pid, and what each is for.
    hook_runs: HashMap<Pid, hooks::HookRun>,
    /// When the daemon started, for `/metrics`.
    started_wall: std::time::SystemTime,
    /// The HTTP listener of `[daemon] metrics`, until `run` serves it.
    metrics_listener: Option<std::net::TcpListener>,
    /// `[daemon] xmlrpc`'s listener and credentials, until `run` serves it.
    xmlrpc_listener: Option<(std::net::TcpListener, Option<ringmaster_config::BasicAuth>)>,
    /// The daemon's cgroup for its processes, when it can make them.
    trees: Option<ringmaster_cgroup::Tree>,
    /// Numbers the processes' cgroups, so that each run has a new one.
    cgroup_seq: u64,
    /// Cgroups of past runs still populated, removed once empty.
    stale_cgroups: Vec<ringmaster_cgroup::Leaf>,
}

impl Engine {
    pub fn new(
        config: Config,
        system: System,
        os: Box<dyn Children + Send>,
    ) -> Result<Self, EngineError> {
        let as_root: Vec<&str> = config
            .watchers
            .iter()
            .filter(|w| w.user.is_none())
            .map(|w| w.name.as_str())
            .collect();
        if !as_root.is_empty() && nix::unistd::geteuid().is_root() {
            // One line for the daemon, naming them all.
            tracing::warn!(
                "no user set for {}: their processes will run as root",
                as_root.join(", ")
            );
        }
        let procs = Table::new(&config);
        let (notices, log_notices) = mpsc::unbounded_channel();
        let (exits, exited) = mpsc::unbounded_channel();
        let exit_watch = ExitWatch::start(exits).map_err(EngineError::ExitWatch)?;
        let (checks, check_passed) = Checks::new();
        Ok(Self {
            config,
            system,
            os,
            procs,
            by_pid: HashMap::new(),
            timers: DelayQueue::new(),
            jobs: Vec::new(),
            logs: LogHub::start(notices)?,
            drains: JoinSet::new(),
            shutdown: None,
            events: broadcast::Sender::new(EVENT_BUFFER),
            log_notices,
            exit_watch,
            exited,
            all_watched: true,
            sweep_at: None,
            notify: Notifier::from_env(),
            started: false,
            exit_code: 0,
            sequences: Vec::new(),
            start_queue: std::collections::VecDeque::new(),
            listeners: Listeners::default(),
            checks,
            check_passed,
            probes: HashMap::new(),
            notify_ready: None,
            notified: mpsc::unbounded_channel(),
            rolls: Vec::new(),
            awaiting: Vec::new(),
            hook_runs: HashMap::new(),
            started_wall: std::time::SystemTime::now(),
            metrics_listener: None,
            xmlrpc_listener: None,
            trees: None,
            cgroup_seq: 0,
            stale_cgroups: Vec::new(),
        })
    }

    /// The engine with the sockets bound for its configuration.
    pub fn with_listeners(mut self, listeners: Listeners) -> Self {
        self.listeners = listeners;
        self
    }

    /// The engine, serving supervisord's XML-RPC over TCP on `listener`
    /// once it runs.
    pub fn with_xmlrpc(
        mut self,
        listener: Option<(std::net::TcpListener, Option<ringmaster_config::BasicAuth>)>,
    ) -> Self {
        self.xmlrpc_listener = listener;
        self
    }

    /// The engine, running each process in a cgroup of its own under
    /// `trees`.
    pub fn with_trees(mut self, trees: Option<ringmaster_cgroup::Tree>) -> Self {
        self.trees = trees;
        self
    }

    /// The engine, serving `/metrics`, `/health` and `/targets` on
    /// `listener` once it runs.
    pub fn with_metrics(mut self, listener: Option<std::net::TcpListener>) -> Self {
        self.metrics_listener = listener;
        self
    }

    fn watcher(&self, id: ProcId) -> &WatcherConfig {
        self.procs.settings_of(id)
    }

    /// Runs until a shutdown completes; returns the exit code.
    pub async fn run(
        mut self,
        listener: UnixListener,
        authorizer: Authorizer,
        socket: SocketFile,
        mut signals: impl SignalSource,
    ) -> Result<i32, EngineError> {
        let (requests_tx, mut requests) = mpsc::channel::<Input>(1024);
        let token = CancellationToken::new();
        if let Some(listener) = self.metrics_listener.take() {
            crate::http::start(listener, requests_tx.clone(), token.clone());
        }
        if let Some((listener, auth)) = self.xmlrpc_listener.take() {
            control::serve_xmlrpc_tcp(listener, requests_tx.clone(), auth, token.clone());
        }
        let server = tokio::spawn(control::serve(
            listener,
            authorizer,
            requests_tx,
            self.events.clone(),
            token.clone(),
        ));
        tracing::info!(
            socket = %self.config.daemon.socket.display(),
            config = %self.config.path.display(),
            pid = std::process::id(),
            "ringmasterd {} started",
            env!("CARGO_PKG_VERSION")
        );

        self.autostart();
        self.started = true;
        self.update_notify();
        // A timer only when systemd asked for a watchdog: otherwise an idle
        // daemon does not wake up at all.
        let mut watchdog = self.notify.watchdog_interval().map(tokio::time::interval);
        let mut kill_grace: Option<Instant> = None;
        loop {
            if self.shutdown_complete() && self.sweep_adopted() {
                break;
            }
            let deadline = self.next_shutdown_deadline(kill_grace);
            tokio::select! {
                Some(signal) = signals.next() => self.on_signal(signal),
                // Queued starts go on a batch per turn, after the other
                // tasks (connections above all) have had theirs.
                () = tokio::task::yield_now(), if !self.start_queue.is_empty() => {}
                Some(expired) = std::future::poll_fn(|cx| self.timers.poll_expired(cx)), if !self.timers.is_empty() => {
                    self.on_timer(expired.into_inner());
                }
                Some(done) = self.drains.join_next(), if !self.drains.is_empty() => log_drain(done),
                Some(notice) = self.log_notices.recv() => self.on_log_notice(notice),
                Some(pid) = self.exited.recv() => self.reap_child(pid),
                Some(event) = self.check_passed.recv() => self.on_check(event),
                Some(lineage) = self.notified.1.recv() => self.on_notified(&lineage),
                () = sleep_until(self.sweep_at) => {
                    self.sweep_at = None;
                    self.reap();
                    self.remove_stale_cgroups();
                }
                () = tick(&mut watchdog) => self.notify.watchdog(),
                () = sleep_until(deadline) => {
                    if !self.on_shutdown_deadline(&mut kill_grace) {
                        break;
                    }
                }
                Some(input) = requests.recv() => match input {
                    Input::Request(incoming) => self.handle(incoming),
                    Input::Taps { name, stderr, reply } => {
                        let _ = reply.send(self.taps(&name, stderr));
                    }
                    Input::Metrics { reply } => {
                        let _ = reply.send(self.metrics_snapshot());
                    }
                },
            }
            if self.shutdown.is_some() {
                self.advance_shutdown();
            }
            if !self.sequences.is_empty() {
                self.advance_sequences();
            }
            if !self.rolls.is_empty() {
                self.advance_rolls();
            }
            if !self.start_queue.is_empty() && self.shutdown.is_none() {
                self.run_start_queue();
            }
        }

        self.answer_final_waiters();
        token.cancel();
        let _ = server.await;
        self.drain_logs().await;
        self.remove_cgroups();
        socket.remove();
        tracing::info!("ringmasterd stopped");
        Ok(self.exit_code)
    }

    /// What a daemon signal asks for.
    fn on_signal(&mut self, signal: DaemonSignal) {
        match signal {
            DaemonSignal::Child => self.on_child_signal(),
            DaemonSignal::Terminate => self.begin_shutdown(Trigger::Signal("SIGTERM")),
            DaemonSignal::Interrupt => self.begin_shutdown(Trigger::Signal("SIGINT")),
            DaemonSignal::Quit => self.begin_shutdown(Trigger::Quit),
            DaemonSignal::Hangup => self.on_hangup(),
            DaemonSignal::User2 => {
                let files = self.reopen_logs();
                tracing::info!(files, "SIGUSR2: reopening log files");
            }
        }
    }

    /// SIGHUP: reloads the configuration, or says why not.
    fn on_hangup(&mut self) {
        match self.reload(true) {
            Ok(diff) => tracing::info!(
                added = diff.added.len(),
                removed = diff.removed.len(),
                changed = diff.changed.len(),
                scaled = diff.scaled.len(),
                unchanged = diff.unchanged.len(),
                "SIGHUP: configuration reloaded"
            ),
            Err(Refusal::BadConfig { errors, .. }) => {
                tracing::error!("SIGHUP: configuration not reloaded, nothing changed:\n{errors}");
            }
            Err(other) => tracing::error!("SIGHUP: configuration not reloaded: {other}"),
        }
    }

    /// A shutdown deadline passed: SIGKILL for what is left, then a grace
    /// period for it to die. Returns false when even that passed (the
    /// daemon exits anyway).
    fn on_shutdown_deadline(&mut self, kill_grace: &mut Option<Instant>) -> bool {
        if self.shutdown.as_ref().is_some_and(|s| s.sweep.is_some()) {
            // The sweep's own deadline: handled at the top of the loop.
            return true;
        }
        if kill_grace.is_some() {
            tracing::error!("processes survived SIGKILL; exiting anyway");
            return false;
        }
        self.kill_everything();
        *kill_grace = Some(Instant::now() + KILL_GRACE);
        true
    }

    /// Answers those who asked for the shutdown, and fails the jobs left.
    fn answer_final_waiters(&mut self) {
        let stopped = self.shutdown.as_ref().map_or(0, |s| s.stopped);
        if let Some(shutdown) = self.shutdown.take() {
            for (id, reply) in shutdown.waiters {
                let response = Response::Shutdown(ShutdownResult { stopped });
                let _ = reply.send(Reply::answer(id, &response));
            }
        }
        for job in std::mem::take(&mut self.jobs) {
            let _ = job.reply.send(Refusal::Gone.reply(job.id.clone()));
        }
    }

    /// Lets the log pumps write what they hold, for a while.
    async fn drain_logs(&mut self) {
        let drains = async {
            while let Some(done) = self.drains.join_next().await {
                log_drain(done);
            }
        };
        if tokio::time::timeout(DRAIN_TIMEOUT, drains).await.is_err() {
            tracing::warn!("some log pumps did not finish draining in time");
        }
    }

    fn next_shutdown_deadline(&self, kill_grace: Option<Instant>) -> Option<Instant> {
        if let Some(sweep) = self.shutdown.as_ref().and_then(|s| s.sweep.as_ref()) {
            return Some(if sweep.killed {
                sweep.kill_at + KILL_GRACE
            } else {
                sweep.kill_at
            });
        }
        kill_grace.or_else(|| {
            self.shutdown
                .as_ref()
                .filter(|s| !s.killed_all)
                .map(|s| s.deadline)
        })
    }

    /// Makes every live log pump reopen its file; returns how many.
    fn reopen_logs(&self) -> usize {
        self.logs.reopen();
        self.procs
            .iter()
            .flat_map(|p| &p.pumps)
            .filter(|pump| pump.has_file())
            .count()
    }

    // ----- start-up -------------------------------------------------------

    fn autostart(&mut self) {
        let mut order: Vec<ProcId> = self
            .procs
            .all_live()
            .into_iter()
            .filter(|&id| self.watcher(id).autostart)
            .collect();
        // Dependencies first, then by priority; stable: equal priorities
        // keep configuration order.
        order.sort_by_key(|&id| self.procs.order(id));
        for id in order {
            self.queue_start(id);
        }
    }

    /// Queues a start of slot `id` (see [`START_BATCH`]); a stop or a
    /// shutdown takes it out again.
    pub(super) fn queue_start(&mut self, id: ProcId) {
        if !std::mem::replace(&mut self.procs[id].queued, true) {
            self.start_queue.push_back(id);
        }
    }

    /// Starts the next batch of queued slots.
    fn run_start_queue(&mut self) {
        let until = std::time::Instant::now() + START_TURN;
        for _ in 0..START_BATCH {
            if std::time::Instant::now() >= until {
                return;
            }
            let Some(id) = self.start_queue.pop_front() else {
                return;
            };
            // Taken out meanwhile (stopped, shut down), or held back by
            // its dependencies.
            if std::mem::take(&mut self.procs[id].queued) && !self.start_gated(id) {
                self.drive(id, lifecycle::Input::Start);
            }
        }
    }

    // ----- the lifecycle ----------------------------------------------------

    /// Feeds `input` to slot `id`'s lifecycle and carries out what it
    /// says, feeding back what only the engine learns (a spawn's pid or
    /// its failure); then brings waiting requests, systemd and the
    /// shutdown's progress up to date.
    pub(super) fn drive(&mut self, id: ProcId, input: lifecycle::Input) {
        if matches!(
            input,
            lifecycle::Input::Stop | lifecycle::Input::Shutdown | lifecycle::Input::Kill
        ) {
            // A queued start, one waiting for its dependencies or for its
            // before_start hook, is overtaken: the stop wins.
            self.procs[id].queued = false;
            self.procs[id].gate = None;
            self.cancel_before_start(id);
        }
        // A stop of a RUNNING process with a before_stop hook waits for it;
        // one whose process exits meanwhile goes ahead now.
        if self.hold_for_before_stop(id, &input) {
            return;
        }
        if matches!(input, lifecycle::Input::Exited { .. }) {
            self.release_before_stop(id);
        }
        self.step_slot(id, input);
    }

    /// [`Self::drive`] past the hooks: the lifecycle's step and its
    /// effects.
    pub(super) fn step_slot(&mut self, id: ProcId, input: lifecycle::Input) {
        let mut next = Some(input);
        let mut gave_up = false;
        while let Some(input) = next.take() {
            let (process, settings) = self.procs.slot_and_settings(id);
            let ctx = Context {
                settings: Settings::of(settings),
                // The runtime's clock: paused in the engine's tests.
                now: Instant::now().into_std(),
                shutting_down: self.shutdown.is_some(),
                retired: process.retired,
            };
            for effect in lifecycle::step(&mut process.life, input, &ctx) {
                match effect {
                    Effect::Spawn => next = self.spawn_or_hook(id),
                    Effect::CheckReady { pid } => self.start_check(id, pid),
                    Effect::Signal { target, signal } => {
                        let _ = self.os.signal(target, signal);
                        if signal == nix::sys::signal::Signal::SIGKILL as i32 {
                            self.kill_tree(id);
                        } else if target < 0 {
                            self.signal_outside_group(id, target, signal);
                        }
                    }
                    Effect::Schedule(after) => self.schedule(id, after),
                    Effect::CancelTimer => self.cancel_timer(id),
                    Effect::Transition { from, to } => self.on_transition(id, from, to),
                    Effect::StopDone => {
                        if let Some(shutdown) = self.shutdown.as_mut() {
                            shutdown.stopped += 1;
                        }
                    }
                    Effect::GaveUp => gave_up = true,
                    Effect::Warn(message) => {
                        tracing::warn!(process = %self.procs[id].shown(), "{message}");
                    }
                    Effect::Anomaly(message) => {
                        tracing::error!(process = %self.procs[id].shown(), "{message}");
                    }
                }
            }
        }
        self.update_jobs(id);
        if !self.awaiting.is_empty() {
            self.recheck_awaiting();
        }
        self.update_notify();
        self.announce_stopped(id);
        if gave_up {
            self.check_essential(id);
        }
    }

    /// A state change: the log line and the event.
    fn on_transition(&mut self, id: ProcId, from: ProcessState, to: ProcessState) {
        if matches!(from, ProcessState::Starting | ProcessState::Running) {
            // Passed, or too late, or no longer running: either way its
            // check is over, and a check command still running is ended.
            self.end_checks(id);
        }
        if to == ProcessState::Running {
            self.start_health(id);
            self.run_side_hook(id, HookPoint::AfterStart);
        }
        if from.has_pid() && !to.has_pid() {
            self.run_side_hook(id, HookPoint::AfterStop);
        }
        debug_assert!(
            lifecycle::TRANSITIONS.contains(&(from, to)),
            "{from} -> {to} is not in lifecycle::TRANSITIONS"
        );
        let process = &self.procs[id];
        tracing::info!(
            process = %process.shown(),
            pid = process.pid().map(Pid::as_raw),
            reason = process.life.reason.as_deref(),
            "{from} -> {to}"
        );
        let reason = process.life.reason.clone();
        self.emit_event(id, from, to, reason);
    }

    /// During a shutdown, one line per watcher once all its processes are
    /// gone: the progress a person at the terminal sees after Ctrl-C.
    fn announce_stopped(&mut self, id: ProcId) {
        let watcher = self.procs[id].watcher;
        let Some(shutdown) = self.shutdown.as_ref() else {
            return;
        };
        if shutdown.announced.contains(&watcher) {
            return;
        }
        // One pass, no allocation: this runs after every exit of a shutdown.
        let mut count = 0;
        for &slot in &self.procs.watcher(watcher).slots {
            let process = &self.procs[slot];
            if process.retired {
                continue;
            }
            if process.life.phase.is_alive() {
                return;
            }
            count += 1;
        }
        let name = self.procs.watcher(watcher).config.name.clone();
        if let Some(shutdown) = self.shutdown.as_mut() {
            shutdown.announced.insert(watcher);
        }
        let count = ringmaster_protocol::plural(count, "process", "processes");
        tracing::info!(watcher = %name, "{name}: stopped ({count})");
    }

    /// An essential process that gave up (FATAL, or EXITED with no restart
    /// coming) takes the daemon down with its exit code (the container
    /// restarts, as orchestrators expect).
    fn check_essential(&mut self, id: ProcId) {
        if self.shutdown.is_some() || !self.watcher(id).essential || self.procs[id].retired {
            return;
        }
        let code = match self.procs[id].life.last_exit {
            Some(Exit::Code(code)) => code,
            Some(Exit::Signal { signal, .. }) => 128 + signal,
            // Never ran (a spawn error): a failure all the same.
            None => 1,
        };
        // A clean exit of an essential process still ends the stack, with 0.
        self.exit_code = code;
        tracing::warn!(
            process = %self.procs[id].shown(),
            code,
            "essential process ended ({}): shutting everything down",
            self.procs[id].state()
        );
        self.begin_shutdown(Trigger::Essential);
    }

    /// STATUS= with the counts per state, and READY=1 once every autostart
    /// process has settled (running, or given up).
    pub(super) fn update_notify(&mut self) {
        // Counting costs a pass over every process: only under systemd,
        // and not while a start is still being worked off (a status per
        // start would be a datagram per process, and READY=1 waits for the
        // queue anyway).
        if !self.notify.enabled()
            || !self.started
            || self.shutdown.is_some()
            || !self.start_queue.is_empty()
        {
            return;
        }
        let mut counts: Vec<(ProcessState, usize)> = Vec::new();
        for process in self.procs.iter().filter(|p| !p.retired) {
            let state = process.state();
            match counts.iter_mut().find(|(s, _)| *s == state) {
                Some((_, n)) => *n += 1,
                None => counts.push((state, 1)),
            }
        }
        counts.sort_by_key(|(s, _)| *s as u8);
        let status = if counts.is_empty() {
            "no processes".to_owned()
        } else {
            counts
                .iter()
                .map(|(s, n)| format!("{n} {}", s.as_str().to_lowercase()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        if !self.notify.is_ready() {
            let settled = self
                .procs
                .ids()
                .filter(|&id| !self.procs[id].retired && self.watcher(id).autostart)
                .all(|id| {
                    !self.procs[id].start_pending()
                        && !matches!(
                            self.procs[id].state(),
                            ProcessState::Starting | ProcessState::Backoff | ProcessState::Stopping
                        )
                });
            if settled {
                self.notify.ready(&status);
                return;
            }
        }
        self.notify.status(&status);
    }

    /// Publishes a state change (or, with from == to, a log problem) to
    /// `events` clients, if there are any.
    fn emit_event(&self, id: ProcId, from: ProcessState, to: ProcessState, reason: Option<String>) {
        if self.events.receiver_count() == 0 {
            return;
        }
        let process = &self.procs[id];
        let pid = process.pid();
        let ended = from != to
            && matches!(
                from,
                ProcessState::Starting | ProcessState::Running | ProcessState::Stopping
            )
            && pid.is_none();
        let _ = self.events.send(Arc::new(Event {
            time: ringmaster_logs::rfc3339(std::time::SystemTime::now()),
            process: process.name.clone(),
            alias: process.alias.clone(),
            from,
            to,
            pid: pid.or(process.last_pid).map(Pid::as_raw),
            exit: process
                .life
                .last_exit
                .filter(|_| ended)
                .map(crate::process::exit_info),
            reason,
        }));
    }

    /// A log file started failing or recovered: shown in status and events.
    fn on_log_notice(&mut self, notice: LogNotice) {
        let owner = ProcId::from_index(notice.owner);
        let Some(process) = self.procs.get_mut(owner) else {
            return;
        };
        process
            .log_errors
            .retain(|(label, _)| *label != notice.label);
        let reason = if let Some(problem) = notice.problem {
            let text = format!("{problem}; output is being lost and counted, retrying");
            process.log_errors.push((notice.label, problem));
            text
        } else {
            format!(
                "{}: log file writable again; {} bytes of output were lost",
                notice.label, notice.lost
            )
        };
        let state = process.state();
        self.emit_event(owner, state, state, Some(reason));
    }

    /// Whether slot `id` is a one-shot job that completed.
    pub(super) fn completed(&self, id: ProcId) -> bool {
        lifecycle::completed(&self.procs[id].life, Settings::of(self.watcher(id)))
    }

    fn update_jobs(&mut self, id: ProcId) {
        let shutting_down = self.shutdown.is_some();
        let completed = self.completed(id);
        let process = &self.procs[id];
        let mut index = 0;
        while index < self.jobs.len() {
            if self.jobs[index].update(id, process, completed, shutting_down) {
                self.jobs.swap_remove(index).finish();
            } else {
                index += 1;
            }
        }
    }

    fn schedule(&mut self, id: ProcId, after: Duration) {
        self.cancel_timer(id);
        self.procs[id].timer = Some(self.timers.insert(id, after));
    }

    fn cancel_timer(&mut self, id: ProcId) {
        if let Some(key) = self.procs[id].timer.take() {
            self.timers.try_remove(&key);
        }
    }

    /// Forks the process of slot `id`: what came of it, for its lifecycle
    /// (a failure counts as a quick failure, never a crash).
    fn spawn(&mut self, id: ProcId) -> lifecycle::Input {
        self.cancel_timer(id);
        self.bind_notify_if_needed(id);
        let multiproc = match self.prepare_multiproc(id) {
            Ok(dir) => dir,
            Err(reason) => return self.spawn_failed(id, reason),
        };
        let watcher = self.watcher(id);
        let prepared = launch::prepare(
            watcher,
            &self.procs[id].name,
            &self.procs[id].shown(),
            &self.system,
            (&self.config.daemon.socket, multiproc.as_deref()),
            &self.listeners,
        );
        let mut prepared = match prepared {
            Ok(prepared) => prepared,
            Err(reason) => return self.spawn_failed(id, reason.to_string()),
        };
        let (leaf, procs) = self.cgroup_for_spawn(id).unzip();
        prepared.cgroup = procs;
        let spawned = self.os.spawn(&prepared);
        prepared.cgroup = None;
        // Our copies of the child's ends must close now, or the pumps
        // would never see EOF.
        drop(prepared.stdio);
        let pid = match spawned {
            Ok(spawned) => {
                match spawned.pidfd {
                    Some(pidfd) => self.exit_watch.watch(spawned.pid, pidfd),
                    None => self.all_watched = false,
                }
                spawned.pid
            }
            Err(err) => {
                if let Some(leaf) = leaf {
                    let _ = leaf.remove();
                }
                return self.spawn_failed(id, err.to_string());
            }
        };
        self.adopt_cgroup(id, leaf);
        let log_ready = match &self.watcher(id).ready {
            Some(ready) => match &ready.check {
                // Checked when the file was read.
                ReadyCheck::Log(pattern) => ringmaster_config::log_pattern(pattern).ok(),
                _ => None,
            },
            None => None,
        };
        let pumps = prepared
            .captures
            .into_iter()
            .map(|c| {
                let watch = log_ready.clone().map(|pattern| {
                    let reporter = self.checks.reporter();
                    LineWatch::new(pattern, move || {
                        let _ = reporter.send(CheckEvent::Passed(Checked { id, pid }));
                    })
                });
                let stream = Stream {
                    owner: id.index(),
                    label: c.label,
                    sink: c.sink,
                    tap: self.procs[id].taps[c.stream].clone(),
                    echo: c.echo,
                    lost: self.procs[id].log_lost.clone(),
                    received: self.procs[id].log_bytes[c.stream].clone(),
                    watch,
                };
                self.logs.attach(c.read, stream)
            })
            .collect();
        let process = &mut self.procs[id];
        process.last_pid = Some(pid);
        process.spawned_wall = Some(std::time::SystemTime::now());
        process.pumps = pumps;
        // The new run's writers report their own problems, if any.
        process.log_errors.clear();
        self.by_pid.insert(pid, id);
        lifecycle::Input::Spawned { pid }
    }

    fn spawn_failed(&self, id: ProcId, reason: String) -> lifecycle::Input {
        tracing::warn!(process = %self.procs[id].shown(), "spawn failed: {reason}");
        lifecycle::Input::SpawnFailed { reason }
    }

    /// Whether the process group `pgid` still has members.
    fn group_alive(&self, pgid: Option<Pid>) -> bool {
        pgid.is_some_and(|pgid| self.os.group_alive(pgid))
    }

    // ----- reaping --------------------------------------------------------

    /// Reaps every child that has exited: SIGCHLD coalesces, so loop.
    /// Every exit is collected before any is acted on, so a leader's
    /// group members that exited with it are gone when its group is
    /// checked.
    fn reap(&mut self) {
        let mut orphans = 0usize;
        let mut exits = Vec::new();
        let mut probes = Vec::new();
        let mut hooks = Vec::new();
        loop {
            match self.os.reap() {
                Ok(Some((pid, exit))) => {
                    if let Some(id) = self.by_pid.remove(&pid) {
                        exits.push((id, exit));
                    } else if let Some(run) = self.probes.remove(&pid) {
                        probes.push((pid, run, exit));
                    } else if let Some(run) = self.hook_runs.remove(&pid) {
                        hooks.push((pid, run, exit));
                    } else {
                        orphans += 1;
                    }
                }
                Ok(None) => break,
                Err(err) => {
                    tracing::error!("waitpid failed: {err}");
                    break;
                }
            }
        }
        for (id, exit) in exits {
            self.on_exit(id, exit);
        }
        for (pid, run, exit) in probes {
            self.on_probe_exit(pid, run, exit);
        }
        for (pid, run, exit) in hooks {
            self.on_hook_exit(pid, run, Ok(exit));
        }
        if orphans > 0 {
            tracing::debug!(count = orphans, "reaped orphaned descendants");
            self.recheck_lingering_groups();
        }
    }

    /// SIGCHLD. Our children's exits arrive by pidfd (and raise SIGCHLD
    /// too: exec gives every process SIGCHLD as its exit signal), so the
    /// sweep for orphans, a waitpid(-1) that walks every child, runs a
    /// moment later, once for a burst of exits, and never in the way of a
    /// restart. A child without a pidfd (an old kernel) is reaped at once.
    fn on_child_signal(&mut self) {
        if !self.all_watched {
            return self.reap();
        }
        if self.sweep_at.is_none() {
            self.sweep_at = Some(Instant::now() + ORPHAN_SWEEP);
        }
    }

    /// Reaps `pid`, whose pidfd said it exited: that one child, without
    /// walking the others as waitpid(-1) would.
    fn reap_child(&mut self, pid: Pid) {
        match self.os.reap_pid(pid) {
            Ok(Some(exit)) => {
                if let Some(id) = self.by_pid.remove(&pid) {
                    self.on_exit(id, exit);
                } else if let Some(run) = self.probes.remove(&pid) {
                    self.on_probe_exit(pid, run, exit);
                } else if let Some(run) = self.hook_runs.remove(&pid) {
                    self.on_hook_exit(pid, run, Ok(exit));
                }
            }
            // Reaped already by the SIGCHLD sweep (its pid may even be
            // another child's by now, still running).
            Ok(None) => {}
            Err(err) => tracing::error!(%pid, "waitpid failed: {err}"),
        }
    }

    fn on_exit(&mut self, id: ProcId, exit: Exit) {
        let process = &mut self.procs[id];
        process.ended_wall = Some(std::time::SystemTime::now());
        let shown = process.shown();
        for mut pump in process.pumps.drain(..) {
            pump.finish();
            let name = shown.clone();
            let lost = process.log_lost.clone();
            self.drains
                .spawn(async move { (name, pump.wait().await, lost.load(Ordering::Relaxed)) });
        }
        let leader = process.last_pid;
        let group_alive = self.tree_alive(id, leader);
        self.sweep_live_gauges(id);
        self.drive(id, lifecycle::Input::Exited { exit, group_alive });
    }

    fn recheck_lingering_groups(&mut self) {
        let lingering: Vec<(ProcId, Pid)> = self
            .procs
            .ids()
            .filter_map(|id| Some((id, self.procs[id].life.phase.lingering_group()?)))
            .collect();
        for (id, pgid) in lingering {
            let group_alive = self.tree_alive(id, Some(pgid));
            self.drive(id, lifecycle::Input::GroupCheck { group_alive });
        }
        self.remove_stale_cgroups();
    }

    // ----- timers ---------------------------------------------------------

    fn on_timer(&mut self, id: ProcId) {
        self.procs[id].timer = None;
        let group = match self.procs[id].life.phase {
            Phase::Stopping(stop) => Some(stop.pgid),
            _ => None,
        };
        let group_alive = self.tree_alive(id, group);
        self.drive(id, lifecycle::Input::Timer { group_alive });
    }

    // ----- shutdown -------------------------------------------------------

    fn begin_shutdown(&mut self, trigger: Trigger) {
        let fast = matches!(trigger, Trigger::Quit);
        if let Some(shutdown) = self.shutdown.as_mut() {
            // Any signal during a shutdown (the second Ctrl-C) hurries it;
            // another `shutdown` request just waits for it.
            if !shutdown.fast && !matches!(trigger, Trigger::Request) {
                tracing::warn!(
                    "{} during shutdown: stopping everything at once",
                    trigger.name()
                );
                shutdown.fast = true;
            }
            return;
        }
        tracing::info!(fast, "{}: shutting down", trigger.name());
        self.notify.stopping();
        self.shutdown = Some(Shutdown {
            fast,
            deadline: Instant::now() + self.config.daemon.shutdown_timeout,
            killed_all: false,
            sweep: None,
            waiters: Vec::new(),
            stopped: 0,
            announced: std::collections::HashSet::new(),
        });
        self.sequences.clear();
        // Each slot drops a pending start or retry; requests still waiting
        // for a process to run learn it will not.
        for id in self.procs.ids() {
            self.procs[id].held = false;
            self.drive(id, lifecycle::Input::Shutdown);
        }
        // Starts still queued or waiting for dependencies will not happen
        // (each slot's flags were cleared by its Shutdown input, deciding
        // the requests waiting).
        self.start_queue.clear();
        self.awaiting.clear();
    }

    /// Stops the next priority group (all at once when fast).
    fn advance_shutdown(&mut self) {
        let Some(shutdown) = self.shutdown.as_ref() else {
            return;
        };
        let alive: Vec<(ProcId, (u32, i32))> = self
            .procs
            .ids()
            .filter(|&id| self.procs[id].life.phase.is_alive())
            .map(|id| (id, self.procs.order(id)))
            .collect();
        for id in lifecycle::shutdown_wave(&alive, shutdown.fast) {
            // A stop already under way keeps what follows it (a leader's
            // exit still counts).
            if matches!(
                self.procs[id].life.phase,
                Phase::Starting { .. } | Phase::Running { .. }
            ) {
                self.drive(id, lifecycle::Input::Stop);
            }
        }
    }

    /// Every process is gone, and every hook has ended (an `after_stop`
    /// hook of the last processes runs before the daemon exits; each is
    /// bounded by `hook_timeout`).
    fn shutdown_complete(&self) -> bool {
        self.shutdown.is_some()
            && self.hook_runs.is_empty()
            && self.procs.iter().all(|p| !p.life.phase.is_alive())
    }

    /// Once every watcher is down: the processes the daemon adopted that
    /// are still alive (a `setsid` escapee, a double-forked daemon, or
    /// any orphan of the container when PID 1) get SIGTERM, then SIGKILL
    /// after [`ADOPTED_GRACE`], so none outlives the daemon. True when
    /// none is left (or they survived SIGKILL too long).
    fn sweep_adopted(&mut self) -> bool {
        let children = self.os.adopted();
        let Some(shutdown) = self.shutdown.as_mut() else {
            return true;
        };
        if children.is_empty() {
            return true;
        }
        let now = Instant::now();
        let sweep = shutdown.sweep.get_or_insert_with(|| {
            tracing::warn!(
                count = children.len(),
                "{} adopted processes are still alive: sending SIGTERM",
                children.len()
            );
            Sweep {
                kill_at: now + ADOPTED_GRACE,
                signalled: std::collections::HashSet::new(),
                killed: false,
            }
        });
        if !sweep.killed && now >= sweep.kill_at {
            tracing::warn!(
                count = children.len(),
                "adopted processes ignored SIGTERM: sending SIGKILL"
            );
            sweep.killed = true;
            sweep.signalled.clear();
        }
        if sweep.killed && now >= sweep.kill_at + KILL_GRACE {
            tracing::error!("adopted processes survived SIGKILL; exiting anyway");
            return true;
        }
        let signal = if sweep.killed {
            lifecycle::sigkill()
        } else {
            libc_sigterm()
        };
        for pid in children {
            // Each once per phase; ones adopted later get theirs as they come.
            if sweep.signalled.insert(pid) {
                let _ = self.os.signal(pid.as_raw(), signal);
            }
        }
        false
    }

    /// The shutdown deadline passed: SIGKILL every remaining group.
    fn kill_everything(&mut self) {
        tracing::error!("shutdown_timeout reached: killing every remaining process");
        if let Some(shutdown) = self.shutdown.as_mut() {
            shutdown.killed_all = true;
        }
        for id in self.procs.ids() {
            self.drive(id, lifecycle::Input::Kill);
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// How long after a SIGCHLD the orphans are swept (see
/// [`Engine::on_child_signal`]).
const ORPHAN_SWEEP: Duration = Duration::from_millis(20);

fn log_drain(done: Result<(String, PumpReport, u64), tokio::task::JoinError>) {
    if let Ok((name, report, total)) = done
        && report.lost > 0
    {
        tracing::error!(
            process = %name,
            lost = report.lost,
            log_lost_bytes = total,
            "{} bytes of this run's output could not be written to its log file ({total} since the daemon started, as status says)",
            report.lost
        );
    }
}

fn libc_sigterm() -> i32 {
    signals::parse("TERM").unwrap_or(15)
}
