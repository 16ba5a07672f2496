//! The process lifecycle: every state rule of one process slot, as one
//! pure function.
//!
//! A slot's [`Life`] is its [`Phase`] (which carries what that phase needs:
//! a pid exists exactly when the phase has one) and what outlives phases
//! (quick failures, restarts, the last exit, the reason shown in status).
//! [`step`] takes the slot, one [`Input`] (what happened to it) and its
//! [`Context`] (settings, the time, whether the daemon is shutting down)
//! and returns the [`Effect`]s the engine must carry out, in order: spawn,
//! signal, arm or cancel the slot's timer, publish a transition. It does no
//! I/O and reads no clock, so every rule is tested below without a process
//! or real time. The engine feeds back what only it can learn (the pid of
//! a spawn, whether a process group is still alive) as further inputs.
//!
//! The rules are Supervisor's, as docs/configuration.md tells them; the
//! transitions this function can make are [`TRANSITIONS`], which the
//! document's table lists too (a test keeps them in step).

use std::time::{Duration, Instant};

use nix::unistd::Pid;
use ringmaster_config::{Restart, StartRetries, WatcherConfig};
use ringmaster_protocol::{ProcessState, signals};
use ringmaster_spawn::Exit;

/// First delay after a quick failure; doubles up to `backoff_max`.
pub(crate) const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// While a stopped leader's group lingers, how often it is re-checked (only
/// for the rare member whose parent is not us; orphans we reap wake us).
pub(crate) const GROUP_RECHECK: Duration = Duration::from_millis(20);

/// Where a slot is in its lifecycle, with what that phase needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Not running, not wanted running.
    Stopped,
    /// Spawned at `since`; RUNNING once `start_secs` pass.
    Starting { pid: Pid, since: Instant },
    /// Up for `start_secs` at least (spawned at `since`).
    Running { pid: Pid, since: Instant },
    /// Failed quickly; spawned again at `until`.
    Backoff { until: Instant },
    /// Being stopped.
    Stopping(Stop),
    /// Exited on its own from RUNNING (a restart, if due, follows at once).
    Exited,
    /// Gave up after too many quick failures.
    Fatal,
}

/// A stop in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stop {
    /// The leader while it is alive; `None` once reaped (its group may
    /// live on).
    pub leader: Option<Pid>,
    /// When the leader was spawned.
    pub since: Instant,
    /// The process group (the leader's pid).
    pub pgid: Pid,
    /// Whether signals go to the whole group (and the stop waits for it).
    pub group: bool,
    /// When SIGKILL is due.
    pub kill_at: Instant,
    /// Whether SIGKILL was sent.
    pub killed: bool,
    /// What follows once everything is gone.
    pub then: Then,
}

/// What follows a completed stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Then {
    /// STOPPED.
    Rest,
    /// Started again (a restart, or a start asked for while stopping).
    Start,
    /// The leader had exited on its own from `was` (STARTING or RUNNING)
    /// and its leftovers were stopped: now its exit counts.
    LeaderExit { exit: Exit, was: ProcessState },
    /// It did not pass its readiness check in time: a quick failure.
    NotReady,
}

impl Phase {
    /// The protocol's state.
    pub(crate) fn state(&self) -> ProcessState {
        match self {
            Self::Stopped => ProcessState::Stopped,
            Self::Starting { .. } => ProcessState::Starting,
            Self::Running { .. } => ProcessState::Running,
            Self::Backoff { .. } => ProcessState::Backoff,
            Self::Stopping(_) => ProcessState::Stopping,
            Self::Exited => ProcessState::Exited,
            Self::Fatal => ProcessState::Fatal,
        }
    }

    /// The live leader's pid.
    pub(crate) fn pid(&self) -> Option<Pid> {
        match self {
            Self::Starting { pid, .. } | Self::Running { pid, .. } => Some(*pid),
            Self::Stopping(stop) => stop.leader,
            _ => None,
        }
    }

    /// When the live leader was spawned.
    pub(crate) fn since(&self) -> Option<Instant> {
        match self {
            Self::Starting { since, .. } | Self::Running { since, .. } => Some(*since),
            Self::Stopping(stop) if stop.leader.is_some() => Some(stop.since),
            _ => None,
        }
    }

    /// Whether anything of the process may still be alive: a leader, or
    /// a group being stopped.
    pub(crate) fn is_alive(&self) -> bool {
        matches!(
            self,
            Self::Starting { .. } | Self::Running { .. } | Self::Stopping(_)
        )
    }

