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
use crate::listeners::Listener;
use crate::process::{ProcId, Process};
use crate::refusal::Refusal;
use crate::table::WatcherId;

/// A watcher as far as spawning its processes goes.
fn spawn_relevant(watcher: &WatcherConfig) -> WatcherConfig {
    let mut watcher = watcher.clone();
    watcher.locations.clear();
    watcher.numprocesses = 0;
    // How a change is applied is not a change of the processes, nor is
    // the start order (the new graph applies to the next starts).
    watcher.rolling_reload = false;
    watcher.depends_on.clear();
    watcher
}

impl Engine {
    /// Reads the configuration again; with `apply`, makes it the running
    /// one. A configuration error changes nothing and is returned.
    pub(super) fn reload(&mut self, apply: bool) -> Result<ReloadResult, Refusal> {
        if apply && self.shutdown.is_some() {
            return Err(Refusal::ShuttingDown);
        }
        let what = if apply {
            "reloaded, nothing changed"
        } else {
            "read"
        };
        // [daemon] settings apply only at start-up, so the watchers are
        // read against the running ones (logs_dir places default logs).
        let new =
            ringmaster_config::reread(&self.config.path, self.config.dialect, &self.config.daemon)
                .map_err(|errors| Refusal::BadConfig { what, errors })?;
        let mut result = ReloadResult {
            applied: apply,
            not_applied: daemon_changes(&self.config, &new),
            ..ReloadResult::default()
        };
        for id in self.procs.watcher_ids() {
            let old = self.procs.watcher(id);
            if !old.removed && !new.watchers.iter().any(|w| w.name == old.config.name) {
                result.removed.push(old.config.name.clone());
            }
        }
        socket_changes(&self.config, &new, &mut result);
        for watcher in &new.watchers {
            let Some(id) = self.procs.live_watcher(&watcher.name) else {
                result.added.push(watcher.name.clone());
                continue;
            };
            let old = self.procs.watcher(id);
            // Its processes hold the old socket: they need the new one.
            let moved = |s: &String| {
                result.sockets_changed.contains(s)
                    && self.config.socket(s).map(|c| &c.address)
                        != new.socket(s).map(|c| &c.address)
            };
            let rebound = watcher
                .sockets
                .iter()
                .chain(&watcher.stdin_socket)
                .any(moved);
            if rebound || spawn_relevant(&old.config) != spawn_relevant(watcher) {
                result.changed.push(watcher.name.clone());
            } else if old.live != watcher.numprocesses {
                result.scaled.push(Scaled {
                    name: watcher.name.clone(),
                    from: old.live,
                    to: watcher.numprocesses,
                });
            } else {
                result.unchanged.push(watcher.name.clone());
            }
        }
        result.processes = self.plan(&new, &result);
        if apply {
            // First, so that a socket that cannot be bound changes nothing.
            self.rebind(&new, &result)?;
            self.notify.reloading();
            self.apply(new, &result);
            self.update_notify();
        }
        Ok(result)
    }

    /// Makes `new` the running configuration: removed watchers' slots
    /// retired, changed ones restarted, counts grown or shrunk.
    fn apply(&mut self, new: Config, diff: &ReloadResult) {
        for name in &diff.removed {
            if let Some(id) = self.procs.live_watcher(name) {
                self.shrink(id, 0);
                self.procs.watcher_mut(id).removed = true;
                tracing::info!(watcher = %name, "reload: removed");
            }
        }
        let changed: BTreeSet<&str> = diff.changed.iter().map(String::as_str).collect();
        let mut to_start: Vec<ProcId> = Vec::new();
        for watcher in &new.watchers {
            let wanted = watcher.numprocesses;
            let id = self.take_in(watcher);
            if changed.contains(watcher.name.as_str()) {
                tracing::info!(watcher = %watcher.name, "reload: changed, applying to its processes");
                self.apply_change(id, wanted);
            }
            let live = self.procs.watcher(id).live;
            if wanted > live {
                let added = self.grow(id, wanted);
                if watcher.autostart {
                    to_start.extend(added);
                }
            } else if wanted < live {
                self.shrink(id, wanted);
            }
        }
        self.config = new;
        self.procs.realias(&self.config);
        self.procs.rank_watchers();
        to_start.sort_by_key(|&id| self.procs.order(id));
        for id in to_start {
            self.start_slot(id);
        }
    }

    /// Binds the sockets `diff` adds or moves to a new address, then
    /// changes in place those that keep their address (their processes
    /// keep them: no restart), closes the removed ones and the moved ones'
    /// old sockets. A failure before anything is replaced closes what it
    /// bound and refuses the reload. A socket that keeps its address cannot
    /// be bound again beside itself (its workers hold it open), hence the
    /// change in place.
    fn rebind(&mut self, new: &Config, diff: &ReloadResult) -> Result<(), Refusal> {
        let mut bound = Vec::new();
        let mut in_place = Vec::new();
        for name in diff.sockets_added.iter().chain(&diff.sockets_changed) {
            let Some(config) = new.socket(name) else {
                continue;
            };
            match self.listeners.get(name) {
                Some(old) if old.config.address == config.address => {
                    // Refused before anything changes.
                    old.can_update(config)?;
                    in_place.push(config);
                }
                _ => bound.push(Listener::bind(config)?),
            }
        }
        for config in in_place {
            if let Some(listener) = self.listeners.get_mut(&config.name) {
                listener.update(config)?;
                tracing::info!(socket = %config.name, "reload: socket changed in place");
            }
        }
        for listener in bound {
            tracing::info!(socket = %listener.config.name, address = %listener.local, "reload: socket bound");
            self.listeners.insert(listener);
        }
        for name in &diff.sockets_removed {
            self.listeners.remove(name);
            tracing::info!(socket = %name, "reload: socket closed");
        }
        Ok(())
    }

