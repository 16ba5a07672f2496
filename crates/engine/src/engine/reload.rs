//! `reread`, `reload` and SIGHUP: the configuration file read again and
//! the difference applied, touching only what changed.
//!
//! A watcher's processes keep their process ids (slots in `procs`) for
//! the daemon's life: a removed watcher's slots are retired (stopped,
//! invisible), and a watcher added again under the same name revives them.
//! Watchers are compared without their file locations; a change of
//! `numprocesses` alone scales instead of restarting.

use std::collections::BTreeSet;

use ringmaster_config::{Config, WatcherConfig};
use ringmaster_protocol::{
    ProcessName, ProcessState, ReloadAction, ReloadResult, ReloadStep, Scaled,
};

use super::Engine;
use crate::lifecycle;
use crate::process::{ProcId, Process};

/// A watcher as far as spawning its processes goes.
fn spawn_relevant(watcher: &WatcherConfig) -> WatcherConfig {
    let mut watcher = watcher.clone();
    watcher.locations.clear();
    watcher.numprocesses = 0;
    watcher
}

impl Engine {
    /// Reads the configuration again; with `apply`, makes it the running
    /// one. A configuration error changes nothing and is returned.
    pub(super) fn reload(&mut self, apply: bool) -> Result<ReloadResult, String> {
        if apply && self.shutdown.is_some() {
            return Err("the daemon is shutting down".into());
        }
        // [daemon] settings apply only at start-up, so the watchers are
        // read against the running ones (logs_dir places default logs).
        let new =
            ringmaster_config::reread(&self.config.path, self.config.dialect, &self.config.daemon)
                .map_err(|errors| errors.to_string())?;
        let mut result = ReloadResult {
            applied: apply,
            not_applied: daemon_changes(&self.config, &new),
            ..ReloadResult::default()
        };
        for (index, old) in self.config.watchers.iter().enumerate() {
            if !self.removed.contains(&index) && !new.watchers.iter().any(|w| w.name == old.name) {
                result.removed.push(old.name.clone());
            }
        }
        for watcher in &new.watchers {
            match self.live_watcher(&watcher.name) {
                None => result.added.push(watcher.name.clone()),
                Some(index) => {
                    let old = &self.config.watchers[index];
                    if spawn_relevant(old) != spawn_relevant(watcher) {
                        result.changed.push(watcher.name.clone());
                    } else if old.numprocesses != watcher.numprocesses {
                        result.scaled.push(Scaled {
                            name: watcher.name.clone(),
                            from: old.numprocesses,
                            to: watcher.numprocesses,
                        });
                    } else {
                        result.unchanged.push(watcher.name.clone());
                    }
                }
            }
        }
        result.processes = self.plan(&new, &result);
        if apply {
            self.notify.reloading();
            self.apply(new, &result);
            self.update_notify();
        }
        Ok(result)
    }

    /// The index of the watcher called `name`, unless it was removed.
    pub(super) fn live_watcher(&self, name: &str) -> Option<usize> {
        (0..self.config.watchers.len())
            .find(|&i| self.config.watchers[i].name == name && !self.removed.contains(&i))
    }