    /// The group to watch: a stop whose leader is gone but whose group
    /// may not be.
    pub(crate) fn lingering_group(&self) -> Option<Pid> {
        match self {
            Self::Stopping(stop) if stop.leader.is_none() => Some(stop.pgid),
            _ => None,
        }
    }

    /// Whether a start is due once the current stop completes.
    pub(crate) fn start_pending(&self) -> bool {
        matches!(
            self,
            Self::Stopping(Stop {
                then: Then::Start,
                ..
            })
        )
    }
}

/// One slot's lifecycle: its phase and what outlives phases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Life {
    /// Where it is.
    pub phase: Phase,
    /// Consecutive quick failures (reset on RUNNING and on a manual start).
    pub failures: u32,
    /// Automatic restarts since the daemon started.
    pub restarts: u32,
    /// How the last run ended.
    pub last_exit: Option<Exit>,
    /// Why it is where it is, as status shows it.
    pub reason: Option<String>,
}

impl Default for Life {
    fn default() -> Self {
        Self {
            phase: Phase::Stopped,
            failures: 0,
            restarts: 0,
            last_exit: None,
            reason: None,
        }
    }
}

/// What happens to a slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// Start by hand: the quick-failure count starts over.
    Start,
    /// Stop now; a stop already under way stays one, and wins over what
    /// would have followed it.
    Stop,
    /// Stop, then start again; at once when nothing runs.
    Restart,
    /// The engine spawned the process the last [`Effect::Spawn`] asked for.
    Spawned { pid: Pid },
    /// That spawn failed.
    SpawnFailed { reason: String },
    /// The watcher's before_start hook failed, so no spawn happened: a
    /// quick failure, for `reason`.
    HookFailed { reason: String },
    /// The readiness check of the process `pid` passed.
    Ready { pid: Pid },
    /// The health check of the RUNNING process `pid` failed too many times
    /// in a row: it is restarted, for `reason`.
    Unhealthy { pid: Pid, reason: String },
    /// The leader was reaped; `group_alive`: members of its process group
    /// are still alive.
    Exited { exit: Exit, group_alive: bool },
    /// The slot's timer fired; `group_alive` as for `Exited`.
    Timer { group_alive: bool },
    /// Orphans were reaped: a lingering group may be gone (`group_alive`).
    GroupCheck { group_alive: bool },
    /// The daemon begins shutting down: no retry, no pending start.
    Shutdown,
    /// The shutdown deadline passed: SIGKILL whatever is left.
    Kill,
}

/// What the engine must do, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Spawn the process, then feed back `Spawned` or `SpawnFailed`.
    Spawn,
    /// Run the watcher's readiness check on process `pid` (it ends by
    /// itself when the slot leaves STARTING), feeding back `Ready`.
    CheckReady { pid: Pid },
    /// `kill(target, signal)`: a pid, or a negated process group.
    Signal { target: i32, signal: i32 },
    /// (Re)arm the slot's one timer.
    Schedule(Duration),
    /// Disarm it.
    CancelTimer,
    /// Publish a state change (log line, event, waiting requests).
    Transition {
        from: ProcessState,
        to: ProcessState,
    },
    /// A stop completed (counted by a shutdown).
    StopDone,
    /// Entered FATAL, or EXITED with no restart coming: an essential
    /// process takes the daemon down.
    GaveUp,
    /// Worth a warning in the daemon's log.
    Warn(String),
    /// Something that should not happen (worth an error line, not a crash).
    Anomaly(String),
}

/// The watcher's settings [`step`] reads.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings<'a> {
    pub start_secs: Duration,
    /// With a `ready` check: how long a process has to pass it (it is
    /// then RUNNING by its check, not by `start_secs`).
    pub ready_timeout: Option<Duration>,
    pub start_retries: StartRetries,
    pub backoff_max: Duration,
    pub restart: Restart,
    pub exit_codes: &'a [i32],
    pub stop_signal: i32,
    pub stop_timeout: Duration,
    pub stop_group: bool,
    pub stop_orphans: bool,
}

impl<'a> Settings<'a> {
    /// A watcher's lifecycle settings.
    pub(crate) fn of(watcher: &'a WatcherConfig) -> Self {
        Self {
            start_secs: watcher.start_secs,
            ready_timeout: watcher.ready.as_ref().map(|r| r.timeout),
            start_retries: watcher.start_retries,
            backoff_max: watcher.backoff_max,
            restart: watcher.restart,
            exit_codes: &watcher.exit_codes,
            stop_signal: watcher.stop_signal,
            stop_timeout: watcher.stop_timeout,
            stop_group: watcher.stop_group,
            stop_orphans: watcher.stop_orphans,
        }
    }
}

