//! systemd's notify protocol (`Type=notify`), through the sd-notify crate.
//!
//! Everything is a no-op unless `NOTIFY_SOCKET` is set. READY=1 is sent
//! once every autostart process has settled (RUNNING, or given up), STATUS=
//! with counts whenever they change, RELOADING=1 (with MONOTONIC_USEC) and
//! READY=1 around a reload, STOPPING=1 when a shutdown begins, and
//! WATCHDOG=1 at half of WATCHDOG_USEC when systemd asks for a watchdog
//! (no timer otherwise). The variables stay in the daemon's environment
//! (removing them would race other threads) and are filtered out of every
//! child's (see `system.rs`).

use std::time::Duration;

use sd_notify::NotifyState;

/// The daemon's side of the notify protocol.
#[derive(Debug)]
pub(crate) struct Notifier {
    enabled: bool,
    ready_sent: bool,
    last_status: String,
    /// Half of WATCHDOG_USEC, when the watchdog is on for this process.
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID.
    pub(crate) fn from_env() -> Self {
        let enabled = std::env::var_os("NOTIFY_SOCKET").is_some_and(|s| !s.is_empty());
        let mut usec = 0;
        let watchdog = (enabled && sd_notify::watchdog_enabled(false, &mut usec) && usec > 0)
            .then(|| Duration::from_micros(usec) / 2);
        Self {
            enabled,
            ready_sent: false,
            last_status: String::new(),
            watchdog,
        }
    }

    /// Whether systemd listens (NOTIFY_SOCKET is set).
    pub(crate) fn enabled(&self) -> bool {
        self.enabled
    }

    /// How often to send WATCHDOG=1, if at all.
    pub(crate) fn watchdog_interval(&self) -> Option<Duration> {
        self.watchdog
    }

    /// Whether READY=1 has been sent since start (or the last reload).
    pub(crate) fn is_ready(&self) -> bool {
        !self.enabled || self.ready_sent
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(err) = sd_notify::notify(false, states) {
            tracing::warn!("cannot notify systemd: {err}");
        }
    }

    /// READY=1, with the current status line.
    pub(crate) fn ready(&mut self, status: &str) {
        if !self.enabled || self.ready_sent {
            return;
        }
        self.ready_sent = true;
        status.clone_into(&mut self.last_status);
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// STATUS=, when it changed.
    pub(crate) fn status(&mut self, status: &str) {
        if !self.enabled || self.last_status == status {
            return;
        }
        status.clone_into(&mut self.last_status);
        self.send(&[NotifyState::Status(status)]);
    }

    /// RELOADING=1 with the monotonic time; READY=1 follows via `ready`.
    pub(crate) fn reloading(&mut self) {
        if !self.enabled {
            return;
        }
        self.ready_sent = false;
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(err) => tracing::warn!("cannot read the monotonic clock: {err}"),
        }
    }

    /// STOPPING=1.
    pub(crate) fn stopping(&mut self) {
        self.send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }

    /// WATCHDOG=1.
    pub(crate) fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }
}
