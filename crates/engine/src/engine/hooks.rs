//! A watcher's `hooks`: commands run around each process's life.
//!
//! - `before_start` runs before each spawn; the spawn waits for it, and a
//!   hook that fails (or outlives `hook_timeout`) fails that start, which
//!   the lifecycle counts as a quick failure (BACKOFF, then FATAL).
//! - `before_stop` runs before a RUNNING process is stopped or restarted;
//!   the stop signal waits for it (at most `hook_timeout`), whatever it
//!   returns.
//! - `after_start` (once RUNNING) and `after_stop` (once the process is
//!   gone) run beside it; a failure is logged.
//!
//! Hooks are children of the engine like every process (reaped by pid,
//! their deadline a timer task); their output goes to the watcher's
//! stdout log marked `[hook NAME]`.

use nix::unistd::Pid;
use ringmaster_config::HookPoint;
use ringmaster_spawn::Exit;

use super::Engine;
use crate::launch::{self, HookFor};
use crate::lifecycle::{self, Phase, describe_exit};
use crate::process::{PendingHook, ProcId};

/// One hook command running: for which slot, at which point.
#[derive(Debug)]
pub(crate) struct HookRun {
    /// The slot.
    pub id: ProcId,
    /// When it runs.
    pub point: HookPoint,
    /// Its output's pump, told to drain and close when the hook ends.
    pumps: Vec<ringmaster_logs::Pump>,
}

impl Engine {
    /// What a spawn effect becomes: the spawn itself, or, when the
    /// watcher has a `before_start` hook, that hook first (the spawn
    /// follows when it exits 0; see [`Self::on_hook_exit`]).
    pub(super) fn spawn_or_hook(&mut self, id: ProcId) -> Option<lifecycle::Input> {
        if self.watcher(id).hooks.at(HookPoint::BeforeStart).is_none() {
            return Some(self.spawn(id));
        }
        if self.procs[id].hook.is_some() {
            // Its before_start hook already runs: one spawn follows it (a
            // before_stop hook is released when its process exits).
            return None;
        }
        match self.hold_with_hook(id, HookPoint::BeforeStart, None) {
            Ok(()) => None,
            Err(reason) => Some(lifecycle::Input::SpawnFailed {
                reason: format!("cannot run the before_start hook: {reason}"),
            }),
        }
    }

    /// Runs the `point` hook of slot `id` as the one its life waits for,
    /// with what follows it (`then`).
    fn hold_with_hook(
        &mut self,
        id: ProcId,
        point: HookPoint,
        then: Option<lifecycle::Input>,
    ) -> Result<(), String> {
        let pid = self.run_hook(id, point)?;
        self.procs[id].hook = Some(PendingHook { point, pid, then });
        self.update_jobs(id);
        Ok(())
    }

    /// A stop took a slot whose before_start hook runs: the hook is
    /// killed, and no spawn follows.
    pub(super) fn cancel_before_start(&mut self, id: ProcId) {
        let before_start = self.procs[id]
            .hook
            .take_if(|h| h.point == HookPoint::BeforeStart);
        if let Some(hook) = before_start {
            let _ = self.end_hook(hook.pid);
        }
    }

    /// Whether `input` (a stop or restart of a RUNNING process whose
    /// watcher has a `before_stop` hook) waits for that hook; the hook is
    /// started if it does not run yet. A stop asked for meanwhile wins
    /// over a restart, as for any stop under way.
    pub(super) fn hold_for_before_stop(&mut self, id: ProcId, input: &lifecycle::Input) -> bool {
        let stops = matches!(
            input,
            lifecycle::Input::Stop | lifecycle::Input::Restart | lifecycle::Input::Unhealthy { .. }
        );
        if !stops
            || !matches!(self.procs[id].life.phase, Phase::Running { .. })
            || self.watcher(id).hooks.at(HookPoint::BeforeStop).is_none()
        {
            return false;
        }
        if let Some(hook) = self.procs[id].hook.as_mut() {
            if *input == lifecycle::Input::Stop || hook.then.is_none() {
                hook.then = Some(input.clone());
            }
            return true;
        }
        match self.hold_with_hook(id, HookPoint::BeforeStop, Some(input.clone())) {
            Ok(()) => true,
            Err(reason) => {
                let shown = self.procs[id].shown();
                tracing::warn!(process = %shown, "cannot run the before_stop hook: {reason}; stopping anyway");
                false
            }
        }
    }

    /// The process of slot `id` exited while its before_stop hook ran:
    /// the stop or restart that waited is carried out now (the hook runs
    /// on, nothing waits for it), so the exit ends a stop, not a run.
    pub(super) fn release_before_stop(&mut self, id: ProcId) {
        let before_stop = self.procs[id]
            .hook
            .take_if(|h| h.point == HookPoint::BeforeStop);
        if let Some(then) = before_stop.and_then(|h| h.then) {
            self.step_slot(id, then);
        }
    }

