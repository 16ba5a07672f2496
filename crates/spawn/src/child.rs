//! The child side of spawning: the only `unsafe` code in ringmaster.
//!
//! The child is made with `clone(CLONE_VM | CLONE_VFORK)`, as posix_spawn
//! does: it runs in the daemon's memory, on a small stack of its own,
//! while the spawning thread waits for it to exec or exit. Nothing is
//! copied, so a spawn costs the same however large the daemon has grown
//! (a fork copies every page table, and costs more with each process and
//! stream the daemon holds).
//!
//! Nor is the descriptor table: a daemon with 1000 file-logged processes
//! holds some 4000 descriptors (pipes and log files), and a child with a
//! copy of them all pays for copying each at clone and closing each at
//! exec, so each spawn cost more than the last. So the descriptors the
//! child needs (stdio, its report pipe, up to [`PASSED_SLOTS`] passed
//! sockets) are first put in [`Slots`], low numbers kept for them from the
//! daemon's start; the child is cloned sharing the table
//! (`CLONE_FILES`), and its first act is `close_range(BOUNDARY, ~0,
//! CLOSE_RANGE_UNSHARE)`, which gives it a table of its own holding only
//! the descriptors below the slots' boundary: a few dozen, however many
//! the daemon has. Until then it changes no descriptor (the table is the
//! daemon's); the parent puts /dev/null back in the slots once the child
//! has exec'd, so no pipe end stays open in the daemon.
//!
//! The price is discipline: the child may call
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
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::unistd::Pid;

use crate::prepare::Launch;

mod clone3;

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
    /// Joining the process's cgroup.
    Cgroup,
}

impl Stage {
    const ALL: [Stage; 10] = [
        Self::ProcessGroup,
        Self::Rlimit,
        Self::Groups,
        Self::Gid,
        Self::Uid,
        Self::VerifyDrop,
        Self::Stdio,
        Self::WorkingDir,
        Self::Exec,
        Self::Cgroup,
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
            Self::Cgroup => "cannot join its cgroup",
        }
    }

    fn code(self) -> u32 {
        Self::ALL.iter().position(|s| *s == self).unwrap_or(0) as u32
    }

    fn from_code(code: u32) -> Self {
        Self::ALL.get(code as usize).copied().unwrap_or(Self::Exec)
    }
}

/// Raw descriptors the child wires up, borrowed from the parent's owners
/// (or the slots they were put in).
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChildFds {
    pub stdin: RawFd,
    pub stdout: RawFd,
    pub stderr: RawFd,
    /// Write end of the close-on-exec report pipe.
    pub report: RawFd,
}

/// The descriptors the child gets, as the parent holds them.
pub(crate) struct Sources<'a> {
    pub stdin: BorrowedFd<'a>,
    pub stdout: BorrowedFd<'a>,
    pub stderr: BorrowedFd<'a>,
    pub report: BorrowedFd<'a>,
    /// To become 3, 4, ...
    pub passed: Vec<BorrowedFd<'a>>,
    /// The cgroup the child starts in.
    pub cgroup: Option<crate::CgroupFds<'a>>,
}

/// Slots kept for passed descriptors (sockets): a child passed more gets
/// a copy of the whole table instead, as with fork.
const PASSED_SLOTS: usize = 8;

/// Low descriptor numbers kept for the child's descriptors (see the
/// module's documentation), each open on /dev/null between spawns.
struct Slots {
    null: OwnedFd,
    /// stdin, stdout, stderr and report, in that order.
    held: [OwnedFd; 4],
    /// For the passed descriptors, in order.
    passed: Vec<OwnedFd>,
    /// One past the highest slot: all the child keeps of the table.
    boundary: RawFd,
}

impl Slots {
    fn reserve() -> std::io::Result<Self> {
        // std opens close-on-exec: no child ever inherits these as such.
        let null = || -> std::io::Result<OwnedFd> {
            Ok(std::fs::File::options()
                .read(true)
                .write(true)
                .open("/dev/null")?
                .into())
        };
        let held = [null()?, null()?, null()?, null()?];
        let passed = (0..PASSED_SLOTS)
            .map(|_| null())
            .collect::<std::io::Result<Vec<_>>>()?;
        let boundary = held
            .iter()
            .chain(&passed)
            .map(AsRawFd::as_raw_fd)
            .max()
            .unwrap_or(2)
            + 1;
        Ok(Self {
            null: null()?,
            held,
            passed,
            boundary,
        })
    }

