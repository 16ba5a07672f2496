//! The configuration model every dialect maps onto.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConfigError, Location};
use crate::template::Template;

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The main configuration file (absolute).
    pub path: PathBuf,
    /// The dialect it was read in (a reload reads it the same way).
    pub dialect: crate::Dialect,
    /// Daemon-wide settings.
    pub daemon: DaemonConfig,
    /// Sockets the daemon binds, in file order.
    pub sockets: Vec<crate::listen::SocketConfig>,
    /// Watchers in file order (included files after the main one).
    pub watchers: Vec<WatcherConfig>,
    /// Named sets of watchers (`[groups]`), addressed together by name.
    pub groups: Vec<Group>,
    /// Worth telling whoever checks the file, but not wrong (and not
    /// warnings: `--strict` lets them pass): each `$(...)` that is not a
    /// placeholder and goes to the program as written.
    pub notes: Vec<crate::error::ConfigWarning>,
    /// What the file's reader found odd but accepted (shell syntax in a
    /// command no shell runs) and, with `--check`, what may fail on this
    /// machine (a working directory that does not exist yet). The loader
    /// moves them into [`crate::Loaded::warnings`].
    pub warnings: Vec<crate::error::ConfigWarning>,
}

/// A named set of watchers: `site = ["web", "api"]` in `[groups]`
/// (supervisord's `[group:site] programs=web,api`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// The group's name.
    pub name: String,
    /// Its watchers, in the order given.
    pub watchers: Vec<String>,
}

impl Config {
    /// The group `watcher` belongs to, if any.
    pub fn group_of(&self, watcher: &str) -> Option<&Group> {
        self.groups
            .iter()
            .find(|g| g.watchers.iter().any(|w| w == watcher))
    }

    /// The name a process is also known by, `GROUP:PROCESS_NAME` as
    /// supervisord names it (`site:web_00`; just `web` when the group and
    /// the process name are the same), for watchers with a `process_name`
    /// or a group (`site:web`, or `site:web_1`, `site:web_2` for several
    /// processes); `None` for the others, which are only `WATCHER:WID`.
    pub fn alias(&self, watcher: &WatcherConfig, wid: u32) -> Option<String> {
        let group = self.group_of(&watcher.name);
        if watcher.process_name.is_none() && group.is_none() {
            return None;
        }
        // Without a process_name, a grouped watcher's processes are
        // NAME, or NAME_WID when there are (or may be, past the first)
        // several, as supervisord users name theirs.
        let process = match &watcher.process_name {
            Some(template) => template.render(wid),
            None if watcher.numprocesses > 1 || wid > 1 => format!("{}_{wid}", watcher.name),
            None => watcher.name.clone(),
        };
        let group = group.map_or(watcher.name.as_str(), |g| g.name.as_str());
        Some(if group == process {
            process
        } else {
            format!("{group}:{process}")
        })
    }

    /// The socket called `name`.
    pub fn socket(&self, name: &str) -> Option<&crate::listen::SocketConfig> {
        self.sockets.iter().find(|s| s.name == name)
    }

    /// Total number of processes the watchers ask for.
    pub fn process_count(&self) -> usize {
        self.watchers.iter().map(|w| w.numprocesses as usize).sum()
    }
}

/// The `[daemon]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct DaemonConfig {
    /// Control socket path.
    pub socket: PathBuf,
    /// Mode of the control socket file.
    pub socket_mode: u32,
    /// Group allowed to connect, besides root and the daemon's user.
    pub socket_group: Option<String>,
    /// Where `socket_group` was set, for diagnostics.
    pub socket_group_location: Option<Location>,
    /// Directory for default log files.
    pub logs_dir: PathBuf,
    /// Daemon log verbosity.
    pub log_level: LogLevel,
    /// Daemon log format.
    pub log_format: LogFormat,
    /// Upper bound on a graceful shutdown before everything is killed.
    pub shutdown_timeout: Duration,
    /// The HTTP listener for `/metrics`, `/health` and `/targets`; none
    /// unless configured.
    pub metrics: Option<MetricsListen>,
    /// Whether each process gets a cgroup of its own, when the daemon
    /// can make them.
    pub cgroups: bool,
    /// supervisord's XML-RPC over TCP; none unless configured.
    pub xmlrpc: Option<XmlRpcListen>,
}

/// `[daemon] xmlrpc` (or a supervisord.conf's `[inet_http_server]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmlRpcListen {
    /// The address to bind.
    pub address: std::net::SocketAddr,
    /// As written, for messages.
    pub text: String,
    /// Where it was set.
    pub location: Location,
    /// HTTP basic auth every request must pass; none only on loopback.
    pub auth: Option<BasicAuth>,
}

/// A username and password, as supervisord takes them: the password
/// plain, or `{SHA}` and the hex SHA-1 of it.
#[derive(Clone, PartialEq, Eq)]
pub struct BasicAuth {
    /// The username.
    pub username: String,
    /// The password as written.
    pub password: String,
}