    /// Runs the `after_start` or `after_stop` hook of slot `id`, if its
    /// watcher has one; nothing waits for it.
    pub(super) fn run_side_hook(&mut self, id: ProcId, point: HookPoint) {
        if self.watcher(id).hooks.at(point).is_none() {
            return;
        }
        if let Err(reason) = self.run_hook(id, point) {
            let shown = self.procs[id].shown();
            tracing::warn!(process = %shown, "cannot run the {} hook: {reason}", point.name());
        }
    }

    /// Spawns the `point` hook of slot `id` with its deadline; its pid.
    fn run_hook(&mut self, id: ProcId, point: HookPoint) -> Result<Pid, String> {
        let watcher = self.watcher(id);
        let argv = watcher.hooks.at(point).unwrap_or_default();
        let process = &self.procs[id];
        let shown = process.shown();
        let hook = HookFor {
            point,
            name: &process.name,
            shown: &shown,
            // before_start runs before there is a process.
            pid: process.last_pid.filter(|_| point != HookPoint::BeforeStart),
            exit: process
                .life
                .last_exit
                .filter(|_| point == HookPoint::AfterStop),
        };
        let prepared = launch::prepare_hook(
            watcher,
            argv,
            &hook,
            &self.system,
            &self.config.daemon.socket,
        )
        .map_err(|e| e.to_string())?;
        let timeout = watcher.hooks.timeout;
        let spawned = self.os.spawn(&prepared).map_err(|e| e.to_string());
        // Our copies of its output's write ends close now, or its pump
        // would never see EOF.
        drop(prepared.stdio);
        let spawned = spawned?;
        match spawned.pidfd {
            Some(pidfd) => self.exit_watch.watch(spawned.pid, pidfd),
            None => self.all_watched = false,
        }
        let pumps = prepared
            .captures
            .into_iter()
            .map(|capture| {
                let stream = ringmaster_logs::Stream {
                    owner: id.index(),
                    label: capture.label,
                    sink: capture.sink,
                    // Its lines are the hook's, not the process's: they go
                    // to the file only, marked.
                    tap: ringmaster_logs::Tap::new(),
                    echo: None,
                    lost: self.procs[id].log_lost.clone(),
                    received: std::sync::Arc::default(),
                    watch: None,
                };
                self.logs.attach(capture.read, stream)
            })
            .collect();
        tracing::info!(process = %shown, pid = spawned.pid.as_raw(), "running the {} hook", point.name());
        self.hook_runs
            .insert(spawned.pid, HookRun { id, point, pumps });
        self.checks.deadline(spawned.pid, timeout);
        Ok(spawned.pid)
    }

    /// Kills hook `pid` (and its group) and forgets it; what it was.
    fn end_hook(&mut self, pid: Pid) -> Option<HookRun> {
        self.checks.finished(pid);
        let run = self.hook_runs.remove(&pid)?;
        let _ = self.os.signal(-pid.as_raw(), lifecycle::sigkill());
        Some(run)
    }

    /// Hook `pid` did not finish within `hook_timeout`: killed, and a
    /// failure.
    pub(super) fn on_hook_too_slow(&mut self, pid: Pid) {
        let Some(run) = self.end_hook(pid) else {
            return;
        };
        let timeout = lifecycle::humanize(self.watcher(run.id).hooks.timeout);
        self.on_hook_exit(pid, run, Err(format!("did not finish within {timeout}")));
    }

    /// Hook `pid` ended: with its exit, or `Err` for why it was ended.
    pub(super) fn on_hook_exit(&mut self, pid: Pid, run: HookRun, ended: Result<Exit, String>) {
        self.checks.finished(pid);
        // Its output is all in its pipe now: drained, then closed.
        drop(run.pumps);
        let failure = match ended {
            Ok(Exit::Code(0)) => None,
            Ok(exit) => Some(describe_exit(exit)),
            Err(why) => Some(why),
        };
        let (id, name) = (run.id, run.point.name());
        let shown = self.procs[id].shown();
        if let Some(why) = &failure {
            tracing::warn!(process = %shown, "the {name} hook failed ({why})");
        }
        // A hook something waits for: still the one it waits for?
        let Some(pending) = self.procs[id].hook.take_if(|h| h.pid == pid) else {
            return;
        };
        match (run.point, failure) {
            (HookPoint::BeforeStart, None) => {
                let input = self.spawn(id);
                self.step_slot(id, input);
            }
            (HookPoint::BeforeStart, Some(why)) => {
                let reason = format!("before_start hook failed ({why})");
                self.step_slot(id, lifecycle::Input::HookFailed { reason });
            }
            (_, _) => match pending.then {
                Some(then) => self.step_slot(id, then),
                None => self.update_jobs(id),
            },
        }
    }
}