    /// Puts the sources in the slots; the child's view of them (`None`
    /// when more are passed than there are slots).
    fn fill(&mut self, sources: &Sources<'_>) -> Option<(ChildFds, Vec<RawFd>)> {
        if sources.passed.len() > self.passed.len() {
            return None;
        }
        let wanted = [
            sources.stdin,
            sources.stdout,
            sources.stderr,
            sources.report,
        ];
        let cloexec = nix::fcntl::OFlag::O_CLOEXEC;
        for (slot, source) in self.held.iter_mut().zip(wanted) {
            nix::unistd::dup3(source, slot, cloexec).ok()?;
        }
        for (slot, source) in self.passed.iter_mut().zip(&sources.passed) {
            nix::unistd::dup3(source, slot, cloexec).ok()?;
        }
        let [stdin, stdout, stderr, report] = self.held.each_ref().map(AsRawFd::as_raw_fd);
        let passed = self.passed[..sources.passed.len()]
            .iter()
            .map(AsRawFd::as_raw_fd)
            .collect();
        Some((
            ChildFds {
                stdin,
                stdout,
                stderr,
                report,
            },
            passed,
        ))
    }

    /// Puts /dev/null back in every slot, so that no pipe end or socket
    /// the child got stays open here (a pipe's reader would never see end
    /// of file).
    fn empty(&mut self) -> nix::Result<()> {
        let null = &self.null;
        self.held
            .iter_mut()
            .chain(self.passed.iter_mut())
            .try_for_each(|slot| nix::unistd::dup3(null, slot, nix::fcntl::OFlag::O_CLOEXEC))
    }
}

/// Reserves the slots now, while the daemon's descriptor numbers are still
/// low (at start-up); the first spawn does it otherwise.
pub(crate) fn reserve_slots() {
    let mut spawner = lock_spawner();
    if spawner.slots.is_none() {
        spawner.slots = Slots::reserve().ok();
    }
}

/// Bytes of the child's stack: `child_main` needs a few KiB; the rest is
/// margin (the lowest page is a guard).
const STACK_BYTES: usize = 256 * 1024;

/// What the child's entry point receives.
struct ChildArgs<'a> {
    launch: &'a Launch,
    /// `cgroup.procs` to write `0` to before anything else, or -1.
    cgroup: RawFd,
    argv: &'a [*const c_char],
    envp: &'a [*const c_char],
    fds: ChildFds,
    /// To become 3, 4, ...
    passed: &'a [RawFd],
    /// Room for the child to move its descriptors through, one per
    /// descriptor it wires (stdio, then passed): memory of this spawn
    /// alone, which the child may write (the parent waits meanwhile).
    scratch: *mut RawFd,
    /// The `LISTEN_PID=` entry of `envp`, which the child completes with
    /// its pid; null when there is none.
    listen_pid: *mut u8,
    /// With a shared table: the slots' boundary, below which the child
    /// keeps a copy of the table.
    unshare_below: Option<RawFd>,
}

/// A stack for the child, mapped once and reused: spawns are one at a
/// time (the parent waits for each child to exec), so one is enough.
struct Stack {
    base: *mut libc::c_void,
}

// SAFETY: the mapping is only ever used under the SPAWNER mutex.
unsafe impl Send for Stack {}

/// What spawning keeps between spawns; one spawn at a time holds it.
struct Spawner {
    stack: Option<Stack>,
    slots: Option<Slots>,
}

static SPAWNER: std::sync::Mutex<Spawner> = std::sync::Mutex::new(Spawner {
    stack: None,
    slots: None,
});

