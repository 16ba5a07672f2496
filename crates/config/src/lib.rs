//! ringmaster's configuration: the model every dialect maps onto, and the
//! readers that build it.
//!
//! Theory of operation: a reader walks the source document with spans, so
//! every value it takes or rejects is tied to a file, line and key. Values
//! are validated as they are read (enums, durations, modes, signals), errors
//! are collected rather than stopping at the first, and nothing unknown is
//! silently defaulted. Placeholders that do not depend on the worker slot
//! (`$(name)`, `$(here)`, `$(env.VAR)`) are expanded at load time; `$(wid)`
//! stays in a [`Template`] until a process is spawned.

mod dependencies;
mod env_file;
mod error;
mod hooks;
mod ini;
mod listen;
mod model;
mod readiness;
mod shell_syntax;
mod socket;
mod system;
mod template;
mod toml_reader;
mod units;

use std::path::{Path, PathBuf};

pub use dependencies::ranks as dependency_ranks;
pub use error::{ConfigError, ConfigErrors, ConfigWarning, Location};
pub use hooks::{DEFAULT_HOOK_TIMEOUT, HookPoint, Hooks};
pub use listen::{DEFAULT_BACKLOG, SocketAddress, SocketConfig};
pub use model::{
    BasicAuth, Command, Config, DaemonConfig, FileSink, Group, LogFormat, LogLevel, MetricsListen,
    OutputSink, Restart, Rlimit, RlimitValue, StartRetries, StderrSink, WatcherConfig,
    XmlRpcListen,
};
pub use readiness::{
    DEFAULT_HEALTH_FAILURES, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_READY_INTERVAL, DEFAULT_READY_TIMEOUT, Health, Readiness, ReadyCheck, log_pattern,
};
pub use socket::socket_of;
pub use template::{Part, Template, WidFormat};

/// The configuration dialects ringmaster reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// Native TOML.
    Toml,
    /// Circus `circus.ini`.
    Circus,
    /// Supervisor `supervisord.conf`.
    Supervisord,
}

impl std::str::FromStr for Dialect {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "toml" => Ok(Self::Toml),
            "circus" => Ok(Self::Circus),
            "supervisord" => Ok(Self::Supervisord),
            other => Err(format!(
                "unknown format '{other}' (expected toml, circus or supervisord)"
            )),
        }
    }
}

/// Guesses the dialect: by the file name (`.toml` TOML, `.ini` Circus,
/// `.conf` Supervisor), then by content (`[supervisord]` or `[program:`
/// make Supervisor, `[circus]` or `[watcher:` Circus), else TOML.
pub fn detect_dialect(path: &Path) -> Dialect {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => return Dialect::Toml,
        Some("ini") => return Dialect::Circus,
        Some("conf") => return Dialect::Supervisord,
        _ => {}
    }
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let headers = text.lines().map(str::trim).filter(|l| l.starts_with('['));
    for header in headers {
        if header.starts_with("[supervisord]") || header.starts_with("[program:") {
            return Dialect::Supervisord;
        }
        if header.starts_with("[circus]") || header.starts_with("[watcher:") {
            return Dialect::Circus;
        }
    }
    Dialect::Toml
}

/// A configuration as read: the model, what was ignored, and the
/// configuration as native TOML (`ringmasterd --convert`).
#[derive(Debug)]
pub struct Loaded {
    /// The model.
    pub config: Config,
    /// Keys and sections read but ignored, each with its file and line.
    pub warnings: Vec<ConfigWarning>,
    /// The configuration as native TOML: the file itself for TOML, the
    /// translation for the INI dialects.
    pub toml: String,
    /// The dialect that was read.
    pub dialect: Dialect,
}

/// Reads and validates the configuration at `path` in `dialect` (detected
/// when `None`).
pub fn load(path: &Path, dialect: Option<Dialect>) -> Result<Config, ConfigErrors> {
    read(path, dialect).map(|loaded| loaded.config)
}

/// Like [`load`], keeping the warnings and the TOML text.
pub fn read(path: &Path, dialect: Option<Dialect>) -> Result<Loaded, ConfigErrors> {
    read_with(path, dialect, None, false)
}

/// Like [`read`], and asks this machine too, in the same pass
/// (`ringmasterd --check`): whether each watcher's user and group exist
/// and may be switched to, whether its command will run for that user,
/// whether its working directory exists, and whether its log files can be
/// written. What will certainly fail is an error; what may still work is
/// in the warnings.
pub fn check(path: &Path, dialect: Option<Dialect>) -> Result<Loaded, ConfigErrors> {
    read_with(path, dialect, None, true)
}

/// Reads the configuration again for a daemon that runs `running`: every
/// `[daemon]` setting takes effect only when the daemon restarts, so the
/// watchers' default log files stay in the running daemon's `logs_dir`
/// even if the file now names another (the returned `daemon` is the
/// file's, so the difference can be reported).
pub fn reread(
    path: &Path,
    dialect: Dialect,
    running: &DaemonConfig,
) -> Result<Config, ConfigErrors> {
    read_with(path, Some(dialect), Some(&running.logs_dir), false).map(|loaded| loaded.config)
}

fn read_with(
    path: &Path,
    dialect: Option<Dialect>,
    logs_dir: Option<&Path>,
    system_checks: bool,
) -> Result<Loaded, ConfigErrors> {
    let path = absolute(path);
    let dialect = dialect.unwrap_or_else(|| detect_dialect(&path));
    match dialect {
        Dialect::Toml => {
            let toml = std::fs::read_to_string(&path).map_err(|source| {
                ConfigErrors(vec![ConfigError::Read {
                    path: path.clone(),
                    source,
                }])
            })?;
            let mut config = toml_reader::load(&path, logs_dir, system_checks)?;
            Ok(Loaded {
                warnings: std::mem::take(&mut config.warnings),
                config,
                toml,
                dialect,
            })
        }
        ini_dialect => {
            let (mut config, converted) = ini::read(&path, ini_dialect, logs_dir, system_checks)?;
            let mut warnings = converted.warnings;
            warnings.append(&mut config.warnings);
            Ok(Loaded {
                config,
                warnings,
                toml: converted.toml,
                dialect,
            })
        }
    }
}

/// Makes `path` absolute against the current directory without resolving
/// symlinks.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}