impl std::fmt::Debug for BasicAuth {
    /// Never the password, not even in a debug dump.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BasicAuth")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// `[daemon] metrics = "HOST:PORT"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricsListen {
    /// The address to bind (the first the name resolves to).
    pub address: std::net::SocketAddr,
    /// As written, for messages.
    pub text: String,
    /// Where it was set.
    pub location: Location,
}

/// Daemon log verbosity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    /// Errors only.
    Error,
    /// Warnings and errors.
    Warn,
    /// State changes and the above.
    Info,
    /// Details for debugging.
    Debug,
    /// Everything.
    Trace,
}

impl LogLevel {
    /// Every accepted spelling.
    pub const NAMES: &'static [&'static str] = &["error", "warn", "info", "debug", "trace"];

    /// The lower-case name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES[self as usize]
    }
}

impl std::str::FromStr for LogLevel {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "error" => Ok(Self::Error),
            "warn" => Ok(Self::Warn),
            "info" => Ok(Self::Info),
            "debug" => Ok(Self::Debug),
            "trace" => Ok(Self::Trace),
            other => Err(format!(
                "unknown log level '{other}' (expected error, warn, info, debug or trace)"
            )),
        }
    }
}

/// Daemon log format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!(
                "unknown log format '{other}' (expected text or json)"
            )),
        }
    }
}

/// When a process that exited on its own is restarted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// Always.
    Always,
    /// When its exit code is not in `exit_codes`, or a signal killed it.
    OnFailure,
    /// Never.
    Never,
}

impl Restart {
    /// The configuration spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Always => "always",
            Self::OnFailure => "on-failure",
            Self::Never => "never",
        }
    }
}

/// How many quick failures are retried before FATAL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartRetries {
    /// This many retries after the first attempt.
    Limited(u32),
    /// Never give up.
    Infinite,
}

/// The program to run, before `$(wid)` is filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// argv; with `shell`, `["/bin/sh", "-c", cmd]`.
    pub argv: Vec<Template>,
    /// Whether the command runs through `/bin/sh -c`.
    pub shell: bool,
}

/// Where one output stream goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OutputSink {
    /// Appended to a file.
    File(FileSink),
    /// Discarded (the child writes to /dev/null).
    Null,
}

/// A log file sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSink {
    /// Absolute path, possibly with `$(wid)`.
    pub path: Template,
    /// Rotate before the file would pass this many bytes.
    pub max_size: Option<u64>,
    /// Rotated files kept (`.1` .. `.N`); 0 truncates at max_size.
    pub backups: u32,
    /// Prefix each line with an RFC 3339 UTC timestamp.
    pub timestamps: bool,
}

impl FileSink {
    /// A plain appended file at `path`.
    pub fn plain(path: Template) -> Self {
        Self {
            path,
            max_size: None,
            backups: 0,
            timestamps: false,
        }
    }
}

/// Where stderr goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StderrSink {
    /// Its own sink.
    Sink(OutputSink),
    /// Merged into stdout, in write order.
    Stdout,
}

/// A resource limit a watcher may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rlimit {
    /// RLIMIT_AS.
    As,
    /// RLIMIT_CORE.
    Core,
    /// RLIMIT_CPU.
    Cpu,
    /// RLIMIT_DATA.
    Data,
    /// RLIMIT_FSIZE.
    Fsize,
    /// RLIMIT_LOCKS.
    Locks,
    /// RLIMIT_MEMLOCK.
    Memlock,
    /// RLIMIT_MSGQUEUE.
    Msgqueue,
    /// RLIMIT_NICE.
    Nice,
    /// RLIMIT_NOFILE.
    Nofile,
    /// RLIMIT_NPROC.
    Nproc,
    /// RLIMIT_RSS.
    Rss,
    /// RLIMIT_RTPRIO.
    Rtprio,
    /// RLIMIT_RTTIME.
    Rttime,
    /// RLIMIT_SIGPENDING.
    Sigpending,
    /// RLIMIT_STACK.
    Stack,
}

impl Rlimit {
    /// Every limit with its configuration name.
    pub const ALL: &'static [(&'static str, Rlimit)] = &[
        ("as", Self::As),
        ("core", Self::Core),
        ("cpu", Self::Cpu),
        ("data", Self::Data),
        ("fsize", Self::Fsize),
        ("locks", Self::Locks),
        ("memlock", Self::Memlock),
        ("msgqueue", Self::Msgqueue),
        ("nice", Self::Nice),
        ("nofile", Self::Nofile),
        ("nproc", Self::Nproc),
        ("rss", Self::Rss),
        ("rtprio", Self::Rtprio),
        ("rttime", Self::Rttime),
        ("sigpending", Self::Sigpending),
        ("stack", Self::Stack),
    ];

    /// The configuration name (`nofile`).
    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, r)| *r == self)
            .map_or("?", |(name, _)| name)
    }
}