fn lock_spawner() -> std::sync::MutexGuard<'static, Spawner> {
    SPAWNER
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

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

    /// The stack above its guard page: its lowest address and its size.
    fn usable(&self) -> (*mut libc::c_void, usize) {
        let page = page_size();
        (
            (self.base as usize + page) as *mut libc::c_void,
            STACK_BYTES - page,
        )
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

/// Clones a child that sets itself up and execs; the parent gets the pid,
/// and a pidfd for it, once the child has exec'd or failed.
///
/// The child is cloned with `CLONE_PIDFD`: its exit makes the pidfd
/// readable, so the daemon reaps exactly that child (`waitpid(pid,
/// __WALL)`) rather than have waitpid(-1) walk all of its children, twice
/// per exit. (No exit signal is asked for; exec sets SIGCHLD anyway, and
/// the daemon's orphan sweep on SIGCHLD runs a moment later.) A kernel
/// without CLONE_PIDFD (before 5.2) gets the plain clone.
pub(crate) fn fork_and_exec(
    launch: &Launch,
    sources: &Sources<'_>,
) -> std::io::Result<(Pid, Option<OwnedFd>)> {
    // Pointer tables are built before the clone: the child must not allocate.
    let argv = pointer_table(&launch.argv);
    let mut envp = pointer_table(&launch.envp);
    let mut pid_entry = [0u8; LISTEN_PID_ENTRY];
    let listen_pid = if launch.listen_pid {
        pid_entry[..LISTEN_PID.len()].copy_from_slice(LISTEN_PID);
        let entry = pid_entry.as_mut_ptr();
        envp.insert(envp.len() - 1, entry.cast_const().cast());
        entry
    } else {
        std::ptr::null_mut()
    };
    let mut scratch: Vec<RawFd> = vec![-1; 3 + sources.passed.len()];
    let mut spawner = lock_spawner();
    if spawner.stack.is_none() {
        spawner.stack = Some(Stack::map()?);
    }
    if spawner.slots.is_none() {
        spawner.slots = Slots::reserve().ok();
    }
    let top = spawner
        .stack
        .as_ref()
        .map_or(std::ptr::null_mut(), Stack::top);
    // Without slots (no /dev/null?) the child gets a copy of the whole
    // table, as with fork: slower, as correct.
    let shared = spawner
        .slots
        .as_mut()
        .and_then(|slots| Some((slots.fill(sources)?, slots.boundary)));
    let (fds, passed) = match &shared {
        Some(((fds, passed), _)) => (*fds, passed.clone()),
        None => (
            ChildFds {
                stdin: sources.stdin.as_raw_fd(),
                stdout: sources.stdout.as_raw_fd(),
                stderr: sources.stderr.as_raw_fd(),
                report: sources.report.as_raw_fd(),
            },
            sources.passed.iter().map(AsRawFd::as_raw_fd).collect(),
        ),
    };
    let mut args = ChildArgs {
        launch,
        cgroup: -1,
        argv: &argv,
        envp: &envp,
        fds,
        passed: &passed,
        scratch: scratch.as_mut_ptr(),
        listen_pid,
        unshare_below: shared.as_ref().map(|(_, boundary)| *boundary),
    };
    let share_files = if shared.is_some() {
        libc::CLONE_FILES
    } else {
        0
    };
    let cloned = match sources.cgroup {
        Some(cgroup) => {
            let into = clone3::into_cgroup(&spawner, &args, share_files, cgroup.dir.as_raw_fd());
            into.unwrap_or_else(|| {
                // No clone3 into a cgroup here: the child moves itself
                // in first thing, a slower way to the same place.
                args.cgroup = cgroup.procs.as_raw_fd();
                clone_with_pidfd(top, &args, share_files)
            })
        }
        None => clone_with_pidfd(top, &args, share_files),
    };
    if let Some(slots) = spawner.slots.as_mut()
        && slots.empty().is_err()
    {
        // Never expected; closing them all is the sure way to drop the
        // child's pipe ends. New ones are reserved next time.
        spawner.slots = None;
    }
    cloned
}

/// `clone` with CLONE_PIDFD, or without it on a kernel that has none.
fn clone_with_pidfd(
    top: *mut libc::c_void,
    args: &ChildArgs<'_>,
    share_files: libc::c_int,
) -> std::io::Result<(Pid, Option<OwnedFd>)> {
    match clone_child(top, args, share_files | libc::CLONE_PIDFD) {
        Err(err) if err.raw_os_error() == Some(libc::EINVAL) => {
            clone_child(top, args, share_files | libc::SIGCHLD)
        }
        other => other,
    }
}

/// The clone itself, with every signal blocked across it; `extra` adds
/// flags to CLONE_VM | CLONE_VFORK (and the exit signal, in its low byte).
fn clone_child(
    top: *mut libc::c_void,
    args: &ChildArgs<'_>,
    extra: libc::c_int,
) -> std::io::Result<(Pid, Option<OwnedFd>)> {
    // SAFETY: every signal is blocked in this thread until clone returns,
    // so none is handled in the child before it resets the dispositions;
    // the old mask is restored right after. The child runs `child_entry`
    // on the stack at `top` (ours alone: the caller holds the spawner's
    // mutex until the child has exec'd or exited, CLONE_VFORK), reading
    // `args`, which outlive it for the same reason. With CLONE_FILES the
    // child changes no descriptor before it has a table of its own.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let mut pidfd: libc::c_int = -1;
        let pid = libc::clone(
            child_entry,
            top,
            libc::CLONE_VM | libc::CLONE_VFORK | extra,
            std::ptr::from_ref(args).cast_mut().cast(),
            &raw mut pidfd,
        );
        let error = std::io::Error::last_os_error();
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        if pid < 0 {
            return Err(error);
        }
        // With CLONE_PIDFD the kernel wrote a new descriptor (close-on-exec)
        // that nothing else owns.
        let pidfd = (extra & libc::CLONE_PIDFD != 0 && pidfd >= 0)
            .then(|| <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd));
        Ok((Pid::from_raw(pid), pidfd))
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
        // Into its cgroup first, so that nothing it ever starts is
        // outside it. Writing through a descriptor of the shared table
        // changes no descriptor.
        if args.cgroup >= 0 && libc::write(args.cgroup, b"0".as_ptr().cast(), 1) != 1 {
            fail(args.fds.report, Stage::Cgroup, errno());
        }
        if let Some(boundary) = args.unshare_below {
            own_table(boundary, args.fds.report);
        }
        child_main(args)
    }
}

