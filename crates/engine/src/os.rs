//! What the engine needs from outside itself, behind two small traits so
//! that a test can boot the whole engine in-process: [`Children`] (fork,
//! reap, signal, look at process groups) and [`SignalSource`] (the
//! signals the daemon acts on). The daemon uses [`Kernel`] and
//! [`Signals`]; the engine tests a scripted kernel and a channel.

use std::future::Future;

use nix::unistd::Pid;
use ringmaster_spawn::{Exit, SpawnError, Spawned};
use tokio::signal::unix::{Signal, SignalKind, signal};

use crate::EngineError;
use crate::launch::Prepared;

/// The operating system's side of the engine's children.
pub(crate) trait Children {
    /// Forks and execs `prepared`; the child's pid, and a pidfd that says
    /// when it exits (without one, SIGCHLD does).
    fn spawn(&mut self, prepared: &Prepared) -> Result<Spawned, SpawnError>;
    /// One child that has exited, if any, without waiting.
    fn reap(&mut self) -> Result<Option<(Pid, Exit)>, nix::Error>;
    /// Child `pid`, if it has exited, without waiting.
    fn reap_pid(&mut self, pid: Pid) -> Result<Option<Exit>, nix::Error>;
    /// `kill(target, signal)`: a pid, or a negated process group.
    fn signal(&mut self, target: i32, signal: i32) -> Result<(), nix::Error>;
    /// Whether process group `pgid` still has members.
    fn group_alive(&self, pgid: Pid) -> bool;
    /// The daemon's live children, the orphans it adopted included.
    fn adopted(&self) -> Vec<Pid>;
}

/// The real kernel.
pub(crate) struct Kernel;

impl Children for Kernel {
    fn spawn(&mut self, prepared: &Prepared) -> Result<Spawned, SpawnError> {
        ringmaster_spawn::spawn_into(
            &prepared.launch,
            &prepared.stdio,
            prepared
                .cgroup
                .as_ref()
                .map(|(dir, procs)| ringmaster_spawn::CgroupFds {
                    dir: std::os::fd::AsFd::as_fd(dir),
                    procs: std::os::fd::AsFd::as_fd(procs),
                }),
        )
    }

    fn reap(&mut self) -> Result<Option<(Pid, Exit)>, nix::Error> {
        ringmaster_spawn::reap_any()
    }

    fn reap_pid(&mut self, pid: Pid) -> Result<Option<Exit>, nix::Error> {
        ringmaster_spawn::reap_pid(pid)
    }

    fn signal(&mut self, target: i32, signal: i32) -> Result<(), nix::Error> {
        ringmaster_spawn::send_signal(target, signal)
    }

    fn group_alive(&self, pgid: Pid) -> bool {
        ringmaster_spawn::group_alive(pgid)
    }

    fn adopted(&self) -> Vec<Pid> {
        crate::system::children()
    }
}

/// A signal the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DaemonSignal {
    /// SIGCHLD: reap.
    Child,
    /// SIGTERM: graceful shutdown.
    Terminate,
    /// SIGINT: graceful shutdown.
    Interrupt,
    /// SIGQUIT: fast shutdown.
    Quit,
    /// SIGHUP: reload.
    Hangup,
    /// SIGUSR2: reopen log files.
    User2,
}

/// Where the engine's signals come from.
pub(crate) trait SignalSource {
    /// The next signal; `None` once there will be none.
    fn next(&mut self) -> impl Future<Output = Option<DaemonSignal>> + Send;
}

/// The daemon's real signals, as streams.
pub(crate) struct Signals {
    child: Signal,
    terminate: Signal,
    interrupt: Signal,
    quit: Signal,
    hangup: Signal,
    user2: Signal,
}

impl Signals {
    /// Installs the handlers (before the first spawn, so no SIGCHLD is
    /// missed).
    pub(crate) fn install() -> Result<Self, EngineError> {
        let install = |kind| signal(kind).map_err(EngineError::Signals);
        Ok(Self {
            child: install(SignalKind::child())?,
            terminate: install(SignalKind::terminate())?,
            interrupt: install(SignalKind::interrupt())?,
            quit: install(SignalKind::quit())?,
            hangup: install(SignalKind::hangup())?,
            user2: install(SignalKind::user_defined2())?,
        })
    }
}

impl SignalSource for Signals {
    async fn next(&mut self) -> Option<DaemonSignal> {
        tokio::select! {
            Some(()) = self.child.recv() => Some(DaemonSignal::Child),
            Some(()) = self.terminate.recv() => Some(DaemonSignal::Terminate),
            Some(()) = self.interrupt.recv() => Some(DaemonSignal::Interrupt),
            Some(()) = self.quit.recv() => Some(DaemonSignal::Quit),
            Some(()) = self.hangup.recv() => Some(DaemonSignal::Hangup),
            Some(()) = self.user2.recv() => Some(DaemonSignal::User2),
            else => None,
        }
    }
}

impl SignalSource for tokio::sync::mpsc::UnboundedReceiver<DaemonSignal> {
    async fn next(&mut self) -> Option<DaemonSignal> {
        self.recv().await
    }
}