/// Everything [`step`] knows besides the slot and the input.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Context<'a> {
    pub settings: Settings<'a>,
    /// The time now.
    pub now: Instant,
    /// Whether the daemon is shutting down: nothing is (re)started.
    pub shutting_down: bool,
    /// Whether the slot was retired (`decr`, a removed watcher): never
    /// restarted.
    pub retired: bool,
}

/// Every transition [`step`] can make.
pub(crate) const TRANSITIONS: &[(ProcessState, ProcessState)] = {
    use ProcessState::{Backoff, Exited, Fatal, Running, Starting, Stopped, Stopping};
    &[
        (Stopped, Starting),
        (Stopped, Backoff),
        (Stopped, Fatal),
        (Exited, Starting),
        (Exited, Backoff),
        (Exited, Fatal),
        (Fatal, Starting),
        (Fatal, Backoff),
        (Fatal, Fatal),
        (Starting, Running),
        (Starting, Exited),
        (Starting, Backoff),
        (Starting, Fatal),
        (Starting, Stopped),
        (Starting, Stopping),
        (Running, Exited),
        (Running, Stopping),
        (Backoff, Starting),
        (Backoff, Backoff),
        (Backoff, Fatal),
        (Backoff, Stopped),
        (Stopping, Stopped),
        (Stopping, Exited),
        (Stopping, Backoff),
        (Stopping, Fatal),
    ]
};

/// Applies `input` to `life`; returns what the engine must do.
pub(crate) fn step(life: &mut Life, input: Input, ctx: &Context<'_>) -> Vec<Effect> {
    let mut out = Vec::new();
    match input {
        Input::Start => start(life, &mut out),
        Input::Stop => stop(life, ctx, &mut out),
        Input::Restart => restart(life, ctx, &mut out),
        Input::Spawned { pid } => spawned(life, pid, ctx, &mut out),
        Input::SpawnFailed { reason } => {
            quick_failure(life, format!("spawn error: {reason}"), ctx, &mut out);
        }
        Input::HookFailed { reason } => quick_failure(life, reason, ctx, &mut out),
        Input::Ready { pid } => {
            // A report for a process that is no longer the one starting
            // (stopped, replaced) means nothing.
            if matches!(life.phase, Phase::Starting { pid: p, .. } if p == pid) {
                out.push(Effect::CancelTimer);
                became_running(life, &mut out);
            }
        }
        Input::Unhealthy { pid, reason } => {
            // A verdict on a process that is no longer the one running
            // (stopped, exited, replaced) means nothing.
            if matches!(life.phase, Phase::Running { pid: p, .. } if p == pid) {
                life.reason = Some(reason);
                life.restarts += 1;
                begin_stop(life, Then::Start, ctx, &mut out);
            }
        }
        Input::Exited { exit, group_alive } => exited(life, exit, group_alive, ctx, &mut out),
        Input::Timer { group_alive } => timer(life, group_alive, ctx, &mut out),
        Input::GroupCheck { group_alive } => {
            if life.phase.lingering_group().is_some() {
                stop_progress(life, group_alive, ctx, &mut out);
            }
        }
        Input::Shutdown => shutdown(life, &mut out),
        Input::Kill => kill(life, &mut out),
    }
    out
}

/// Moves to `phase`, publishing the change.
fn enter(life: &mut Life, phase: Phase, out: &mut Vec<Effect>) {
    let from = life.phase.state();
    life.phase = phase;
    out.push(Effect::Transition {
        from,
        to: phase.state(),
    });
}

/// A start by hand, or once a stop completes.
fn start(life: &mut Life, out: &mut Vec<Effect>) {
    match &mut life.phase {
        Phase::Stopping(stop) => stop.then = Then::Start,
        Phase::Starting { .. } | Phase::Running { .. } => {}
        Phase::Stopped | Phase::Exited | Phase::Fatal | Phase::Backoff { .. } => {
            life.failures = 0;
            out.push(Effect::CancelTimer);
            out.push(Effect::Spawn);
        }
    }
}