/// A resource limit's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RlimitValue {
    /// A number (bytes, seconds or count, as the kernel defines).
    Limit(u64),
    /// RLIM_INFINITY.
    Unlimited,
}

/// One `[watchers.NAME]` table.
#[derive(Debug, Clone, PartialEq)]
pub struct WatcherConfig {
    /// The watcher's name.
    pub name: String,
    /// What to run.
    pub command: Command,
    /// How many processes.
    pub numprocesses: u32,
    /// Each process's own name (`web_$(wid-1:02)`), shown and accepted as
    /// `GROUP:NAME` beside `WATCHER:WID`.
    pub process_name: Option<Template>,
    /// Working directory (absolute).
    pub working_dir: Template,
    /// User to run as (name or uid).
    pub user: Option<String>,
    /// Group to run as (name or gid); defaults to the user's primary group.
    pub group: Option<String>,
    /// umask for the child.
    pub umask: Option<u32>,
    /// Environment set on top of the inherited one: `env_file` entries, then
    /// `env` entries (later wins).
    pub env: Vec<(String, Template)>,
    /// Whether the child inherits the daemon's environment.
    pub copy_env: bool,
    /// Whether the daemon starts it at start-up.
    pub autostart: bool,
    /// Restart policy for a process that exited on its own.
    pub restart: Restart,
    /// Exit codes that count as success for `on-failure`.
    pub exit_codes: Vec<i32>,
    /// How long a process must stay up to be RUNNING (without `ready`).
    pub start_secs: Duration,
    /// The check that makes a process RUNNING, instead of `start_secs`.
    pub ready: Option<crate::readiness::Readiness>,
    /// The check run while a process is RUNNING; failing it restarts the
    /// process.
    pub health: Option<crate::readiness::Health>,
    /// Quick failures retried before FATAL.
    pub start_retries: StartRetries,
    /// Cap on the delay between quick-failure retries.
    pub backoff_max: Duration,
    /// Signal sent to stop.
    pub stop_signal: i32,
    /// Time between the stop signal and SIGKILL.
    pub stop_timeout: Duration,
    /// Whether stop and kill go to the whole process group.
    pub stop_group: bool,
    /// Whether what is left of the process group when the leader exits on
    /// its own is stopped before the process is restarted.
    pub stop_orphans: bool,
    /// Start order (ascending) and stop order (descending), among what
    /// `depends_on` leaves free.
    pub priority: i32,
    /// Commands run around each process's life, and their timeout.
    pub hooks: crate::hooks::Hooks,
    /// Watchers that must be ready (RUNNING, or a one-shot completed)
    /// before this one starts, and that stop after it.
    pub depends_on: Vec<String>,
    /// Resource limits set in the child.
    pub rlimits: Vec<(Rlimit, RlimitValue)>,
    /// Sockets passed as fds 3, 4, ... in this order.
    pub sockets: Vec<String>,
    /// The port worker 1 serves its own metrics on; worker N uses
    /// `metrics_port + N - 1` (`$(metrics_port)`), listed in `/targets`.
    pub metrics_port: Option<u16>,
    /// Whether ringmaster owns the Python client's multiprocess directory
    /// for its workers and serves their merged metrics at
    /// `/metrics/WATCHER`.
    pub prometheus_multiproc: bool,
    /// Whether the processes are told of their sockets systemd's way
    /// (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`): unless the command
    /// or environment names them by `$(sockets.NAME)` already (gunicorn
    /// given `--bind fd://3` and `LISTEN_FDS=1` would take fd 3 twice).
    pub listen_fds: bool,
    /// A socket passed as stdin instead of /dev/null (supervisord's
    /// fcgi-program, Circus's `stdin_socket`).
    pub stdin_socket: Option<String>,
    /// Where stdout goes.
    pub stdout: OutputSink,
    /// Where stderr goes.
    pub stderr: StderrSink,
    /// Also copy each output line to the daemon's stdout, prefixed.
    pub echo: bool,
    /// When one of its processes gives up (FATAL, or exits for good with
    /// restart = "never"), shut everything down and exit with its code.
    pub essential: bool,
    /// Whether `reload` of a change replaces its processes one by one,
    /// each next once the last new one is ready (as `restart --rolling`),
    /// rather than all at once.
    pub rolling_reload: bool,
    /// Where each key was set, for diagnostics (`"user"` → file:line).
    pub locations: BTreeMap<String, Location>,
}

impl WatcherConfig {
    /// The location of `key` in this watcher, or of the watcher itself.
    pub fn location(&self, key: &str) -> Location {
        self.locations
            .get(key)
            .or_else(|| self.locations.get(""))
            .cloned()
            .unwrap_or_else(|| Location::file(std::path::Path::new("?")))
    }

    /// An error about `key` of this watcher.
    pub fn invalid(&self, key: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            location: self.location(key),
            key: format!("watchers.{}.{key}", self.name),
            message: message.into(),
        }
    }
}
