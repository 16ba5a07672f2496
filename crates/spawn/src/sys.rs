//! Thin safe wrappers over the few process-control syscalls whose nix
//! versions lose information (real-time signals) or need raw numbers.
#![allow(unsafe_code)]

use nix::errno::Errno;
use nix::unistd::Pid;

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Exited normally with this code.
    Code(i32),
    /// Killed by this signal number (`core` if it dumped core).
    Signal {
        /// The signal number (real-time signals included).
        signal: i32,
        /// Whether a core was dumped.
        core: bool,
    },
}

impl Exit {
    /// Shell convention: the code, or 128 + signal.
    pub fn shell_code(self) -> i32 {
        match self {
            Self::Code(code) => code,
            Self::Signal { signal, .. } => 128 + signal,
        }
    }
}

fn wait(pid: i32, flags: i32) -> Result<Option<(Pid, Exit)>, Errno> {
    loop {
        let mut status: libc::c_int = 0;
        // SAFETY: waitpid writes only to `status`, a local we own.
        let result = unsafe { libc::waitpid(pid, &raw mut status, flags) };
        if result < 0 {
            match Errno::last() {
                Errno::EINTR => continue,
                Errno::ECHILD => return Ok(None),
                other => return Err(other),
            }
        }
        if result == 0 {
            return Ok(None);
        }
        let exit = if libc::WIFEXITED(status) {
            Exit::Code(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Exit::Signal {
                signal: libc::WTERMSIG(status),
                core: libc::WCOREDUMP(status),
            }
        } else {
            // Stopped/continued: we never ask for these, skip.
            continue;
        };
        return Ok(Some((Pid::from_raw(result), exit)));
    }
}

/// Reaps one exited child of any kind without blocking: `Ok(None)` when no
/// child has exited (or there are no children).
pub fn reap_any() -> Result<Option<(Pid, Exit)>, Errno> {
    // __WALL: the children cloned without an exit signal too.
    wait(-1, libc::WNOHANG | libc::__WALL)
}

/// Reaps `pid` if it has exited, without blocking: `Ok(None)` while it
/// runs, or if it is not (or no longer) our child.
pub fn reap_pid(pid: Pid) -> Result<Option<Exit>, Errno> {
    wait(pid.as_raw(), libc::WNOHANG | libc::__WALL).map(|reaped| reaped.map(|(_, exit)| exit))
}

/// Waits for `pid` to exit (used only for a child known to be exiting).
pub(crate) fn reap_blocking(pid: Pid) {
    let _ = wait(pid.as_raw(), libc::__WALL);
}

/// Sends signal number `signal` to a process (`target > 0`) or a process
/// group (`target < 0`, its negated pgid).
pub fn send_signal(target: i32, signal: i32) -> Result<(), Errno> {
    // SAFETY: kill has no memory-safety preconditions.
    let result = unsafe { libc::kill(target, signal) };
    if result == 0 {
        Ok(())
    } else {
        Err(Errno::last())
    }
}

/// Whether any process (zombies included) is still in process group `pgid`.
pub fn group_alive(pgid: Pid) -> bool {
    !matches!(send_signal(-pgid.as_raw(), 0), Err(Errno::ESRCH))
}

/// Marks descriptor `fd` close-on-exec.
pub fn set_cloexec(fd: std::os::fd::RawFd) -> Result<(), Errno> {
    // SAFETY: fcntl(F_GETFD/F_SETFD) on an arbitrary number touches no
    // memory; a closed fd yields EBADF.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFD) };
    if flags < 0 {
        return Err(Errno::last());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, flags | libc::FD_CLOEXEC) } < 0 {
        return Err(Errno::last());
    }
    Ok(())
}

/// Ignores signal `signal` in this process (the daemon ignores SIGXFSZ, so
/// a log file that hits a file-size limit is an error to report, not a
/// death). Children get default dispositions back before exec.
pub fn ignore_signal(signal: i32) -> Result<(), Errno> {
    // SAFETY: installing SIG_IGN runs no code of ours in signal context.
    if unsafe { libc::signal(signal, libc::SIG_IGN) } == libc::SIG_ERR {
        return Err(Errno::last());
    }
    Ok(())
}