fn restart(life: &mut Life, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    match life.phase {
        Phase::Starting { .. } | Phase::Running { .. } => {
            begin_stop(life, Then::Start, ctx, out);
        }
        _ => start(life, out),
    }
}

fn stop(life: &mut Life, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    match &mut life.phase {
        Phase::Starting { .. } | Phase::Running { .. } => begin_stop(life, Then::Rest, ctx, out),
        Phase::Backoff { .. } => {
            out.push(Effect::CancelTimer);
            enter(life, Phase::Stopped, out);
        }
        // A stop asked for now wins over what would have followed (a
        // restart, or the exit of a leader whose group is going).
        Phase::Stopping(stop) => stop.then = Then::Rest,
        Phase::Stopped | Phase::Exited | Phase::Fatal => {}
    }
}

/// Signals a live leader (or its group) and arms the SIGKILL deadline.
fn begin_stop(life: &mut Life, then: Then, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    let (Some(pid), Some(since)) = (life.phase.pid(), life.phase.since()) else {
        return;
    };
    let s = &ctx.settings;
    let target = if s.stop_group {
        -pid.as_raw()
    } else {
        pid.as_raw()
    };
    send_stop_signal(target, s.stop_signal, out);
    out.push(Effect::Schedule(s.stop_timeout));
    let stop = Stop {
        leader: Some(pid),
        since,
        pgid: pid,
        group: s.stop_group,
        kill_at: ctx.now + s.stop_timeout,
        killed: s.stop_signal == sigkill(),
        then,
    };
    enter(life, Phase::Stopping(stop), out);
}

/// The stop signal, and SIGCONT: a stopped (SIGSTOP) process would not act
/// on it until continued.
fn send_stop_signal(target: i32, signal: i32, out: &mut Vec<Effect>) {
    out.push(Effect::Signal { target, signal });
    if signal != sigkill() {
        out.push(Effect::Signal {
            target,
            signal: sigcont(),
        });
    }
}

fn spawned(life: &mut Life, pid: Pid, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    life.reason = None;
    let since = ctx.now;
    enter(life, Phase::Starting { pid, since }, out);
    if let Some(timeout) = ctx.settings.ready_timeout {
        out.push(Effect::Schedule(timeout));
        out.push(Effect::CheckReady { pid });
    } else if ctx.settings.start_secs.is_zero() {
        became_running(life, out);
    } else {
        out.push(Effect::Schedule(ctx.settings.start_secs));
    }
}

fn became_running(life: &mut Life, out: &mut Vec<Effect>) {
    if let Phase::Starting { pid, since } = life.phase {
        life.failures = 0;
        enter(life, Phase::Running { pid, since }, out);
    }
}

/// A spawn that failed or a process that exited before `start_secs`:
/// BACKOFF with a growing delay, FATAL once `start_retries` are spent.
fn quick_failure(life: &mut Life, reason: String, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    if ctx.shutting_down {
        life.reason = Some(reason);
        return enter(life, Phase::Stopped, out);
    }
    life.failures += 1;
    let failures = life.failures;
    let exhausted = match ctx.settings.start_retries {
        StartRetries::Limited(limit) => failures > limit,
        StartRetries::Infinite => false,
    };
    if exhausted {
        life.reason = Some(format!("{reason}; gave up after {failures} attempts"));
        enter(life, Phase::Fatal, out);
        out.push(Effect::GaveUp);
    } else {
        let delay = backoff_delay(failures, ctx.settings.backoff_max);
        life.reason = Some(format!("{reason}; retrying in {}", humanize(delay)));
        out.push(Effect::Schedule(delay));
        let until = ctx.now + delay;
        enter(life, Phase::Backoff { until }, out);
    }
}

/// Whether `exit` is one of the watcher's `exit_codes`.
fn expected(exit: Exit, settings: Settings<'_>) -> bool {
    matches!(exit, Exit::Code(code) if settings.exit_codes.contains(&code))
}

/// Whether the slot ran to a successful end with nothing more to come: a
/// one-shot job that completed (EXITED with one of its `exit_codes`, and
/// no restart for it). `status` counts it as fine and `depends_on` as
/// ready.
pub(crate) fn completed(life: &Life, settings: Settings<'_>) -> bool {
    life.phase == Phase::Exited
        && settings.restart != Restart::Always
        && life.last_exit.is_some_and(|exit| expected(exit, settings))
}