    fn apply(&mut self, new: Config, diff: &ReloadResult) {
        for name in &diff.removed {
            if let Some(index) = self.live_watcher(name) {
                self.shrink(index, 0);
                self.removed.insert(index);
                tracing::info!(watcher = %name, "reload: removed");
            }
        }
        let changed: BTreeSet<&str> = diff.changed.iter().map(String::as_str).collect();
        let mut to_start: Vec<ProcId> = Vec::new();
        for watcher in new.watchers {
            let name = watcher.name.clone();
            let wanted = watcher.numprocesses;
            // A watcher added again under an old name takes its old slots.
            let existing = self.config.watchers.iter().position(|w| w.name == name);
            let mut watcher = watcher;
            let index = if let Some(index) = existing {
                let was_removed = self.removed.remove(&index);
                // numprocesses moves with grow/shrink below.
                watcher.numprocesses = self.config.watchers[index].numprocesses;
                self.config.watchers[index] = watcher;
                if was_removed {
                    tracing::info!(watcher = %name, "reload: added");
                }
                index
            } else {
                watcher.numprocesses = 0;
                self.config.watchers.push(watcher);
                tracing::info!(watcher = %name, "reload: added");
                self.config.watchers.len() - 1
            };
            if changed.contains(name.as_str()) {
                tracing::info!(watcher = %name, "reload: changed, applying to its processes");
                let active = self.config.watchers[index].numprocesses.min(wanted);
                let autostart = self.config.watchers[index].autostart;
                let slots = self.slots(index, 1..=active);
                self.release(&slots);
                for id in slots {
                    match changed_slot_step(&self.procs[id], autostart) {
                        ReloadStep::Restart => self.restart_slot(id),
                        ReloadStep::Start => self.start_slot(id),
                        ReloadStep::Stop | ReloadStep::Leave => {}
                    }
                }
            }
            let current = self.config.watchers[index].numprocesses;
            if wanted > current {
                let added = self.grow(index, wanted);
                if self.config.watchers[index].autostart {
                    to_start.extend(added);
                }
            } else if wanted < current {
                self.shrink(index, wanted);
            }
        }
        self.config.groups = new.groups;
        for id in 0..self.procs.len() {
            let process = &self.procs[id];
            let alias = self
                .config
                .alias(&self.config.watchers[process.watcher], process.name.wid);
            self.procs[id].alias = alias;
        }
        to_start.sort_by_key(|&id| self.watcher(id).priority);
        for id in to_start {
            self.start_slot(id);
        }
    }

    /// What applying `diff` does to each process (see [`ReloadAction`]),
    /// by the same rules [`Self::apply`] follows.
    fn plan(&self, new: &Config, diff: &ReloadResult) -> Vec<ReloadAction> {
        let mut actions = Vec::new();
        let mut push = |name: &ProcessName, from, action| {
            actions.push(ReloadAction {
                name: name.clone(),
                from,
                action,
            });
        };
        let stops = |p: &Process| !p.state().is_at_rest();
        for name in &diff.removed {
            if let Some(index) = self.live_watcher(name) {
                let active = self.config.watchers[index].numprocesses;
                for id in self.slots(index, 1..=active) {
                    let process = &self.procs[id];
                    if stops(process) {
                        push(&process.name, process.state(), ReloadStep::Stop);
                    }
                }
            }
        }
        for watcher in &new.watchers {
            let existing = self.live_watcher(&watcher.name);
            let current = existing.map_or(0, |i| self.config.watchers[i].numprocesses);
            let changed = diff.changed.contains(&watcher.name);
            for wid in 1..=current.max(watcher.numprocesses) {
                let live = existing
                    .filter(|_| wid <= current)
                    .and_then(|i| self.slots(i, wid..=wid).first().copied())
                    .map(|id| &self.procs[id]);
                let step = match live {
                    Some(p) if wid > watcher.numprocesses => stops(p).then_some(ReloadStep::Stop),
                    Some(p) if changed => Some(changed_slot_step(p, watcher.autostart)),
                    Some(_) => None,
                    None => watcher.autostart.then_some(ReloadStep::Start),
                };
                if let Some(step) = step {
                    let name = ProcessName::new(&watcher.name, wid);
                    let from = live.map_or(ProcessState::Stopped, Process::state);
                    push(&name, from, step);
                }
            }
        }
        actions
    }

    /// The watcher's slots with these wids, in wid order.
    fn slots(&self, watcher: usize, wids: std::ops::RangeInclusive<u32>) -> Vec<ProcId> {
        let mut ids: Vec<ProcId> = (0..self.procs.len())
            .filter(|&i| self.procs[i].watcher == watcher && wids.contains(&self.procs[i].name.wid))
            .collect();
        ids.sort_by_key(|&i| self.procs[i].name.wid);
        ids
    }

