//! Turns a watcher's configuration into a ready-to-fork launch for one slot.

use std::ffi::OsString;
use std::fs::{File, OpenOptions};
use std::os::fd::OwnedFd;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::resource::Resource;
use ringmaster_config::{
    HookPoint, OutputSink, ReadyCheck, Rlimit, RlimitValue, StderrSink, WatcherConfig,
};
use ringmaster_logs::{Echo, SinkSpec};
use ringmaster_protocol::{ProcessName, SOCKET_ENV, signals};
use ringmaster_spawn::Exit;
use ringmaster_spawn::{Launch, LaunchRequest, PrepareError, Stdio, resolve_user};

use crate::listeners::Listeners;
use crate::system::System;

/// Capacity asked for each output pipe.
const PIPE_BYTES: nix::libc::c_int = 1 << 20;

/// A pipe whose read end the daemon pumps into a sink.
pub(crate) struct Capture {
    /// 0 for stdout, 1 for stderr.
    pub stream: usize,
    pub label: String,
    pub read: OwnedFd,
    /// The log file; none for a `"null"` stream that is only echoed.
    pub sink: Option<SinkSpec>,
    pub echo: Option<Echo>,
}

/// Why a process could not be prepared: a quick failure of its slot.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LaunchError {
    /// Its user, group, program or working directory.
    #[error(transparent)]
    Prepare(#[from] PrepareError),
    /// /dev/null for its stdin or a "null" stream.
    #[error("cannot open /dev/null: {0}")]
    Null(std::io::Error),
    /// stderr merged into stdout.
    #[error("cannot duplicate stdout: {0}")]
    Duplicate(std::io::Error),
    /// An output pipe.
    #[error("cannot create a pipe: {0}")]
    Pipe(nix::Error),
    /// A socket it is passed is not bound (a reload that failed to bind it).
    #[error("socket '{0}' is not bound")]
    Unbound(String),
    /// A socket could not be duplicated for the child.
    #[error("cannot pass socket '{name}': {source}")]
    Pass {
        /// The socket.
        name: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Everything needed to fork one process.
pub(crate) struct Prepared {
    pub launch: Launch,
    pub stdio: Stdio,
    pub captures: Vec<Capture>,
    /// The cgroup the child starts in, when it has one: its directory and
    /// its `cgroup.procs`.
    pub cgroup: Option<(OwnedFd, OwnedFd)>,
}

/// Resolves user, environment, limits and output for `name` of watcher `w`;
/// `paths` are the control socket and the watcher's multiprocess
/// directory (`prometheus_multiproc`), which its environment names.
pub(crate) fn prepare(
    w: &WatcherConfig,
    name: &ProcessName,
    shown: &str,
    system: &System,
    paths: (&Path, Option<&Path>),
    listeners: &Listeners,
) -> Result<Prepared, LaunchError> {
    let wid = name.wid;
    let (socket, multiproc) = paths;
    let user = resolve_user(w.user.as_deref(), w.group.as_deref())?;
    let mut env = environment(w, name, system, socket, user.env);
    if let Some(dir) = multiproc {
        // The client reads the upper-case name; old versions the other.
        env.push((
            "PROMETHEUS_MULTIPROC_DIR".into(),
            dir.as_os_str().to_owned(),
        ));
        env.push((
            "prometheus_multiproc_dir".into(),
            dir.as_os_str().to_owned(),
        ));
    }
    if matches!(&w.ready, Some(r) if r.check == ReadyCheck::Notify)
        && let Some(notify) = &system.notify_socket
    {
        env.push(("NOTIFY_SOCKET".into(), notify.into()));
    }
    let passed = pass_sockets(&w.sockets, listeners)?;
    if w.listen_fds && !passed.is_empty() {
        // As systemd passes sockets (sd_listen_fds); LISTEN_PID is added
        // by the child itself.
        env.push(("LISTEN_FDS".into(), passed.len().to_string().into()));
        env.push(("LISTEN_FDNAMES".into(), w.sockets.join(":").into()));
    }

    let launch = Launch::prepare(LaunchRequest {
        argv: w.command.argv.iter().map(|t| t.render(wid)).collect(),
        env,
        working_dir: w.working_dir.render(wid),
        credentials: user.credentials,
        umask: w.umask,
        rlimits: limits(w, system),
        listen_pid: w.listen_fds && !passed.is_empty(),
    })?;

    let stdin = match &w.stdin_socket {
        Some(name) => pass_sockets(std::slice::from_ref(name), listeners)?
            .pop()
            .ok_or_else(|| LaunchError::Unbound(name.clone()))?,
        None => OwnedFd::from(open_null().map_err(LaunchError::Null)?),
    };
    let mut captures = Vec::new();
    let echo = w.echo.then_some(system.colour);
    // A `ready = { log }` check reads the output even when it goes nowhere.
    let watched = matches!(&w.ready, Some(r) if matches!(r.check, ReadyCheck::Log(_)));
    let how = Capturing { echo, watched };
    let stdout = output(&w.stdout, (name, shown), "stdout", how, &mut captures)?;
    let stderr = match &w.stderr {
        StderrSink::Stdout => stdout.try_clone().map_err(LaunchError::Duplicate)?,
        StderrSink::Sink(sink) => output(sink, (name, shown), "stderr", how, &mut captures)?,
    };
    Ok(Prepared {
        launch,
        stdio: Stdio {
            stdin,
            stdout,
            stderr,
            passed,
        },
        captures,
        cgroup: None,
    })
}

/// A `ready = { cmd }` check's command for process `target` of slot
/// `name`: as the watcher's user, with its environment (and
/// `RINGMASTER_PID`, the process checked), limits and directory; its
/// input and output are /dev/null.
pub(crate) fn prepare_probe(
    w: &WatcherConfig,
    argv: &[ringmaster_config::Template],
    name: &ProcessName,
    target: nix::unistd::Pid,
    system: &System,
    socket: &Path,
) -> Result<Prepared, LaunchError> {
    let user = resolve_user(w.user.as_deref(), w.group.as_deref())?;
    let mut env = environment(w, name, system, socket, user.env);
    env.push(("RINGMASTER_PID".into(), target.to_string().into()));
    let launch = Launch::prepare(LaunchRequest {
        argv: argv.iter().map(|t| t.render(name.wid)).collect(),
        env,
        working_dir: w.working_dir.render(name.wid),
        credentials: user.credentials,
        umask: w.umask,
        rlimits: limits(w, system),
        listen_pid: false,
    })?;
    let null = || open_null().map(OwnedFd::from).map_err(LaunchError::Null);
    Ok(Prepared {
        launch,
        stdio: Stdio {
            stdin: null()?,
            stdout: null()?,
            stderr: null()?,
            passed: Vec::new(),
        },
        captures: Vec::new(),
        cgroup: None,
    })
}

/// What a hook is run for: the point, the process (its pid, if it has or
/// had one) and how it ended (for `after_stop`).
pub(crate) struct HookFor<'a> {
    /// When it runs.
    pub point: HookPoint,
    /// The slot's name.
    pub name: &'a ProcessName,
    /// The name people read (`site:web_00`, else `web:1`).
    pub shown: &'a str,
    /// The process's pid (none before a first spawn).
    pub pid: Option<nix::unistd::Pid>,
    /// How the process ended (`after_stop`).
    pub exit: Option<Exit>,
}

/// A hook's command for a process of watcher `w`: as the watcher's user,
/// with its environment, limits and directory plus `RINGMASTER_HOOK`,
/// `RINGMASTER_PID` and `RINGMASTER_EXIT` (when known); its stdout and
/// stderr, through one pipe, go to the watcher's stdout log file with each
/// line marked `[hook before_start] ` (nowhere when stdout is "null").
pub(crate) fn prepare_hook(
    w: &WatcherConfig,
    argv: &[ringmaster_config::Template],
    hook: &HookFor<'_>,
    system: &System,
    socket: &Path,
) -> Result<Prepared, LaunchError> {
    let user = resolve_user(w.user.as_deref(), w.group.as_deref())?;
    let mut env = environment(w, hook.name, system, socket, user.env);
    env.push(("RINGMASTER_HOOK".into(), hook.point.name().into()));
    if let Some(pid) = hook.pid {
        env.push(("RINGMASTER_PID".into(), pid.to_string().into()));
    }
    if let Some(exit) = hook.exit {
        let text = match exit {
            Exit::Code(code) => code.to_string(),
            Exit::Signal { signal, .. } => format!("SIG{}", signals::name(signal)),
        };
        env.push(("RINGMASTER_EXIT".into(), text.into()));
    }
    let launch = Launch::prepare(LaunchRequest {
        argv: argv.iter().map(|t| t.render(hook.name.wid)).collect(),
        env,
        working_dir: w.working_dir.render(hook.name.wid),
        credentials: user.credentials,
        umask: w.umask,
        rlimits: limits(w, system),
        listen_pid: false,
    })?;
    let mut captures = Vec::new();
    let out = match &w.stdout {
        OutputSink::File(file) => {
            let sink = SinkSpec {
                path: file.path.render(hook.name.wid).into(),
                // The process's own stream rotates the file; a hook's
                // short run only appends to it.
                max_size: None,
                backups: 0,
                timestamps: file.timestamps,
                prefix: format!("[hook {}] ", hook.point.name()),
            };
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
            captures.push(Capture {
                stream: 0,
                label: format!("{} {} hook", hook.shown, hook.point.name()),
                read,
                sink: Some(sink),
                echo: None,
            });
            write
        }
        OutputSink::Null => OwnedFd::from(open_null().map_err(LaunchError::Null)?),
    };
    let err = out.try_clone().map_err(LaunchError::Duplicate)?;
    Ok(Prepared {
        launch,
        stdio: Stdio {
            stdin: OwnedFd::from(open_null().map_err(LaunchError::Null)?),
            stdout: out,
            stderr: err,
            passed: Vec::new(),
        },
        captures,
        cgroup: None,
    })
}

/// A process's environment, built explicitly in this order (later wins):
/// the daemon's (with `copy_env`), the user's passwd variables, the
/// watcher's `env`, then ringmaster's own.
fn environment(
    w: &WatcherConfig,
    name: &ProcessName,
    system: &System,
    socket: &Path,
    passwd: Vec<(String, OsString)>,
) -> Vec<(OsString, OsString)> {
    let wid = name.wid;
    let mut env: Vec<(OsString, OsString)> = Vec::new();
    if w.copy_env {
        env.extend(system.base_env.iter().cloned());
    }
    env.extend(passwd.into_iter().map(|(k, v)| (OsString::from(k), v)));
    env.extend(
        w.env
            .iter()
            .map(|(k, v)| (OsString::from(k), OsString::from(v.render(wid)))),
    );
    env.push(("RINGMASTER_PROCESS".into(), name.to_string().into()));
    env.push(("RINGMASTER_WATCHER".into(), name.watcher.clone().into()));
    env.push(("RINGMASTER_WID".into(), wid.to_string().into()));
    env.push((SOCKET_ENV.into(), socket.as_os_str().to_owned()));
    env
}

/// The watcher's resource limits; RLIMIT_NOFILE as the daemon found it
/// unless the watcher sets it (the daemon raised its own soft limit).
fn limits(w: &WatcherConfig, system: &System) -> Vec<(Resource, u64, u64)> {
    let mut rlimits: Vec<(Resource, u64, u64)> = w
        .rlimits
        .iter()
        .map(|&(limit, value)| {
            let value = match value {
                RlimitValue::Limit(n) => n,
                RlimitValue::Unlimited => libc_infinity(),
            };
            (resource(limit), value, value)
        })
        .collect();
    if !w.rlimits.iter().any(|(l, _)| *l == Rlimit::Nofile) {
        rlimits.push((Resource::RLIMIT_NOFILE, system.nofile.0, system.nofile.1));
    }
    rlimits
}

/// Duplicates of the sockets called `names`, in order, for one child.
fn pass_sockets(names: &[String], listeners: &Listeners) -> Result<Vec<OwnedFd>, LaunchError> {
    names
        .iter()
        .map(|name| {
            let listener = listeners
                .get(name)
                .ok_or_else(|| LaunchError::Unbound(name.clone()))?;
            listener.fd.try_clone().map_err(|source| LaunchError::Pass {
                name: name.clone(),
                source,
            })
        })
        .collect()
}

/// Why a stream is read besides its file.
#[derive(Debug, Clone, Copy)]
struct Capturing {
    /// `Some(colour)` when lines are copied to the daemon's stdout.
    echo: Option<bool>,
    /// A readiness check matches its lines.
    watched: bool,
}

/// The write end the child gets for one stream; a capture is recorded when
/// the stream goes to a file, is echoed or is watched.
fn output(
    sink: &OutputSink,
    (name, shown): (&ProcessName, &str),
    stream: &str,
    how: Capturing,
    captures: &mut Vec<Capture>,
) -> Result<OwnedFd, LaunchError> {
    let echo = how.echo;
    let file = match sink {
        OutputSink::Null if echo.is_none() && !how.watched => {
            return Ok(OwnedFd::from(open_null().map_err(LaunchError::Null)?));
        }
        OutputSink::Null => None,
        // Opened by the log pump, off this thread: a dead disk must not
        // stall the engine.
        OutputSink::File(file) => Some(SinkSpec {
            path: file.path.render(name.wid).into(),
            max_size: file.max_size,
            backups: file.backups,
            timestamps: file.timestamps,
            prefix: String::new(),
        }),
    };
    let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(LaunchError::Pipe)?;
    // A larger pipe lets the log pump move more per write; if the system
    // refuses (per-user pipe limits), the default 64 KiB still works.
    let _ = nix::fcntl::fcntl(&read, nix::fcntl::FcntlArg::F_SETPIPE_SZ(PIPE_BYTES));
    let stderr = stream == "stderr";
    captures.push(Capture {
        stream: usize::from(stderr),
        label: format!("{shown} {stream}"),
        read,
        sink: file,
        echo: echo.map(|colour| Echo::new(shown, stderr, colour)),
    });
    Ok(write)
}

fn open_null() -> std::io::Result<File> {
    OpenOptions::new().read(true).write(true).open("/dev/null")
}

fn libc_infinity() -> u64 {
    nix::sys::resource::RLIM_INFINITY
}

fn resource(limit: Rlimit) -> Resource {
    match limit {
        Rlimit::As => Resource::RLIMIT_AS,
        Rlimit::Core => Resource::RLIMIT_CORE,
        Rlimit::Cpu => Resource::RLIMIT_CPU,
        Rlimit::Data => Resource::RLIMIT_DATA,
        Rlimit::Fsize => Resource::RLIMIT_FSIZE,
        Rlimit::Locks => Resource::RLIMIT_LOCKS,
        Rlimit::Memlock => Resource::RLIMIT_MEMLOCK,
        Rlimit::Msgqueue => Resource::RLIMIT_MSGQUEUE,
        Rlimit::Nice => Resource::RLIMIT_NICE,
        Rlimit::Nofile => Resource::RLIMIT_NOFILE,
        Rlimit::Nproc => Resource::RLIMIT_NPROC,
        Rlimit::Rss => Resource::RLIMIT_RSS,
        Rlimit::Rtprio => Resource::RLIMIT_RTPRIO,
        Rlimit::Rttime => Resource::RLIMIT_RTTIME,
        Rlimit::Sigpending => Resource::RLIMIT_SIGPENDING,
        Rlimit::Stack => Resource::RLIMIT_STACK,
    }
}
