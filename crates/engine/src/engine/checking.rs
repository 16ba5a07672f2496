//! The engine's side of the checks (see [`crate::checks`]): readiness
//! while a process is STARTING, health while it is RUNNING. Results come
//! in as [`CheckEvent`]s; what they mean for the process is decided by
//! the lifecycle (`Input::Ready`, `Input::Unhealthy`).

use nix::unistd::Pid;
use ringmaster_config::ReadyCheck;
use ringmaster_spawn::Exit;

use super::Engine;
use crate::checks::{CheckEvent, Checked, Probe, Purpose};
use crate::launch;
use crate::lifecycle::{self, Phase, describe_exit};
use crate::notify_ready::NotifyReady;
use crate::process::ProcId;

impl Engine {
    /// A result from a check.
    pub(super) fn on_check(&mut self, event: CheckEvent) {
        match event {
            CheckEvent::Passed(checked) => self.on_ready(checked),
            CheckEvent::Health(checked, outcome) => self.on_health(checked, outcome),
            CheckEvent::RunAgain(checked, purpose) => self.run_probe(checked, purpose),
            CheckEvent::TooSlow { probe } if self.hook_runs.contains_key(&probe) => {
                self.on_hook_too_slow(probe);
            }
            CheckEvent::TooSlow { probe } => self.on_probe_too_slow(probe),
        }
    }

    /// Starts the readiness check of process `pid` of slot `id`: a polled
    /// one as a task; a log check already watches its output (from the
    /// spawn), a notify check its socket.
    pub(super) fn start_check(&mut self, id: ProcId, pid: Pid) {
        let wid = self.procs[id].name.wid;
        let Some(ready) = &self.watcher(id).ready else {
            return;
        };
        let probe = match &ready.check {
            ReadyCheck::Tcp(address) => Probe::Tcp(address.render(wid)),
            ReadyCheck::Http(url) => Probe::Http(url.render(wid)),
            ReadyCheck::Cmd(_) => return self.run_probe(Checked { id, pid }, Purpose::Ready),
            ReadyCheck::Log(_) | ReadyCheck::Notify => return,
        };
        let interval = ready.interval;
        self.checks.start(id, pid, probe, interval);
    }

    /// Slot `id` just became RUNNING: its health check, if it has one,
    /// begins (the first check one `interval` from now).
    pub(super) fn start_health(&mut self, id: ProcId) {
        let Some(pid) = self.procs[id].pid() else {
            return;
        };
        self.procs[id].health.failures = 0;
        self.procs[id].health.checks = 0;
        let wid = self.procs[id].name.wid;
        let Some(health) = &self.watcher(id).health else {
            return;
        };
        let (interval, timeout) = (health.interval, health.timeout);
        let probe = match &health.check {
            ReadyCheck::Tcp(address) => Probe::Tcp(address.render(wid)),
            ReadyCheck::Http(url) => Probe::Http(url.render(wid)),
            ReadyCheck::Cmd(_) => {
                return self.checks.again_after(id, pid, interval, Purpose::Health);
            }
            // The configuration reader takes neither for health.
            ReadyCheck::Log(_) | ReadyCheck::Notify => return,
        };
        self.checks.start_health(id, pid, probe, interval, timeout);
    }

    /// Slot `id` left the state its checks were for: they end, and a
    /// check command still running is killed.
    pub(super) fn end_checks(&mut self, id: ProcId) {
        self.checks.cancel(id);
        for (&probe, (checked, _)) in &self.probes {
            if checked.id == id {
                let _ = self.os.signal(-probe.as_raw(), lifecycle::sigkill());
            }
        }
    }

    /// A `READY=1` came from the first of `lineage` (then its parent,
    /// and so on): the first of them that is a process waiting for one
    /// is ready.
    pub(super) fn on_notified(&mut self, lineage: &[Pid]) {
        for &pid in lineage {
            let Some(&id) = self.by_pid.get(&pid) else {
                continue;
            };
            let waits = matches!(&self.watcher(id).ready, Some(r) if r.check == ReadyCheck::Notify);
            if waits && self.procs[id].life.phase.pid() == Some(pid) {
                self.drive(id, lifecycle::Input::Ready { pid });
            }
            // The nearest supervised process decides, waiting or not.
            return;
        }
    }

    /// Binds the notify socket if `id`'s watcher needs it and it is not
    /// bound yet; a failure leaves its processes without NOTIFY_SOCKET
    /// (they will not become ready: the reason is logged).
    pub(super) fn bind_notify_if_needed(&mut self, id: ProcId) {
        let wants = matches!(&self.watcher(id).ready, Some(r) if r.check == ReadyCheck::Notify);
        if !wants || self.notify_ready.is_some() {
            return;
        }
        match NotifyReady::bind(self.notified.0.clone()) {
            Ok(socket) => {
                self.system.notify_socket = Some(socket.address().to_owned());
                self.notify_ready = Some(socket);
            }
            Err(err) => tracing::error!("cannot bind the readiness notification socket: {err}"),
        }
    }

    /// Whether `checked`'s process is still the one in the state that
    /// `purpose` checks (STARTING for readiness, RUNNING for health).
    fn still_checked(&self, checked: Checked, purpose: Purpose) -> bool {
        match (self.procs[checked.id].life.phase, purpose) {
            (Phase::Starting { pid, .. }, Purpose::Ready)
            | (Phase::Running { pid, .. }, Purpose::Health) => pid == checked.pid,
            _ => false,
        }
    }

