//! One-time set-up of the daemon process itself.

use nix::sys::resource::{Resource, getrlimit, setrlimit};
use std::ffi::OsString;

/// What the daemon learned about its own process at start-up.
#[derive(Debug, Clone)]
pub(crate) struct System {
    /// The environment children inherit with `copy_env`, without the
    /// variables that belong to the daemon's own supervisor.
    pub base_env: Vec<(OsString, OsString)>,
    /// RLIMIT_NOFILE as the daemon found it, restored in children.
    pub nofile: (u64, u64),
    /// Whether the daemon's stdout is a terminal (echo colours names).
    pub colour: bool,
    /// The `NOTIFY_SOCKET` of processes with `ready = { notify = true }`,
    /// once the daemon has bound it (at their first spawn).
    pub notify_socket: Option<String>,
}

/// Variables that describe the daemon's own service manager; a child must
/// never see them (it would talk to systemd as if it were the daemon).
fn is_daemon_only(key: &OsString) -> bool {
    let key = key.to_string_lossy();
    key == "NOTIFY_SOCKET" || key.starts_with("LISTEN_") || key.starts_with("WATCHDOG_")
}

/// Becomes a child subreaper, raises the open-file limit for the daemon
/// (it holds two pipes per child) and marks inherited descriptors
/// close-on-exec so no child can inherit them.
pub(crate) fn prepare() -> System {
    if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
        tracing::warn!(
            "cannot become a child subreaper ({err}); orphans will be reaped by init instead"
        );
    }
    let nofile = getrlimit(Resource::RLIMIT_NOFILE).unwrap_or((1024, 4096));
    if nofile.0 < nofile.1
        && let Err(err) = setrlimit(Resource::RLIMIT_NOFILE, nofile.1, nofile.1)
    {
        tracing::warn!("cannot raise the open-file limit to {}: {err}", nofile.1);
    }
    mark_inherited_cloexec();
    // A log file over RLIMIT_FSIZE must fail the write (and be reported),
    // not kill the supervisor.
    if let Err(err) = ringmaster_spawn::ignore_signal(libc_sigxfsz()) {
        tracing::warn!("cannot ignore SIGXFSZ: {err}");
    }
    let base_env = std::env::vars_os()
        .filter(|(k, _)| !is_daemon_only(k))
        .collect();
    let colour = std::io::IsTerminal::is_terminal(&std::io::stdout());
    System {
        base_env,
        nofile,
        colour,
        notify_socket: None,
    }
}

fn mark_inherited_cloexec() {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    let fds: Vec<i32> = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
        .filter(|&fd| fd > 2)
        .collect();
    for fd in fds {
        // The directory handle itself is in the list and closed by now:
        // EBADF for it is expected and harmless.
        let _ = ringmaster_spawn::set_cloexec(fd);
    }
}

fn libc_sigxfsz() -> i32 {
    ringmaster_protocol::signals::parse("XFSZ").unwrap_or(25)
}

/// The daemon's live children by /proc, including the orphans it adopted
/// as subreaper or PID 1 (zombies excluded: the reaper takes those).
pub(crate) fn children() -> Vec<nix::unistd::Pid> {
    let me = std::process::id() as i32;
    let Ok(all) = procfs::process::all_processes() else {
        return Vec::new();
    };
    all.filter_map(Result::ok)
        .filter_map(|p| p.stat().ok())
        .filter(|stat| stat.ppid == me && stat.state != 'Z')
        .map(|stat| nix::unistd::Pid::from_raw(stat.pid))
        .collect()
}
