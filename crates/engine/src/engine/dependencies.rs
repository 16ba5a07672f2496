//! `depends_on`: a slot starts only once every watcher its watcher depends
//! on is ready, and starting it starts them first.
//!
//! A watcher is ready when each of its processes is RUNNING (after its
//! `ready` check) or is a one-shot job that completed. A start whose
//! dependencies are not ready is *gated*: the slot stays STOPPED with the
//! reason `waiting for db`, the dependencies that are at rest are started,
//! and the slot goes back to the start queue once they are ready. A
//! dependency that fails (FATAL, a one-shot that failed, or itself blocked
//! by a failure) blocks it: STOPPED, with the reason, and the requests
//! waiting for it are told. Only starts are gated; the restart of a
//! process that dies is not (its dependencies were ready when it started).

use super::Engine;
use crate::process::{Gate, ProcId};
use crate::table::WatcherId;
use ringmaster_config::Restart;
use ringmaster_protocol::ProcessState;

/// What a watcher's dependencies say of a start of its processes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Verdict {
    /// All ready: start.
    Go,
    /// These are not ready yet (comma-separated names).
    Wait(String),
    /// One failed: the reason.
    Blocked(String),
}

impl Engine {
    /// Whether the start of slot `id`, just taken from the start queue,
    /// must wait for its dependencies (it then waits in `awaiting`, its
    /// dependencies are started, or it is blocked).
    pub(super) fn start_gated(&mut self, id: ProcId) -> bool {
        let watcher = self.procs[id].watcher;
        if self.procs.watcher(watcher).config.depends_on.is_empty() {
            return false;
        }
        self.pull_dependencies(watcher);
        match self.verdict(watcher) {
            Verdict::Go => {
                self.procs[id].gate = None;
                false
            }
            Verdict::Wait(names) => {
                self.procs[id].gate = Some(Gate::Waiting(names));
                if !self.awaiting.contains(&id) {
                    self.awaiting.push(id);
                }
                true
            }
            Verdict::Blocked(why) => {
                self.block(id, why);
                true
            }
        }
    }

    /// Starts the dependencies of `watcher` that are at rest (never
    /// started, stopped, or FATAL: started by hand, as `start` would),
    /// unless a start of theirs is under way or they completed.
    fn pull_dependencies(&mut self, watcher: WatcherId) {
        for dependency in self.procs.dependencies(watcher) {
            for slot in self.procs.live_slots(dependency).to_vec() {
                let process = &self.procs[slot];
                let waiting = process.queued || matches!(process.gate, Some(Gate::Waiting(_)));
                if process.state().is_at_rest() && !waiting && !self.completed(slot) {
                    self.queue_start(slot);
                }
            }
        }
    }

    /// What `watcher`'s dependencies say now.
    fn verdict(&self, watcher: WatcherId) -> Verdict {
        let mut waiting = Vec::new();
        for dependency in self.procs.dependencies(watcher) {
            let name = &self.procs.watcher(dependency).config.name;
            let mut ready = true;
            for &slot in self.procs.live_slots(dependency) {
                if let Some(why) = self.failed(slot) {
                    return Verdict::Blocked(format!(
                        "not started: dependency '{name}' failed ({}: {why})",
                        self.procs[slot].shown()
                    ));
                }
                ready &= self.procs[slot].state() == ProcessState::Running || self.completed(slot);
            }
            if !ready {
                waiting.push(name.as_str());
            }
        }
        if waiting.is_empty() {
            Verdict::Go
        } else {
            Verdict::Wait(waiting.join(", "))
        }
    }

    /// Why slot `id` counts as a failed dependency, if it does: FATAL, a
    /// one-shot job that ended badly, or blocked itself; never while a
    /// start of it is pending.
    fn failed(&self, id: ProcId) -> Option<String> {
        let process = &self.procs[id];
        if process.queued || matches!(process.gate, Some(Gate::Waiting(_))) {
            return None;
        }
        let reason = || process.life.reason.clone().unwrap_or_default();
        match (&process.gate, process.state()) {
            (Some(Gate::Blocked(why)), _) => Some(why.clone()),
            (None, ProcessState::Fatal) => Some(format!("FATAL, {}", reason())),
            (None, ProcessState::Exited)
                if self.watcher(id).restart == Restart::Never && !self.completed(id) =>
            {
                Some(format!("EXITED, {}", reason()))
            }
            _ => None,
        }
    }

    /// Slot `id` will not start: a dependency failed.
    fn block(&mut self, id: ProcId, why: String) {
        tracing::warn!(process = %self.procs[id].shown(), "{why}");
        self.procs[id].gate = Some(Gate::Blocked(why));
        self.update_jobs(id);
    }

    /// After a change of state: the slots waiting for dependencies that
    /// are now ready go back to the start queue, those whose dependency
    /// failed are blocked (which may block others in turn).
    pub(super) fn recheck_awaiting(&mut self) {
        loop {
            let mut blocked_any = false;
            let mut verdicts: Vec<(WatcherId, Verdict)> = Vec::new();
            for id in std::mem::take(&mut self.awaiting) {
                // Stopped meanwhile: no longer waiting.
                if !matches!(self.procs[id].gate, Some(Gate::Waiting(_))) {
                    continue;
                }
                let watcher = self.procs[id].watcher;
                let known = verdicts.iter().find(|(w, _)| *w == watcher);
                let verdict = if let Some((_, verdict)) = known {
                    verdict.clone()
                } else {
                    let verdict = self.verdict(watcher);
                    verdicts.push((watcher, verdict.clone()));
                    verdict
                };
                match verdict {
                    Verdict::Go => {
                        self.procs[id].gate = None;
                        self.queue_start(id);
                    }
                    Verdict::Wait(names) => {
                        self.procs[id].gate = Some(Gate::Waiting(names));
                        self.awaiting.push(id);
                    }
                    Verdict::Blocked(why) => {
                        self.block(id, why);
                        blocked_any = true;
                    }
                }
            }
            if !blocked_any || self.awaiting.is_empty() {
                return;
            }
        }
    }
}
