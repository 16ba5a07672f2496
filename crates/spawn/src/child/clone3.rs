//! `clone3` with `CLONE_INTO_CGROUP`: the child is created in its cgroup.
//!
//! Moving a process into a cgroup afterwards (writing its `cgroup.procs`)
//! takes the kernel's cgroup threadgroup lock for writing, which waits
//! for an RCU grace period: 10-15 ms on this 2-vCPU machine, in every
//! spawn, so a restart took 13 ms instead of 1.5. Created in the cgroup,
//! the child migrates nowhere. glibc (before 2.39) has no way to ask for
//! it, and a clone3 child that shares our memory starts on its new stack
//! right after the `syscall` instruction, so the call is made in a few
//! lines of assembly that send the child straight to `child_entry`.
//! Only x86_64 has them; elsewhere, and on kernels before 5.7, `None`
//! sends the caller to the other way.

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::unistd::Pid;

use super::{ChildArgs, Spawner};

/// Set once the kernel said it has no clone3 into a cgroup.
static UNAVAILABLE: AtomicBool = AtomicBool::new(false);

/// `struct clone_args` of the kernel's uapi, as of Linux 5.7.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Clones the child into the cgroup `dir` (a directory descriptor),
/// sharing our memory (CLONE_VM | CLONE_VFORK, on the spawner's stack),
/// with a pidfd; `None` when this kernel or architecture cannot.
pub(super) fn into_cgroup(
    spawner: &Spawner,
    args: &ChildArgs<'_>,
    share_files: libc::c_int,
    dir: RawFd,
) -> Option<std::io::Result<(Pid, Option<OwnedFd>)>> {
    if UNAVAILABLE.load(Ordering::Relaxed) {
        return None;
    }
    let stack = spawner.stack.as_ref()?;
    let (low, size) = stack.usable();
    let mut pidfd: libc::c_int = -1;
    let mut clone_args = CloneArgs {
        flags: (libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | share_files) as u64
            | CLONE_INTO_CGROUP,
        pidfd: (&raw mut pidfd) as u64,
        stack: low as u64,
        stack_size: size as u64,
        cgroup: u64::try_from(dir).ok()?,
        ..CloneArgs::default()
    };
    let result = clone3_blocked(&mut clone_args, args)?;
    match result {
        Ok(pid) => {
            // SAFETY: with CLONE_PIDFD the kernel wrote a new descriptor
            // (close-on-exec) that nothing else owns.
            let pidfd = (pidfd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(pidfd) });
            Some(Ok((Pid::from_raw(pid), pidfd)))
        }
        Err(err) => match err.raw_os_error() {
            // No clone3 (before 5.3), no cgroup field (before 5.7).
            Some(libc::ENOSYS | libc::E2BIG | libc::EINVAL) => {
                UNAVAILABLE.store(true, Ordering::Relaxed);
                None
            }
            _ => Some(Err(err)),
        },
    }
}

/// The clone3 call with every signal blocked across it (as `clone_child`
/// does, for the same reason); `None` on an architecture without it.
fn clone3_blocked(
    clone_args: &mut CloneArgs,
    args: &ChildArgs<'_>,
) -> Option<std::io::Result<i32>> {
    // SAFETY: as in `clone_child`: every signal is blocked until the
    // call returns in the parent; the child runs `child_entry` on the
    // spawner's stack (ours alone: the caller holds the spawner's mutex
    // and the parent waits, CLONE_VFORK), reading `args`, which outlive
    // it for the same reason.
    unsafe {
        let mut all: libc::sigset_t = std::mem::zeroed();
        let mut old: libc::sigset_t = std::mem::zeroed();
        libc::sigfillset(&raw mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const all, &raw mut old);
        let ret = raw_clone3(
            std::ptr::from_mut(clone_args),
            std::ptr::from_ref(args).cast_mut().cast(),
        );
        libc::pthread_sigmask(libc::SIG_SETMASK, &raw const old, std::ptr::null_mut());
        let ret = ret?;
        Some(if ret < 0 {
            Err(std::io::Error::from_raw_os_error(-ret as i32))
        } else {
            Ok(ret as i32)
        })
    }
}

/// `clone3(clone_args, size)`; the child calls `child_entry(arg)` on the
/// stack the arguments name and never comes back here. The raw result:
/// the pid, or minus the errno.
///
/// SAFETY: `clone_args` must name a stack that nothing else uses until
/// the child has exec'd or exited, and flags that include CLONE_VFORK
/// (the caller waits, so `arg` stays valid).
#[cfg(target_arch = "x86_64")]
#[allow(clippy::unnecessary_wraps)] // None is the other architectures' answer
unsafe fn raw_clone3(clone_args: *mut CloneArgs, arg: *mut libc::c_void) -> Option<i64> {
    let entry: extern "C" fn(*mut libc::c_void) -> libc::c_int = super::child_entry;
    let ret: i64;
    // SAFETY: see the function's contract. The kernel starts the child
    // after `syscall` with rax = 0, its stack pointer at the top of the
    // given stack (page-aligned, so 16-byte aligned for the call) and
    // every other register as the parent's: r12 and r13 still hold the
    // entry point and its argument. `child_entry` never returns (it
    // execs or exits); ud2 stops it should it ever.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "mov rdi, r13",
            "call r12",
            "ud2",
            "2:",
            inlateout("rax") libc::SYS_clone3 => ret,
            in("rdi") clone_args,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") entry,
            in("r13") arg,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    Some(ret)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn raw_clone3(_clone_args: *mut CloneArgs, _arg: *mut libc::c_void) -> Option<i64> {
    None
}