    /// Runs a `cmd` check's command once for `checked`'s process, if it is
    /// still the one checked; its exit decides (see
    /// [`Self::on_probe_exit`]), and a health command has its timeout.
    /// One that cannot be spawned is tried again after the interval (for
    /// health, as a failure).
    fn run_probe(&mut self, checked: Checked, purpose: Purpose) {
        if !self.still_checked(checked, purpose) {
            return;
        }
        let watcher = self.watcher(checked.id);
        let (check, interval, timeout) = match purpose {
            Purpose::Ready => match &watcher.ready {
                Some(ready) => (&ready.check, ready.interval, None),
                None => return,
            },
            Purpose::Health => match &watcher.health {
                Some(health) => (&health.check, health.interval, Some(health.timeout)),
                None => return,
            },
        };
        let ReadyCheck::Cmd(argv) = check else {
            return;
        };
        let name = &self.procs[checked.id].name;
        let spawned = launch::prepare_probe(
            watcher,
            argv,
            name,
            checked.pid,
            &self.system,
            &self.config.daemon.socket,
        )
        .map_err(|e| e.to_string())
        .and_then(|prepared| self.os.spawn(&prepared).map_err(|e| e.to_string()));
        match spawned {
            Ok(spawned) => {
                match spawned.pidfd {
                    Some(pidfd) => self.exit_watch.watch(spawned.pid, pidfd),
                    None => self.all_watched = false,
                }
                self.probes.insert(spawned.pid, (checked, purpose));
                if let Some(timeout) = timeout {
                    self.checks.deadline(spawned.pid, timeout);
                }
            }
            Err(reason) => {
                let shown = self.procs[checked.id].shown();
                tracing::warn!(process = %shown, "cannot run the check command: {reason}");
                if purpose == Purpose::Health {
                    self.on_health(checked, Err(format!("cannot run the check: {reason}")));
                }
                self.checks
                    .again_after(checked.id, checked.pid, interval, purpose);
            }
        }
    }

    /// A `cmd` check's command `probe` exited: 0 passes; otherwise a
    /// readiness check tries again after the interval while the process
    /// is still starting, and a health check counts a failure. A health
    /// command runs again after the interval either way.
    pub(super) fn on_probe_exit(&mut self, probe: Pid, run: (Checked, Purpose), exit: Exit) {
        self.checks.finished(probe);
        let (checked, purpose) = run;
        match purpose {
            Purpose::Ready if exit == Exit::Code(0) => self.on_ready(checked),
            Purpose::Ready => {
                if let Some(ready) = &self.watcher(checked.id).ready
                    && self.still_checked(checked, purpose)
                {
                    let interval = ready.interval;
                    self.checks
                        .again_after(checked.id, checked.pid, interval, purpose);
                }
            }
            Purpose::Health => {
                let outcome = if exit == Exit::Code(0) {
                    Ok(())
                } else {
                    Err(format!("check command: {}", describe_exit(exit)))
                };
                self.health_command_done(checked, outcome);
            }
        }
    }

    /// A health command took longer than its timeout: it is killed, and
    /// that counts as a failure.
    fn on_probe_too_slow(&mut self, probe: Pid) {
        self.checks.finished(probe);
        let Some((checked, purpose)) = self.probes.remove(&probe) else {
            return;
        };
        let _ = self.os.signal(-probe.as_raw(), lifecycle::sigkill());
        let timeout = self
            .watcher(checked.id)
            .health
            .as_ref()
            .map_or_else(String::new, |h| lifecycle::humanize(h.timeout));
        if purpose == Purpose::Health {
            let why = format!("check command did not finish within {timeout}");
            self.health_command_done(checked, Err(why));
        }
    }

    /// A health command's result counts, and the next run is due after
    /// the interval (while the process still runs).
    fn health_command_done(&mut self, checked: Checked, outcome: Result<(), String>) {
        self.on_health(checked, outcome);
        if let Some(health) = &self.watcher(checked.id).health
            && self.still_checked(checked, Purpose::Health)
        {
            let interval = health.interval;
            self.checks
                .again_after(checked.id, checked.pid, interval, Purpose::Health);
        }
    }

    /// A readiness check passed.
    fn on_ready(&mut self, checked: Checked) {
        if self.by_pid.get(&checked.pid) == Some(&checked.id) {
            self.drive(checked.id, lifecycle::Input::Ready { pid: checked.pid });
        }
    }

    /// A health check of `checked`'s process ran. A failure counts
    /// (`RUNNING (unhealthy 1/3)`, an event), a pass after failures clears
    /// them (an event too); `failures` in a row restart the process.
    fn on_health(&mut self, checked: Checked, outcome: Result<(), String>) {
        if !self.still_checked(checked, Purpose::Health) {
            return;
        }
        let Some(threshold) = self.watcher(checked.id).health.as_ref().map(|h| h.failures) else {
            return;
        };
        let health = &mut self.procs[checked.id].health;
        health.checks += 1;
        let note = match outcome {
            Ok(()) if health.failures == 0 => return,
            Ok(()) => {
                health.failures = 0;
                "healthy again".to_owned()
            }
            Err(why) => {
                health.failures += 1;
                let note = format!("unhealthy {}/{threshold}: {why}", health.failures);
                health.last_failure = Some(why);
                note
            }
        };
        let failures = health.failures;
        let shown = self.procs[checked.id].shown();
        tracing::warn!(process = %shown, "{note}");
        let state = self.procs[checked.id].state();
        self.emit_event(checked.id, state, state, Some(note));
        if failures >= threshold {
            let why = self.procs[checked.id]
                .health
                .last_failure
                .clone()
                .unwrap_or_default();
            self.procs[checked.id].health.restarts += 1;
            let reason = format!(
                "unhealthy: {failures} health checks failed in a row (last: {why}); restarting"
            );
            self.drive(
                checked.id,
                lifecycle::Input::Unhealthy {
                    pid: checked.pid,
                    reason,
                },
            );
        }
    }
}
