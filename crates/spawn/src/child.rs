//! The child side of fork/exec: the only `unsafe` code in ringmaster.
//!
//! Between fork and exec the child is a copy of a multi-threaded process in
//! which only the forking thread exists, so it may call only
//! async-signal-safe functions and must not allocate, lock or panic. Every
//! string and table it needs was prepared by the parent in [`Launch`].
#![allow(unsafe_code)]

use std::ffi::{CString, c_char};
use std::os::fd::{OwnedFd, RawFd};

use nix::unistd::Pid;

use crate::prepare::Launch;

/// The step of child set-up that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// setpgid.
    ProcessGroup,
    /// setrlimit.
    Rlimit,
    /// setgroups.
    Groups,
    /// setgid.
    Gid,
    /// setuid.
    Uid,
    /// The credentials after the drop were not the ones asked for, or root
    /// could be regained.
    VerifyDrop,
    /// Wiring stdin/stdout/stderr.
    Stdio,
    /// chdir to the working directory.
    WorkingDir,
    /// execve.
    Exec,
}

impl Stage {
    const ALL: [Stage; 9] = [
        Self::ProcessGroup,
        Self::Rlimit,
        Self::Groups,
        Self::Gid,
        Self::Uid,
        Self::VerifyDrop,
        Self::Stdio,
        Self::WorkingDir,
        Self::Exec,
    ];

    /// What the step does, for error messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::ProcessGroup => "cannot create a process group",
            Self::Rlimit => "cannot set a resource limit",
            Self::Groups => "cannot set supplementary groups",
            Self::Gid => "cannot set group id",
            Self::Uid => "cannot set user id",
            Self::VerifyDrop => "privilege drop did not hold; refusing to exec",
            Self::Stdio => "cannot set up stdin/stdout/stderr",
            Self::WorkingDir => "cannot change to working_dir",
            Self::Exec => "cannot execute",
        }
    }

    fn code(self) -> u32 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as u32
    }

    fn from_code(code: u32) -> Self {
        Self::ALL.get(code as usize).copied().unwrap_or(Self::Exec)
    }
}

/// Raw descriptors the child wires up, borrowed from the parent's owners.
pub(crate) struct ChildFds {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Write end of the close-on-exec report pipe.
    pub report: RawFd,
}

/// Forks; the child sets itself up and execs, the parent gets the pid.
pub(crate) fn fork_and_exec(launch: &Launch, fds: &ChildFds) -> std::io::Result<Pid> {
    // Pointer tables are built before the fork: the child must not allocate.
    let argv = pointer_table(&launch.argv);
    let envp = pointer_table(&launch.envp);
    // SAFETY: fork has no preconditions. In the child we only call
    // `child_main`, which uses async-signal-safe functions on data prepared
    // above and never returns (it execs or calls _exit).
    match unsafe { libc::fork() } {
        -1 => Err(std::io::Error::last_os_error()),
        0 => {
            // SAFETY: we are the freshly forked child; see child_main.
            unsafe { child_main(launch, &argv, &envp, fds) }
        }
        pid => Ok(Pid::from_raw(pid)),
    }
}

fn pointer_table(strings: &[CString]) -> Vec<*const c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

/// Reads the child's failure report: `None` when the pipe closed without
/// one (the exec succeeded).
pub(crate) fn read_report(pipe: &OwnedFd) -> Option<(Stage, i32)> {
    let mut buf = [0u8; 8];
    let mut filled = 0;
    while filled < buf.len() {
        match nix::unistd::read(pipe, &mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Some((Stage::Exec, err as i32)),
        }
    }
    match filled {
        0 => None,
        8 => {
            let stage = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]);
            let errno = i32::from_ne_bytes([buf[4], buf[5], buf[6], buf[7]]);
            Some((Stage::from_code(stage), errno))
        }
        _ => Some((Stage::Exec, libc::EIO)),
    }
}

fn errno() -> i32 {
    nix::errno::Errno::last_raw()
}

/// Writes (stage, errno) to the report pipe and exits 127.
///
/// SAFETY: async-signal-safe (write, _exit); called only in the child.
unsafe fn fail(report: RawFd, stage: Stage, errno: i32) -> ! {
    let mut buf = [0u8; 8];
    buf[..4].copy_from_slice(&stage.code().to_ne_bytes());
    buf[4..].copy_from_slice(&errno.to_ne_bytes());
    // SAFETY: write(2) and _exit(2) are async-signal-safe; buf lives on our
    // stack. A failed write cannot be reported anywhere, so it is ignored.
    unsafe {
        libc::write(report, buf.as_ptr().cast(), buf.len());
        libc::_exit(127)
    }
}