/// Whether an exit from RUNNING is restarted.
pub(crate) fn should_restart(exit: Exit, ctx: &Context<'_>) -> bool {
    if ctx.retired {
        return false;
    }
    match ctx.settings.restart {
        Restart::Always => true,
        Restart::Never => false,
        Restart::OnFailure => !expected(exit, ctx.settings),
    }
}

fn exited(
    life: &mut Life,
    exit: Exit,
    group_alive: bool,
    ctx: &Context<'_>,
    out: &mut Vec<Effect>,
) {
    life.last_exit = Some(exit);
    match life.phase {
        Phase::Stopping(mut stop) => {
            stop.leader = None;
            life.phase = Phase::Stopping(stop);
            stop_progress(life, group_alive, ctx, out);
        }
        Phase::Starting { pid, .. } | Phase::Running { pid, .. } => {
            let was = life.phase.state();
            if ctx.settings.stop_orphans && group_alive {
                stop_leftovers(life, exit, was, pid, ctx, out);
            } else {
                leader_gone(life, exit, was, ctx, out);
            }
        }
        other => {
            let state = other.state();
            out.push(Effect::Anomaly(format!(
                "reaped a process in state {state}"
            )));
        }
    }
}

/// The leader of a process that was STARTING or RUNNING (`was`) is gone,
/// with nothing left of its group: a quick failure, or an exit that may be
/// restarted.
fn leader_gone(
    life: &mut Life,
    exit: Exit,
    was: ProcessState,
    ctx: &Context<'_>,
    out: &mut Vec<Effect>,
) {
    let described = describe_exit(exit);
    let one_shot_done = ctx.settings.restart == Restart::Never && expected(exit, ctx.settings);
    if was == ProcessState::Starting && !one_shot_done {
        let how = if ctx.settings.ready_timeout.is_some() {
            "exited before it was ready"
        } else {
            "exited too quickly"
        };
        return quick_failure(life, format!("{how} ({described})"), ctx, out);
    }
    out.push(Effect::CancelTimer);
    life.reason = Some(if one_shot_done {
        format!("completed ({described})")
    } else {
        described
    });
    enter(life, Phase::Exited, out);
    if !ctx.shutting_down && should_restart(exit, ctx) {
        life.restarts += 1;
        out.push(Effect::Spawn);
    } else {
        out.push(Effect::GaveUp);
    }
}

/// The leader exited on its own but its process group lives on (the
/// workers of a killed gunicorn master, a shell's background jobs): what
/// is left is stopped like a stop (stop_signal, SIGKILL after
/// stop_timeout) before the exit is dealt with, so a restarted process
/// never finds its port still held.
fn stop_leftovers(
    life: &mut Life,
    exit: Exit,
    was: ProcessState,
    pgid: Pid,
    ctx: &Context<'_>,
    out: &mut Vec<Effect>,
) {
    let s = &ctx.settings;
    send_stop_signal(-pgid.as_raw(), s.stop_signal, out);
    out.push(Effect::CancelTimer);
    life.reason = Some(format!(
        "leader {}; stopping what is left of its process group",
        describe_exit(exit)
    ));
    let stop = Stop {
        leader: None,
        since: ctx.now,
        pgid,
        group: true,
        kill_at: ctx.now + s.stop_timeout,
        killed: s.stop_signal == sigkill(),
        then: Then::LeaderExit { exit, was },
    };
    enter(life, Phase::Stopping(stop), out);
    stop_progress(life, true, ctx, out);
}

/// A stop ends when the leader is reaped and, for a group stop, the whole
/// group is gone; until then a lingering group is re-checked.
fn stop_progress(life: &mut Life, group_alive: bool, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    let Phase::Stopping(stop) = life.phase else {
        return;
    };
    if stop.leader.is_some() {
        return;
    }
    if stop.group && group_alive {
        // Members whose parent is us wake us through SIGCHLD; others are
        // re-checked on a short timer until SIGKILL is due.
        let until_kill = stop.kill_at.saturating_duration_since(ctx.now);
        let next = if stop.killed || until_kill.is_zero() {
            GROUP_RECHECK
        } else {
            until_kill.min(GROUP_RECHECK)
        };
        out.push(Effect::Schedule(next));
        return;
    }
    finish_stop(life, stop.then, ctx, out);
}

