//! Process creation for ringmaster: resolve who and what to run in the
//! parent, then fork and exec with nothing but async-signal-safe calls in
//! the child.
//!
//! Theory of operation: [`Launch`] is built in the parent by
//! [`Launch::prepare`], which resolves the user and groups (getpwnam,
//! getgrouplist), builds the environment, and turns every string into a C
//! string, so the child allocates nothing. [`spawn`] forks; the child
//! (module `child`, the only `unsafe` code in ringmaster) puts itself in a
//! new process group, sets rlimits and the umask, drops privileges in the
//! order setgroups → setgid → setuid, verifies the drop held, wires
//! stdin/stdout/stderr and the passed descriptors (3, 4, ...), changes
//! directory, resets signal state, marks every other descriptor
//! close-on-exec and execs. Any failure is written as
//! (stage, errno) to a close-on-exec pipe, which the parent reads: EOF means
//! the exec succeeded.

pub mod access;
mod child;
mod prepare;
mod sys;

pub use child::Stage;
pub use prepare::{
    Credentials, DEFAULT_PATH, Launch, LaunchRequest, PrepareError, ResolvedUser, resolve_user,
};
pub use sys::{Exit, group_alive, ignore_signal, reap_any, reap_pid, send_signal, set_cloexec};

use std::os::fd::{AsFd, OwnedFd};

use nix::unistd::Pid;

/// Why a spawn failed.
#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    /// The request could not be turned into a launch (user lookup, NUL bytes).
    #[error("{0}")]
    Prepare(#[from] PrepareError),
    /// A pipe or fork failed in the parent.
    #[error("{what}: {source}")]
    Os {
        /// What was being done.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// A step in the child failed before exec.
    #[error("{}", describe_child_failure(*stage, *errno, program))]
    Child {
        /// Which step.
        stage: Stage,
        /// errno from that step.
        errno: i32,
        /// The program that was to run.
        program: String,
    },
}

impl SpawnError {
    /// The shell-style exit code that stands for this failure (127: not
    /// found, 126: cannot execute, 1 otherwise).
    pub fn exit_code_hint(&self) -> i32 {
        match self {
            Self::Child {
                stage: Stage::Exec,
                errno,
                ..
            } => {
                if *errno == libc::ENOENT || *errno == libc::ENOTDIR {
                    127
                } else {
                    126
                }
            }
            _ => 1,
        }
    }
}

fn describe_child_failure(stage: Stage, errno: i32, program: &str) -> String {
    let error = std::io::Error::from_raw_os_error(errno);
    match stage {
        Stage::Exec if errno == libc::ENOENT || errno == libc::ENOTDIR => {
            if program.contains('/') {
                format!("cannot execute '{program}': no such file")
            } else {
                format!("command not found: '{program}' (not in PATH)")
            }
        }
        Stage::Exec if errno == libc::EACCES => {
            format!("cannot execute '{program}': permission denied")
        }
        Stage::Exec if errno == libc::ENOEXEC => {
            format!("cannot execute '{program}': not an executable (a script needs a #! line)")
        }
        Stage::Exec => format!("cannot execute '{program}': {error}"),
        other => format!("{}: {error}", other.describe()),
    }
}

/// A child that was spawned: its pid, which is also its process group id.
#[derive(Debug)]
pub struct Spawned {
    /// The child's pid (and pgid).
    pub pid: Pid,
    /// Readable once the child has exited, when the kernel has pidfds:
    /// such a child raises no SIGCHLD, reap it with [`reap_pid`]. Without
    /// one, SIGCHLD and [`reap_any`] as usual.
    pub pidfd: Option<OwnedFd>,
}

/// The descriptors the child gets as stdin, stdout and stderr.
#[derive(Debug)]
pub struct Stdio {
    /// Becomes fd 0.
    pub stdin: OwnedFd,
    /// Becomes fd 1.
    pub stdout: OwnedFd,
    /// Becomes fd 2 (may be a duplicate of stdout for merged streams).
    pub stderr: OwnedFd,
    /// Become fds 3, 4, ... in this order, inheritable (passed sockets).
    pub passed: Vec<OwnedFd>,
}

/// Reserves the low descriptor numbers spawning uses (see module `child`):
/// call at start-up, before the daemon opens many descriptors.
pub fn reserve_descriptors() {
    child::reserve_slots();
}

/// Forks and execs `launch` with `stdio`. Blocks until the child has exec'd
/// or failed, which is typically well under a millisecond.
pub fn spawn(launch: &Launch, stdio: &Stdio) -> Result<Spawned, SpawnError> {
    spawn_into(launch, stdio, None)
}

/// The cgroup a child is to start in: its directory, and its
/// `cgroup.procs` open for writing.
#[derive(Debug, Clone, Copy)]
pub struct CgroupFds<'a> {
    /// The cgroup's directory (for clone3's CLONE_INTO_CGROUP).
    pub dir: std::os::fd::BorrowedFd<'a>,
    /// Its `cgroup.procs`, which the child writes itself into where
    /// clone3 cannot place it.
    pub procs: std::os::fd::BorrowedFd<'a>,
}