    /// The table's watcher for `watcher` with its new settings: the same
    /// one when the name is known (a watcher added again under an old name
    /// takes its old slots), else a new one with no process yet.
    fn take_in(&mut self, watcher: &WatcherConfig) -> WatcherId {
        let mut settings = watcher.clone();
        settings.locations.clear();
        let Some(id) = self.procs.watcher_named(&watcher.name) else {
            tracing::info!(watcher = %watcher.name, "reload: added");
            return self.procs.add_watcher(settings);
        };
        let entry = self.procs.watcher_mut(id);
        if std::mem::take(&mut entry.removed) {
            tracing::info!(watcher = %watcher.name, "reload: added");
        }
        entry.config = settings;
        id
    }

    /// A changed watcher's processes, as [`changed_slot_step`] says; those
    /// to restart are rolled one by one when the watcher reloads rolling.
    fn apply_change(&mut self, id: WatcherId, wanted: u32) {
        let watcher = self.procs.watcher(id);
        let autostart = watcher.config.autostart;
        let rolling = watcher.config.rolling_reload;
        let active = watcher.live.min(wanted) as usize;
        let slots = self.procs.live_slots(id)[..active].to_vec();
        self.release(&slots);
        let mut restarts = Vec::new();
        for slot in slots {
            match changed_slot_step(&self.procs[slot], autostart) {
                ReloadStep::Restart => restarts.push(slot),
                ReloadStep::Start => self.start_slot(slot),
                ReloadStep::Stop | ReloadStep::Leave => {}
            }
        }
        if rolling && restarts.len() > 1 {
            self.start_roll(&restarts, 1, None);
        } else {
            for slot in restarts {
                self.restart_slot(slot);
            }
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
            if let Some(id) = self.procs.live_watcher(name) {
                for &slot in self.procs.live_slots(id) {
                    let process = &self.procs[slot];
                    if stops(process) {
                        push(&process.name, process.state(), ReloadStep::Stop);
                    }
                }
            }
        }
        for watcher in &new.watchers {
            let live: &[ProcId] = self
                .procs
                .live_watcher(&watcher.name)
                .map_or(&[], |id| self.procs.live_slots(id));
            let changed = diff.changed.contains(&watcher.name);
            for wid in 1..=(live.len() as u32).max(watcher.numprocesses) {
                let process = live.get(wid as usize - 1).map(|&slot| &self.procs[slot]);
                let step = match process {
                    Some(p) if wid > watcher.numprocesses => stops(p).then_some(ReloadStep::Stop),
                    Some(p) if changed => Some(changed_slot_step(p, watcher.autostart)),
                    Some(_) => None,
                    None => watcher.autostart.then_some(ReloadStep::Start),
                };
                if let Some(step) = step {
                    let name = ProcessName::new(&watcher.name, wid);
                    let from = process.map_or(ProcessState::Stopped, Process::state);
                    push(&name, from, step);
                }
            }
        }
        actions
    }

    /// Raises watcher `id` to `total` processes (see [`crate::table::Table::grow`]).
    pub(super) fn grow(&mut self, id: WatcherId, total: u32) -> Vec<ProcId> {
        self.procs.grow(id, total, &self.config)
    }

    /// Lowers watcher `id` to `total` processes: the highest wids retired
    /// and stopped. Returns them, with those already not running.
    pub(super) fn shrink(&mut self, id: WatcherId, total: u32) -> (Vec<ProcId>, Vec<ProcId>) {
        let ids = self.procs.shrink(id, total);
        self.release(&ids);
        let mut already = Vec::new();
        for &slot in &ids {
            if self.procs[slot].state().is_at_rest() {
                // A start still queued or waiting for dependencies is off.
                self.procs[slot].queued = false;
                self.procs[slot].gate = None;
                already.push(slot);
            } else {
                self.drive(slot, lifecycle::Input::Stop);
            }
        }
        (ids, already)
    }

    /// Restarts a slot: stopped then started again when it has a process,
    /// started at once when it has none (a BACKOFF retry is cut short).
    pub(super) fn restart_slot(&mut self, id: ProcId) {
        if self.procs[id].state().is_at_rest() {
            // Nothing to stop: a start, through the queue and the
            // dependencies' gate.
            return self.queue_start(id);
        }
        self.drive(id, lifecycle::Input::Restart);
    }

    /// Starts a slot by hand (its quick-failure count starts over), or
    /// once its current stop completes.
    pub(super) fn start_slot(&mut self, id: ProcId) {
        self.queue_start(id);
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

/// The sockets `new` adds, changes and removes, by name.
fn socket_changes(old: &Config, new: &Config, result: &mut ReloadResult) {
    for socket in &new.sockets {
        match old.socket(&socket.name) {
            None => result.sockets_added.push(socket.name.clone()),
            Some(was) if was.differs_from(socket) => {
                result.sockets_changed.push(socket.name.clone());
            }
            Some(_) => {}
        }
    }
    for socket in &old.sockets {
        if new.socket(&socket.name).is_none() {
            result.sockets_removed.push(socket.name.clone());
        }
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
    check(
        "xmlrpc",
        a.xmlrpc.as_ref().map(|x| (x.address, x.auth.clone()))
            != b.xmlrpc.as_ref().map(|x| (x.address, x.auth.clone())),
    );
    check(
        "metrics",
        a.metrics.as_ref().map(|m| m.address) != b.metrics.as_ref().map(|m| m.address),
    );
    changed
}