fn finish_stop(life: &mut Life, then: Then, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    out.push(Effect::CancelTimer);
    if let Then::LeaderExit { exit, was } = then {
        // The leftovers of a leader that exited on its own are gone: now
        // its exit counts (a restart, BACKOFF, EXITED...).
        return leader_gone(life, exit, was, ctx, out);
    }
    if then == Then::NotReady {
        let timeout = ctx.settings.ready_timeout.unwrap_or_default();
        return quick_failure(
            life,
            format!("not ready within {}", humanize(timeout)),
            ctx,
            out,
        );
    }
    life.reason = life
        .last_exit
        .map(|exit| format!("stopped ({})", describe_exit(exit)));
    out.push(Effect::StopDone);
    enter(life, Phase::Stopped, out);
    if then == Then::Start && !ctx.shutting_down {
        life.failures = 0;
        out.push(Effect::Spawn);
    }
}

fn timer(life: &mut Life, group_alive: bool, ctx: &Context<'_>, out: &mut Vec<Effect>) {
    match &mut life.phase {
        Phase::Starting { .. } if ctx.settings.ready_timeout.is_some() => {
            // Its check did not pass in time: stopped, then counted as a
            // quick failure.
            let timeout = ctx.settings.ready_timeout.unwrap_or_default();
            life.reason = Some(format!(
                "not ready within {}; stopping it",
                humanize(timeout)
            ));
            begin_stop(life, Then::NotReady, ctx, out);
        }
        Phase::Starting { .. } => became_running(life, out),
        Phase::Backoff { .. } => out.push(Effect::Spawn),
        Phase::Stopping(stop) => {
            if !stop.killed && ctx.now >= stop.kill_at {
                let target = if stop.group {
                    -stop.pgid.as_raw()
                } else {
                    stop.pgid.as_raw()
                };
                out.push(Effect::Warn(
                    "did not stop within stop_timeout; sending SIGKILL".into(),
                ));
                out.push(Effect::Signal {
                    target,
                    signal: sigkill(),
                });
                stop.killed = true;
            }
            let (leader, killed, kill_at) = (stop.leader, stop.killed, stop.kill_at);
            if leader.is_some() {
                // The leader still alive, SIGKILL not yet due: re-arm the
                // kill deadline (after SIGKILL, its reaping wakes us).
                if !killed {
                    out.push(Effect::Schedule(kill_at.saturating_duration_since(ctx.now)));
                }
            } else {
                stop_progress(life, group_alive, ctx, out);
            }
        }
        Phase::Stopped | Phase::Running { .. } | Phase::Exited | Phase::Fatal => {}
    }
}

fn shutdown(life: &mut Life, out: &mut Vec<Effect>) {
    match &mut life.phase {
        Phase::Backoff { .. } => {
            out.push(Effect::CancelTimer);
            enter(life, Phase::Stopped, out);
        }
        Phase::Stopping(stop) if stop.then == Then::Start => stop.then = Then::Rest,
        _ => {}
    }
}

fn kill(life: &mut Life, out: &mut Vec<Effect>) {
    let pgid = match &mut life.phase {
        Phase::Stopping(stop) => {
            stop.killed = true;
            stop.pgid
        }
        Phase::Starting { pid, .. } | Phase::Running { pid, .. } => *pid,
        _ => return,
    };
    out.push(Effect::Signal {
        target: -pgid.as_raw(),
        signal: sigkill(),
    });
}

/// Which of the processes still alive a graceful shutdown stops now: the
/// highest level among them (all of them when `fast`). Each is `(id,
/// level)`; the engine's level is (dependency rank, priority), so what
/// depends on others stops before them.
pub(crate) fn shutdown_wave<T: Copy, L: Ord + Copy>(alive: &[(T, L)], fast: bool) -> Vec<T> {
    let Some(top) = alive.iter().map(|&(_, priority)| priority).max() else {
        return Vec::new();
    };
    alive
        .iter()
        .filter(|&&(_, priority)| fast || priority == top)
        .map(|&(id, _)| id)
        .collect()
}

/// 100 ms, 200 ms, 400 ms ... capped at `max`.
pub(crate) fn backoff_delay(failures: u32, max: Duration) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    FIRST_BACKOFF.saturating_mul(1 << exponent).min(max)
}

/// `250ms`, `1.5s`: a duration as status and the daemon's log say it.
pub(crate) fn humanize(d: Duration) -> String {
    if d.as_millis() < 1000 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
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

/// SIGKILL's number.
pub(crate) fn sigkill() -> i32 {
    signals::parse("KILL").unwrap_or(9)
}

fn sigcont() -> i32 {
    signals::parse("CONT").unwrap_or(18)
}

#[cfg(test)]
mod tests;