/// `LISTEN_PID=`, the start of the entry the child completes.
const LISTEN_PID: &[u8] = b"LISTEN_PID=";
/// Room for `LISTEN_PID=`, a pid's digits and the NUL.
const LISTEN_PID_ENTRY: usize = 32;

/// Writes the child's pid after `LISTEN_PID=` in the entry at `entry`.
///
/// SAFETY: only in the child; `entry` points at LISTEN_PID_ENTRY bytes of
/// this spawn's own, beginning with LISTEN_PID.
unsafe fn complete_listen_pid(entry: *mut u8) {
    // SAFETY: see above; getpid is async-signal-safe and at most 10
    // digits follow the 11-byte prefix in a 32-byte entry.
    unsafe {
        let mut pid = libc::syscall(libc::SYS_getpid) as u64;
        let mut digits = [0u8; 20];
        let mut count = 0;
        loop {
            digits[count] = b'0' + (pid % 10) as u8;
            count += 1;
            pid /= 10;
            if pid == 0 || count == digits.len() {
                break;
            }
        }
        let mut at = entry.add(LISTEN_PID.len());
        for &digit in digits[..count].iter().rev() {
            *at = digit;
            at = at.add(1);
        }
        *at = 0;
    }
}

/// Gives the child a descriptor table of its own holding only what is
/// below `boundary` (the slots and the daemon's first few), before it
/// changes any.
///
/// SAFETY: only in the freshly cloned child; close_range, unshare, write
/// and _exit are async-signal-safe.
unsafe fn own_table(boundary: RawFd, report: RawFd) {
    // SAFETY: see above.
    unsafe {
        if libc::syscall(
            libc::SYS_close_range,
            boundary as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_UNSHARE,
        ) != 0
            && libc::unshare(libc::CLONE_FILES) != 0
        {
            // Before Linux 5.9: a copy of the whole table, as fork makes.
            fail(report, Stage::Stdio, errno());
        }
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
/// signal blocked. Every call below is async-signal-safe (getpid, setpgid,
/// setrlimit, umask, raw setgroups/setgid/setuid/get*id, fcntl, dup2,
/// chdir, rt_sigaction, rt_sigprocmask, close_range, execve, write, _exit),
/// nothing allocates (all data was built by the parent), and nothing
/// writes the daemon's memory but errno and the two buffers of this spawn
/// alone (`scratch` and the `LISTEN_PID=` entry), which no other thread
/// sees. Slice iteration cannot panic.
unsafe fn child_main(args: &ChildArgs<'_>) -> ! {
    let (launch, fds) = (args.launch, &args.fds);
    // Every descriptor the child wires ends below `first`; the moved
    // copies (and the report pipe) go above it.
    let first = 3 + args.passed.len() as libc::c_int;
    // SAFETY (whole block): see the function's contract above.
    unsafe {
        if !args.listen_pid.is_null() {
            complete_listen_pid(args.listen_pid);
        }
        // The report pipe first, out of the way of 3, 4, ...
        let report = libc::fcntl(fds.report, libc::F_DUPFD_CLOEXEC, first);
        if report < 0 {
            fail(fds.report, Stage::Stdio, errno());
        }
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

        // Move every source above the targets first, so that any overlap
        // between sources and targets (a daemon started with closed stdio,
        // a slot numbered 3) is safe; dup2 then clears close-on-exec on
        // the targets: 0..=2, then the passed ones from 3.
        let moved = std::slice::from_raw_parts_mut(args.scratch, 3 + args.passed.len());
        let stdio = [fds.stdin, fds.stdout, fds.stderr];
        for (slot, &fd) in moved.iter_mut().zip(stdio.iter().chain(args.passed)) {
            *slot = libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, first);
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

        // No descriptor but 0..=2 and the passed ones survives exec,
        // whatever the daemon inherited.
        if libc::syscall(
            libc::SYS_close_range,
            first as libc::c_uint,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        ) != 0
        {
            for fd in first..65_536 {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            }
        }

        let mut saw_eacces = false;
        for candidate in &launch.candidates {
            libc::execve(candidate.as_ptr(), args.argv.as_ptr(), args.envp.as_ptr());
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