/// The child between fork and exec.
///
/// SAFETY: must only be called in a freshly forked child. Every call below
/// is async-signal-safe (setpgid, setrlimit, umask, setgroups, setgid,
/// setuid, get*id, fcntl, dup2, chdir, rt_sigprocmask, rt_sigaction,
/// close_range, execve, write, _exit) and nothing allocates: all data was
/// built by the parent. Slice iteration cannot panic.
unsafe fn child_main(
    launch: &Launch,
    argv: &[*const c_char],
    envp: &[*const c_char],
    fds: &ChildFds,
) -> ! {
    let report = fds.report;
    // SAFETY (whole block): see the function's contract above.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            fail(report, Stage::ProcessGroup, errno());
        }
        for &(resource, soft, hard) in &launch.rlimits {
            if nix::sys::resource::setrlimit(resource, soft, hard).is_err() {
                fail(report, Stage::Rlimit, errno());
            }
        }
        if let Some(mask) = launch.umask {
            libc::umask(mask);
        }
        if let Some(creds) = &launch.credentials {
            if libc::setgroups(creds.groups.len(), creds.groups.as_ptr()) != 0 {
                fail(report, Stage::Groups, errno());
            }
            if libc::setgid(creds.gid) != 0 {
                fail(report, Stage::Gid, errno());
            }
            if libc::setuid(creds.uid) != 0 {
                fail(report, Stage::Uid, errno());
            }
            if libc::getuid() != creds.uid
                || libc::geteuid() != creds.uid
                || libc::getgid() != creds.gid
                || libc::getegid() != creds.gid
            {
                fail(report, Stage::VerifyDrop, libc::EPERM);
            }
            if creds.uid != 0 && libc::setuid(0) == 0 {
                fail(report, Stage::VerifyDrop, libc::EPERM);
            }
        }

        // Move the sources out of 0..=2 first, so that any overlap between
        // sources and targets (a daemon started with closed stdio) is safe;
        // dup2 then clears close-on-exec on the targets.
        let sources = [fds.stdin, fds.stdout, fds.stderr];
        let mut moved = [-1; 3];
        for (slot, &fd) in moved.iter_mut().zip(sources.iter()) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 3);
            if *slot < 0 {
                fail(report, Stage::Stdio, errno());
            }
        }
        for (target, &fd) in moved.iter().enumerate() {
            if libc::dup2(fd, target as i32) < 0 {
                fail(report, Stage::Stdio, errno());
            }
        }

        if libc::chdir(launch.working_dir.as_ptr()) != 0 {
            fail(report, Stage::WorkingDir, errno());
        }

        // Clean signal state: nothing blocked, every disposition default
        // (exec resets handled signals, but not ignored ones like SIGPIPE).
        // The raw syscall, because glibc's sigprocmask will not touch its
        // internal signals (32, 33), which a parent may have left blocked.
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const empty,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        );
        // Raw rt_sigaction too: glibc refuses its internal signals, and a
        // parent may have left them ignored. An all-zero kernel sigaction
        // is SIG_DFL with no flags and an empty mask on every layout.
        let default_action = [0u64; 4];
        for signal in 1..=64 {
            if signal != libc::SIGKILL && signal != libc::SIGSTOP {
                libc::syscall(
                    libc::SYS_rt_sigaction,
                    signal,
                    &raw const default_action,
                    std::ptr::null_mut::<u64>(),
                    std::mem::size_of::<u64>(),
                );
            }
        }

        // No descriptor but 0..=2 survives exec, whatever the daemon inherited.
        if libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            for fd in 3..65_536 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }

        let mut saw_eacces = false;
        for candidate in &launch.candidates {
            libc::execve(candidate.as_ptr(), argv.as_ptr(), envp.as_ptr());
            match errno() {
                libc::EACCES => saw_eacces = true,
                libc::ENOENT | libc::ENOTDIR => {}
                other => fail(report, Stage::Exec, other),
            }
        }
        fail(
            report,
            Stage::Exec,
            if saw_eacces {
                libc::EACCES
            } else {
                libc::ENOENT
            },
        )
    }
}