    /// Raises the watcher to `total` processes: retired slots revived
    /// first (the lowest free wids), then new ones. Returns them, not
    /// started.
    pub(super) fn grow(&mut self, watcher: usize, total: u32) -> Vec<ProcId> {
        let active = self.config.watchers[watcher].numprocesses;
        self.config.watchers[watcher].numprocesses = total;
        let mut ids = Vec::new();
        for wid in active + 1..=total {
            let existing = (0..self.procs.len())
                .find(|&i| self.procs[i].watcher == watcher && self.procs[i].name.wid == wid);
            let id = existing.unwrap_or_else(|| {
                let config = &self.config.watchers[watcher];
                let mut process = Process::new(ProcessName::new(&config.name, wid), watcher);
                process.alias = self.config.alias(config, wid);
                self.procs.push(process);
                self.procs.len() - 1
            });
            self.procs[id].retired = false;
            ids.push(id);
        }
        ids
    }

    /// Lowers the watcher to `total` processes: the highest wids retired
    /// and stopped. Returns them, with those already not running.
    pub(super) fn shrink(&mut self, watcher: usize, total: u32) -> (Vec<ProcId>, Vec<ProcId>) {
        let active = self.config.watchers[watcher].numprocesses;
        self.config.watchers[watcher].numprocesses = total;
        let ids: Vec<ProcId> = self
            .slots(watcher, total + 1..=active.max(total + 1))
            .into_iter()
            .filter(|&i| !self.procs[i].retired)
            .collect();
        self.release(&ids);
        let mut already = Vec::new();
        for &id in &ids {
            self.procs[id].retired = true;
            if self.procs[id].state().is_at_rest() {
                already.push(id);
            } else {
                self.drive(id, lifecycle::Input::Stop);
            }
        }
        (ids, already)
    }

    /// Restarts a slot: stopped then started again when it has a process,
    /// started at once when it has none (a BACKOFF retry is cut short).
    pub(super) fn restart_slot(&mut self, id: ProcId) {
        self.drive(id, lifecycle::Input::Restart);
    }

    /// Starts a slot by hand (its quick-failure count starts over), or
    /// once its current stop completes.
    pub(super) fn start_slot(&mut self, id: ProcId) {
        self.drive(id, lifecycle::Input::Start);
    }
}

/// What a reload does to a process of a changed watcher: whatever runs or
/// tries to run is restarted with the new settings; one that failed
/// (FATAL) or ended (EXITED) is started again if the watcher autostarts,
/// as `supervisorctl update` does; one stopped by hand stays stopped.
fn changed_slot_step(process: &Process, autostart: bool) -> ReloadStep {
    match process.state() {
        ProcessState::Starting | ProcessState::Running => ReloadStep::Restart,
        ProcessState::Stopping if process.life.phase.start_pending() => ReloadStep::Restart,
        ProcessState::Backoff => ReloadStep::Start,
        ProcessState::Fatal | ProcessState::Exited if autostart => ReloadStep::Start,
        ProcessState::Stopping
        | ProcessState::Fatal
        | ProcessState::Exited
        | ProcessState::Stopped => ReloadStep::Leave,
    }
}

/// Daemon settings that differ between `old` and `new`; they take effect
/// only when the daemon starts.
fn daemon_changes(old: &Config, new: &Config) -> Vec<String> {
    let (a, b) = (&old.daemon, &new.daemon);
    let mut changed = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            changed.push(format!("daemon.{name}"));
        }
    };
    check("socket", a.socket != b.socket);
    check("socket_mode", a.socket_mode != b.socket_mode);
    check("socket_group", a.socket_group != b.socket_group);
    check("logs_dir", a.logs_dir != b.logs_dir);
    check("log_level", a.log_level != b.log_level);
    check("log_format", a.log_format != b.log_format);
    check("shutdown_timeout", a.shutdown_timeout != b.shutdown_timeout);
    changed
}
