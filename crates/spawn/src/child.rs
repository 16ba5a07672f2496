//! The child side of spawning: the only `unsafe` code in ringmaster.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as posix_spawn
//! does: it runs in the daemon's memory, on a small stack of its own,
//! while the spawning thread waits for it to exec or exit. Nothing is
//! copied, so a spawn costs the same however large the daemon has grown
//! (a fork copies every page table, and costs more with each process and
//! stream the daemon holds). The price is discipline: the child may call
//! only async-signal-safe functions, must not allocate, lock or panic, and
//! must not write the daemon's memory (the daemon's other threads run on).
//! Every string and table it needs was prepared by the parent in
//! [`Launch`]. Credentials are changed with raw system calls: glibc's
//! `setuid` would broadcast the change to the daemon's threads, whose
//! thread list this child shares. Every signal is blocked from before the
//! clone until the child has reset every disposition, so no handler of
//! the daemon ever runs in it.
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

/// Bytes of the child's stack: `child_main` needs a few KiB; the rest is
/// margin (the lowest page is a guard).
const STACK_BYTES: usize = 256 * 1024;

/// What the child's entry point receives.
struct ChildArgs<'a> {
    launch: &'a Launch,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    fds: &'a ChildFds,
}

/// A stack for the child, mapped once and reused: spawns are one at a
/// time (the parent waits for each child to exec), so one is enough.
struct Stack {
    base: *mut libc::c_void,
}

// SAFETY: the mapping is only ever used under the STACK mutex.
unsafe impl Send for Stack {}

static STACK: std::sync::Mutex<Option<Stack>> = std::sync::Mutex::new(None);

impl Stack {
    fn map() -> std::io::Result<Self> {
        // SAFETY: a fresh anonymous private mapping; nothing else refers
        // to it. Its lowest page becomes a guard against overflow.
        unsafe {
            let base = libc::mmap(
                std::ptr::null_mut(),
                STACK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            );
            if base == libc::MAP_FAILED {
                return Err(std::io::Error::last_os_error());
            }
            libc::mprotect(base, page_size(), libc::PROT_NONE);
            Ok(Self { base })
        }
    }

    /// The top of the stack (stacks grow down), 16-byte aligned.
    fn top(&self) -> *mut libc::c_void {
        let top = self.base as usize + STACK_BYTES;
        (top & !15) as *mut libc::c_void
    }
}

fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) }).unwrap_or(4096)
}

/// Clones a child that sets itself up and execs; the parent gets the pid
/// once the child has exec'd or failed.
pub(crate) fn fork_and_exec(launch: &Launch, fds: &ChildFds) -> std::io::Result<Pid> {
    // Pointer tables are built before the clone: the child must not allocate.
    let argv = pointer_table(&launch.argv);
    let envp = pointer_table(&launch.envp);
    let args = ChildArgs {
        launch,
        argv: &argv,
        envp: &envp,
        fds,
    };
    let mut stack = STACK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if stack.is_none() {
        *stack = Some(Stack::map()?);
    }
    let top = stack.as_ref().map_or(std::ptr::null_mut(), Stack::top);
    // SAFETY: every signal is blocked in this thread until clone returns,
    // so none is handled in the child before it resets the dispositions;
    // the old mask is restored right after. The child runs `child_entry`
    // on the stack above (ours alone: the mutex is held until the child
    // has exec'd or exited, CLONE_VFORK), reading `args`, which outlive it
    // for the same reason.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let pid = libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | libc::SIGCHLD,
            (&raw const args).cast_mut().cast(),
        );
        let error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        Ok(Pid::from_raw(pid))
    }
}

/// The child's entry point on its own stack.
///
/// SAFETY: only ever called by clone in `fork_and_exec`, with a pointer
/// to a live `ChildArgs`.
extern "C" fn child_entry(arg: *mut libc::c_void) -> libc::c_int {
    // SAFETY: see above; child_main never returns.
    unsafe {
        let args = &*arg.cast::<ChildArgs<'_>>();
        child_main(args.launch, args.argv, args.envp, args.fds)
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
/// SAFETY: must only be called in the freshly cloned child, with every
/// signal blocked. Every call below is async-signal-safe (setpgid,
/// setrlimit, umask, raw setgroups/setgid/setuid/get*id, fcntl, dup2,
/// chdir, rt_sigaction, rt_sigprocmask, close_range, execve, write, _exit),
/// nothing allocates (all data was built by the parent), and nothing
/// writes the daemon's memory but errno. Slice iteration cannot panic.
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
            drop_privileges(creds, report);
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

        reset_signals();

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

/// Switches to `creds` for this task alone, and checks it holds.
///
/// SAFETY: the child's contract (see [`child_main`]).
unsafe fn drop_privileges(creds: &crate::prepare::Credentials, report: RawFd) {
    // SAFETY (whole block): raw system calls on data the parent prepared.
    unsafe {
        // Raw system calls, for this task alone (see the module
        // documentation: glibc's wrappers would change the daemon's
        // threads too).
        if libc::syscall(
            libc::SYS_setgroups,
            creds.groups.len(),
            creds.groups.as_ptr(),
        ) != 0
        {
            fail(report, Stage::Groups, errno());
        }
        if libc::syscall(libc::SYS_setgid, creds.gid) != 0 {
            fail(report, Stage::Gid, errno());
        }
        if libc::syscall(libc::SYS_setuid, creds.uid) != 0 {
            fail(report, Stage::Uid, errno());
        }
        let id = |call| libc::syscall(call) as libc::uid_t;
        if id(libc::SYS_getuid) != creds.uid
            || id(libc::SYS_geteuid) != creds.uid
            || id(libc::SYS_getgid) != creds.gid
            || id(libc::SYS_getegid) != creds.gid
        {
            fail(report, Stage::VerifyDrop, libc::EPERM);
        }
        if creds.uid != 0 && libc::syscall(libc::SYS_setuid, 0) == 0 {
            fail(report, Stage::VerifyDrop, libc::EPERM);
        }
    }
}

/// Every disposition back to its default, then nothing blocked.
///
/// SAFETY: the child's contract (see [`child_main`]).
unsafe fn reset_signals() {
    // SAFETY (whole block): raw system calls on locals.
    unsafe {
        // Clean signal state: every disposition default (exec resets
        // handled signals, but not ignored ones like SIGPIPE), then nothing
        // blocked; in that order, so no handler of the daemon can run here.
        // Raw rt_sigaction: glibc refuses its internal signals (32, 33), and
        // a parent may have left them ignored. An all-zero kernel sigaction
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
        // The raw syscall, because glibc's sigprocmask will not touch its
        // internal signals, which were blocked for the clone.
        let empty: u64 = 0;
        libc::syscall(
            libc::SYS_rt_sigprocmask,
            libc::SIG_SETMASK,
            &raw const empty,
            std::ptr::null_mut::<u64>(),
            std::mem::size_of::<u64>(),
        );
    }
}