/// As [`spawn`], the child starting in `cgroup`: created in it (clone3,
/// Linux 5.7) or moving itself in before it does anything else.
pub fn spawn_into(
    launch: &Launch,
    stdio: &Stdio,
    cgroup: Option<CgroupFds<'_>>,
) -> Result<Spawned, SpawnError> {
    let (err_read, err_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| SpawnError::Os {
            what: "cannot create a pipe",
            source: e.into(),
        })?;
    let sources = child::Sources {
        stdin: stdio.stdin.as_fd(),
        stdout: stdio.stdout.as_fd(),
        stderr: stdio.stderr.as_fd(),
        report: err_write.as_fd(),
        passed: stdio.passed.iter().map(AsFd::as_fd).collect(),
        cgroup,
    };
    let (pid, pidfd) = child::fork_and_exec(launch, &sources).map_err(|source| SpawnError::Os {
        what: "cannot fork",
        source,
    })?;
    drop(err_write);
    match child::read_report(&err_read) {
        None => Ok(Spawned { pid, pidfd }),
        Some((stage, errno)) => {
            // The child has exited with 127; reap it here so the pid is
            // never reported as a supervised exit.
            sys::reap_blocking(pid);
            Err(SpawnError::Child {
                stage,
                errno,
                program: launch.program_name().to_owned(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A launch of `argv` with a plain environment, and stdio whose stdout
    /// and stderr go to the pipe whose read end comes back.
    fn launch_to_pipe(argv: &[&str]) -> (Launch, Stdio, OwnedFd) {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let request = LaunchRequest {
            argv: argv.iter().map(|a| (*a).into()).collect(),
            env: vec![("PATH".into(), DEFAULT_PATH.into())],
            working_dir: "/".into(),
            credentials: None,
            umask: None,
            rlimits: Vec::new(),
            listen_pid: false,
        };
        let stdio = Stdio {
            stdin: OwnedFd::from(std::fs::File::open("/dev/null").unwrap()),
            stdout: write.try_clone().unwrap(),
            stderr: write,
            passed: Vec::new(),
        };
        (Launch::prepare(request).unwrap(), stdio, read)
    }

    fn read_status(pid: Pid, key: &str) -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix(key))
            .map(|value| value.trim().to_owned())
    }

    /// A parent holding thousands of descriptors spawns a child whose
    /// descriptor table holds a few (the child copies only what is below
    /// the slots): a spawn costs the same however many the daemon holds.
    /// With a copy of the whole table the child's FDSize would be 4096.
    #[test]
    fn a_child_does_not_copy_the_daemons_descriptor_table() {
        reserve_descriptors();
        let held: Vec<std::fs::File> = (0..3000)
            .filter_map(|_| std::fs::File::open("/dev/null").ok())
            .collect();
        assert!(held.len() >= 2000, "could not open enough descriptors");
        let (launch, stdio, read) = launch_to_pipe(&["sleep", "10"]);
        let spawned = spawn(&launch, &stdio).unwrap();
        drop(stdio);
        let size: usize = read_status(spawned.pid, "FDSize:")
            .and_then(|v| v.parse().ok())
            .unwrap_or(usize::MAX);
        let _ = send_signal(spawned.pid.as_raw(), libc::SIGKILL);
        sys::reap_blocking(spawned.pid);
        assert!(size <= 256, "child FDSize {size}");
        // Every write end is gone from the parent: end of file at once.
        let mut buf = [0u8; 8];
        assert_eq!(nix::unistd::read(&read, &mut buf).unwrap(), 0);
    }

    /// A child spawned into a cgroup is in it from its first instruction
    /// (clone3 where the kernel has it; a move before exec elsewhere).
    #[test]
    fn a_child_starts_in_its_cgroup() {
        let Ok(tree) = ringmaster_cgroup::Tree::prepare(
            std::ffi::OsStr::new("ringmaster-spawn-unit-test"),
            &[],
        ) else {
            eprintln!("SKIPPED: no writable cgroup2 here");
            return;
        };
        let leaf = tree
            .create(&format!("spawn-{}", std::process::id()))
            .unwrap();
        let (dir, procs) = (leaf.open_dir().unwrap(), leaf.open_procs().unwrap());
        let (launch, stdio, read) = launch_to_pipe(&["cat", "/proc/self/cgroup"]);
        let fds = CgroupFds {
            dir: dir.as_fd(),
            procs: procs.as_fd(),
        };
        let spawned = spawn_into(&launch, &stdio, Some(fds)).unwrap();
        drop(stdio);
        let mut said = String::new();
        std::io::Read::read_to_string(&mut std::fs::File::from(read), &mut said).unwrap();
        sys::reap_blocking(spawned.pid);
        let name = leaf
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(
            said.lines()
                .any(|l| l.starts_with("0::") && l.ends_with(&name)),
            "{said}"
        );
        for _ in 0..100 {
            if leaf.remove().is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        tree.remove();
    }
}
