//! The native TOML dialect.
//!
//! The document is parsed with spans (`toml::de::DeTable`) and walked by
//! hand, so that every unknown key, bad type and bad value becomes an error
//! that names the file, line, column and dotted key.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringmaster_protocol::{did_you_mean, signals};
use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod ready;
mod sockets;

use crate::env_file;
use crate::error::{ConfigError, ConfigErrors, ConfigWarning, Location};
use crate::model::{
    Command, Config, DaemonConfig, FileSink, Group, LogFormat, LogLevel, OutputSink, Restart,
    Rlimit, RlimitValue, StartRetries, StderrSink, WatcherConfig,
};
use crate::template::{self, Context, Template};
use crate::units::{parse_duration, parse_octal, parse_size};

const DAEMON_KEYS: &[&str] = &[
    "socket",
    "socket_mode",
    "socket_group",
    "logs_dir",
    "log_level",
    "log_format",
    "shutdown_timeout",
    "include",
];
const DAEMON_KEYS_LATER: &[&str] = &["metrics"];

const WATCHER_KEYS: &[&str] = &[
    "cmd",
    "args",
    "shell",
    "numprocesses",
    "process_name",
    "working_dir",
    "user",
    "group",
    "umask",
    "env",
    "env_file",
    "copy_env",
    "autostart",
    "restart",
    "exit_codes",
    "start_secs",
    "start_retries",
    "backoff_max",
    "stop_signal",
    "stop_timeout",
    "stop_group",
    "stop_orphans",
    "priority",
    "rlimits",
    "stdout",
    "stderr",
    "echo",
    "essential",
    "sockets",
    "stdin_socket",
    "ready",
    "reload",
    "depends_on",
    "health",
    "hooks",
    "hook_timeout",
    "metrics_port",
    "prometheus_multiproc",
];
const WATCHER_KEYS_LATER: &[&str] = &[];
const SINK_KEYS: &[&str] = &["file", "max_size", "backups", "timestamps"];

/// Rotated files kept when max_size is set and backups is not.
const DEFAULT_BACKUPS: u32 = 5;

/// Default values of watcher keys (documented in docs/configuration.md).
mod defaults {
    use std::time::Duration;

    pub const NUMPROCESSES: u32 = 1;
    pub const START_SECS: Duration = Duration::from_secs(1);
    pub const START_RETRIES: u32 = 3;
    pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
    pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
    pub const PRIORITY: i32 = 100;
    pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(60);
    pub const SOCKET_MODE: u32 = 0o600;
    pub const SOCKET_MODE_WITH_GROUP: u32 = 0o660;
    pub const MAX_PROCESSES: i64 = 100_000;
}

/// One file being read: its text, directory and line table.
struct Source<'a> {
    path: &'a Path,
    here: String,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    fn new(path: &'a Path, text: &str) -> Self {
        let here = path
            .parent()
            .map_or_else(|| ".".into(), |p| p.to_string_lossy().into_owned());
        let line_starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect();
        Self {
            path,
            here,
            line_starts,
        }
    }

    fn location(&self, offset: usize) -> Location {
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let column = offset - self.line_starts[line.saturating_sub(1)] + 1;
        Location {
            file: self.path.to_path_buf(),
            line,
            column,
        }
    }
}

type Entry<'i> = (
    &'i Spanned<std::borrow::Cow<'i, str>>,
    &'i Spanned<DeValue<'i>>,
);

/// Collects errors while walking one or more files.
#[derive(Default)]
struct Reader {
    errors: Vec<ConfigError>,
    /// Worth saying, not wrong: `$(...)` passed to the program as written.
    notes: Vec<ConfigWarning>,
    /// Whether each watcher is checked against this machine (`--check`).
    system_checks: bool,
    /// Odd but accepted, and what the system checks found may fail.
    warnings: Vec<ConfigWarning>,
}

impl Reader {
    fn invalid(&mut self, src: &Source<'_>, offset: usize, key: &str, message: impl Into<String>) {
        self.errors.push(ConfigError::Invalid {
            location: src.location(offset),
            key: key.to_owned(),
            message: message.into(),
        });
    }

    fn unknown_key(
        &mut self,
        src: &Source<'_>,
        offset: usize,
        path: &str,
        key: &str,
        known: &[&str],
        later: &[&str],
    ) {
        if later.contains(&key) {
            self.invalid(
                src,
                offset,
                &format!("{path}{key}"),
                "not supported yet by this version of ringmaster",
            );
            return;
        }
        let hint = did_you_mean(key, known.iter().chain(later).copied())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        self.invalid(
            src,
            offset,
            &format!("{path}{key}"),
            format!("unknown key{hint}"),
        );
    }

    fn table<'v, 'i>(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &'v Spanned<DeValue<'i>>,
    ) -> Option<&'v DeTable<'i>> {
        match value.get_ref() {
            DeValue::Table(table) => Some(table),
            other => {
                self.type_error(src, key, value, "a table", other);
                None
            }
        }
    }

    fn string<'v>(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &'v Spanned<DeValue<'_>>,
    ) -> Option<&'v str> {
        match value.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.type_error(src, key, value, "a string", other);
                None
            }
        }
    }

    fn boolean(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<bool> {
        match value.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            other => {
                self.type_error(src, key, value, "true or false", other);
                None
            }
        }
    }

    fn integer(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<i64> {
        match value.get_ref() {
            DeValue::Integer(i) => {
                let parsed = i64::from_str_radix(i.as_str(), i.radix()).ok();
                if parsed.is_none() {
                    self.invalid(src, value.span().start, key, "integer out of range");
                }
                parsed
            }
            other => {
                self.type_error(src, key, value, "an integer", other);
                None
            }
        }
    }

    fn integer_in(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        min: i64,
        max: i64,
    ) -> Option<i64> {
        let number = self.integer(src, key, value)?;
        if (min..=max).contains(&number) {
            Some(number)
        } else {
            self.invalid(
                src,
                value.span().start,
                key,
                format!("{number} is out of range ({min} to {max})"),
            );
            None
        }
    }

    fn duration(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
    ) -> Option<Duration> {
        match value.get_ref() {
            DeValue::String(s) => match parse_duration(s) {
                Ok(d) => Some(d),
                Err(message) => {
                    self.invalid(src, value.span().start, key, message);
                    None
                }
            },
            DeValue::Integer(_) => self
                .integer_in(src, key, value, 0, i64::from(u32::MAX))
                .map(|secs| Duration::from_secs(secs as u64)),
            other => {
                self.type_error(src, key, value, "a duration like \"10s\"", other);
                None
            }
        }
    }

    fn octal(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        max: u32,
    ) -> Option<u32> {
        let parsed = match value.get_ref() {
            DeValue::String(s) => parse_octal(s, max),
            DeValue::Integer(_) => {
                let number = self.integer(src, key, value)?;
                u32::try_from(number)
                    .ok()
                    .filter(|n| *n <= max)
                    .ok_or_else(|| format!("{number} is out of range (at most 0o{max:o})"))
            }
            other => {
                self.type_error(src, key, value, "an octal string like \"022\"", other);
                return None;
            }
        };
        match parsed {
            Ok(mode) => Some(mode),
            Err(message) => {
                self.invalid(src, value.span().start, key, message);
                None
            }
        }
    }

    fn choice<T: Copy>(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        choices: &[(&str, T)],
    ) -> Option<T> {
        let text = self.string(src, key, value)?;
        if let Some((_, v)) = choices.iter().find(|(name, _)| *name == text) {
            return Some(*v);
        }
        let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
        let hint = did_you_mean(text, names.iter().copied())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        self.invalid(
            src,
            value.span().start,
            key,
            format!(
                "unknown value '{text}'{hint}; expected one of: {}",
                names.join(", ")
            ),
        );
        None
    }

    fn expand(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        text: &str,
        ctx: &Context<'_>,
    ) -> Option<Template> {
        let mut notes = Vec::new();
        let expanded = template::expand(text, ctx, &mut notes);
        for message in notes {
            self.notes.push(ConfigWarning {
                location: src.location(value.span().start),
                key: key.to_owned(),
                message,
            });
        }
        match expanded {
            Ok(t) => Some(t),
            Err(message) => {
                self.invalid(src, value.span().start, key, message);
                None
            }
        }
    }

    fn type_error(
        &mut self,
        src: &Source<'_>,
        key: &str,
        value: &Spanned<DeValue<'_>>,
        expected: &str,
        found: &DeValue<'_>,
    ) {
        let found = match found {
            DeValue::String(_) => "a string",
            DeValue::Integer(_) => "an integer",
            DeValue::Float(_) => "a float",
            DeValue::Boolean(_) => "a boolean",
            DeValue::Datetime(_) => "a datetime",
            DeValue::Array(_) => "an array",
            DeValue::Table(_) => "a table",
        };
        self.invalid(
            src,
            value.span().start,
            key,
            format!("expected {expected}, found {found}"),
        );
    }
}

/// Reads the TOML file at `path` (absolute) and everything it includes;
/// `logs_dir`, when given, replaces the file's for the watchers' default
/// log files (see [`crate::reread`]).
pub(crate) fn load(
    path: &Path,
    logs_dir: Option<&Path>,
    system_checks: bool,
) -> Result<Config, ConfigErrors> {
    let text = read_file(path).map_err(|e| ConfigErrors(vec![e]))?;
    load_text(path, &text, logs_dir, system_checks)
}

/// Reads `text` as if it were the file at `path` (absolute): relative paths
/// and `$(here)` are taken against `path`'s directory.
pub(crate) fn load_text(
    path: &Path,
    text: &str,
    logs_dir: Option<&Path>,
    system_checks: bool,
) -> Result<Config, ConfigErrors> {
    let doc = parse(path, text).map_err(|e| ConfigErrors(vec![e]))?;
    let src = Source::new(path, text);
    let mut reader = Reader {
        system_checks,
        ..Reader::default()
    };

    let mut daemon_value = None;
    let mut groups_value = None;
    let mut watcher_tables: Vec<Entry<'_>> = Vec::new();
    let mut listen = Vec::new();
    for (key, value) in doc.get_ref() {
        match key.get_ref().as_ref() {
            "daemon" => daemon_value = Some(value),
            "groups" => groups_value = Some(value),
            "sockets" => listen.extend(sockets::read_sockets(&mut reader, &src, value)),
            "watchers" => {
                if let Some(table) = reader.table(&src, "watchers", value) {
                    watcher_tables.extend(table.iter());
                }
            }
            other => reader.unknown_key(
                &src,
                key.span().start,
                "",
                other,
                &["daemon", "sockets", "watchers", "groups"],
                &[],
            ),
        }
    }

    let (daemon, includes) = read_daemon(&mut reader, &src, daemon_value);
    if system_checks && let Some(group) = daemon.socket_group.as_deref() {
        let exists = group.parse::<u32>().is_ok()
            || matches!(nix::unistd::Group::from_name(group), Ok(Some(_)));
        if !exists {
            reader.errors.push(ConfigError::Invalid {
                location: daemon
                    .socket_group_location
                    .clone()
                    .unwrap_or_else(|| Location::file(path)),
                key: "daemon.socket_group".into(),
                message: format!("no such group '{group}'"),
            });
        }
    }
    // What the watchers' defaults come from.
    let base = DaemonConfig {
        logs_dir: logs_dir.map_or_else(|| daemon.logs_dir.clone(), Path::to_path_buf),
        ..daemon.clone()
    };
    let mut watchers: Vec<(WatcherConfig, Location)> = Vec::new();
    for (name, value) in watcher_tables {
        if let Some(w) = read_watcher(&mut reader, &src, &base, name, value) {
            let location = w.location("");
            watchers.push((w, location));
        }
    }

    for pattern in includes {
        read_include(&mut reader, &pattern, &base, &mut watchers, &mut listen);
    }

    check_duplicate_watchers(&mut reader, &watchers);
    sockets::check_sockets(&mut reader, &listen, &watchers);
    reader
        .errors
        .extend(crate::dependencies::check(watchers.iter().map(|(w, _)| w)));

    let groups = groups_value
        .map(|value| read_groups(&mut reader, &src, value, &watchers))
        .unwrap_or_default();

    if reader.errors.is_empty() {
        let config = Config {
            path: path.to_path_buf(),
            dialect: crate::Dialect::Toml,
            daemon,
            sockets: listen,
            watchers: watchers.into_iter().map(|(w, _)| w).collect(),
            groups,
            notes: std::mem::take(&mut reader.notes),
            warnings: std::mem::take(&mut reader.warnings),
        };
        check_aliases(&mut reader, &config);
        if !reader.errors.is_empty() {
            return Err(ConfigErrors(reader.errors));
        }
        Ok(config)
    } else {
        Err(ConfigErrors(reader.errors))
    }
}

/// A watcher defined twice (in the file and an included one) is an error
/// naming both places.
fn check_duplicate_watchers(reader: &mut Reader, watchers: &[(WatcherConfig, Location)]) {
    let mut seen: HashMap<&str, &Location> = HashMap::new();
    for (watcher, location) in watchers {
        if let Some(first) = seen.get(watcher.name.as_str()) {
            reader.errors.push(ConfigError::Invalid {
                location: location.clone(),
                key: format!("watchers.{}", watcher.name),
                message: format!(
                    "duplicate watcher '{}' (first defined at {first})",
                    watcher.name
                ),
            });
        } else {
            seen.insert(&watcher.name, location);
        }
    }
}

fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse<'i>(path: &Path, text: &'i str) -> Result<Spanned<DeTable<'i>>, ConfigError> {
    DeTable::parse(text).map_err(|err| {
        let src = Source::new(path, text);
        let location = err
            .span()
            .map_or_else(|| Location::file(path), |span| src.location(span.start));
        ConfigError::Syntax {
            location,
            message: format!("invalid TOML: {}", err.message().trim()),
        }
    })
}

/// `[groups]`: `NAME = ["watcher", ...]`.
fn read_groups(
    reader: &mut Reader,
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    watchers: &[(WatcherConfig, Location)],
) -> Vec<Group> {
    let Some(table) = reader.table(src, "groups", value) else {
        return Vec::new();
    };
    let mut groups: Vec<Group> = Vec::new();
    let mut member_of: HashMap<String, String> = HashMap::new();
    for (name, members) in table {
        let group = name.get_ref().as_ref();
        let key = format!("groups.{group}");
        if !valid_watcher_name(group) {
            reader.invalid(
                src,
                name.span().start,
                &key,
                "group names use letters, digits, '_', '-' and '.', and 'all' is reserved",
            );
            continue;
        }
        let DeValue::Array(items) = members.get_ref() else {
            reader.type_error(
                src,
                &key,
                members,
                "a list of watcher names",
                members.get_ref(),
            );
            continue;
        };
        let mut list = Vec::new();
        for item in items {
            let Some(watcher) = reader.string(src, &key, item) else {
                continue;
            };
            if !watchers.iter().any(|(w, _)| w.name == watcher) {
                let hint = did_you_mean(watcher, watchers.iter().map(|(w, _)| w.name.as_str()))
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                reader.invalid(
                    src,
                    item.span().start,
                    &key,
                    format!("no watcher '{watcher}'{hint}"),
                );
                continue;
            }
            if let Some(other) = member_of.insert(watcher.to_owned(), group.to_owned()) {
                reader.invalid(
                    src,
                    item.span().start,
                    &key,
                    format!("watcher '{watcher}' is already in group '{other}'"),
                );
                continue;
            }
            list.push(watcher.to_owned());
        }
        groups.push(Group {
            name: group.to_owned(),
            watchers: list,
        });
    }
    groups
}

/// Every process's `GROUP:NAME` must be unique, and must not be another
/// process's `WATCHER:WID`.
fn check_aliases(reader: &mut Reader, config: &Config) {
    let mut seen: HashMap<String, String> = HashMap::new();
    for watcher in &config.watchers {
        for wid in 1..=watcher.numprocesses {
            seen.insert(
                format!("{}:{wid}", watcher.name),
                format!("{}:{wid}", watcher.name),
            );
        }
    }
    for watcher in &config.watchers {
        for wid in 1..=watcher.numprocesses {
            let Some(alias) = config.alias(watcher, wid) else {
                continue;
            };
            let own = format!("{}:{wid}", watcher.name);
            if alias == own {
                continue;
            }
            if let Some(other) = seen.insert(alias.clone(), own.clone()) {
                reader.errors.push(watcher.invalid(
                    "process_name",
                    format!("process {own} would be named '{alias}', which already names {other}"),
                ));
                return;
            }
        }
    }
}

/// A glob from `[daemon] include`, with where it was written.
struct IncludePattern {
    pattern: String,
    location: Location,
}

fn read_include(
    reader: &mut Reader,
    include: &IncludePattern,
    daemon: &DaemonConfig,
    watchers: &mut Vec<(WatcherConfig, Location)>,
    listen: &mut Vec<crate::listen::SocketConfig>,
) {
    let paths = match glob::glob(&include.pattern) {
        Ok(paths) => paths,
        Err(err) => {
            reader.errors.push(ConfigError::Invalid {
                location: include.location.clone(),
                key: "daemon.include".into(),
                message: format!("bad glob '{}': {err}", include.pattern),
            });
            return;
        }
    };
    let mut files: Vec<PathBuf> = Vec::new();
    for entry in paths {
        match entry {
            Ok(path) => files.push(path),
            Err(err) => reader.errors.push(ConfigError::Invalid {
                location: include.location.clone(),
                key: "daemon.include".into(),
                message: format!("cannot read {}: {}", err.path().display(), err.error()),
            }),
        }
    }
    files.sort();
    for path in files {
        let text = match read_file(&path) {
            Ok(text) => text,
            Err(err) => {
                reader.errors.push(err);
                continue;
            }
        };
        let doc = match parse(&path, &text) {
            Ok(doc) => doc,
            Err(err) => {
                reader.errors.push(err);
                continue;
            }
        };
        let src = Source::new(&path, &text);
        for (key, value) in doc.get_ref() {
            match key.get_ref().as_ref() {
                "watchers" => {
                    let Some(table) = reader.table(&src, "watchers", value) else {
                        continue;
                    };
                    for (name, value) in table {
                        if let Some(w) = read_watcher(reader, &src, daemon, name, value) {
                            let location = w.location("");
                            watchers.push((w, location));
                        }
                    }
                }
                "sockets" => listen.extend(sockets::read_sockets(reader, &src, value)),
                "daemon" => reader.invalid(
                    &src,
                    key.span().start,
                    "daemon",
                    "[daemon] may only appear in the main configuration file",
                ),
                other => reader.unknown_key(
                    &src,
                    key.span().start,
                    "",
                    other,
                    &["sockets", "watchers"],
                    &[],
                ),
            }
        }
    }
}

fn read_daemon(
    reader: &mut Reader,
    src: &Source<'_>,
    value: Option<&Spanned<DeValue<'_>>>,
) -> (DaemonConfig, Vec<IncludePattern>) {
    let no_env = |var: &str| std::env::var(var).ok();
    let ctx = Context {
        name: "",
        here: &src.here,
        env: &no_env,
        sockets: &[],
        metrics_port: None,
    };
    let mut socket = None;
    let mut socket_mode = None;
    let mut socket_group = None;
    let mut socket_group_location = None;
    let mut logs_dir = None;
    let mut log_level = LogLevel::Info;
    let mut log_format = LogFormat::Text;
    let mut shutdown_timeout = defaults::SHUTDOWN_TIMEOUT;
    let mut includes = Vec::new();
    let mut metrics = None;
    let mut cgroups = true;
    let mut xmlrpc = None;

    let table = value.and_then(|v| reader.table(src, "daemon", v));
    for (key, value) in table.into_iter().flatten() {
        let name = key.get_ref().as_ref();
        let dotted = format!("daemon.{name}");
        let k = dotted.as_str();
        match name {
            "socket" => socket = read_path(reader, src, k, value, &ctx),
            "socket_mode" => socket_mode = reader.octal(src, k, value, 0o777),
            "socket_group" => {
                socket_group = reader.string(src, k, value).map(str::to_owned);
                socket_group_location = Some(src.location(value.span().start));
            }
            "logs_dir" => logs_dir = read_path(reader, src, k, value, &ctx),
            "log_level" => {
                let levels: Vec<(&str, LogLevel)> = LogLevel::NAMES
                    .iter()
                    .map(|n| (*n, n.parse().unwrap_or(LogLevel::Info)))
                    .collect();
                log_level = reader.choice(src, k, value, &levels).unwrap_or(log_level);
            }
            "log_format" => {
                let formats = [("text", LogFormat::Text), ("json", LogFormat::Json)];
                log_format = reader.choice(src, k, value, &formats).unwrap_or(log_format);
            }
            "shutdown_timeout" => {
                if let Some(d) = reader.duration(src, k, value) {
                    shutdown_timeout = d;
                }
            }
            "include" => includes = read_includes(reader, src, value, &ctx),
            "metrics" => metrics = read_metrics_listen(reader, src, k, value, &ctx),
            "cgroups" => cgroups = reader.boolean(src, k, value).unwrap_or(cgroups),
            "xmlrpc" => xmlrpc = read_xmlrpc(reader, src, k, value, &ctx),
            other => reader.unknown_key(
                src,
                key.span().start,
                "daemon.",
                other,
                DAEMON_KEYS,
                DAEMON_KEYS_LATER,
            ),
        }
    }

    let socket_mode = socket_mode.unwrap_or(if socket_group.is_some() {
        defaults::SOCKET_MODE_WITH_GROUP
    } else {
        defaults::SOCKET_MODE
    });
    let daemon = DaemonConfig {
        // $RINGMASTER_SOCKET, as for ringmasterctl: the way to place the
        // socket of a configuration that cannot say (a circus.ini).
        socket: socket.unwrap_or_else(|| {
            std::env::var_os(ringmaster_protocol::SOCKET_ENV)
                .filter(|p| !p.is_empty())
                .map_or_else(ringmaster_protocol::default_socket_path, PathBuf::from)
        }),
        socket_mode,
        socket_group,
        socket_group_location,
        logs_dir: logs_dir.unwrap_or_else(default_logs_dir),
        log_level,
        log_format,
        shutdown_timeout,
        metrics,
        cgroups,
        xmlrpc,
    };
    (daemon, includes)
}

/// `daemon.metrics`: `"HOST:PORT"`, resolved now so that a name that
/// does not resolve is an error of the file, not of the start-up.
fn read_metrics_listen(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<crate::model::MetricsListen> {
    let (address, text) = read_address(reader, src, key, value, ctx)?;
    Some(crate::model::MetricsListen {
        address,
        text,
        location: src.location(value.span().start),
    })
}

/// A `"HOST:PORT"` value, resolved (the first address the name has), and
/// its text.
fn read_address(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<(std::net::SocketAddr, String)> {
    use std::net::ToSocketAddrs;
    let text = reader.string(src, key, value)?;
    let text = reader.expand(src, key, value, text, ctx)?.render(0);
    let offset = value.span().start;
    let Some((host, port)) = text.rsplit_once(':') else {
        reader.invalid(
            src,
            offset,
            key,
            format!("'{text}' is not HOST:PORT (as \"127.0.0.1:9321\")"),
        );
        return None;
    };
    let Ok(port) = port.parse::<u16>() else {
        reader.invalid(
            src,
            offset,
            key,
            format!("'{port}' is not a port number (0 to 65535)"),
        );
        return None;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    match (host, port).to_socket_addrs().map(|mut addrs| addrs.next()) {
        Ok(Some(address)) => Some((address, text)),
        Ok(None) => {
            reader.invalid(src, offset, key, format!("'{host}' resolves to no address"));
            None
        }
        Err(err) => {
            reader.invalid(src, offset, key, format!("cannot resolve '{host}': {err}"));
            None
        }
    }
}

/// The table form of `daemon.xmlrpc`: its address, and its credentials
/// (both or neither).
fn read_xmlrpc_table(
    reader: &mut Reader,
    src: &Source<'_>,
    (key, offset): (&str, usize),
    table: &DeTable<'_>,
    ctx: &Context<'_>,
) -> Option<(
    std::net::SocketAddr,
    String,
    Option<crate::model::BasicAuth>,
)> {
    let mut address = None;
    let (mut username, mut password) = (None, None);
    for (name, item) in table {
        let dotted = format!("{key}.{}", name.get_ref());
        match name.get_ref().as_ref() {
            "address" => address = read_address(reader, src, &dotted, item, ctx),
            "username" => username = reader.string(src, &dotted, item).map(str::to_owned),
            "password" => password = reader.string(src, &dotted, item).map(str::to_owned),
            other => reader.unknown_key(
                src,
                name.span().start,
                &format!("{key}."),
                other,
                &["address", "username", "password"],
                &[],
            ),
        }
    }
    let Some((address, text)) = address else {
        reader.invalid(src, offset, key, "needs an address (\"HOST:PORT\")");
        return None;
    };
    let auth = match (username, password) {
        (Some(username), Some(password)) => Some(crate::model::BasicAuth { username, password }),
        (None, None) => None,
        _ => {
            reader.invalid(src, offset, key, "username and password go together");
            return None;
        }
    };
    Some((address, text, auth))
}

/// `daemon.xmlrpc`: `"HOST:PORT"`, or `{ address, username, password }`.
/// Credentials come both or neither, and an address other than loopback
/// needs them.
fn read_xmlrpc(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<crate::model::XmlRpcListen> {
    let offset = value.span().start;
    let (address, text, auth) = if let DeValue::Table(table) = value.get_ref() {
        read_xmlrpc_table(reader, src, (key, offset), table, ctx)?
    } else {
        let (address, text) = read_address(reader, src, key, value, ctx)?;
        (address, text, None)
    };
    if auth.is_none() && !address.ip().is_loopback() {
        reader.invalid(
            src,
            offset,
            key,
            format!("{text} is not a loopback address: it needs a username and password"),
        );
        return None;
    }
    Some(crate::model::XmlRpcListen {
        address,
        text,
        location: src.location(offset),
        auth,
    })
}

/// `daemon.include`: one glob or a list of them.
fn read_includes(
    reader: &mut Reader,
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Vec<IncludePattern> {
    let patterns: Vec<&Spanned<DeValue<'_>>> = match value.get_ref() {
        DeValue::Array(items) => items.iter().collect(),
        _ => vec![value],
    };
    patterns
        .into_iter()
        .filter_map(|item| {
            let path = read_path(reader, src, "daemon.include", item, ctx)?;
            Some(IncludePattern {
                pattern: path.to_string_lossy().into_owned(),
                location: src.location(item.span().start),
            })
        })
        .collect()
}

/// Default `logs_dir`: `/var/log/ringmaster` for root, else
/// `$XDG_STATE_HOME/ringmaster/logs` or `~/.local/state/ringmaster/logs`.
fn default_logs_dir() -> PathBuf {
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/log/ringmaster");
    }
    if let Some(state) = std::env::var_os("XDG_STATE_HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(state).join("ringmaster/logs");
    }
    if let Some(home) = std::env::var_os("HOME").filter(|s| !s.is_empty()) {
        return PathBuf::from(home).join(".local/state/ringmaster/logs");
    }
    PathBuf::from(format!("/tmp/ringmaster-{}/logs", nix::unistd::geteuid()))
}

/// A daemon-level path: placeholders expanded, `$(wid)` refused, made
/// absolute against the file's directory.
fn read_path(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<PathBuf> {
    let text = reader.string(src, key, value)?;
    let template = reader.expand(src, key, value, text, ctx)?;
    if template.uses_wid() {
        reader.invalid(
            src,
            value.span().start,
            key,
            "$(wid) is only meaningful in a watcher",
        );
        return None;
    }
    let path = PathBuf::from(template.render(0));
    if path.as_os_str().is_empty() {
        reader.invalid(src, value.span().start, key, "must not be empty");
        return None;
    }
    Some(absolutize(&path, &src.here))
}

fn absolutize(path: &Path, here: &str) -> PathBuf {
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        Path::new(here).join(path)
    }
}

fn absolutize_template(template: Template, here: &str) -> Template {
    if template.leading_literal().starts_with('/') {
        template
    } else {
        template.with_prefix(&format!("{here}/"))
    }
}

fn valid_watcher_name(name: &str) -> bool {
    !name.is_empty()
        && name != "all"
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn check_watcher_name(
    reader: &mut Reader,
    src: &Source<'_>,
    name_key: &Spanned<std::borrow::Cow<'_, str>>,
) {
    let name = name_key.get_ref().as_ref();
    if !valid_watcher_name(name) {
        reader.invalid(
            src,
            name_key.span().start,
            &format!("watchers.{name}"),
            "watcher names use letters, digits, '_', '-' and '.', and 'all' is reserved",
        );
    }
}

fn read_watcher(
    reader: &mut Reader,
    src: &Source<'_>,
    daemon: &DaemonConfig,
    name_key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Option<WatcherConfig> {
    let name = name_key.get_ref().as_ref();
    let prefix = format!("watchers.{name}.");
    let errors_before = reader.errors.len();
    check_watcher_name(reader, src, name_key);
    let table = reader.table(src, &format!("watchers.{name}"), value)?;
    let (keys, locations) = sort_watcher_keys(reader, src, table, name_key, &prefix);
    let watcher = WatcherKeys {
        src,
        keys: &keys,
        prefix: &prefix,
    };
    // sockets, env_file and env come first: other values may refer to
    // them through $(sockets.NAME) and $(env.VAR).
    let passed = sockets::read_watcher_sockets(reader, &watcher);
    let metrics_port = read_metrics_port(reader, &watcher);
    let (file_env, env) = read_environment(reader, &watcher, name, &passed, metrics_port);
    let file_lookup = |var: &str| lookup_file_env(&file_env, var);
    let full_lookup = |var: &str| {
        env.iter()
            .rev()
            .find(|(key, t)| key == var && !t.uses_wid())
            .map(|(_, t)| t.render(0))
            .or_else(|| file_lookup(var))
    };
    let stdin_socket = watcher.string(reader, "stdin_socket");
    let ctx = Context {
        name,
        here: &src.here,
        env: &full_lookup,
        sockets: &passed,
        metrics_port,
    };

    let shell = watcher.boolean(reader, "shell", false);
    let argv = read_argv(reader, &watcher, name_key, shell, &ctx);
    let numprocesses = read_numprocesses(reader, &watcher, metrics_port);
    let process_name = read_process_name(reader, &watcher, numprocesses, &ctx);

    let working_dir = match keys.get("working_dir") {
        Some(value) => read_path_template(reader, src, &watcher.key("working_dir"), value, &ctx),
        None => Some(Template::literal(src.here.clone())),
    };

    let ready = ready::read_ready(reader, &watcher, &ctx);
    let health = ready::read_health(reader, &watcher, &ctx);
    let hooks = read_hooks(reader, &watcher, &ctx);
    let depends_on = sockets::read_names(reader, &watcher, "depends_on", "watcher");
    let identity = read_identity(reader, &watcher);
    let policy = read_policy(reader, &watcher);
    let streams = read_streams(reader, &watcher, name, daemon, &ctx);
    if reader.system_checks {
        let parts = Parts {
            identity: &identity,
            argv: argv.as_deref().filter(|_| !shell),
            working_dir: working_dir.as_ref(),
            env: &env,
            stdout: streams.0.as_ref(),
            stderr: streams.1.as_ref(),
            locations: &locations,
        };
        check_on_this_machine(reader, &watcher, &parts);
    }

    if reader.errors.len() > errors_before {
        return None;
    }
    // The rest of this function is the literal, one field a line.
    let (has_sockets, listen_fds) = socket_flags(&passed, &keys);
    Some(WatcherConfig {
        name: name.to_owned(),
        command: Command { argv: argv?, shell },
        numprocesses,
        process_name,
        working_dir: working_dir?,
        user: identity.user,
        group: identity.group,
        umask: identity.umask,
        env,
        copy_env: identity.copy_env,
        autostart: policy.autostart,
        restart: policy.restart,
        exit_codes: policy.exit_codes,
        start_secs: policy.start_secs,
        ready,
        health,
        start_retries: policy.start_retries,
        backoff_max: policy.backoff_max,
        stop_signal: policy.stop_signal,
        stop_timeout: policy.stop_timeout,
        stop_group: policy.stop_group,
        stop_orphans: policy.stop_orphans,
        priority: policy.priority,
        hooks,
        depends_on,
        rlimits: identity.rlimits,
        sockets: passed,
        metrics_port,
        prometheus_multiproc: watcher.boolean(reader, "prometheus_multiproc", false),
        listen_fds,
        stdin_socket,
        stdout: streams.0?,
        stderr: streams.1?,
        echo: streams.2,
        essential: policy.essential,
        // A watcher that shares sockets rolls unless told otherwise: its
        // workers can be replaced one by one without refusing anyone.
        rolling_reload: policy.rolling_reload.unwrap_or(has_sockets),
        locations,
    })
}

/// `metrics_port`: worker 1's own metrics port (1 to 65535).
fn read_metrics_port(reader: &mut Reader, w: &WatcherKeys<'_, '_, '_>) -> Option<u16> {
    let value = w.get("metrics_port")?;
    reader
        .integer_in(w.src, &w.key("metrics_port"), value, 1, i64::from(u16::MAX))
        .and_then(|port| u16::try_from(port).ok())
}

/// `numprocesses`; every worker's metrics port must exist, as worker N
/// uses `metrics_port + N - 1`.
fn read_numprocesses(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    metrics_port: Option<u16>,
) -> u32 {
    let numprocesses = w
        .get("numprocesses")
        .and_then(|v| {
            reader.integer_in(w.src, &w.key("numprocesses"), v, 0, defaults::MAX_PROCESSES)
        })
        .map_or(defaults::NUMPROCESSES, |n| n as u32);
    if let (Some(port), Some(value)) = (metrics_port, w.get("metrics_port"))
        && u32::from(port) + numprocesses.max(1) - 1 > u32::from(u16::MAX)
    {
        reader.invalid(
            w.src,
            value.span().start,
            &w.key("metrics_port"),
            format!("{port} + {numprocesses} workers passes port 65535"),
        );
    }
    numprocesses
}

/// Whether a watcher passes sockets, and whether it tells its processes
/// of them by `LISTEN_FDS` (when nothing names them by placeholder).
fn socket_flags(passed: &[String], keys: &BTreeMap<&str, &Spanned<DeValue<'_>>>) -> (bool, bool) {
    let has = !passed.is_empty();
    (has, has && !names_a_socket(keys))
}

/// Whether `cmd`, `args` or an `env` value names a socket by its
/// placeholder (`$(sockets.web)`, not the escaped `$$(sockets.web)`).
fn names_a_socket(keys: &BTreeMap<&str, &Spanned<DeValue<'_>>>) -> bool {
    fn strings<'a>(value: &'a DeValue<'_>, out: &mut Vec<&'a str>) {
        match value {
            DeValue::String(s) => out.push(s.as_ref()),
            DeValue::Array(items) => items.iter().for_each(|i| strings(i.get_ref(), out)),
            DeValue::Table(table) => table.values().for_each(|v| strings(v.get_ref(), out)),
            _ => {}
        }
    }
    let mut texts = Vec::new();
    for key in ["cmd", "args", "env"] {
        if let Some(value) = keys.get(key) {
            strings(value.get_ref(), &mut texts);
        }
    }
    texts.iter().any(|text| {
        text.match_indices("$(sockets.")
            .any(|(at, _)| !text[..at].ends_with('$'))
    })
}

/// A watcher's known keys by name, and where each (and the table) was
/// written; unknown keys are reported.
fn sort_watcher_keys<'t, 'v>(
    reader: &mut Reader,
    src: &Source<'_>,
    table: &'t toml::de::DeTable<'v>,
    name_key: &Spanned<std::borrow::Cow<'_, str>>,
    prefix: &str,
) -> (
    BTreeMap<&'t str, &'t Spanned<DeValue<'v>>>,
    BTreeMap<String, Location>,
) {
    let mut keys = BTreeMap::new();
    let mut locations = BTreeMap::new();
    locations.insert(String::new(), src.location(name_key.span().start));
    for (key, value) in table {
        let key_name = key.get_ref().as_ref();
        if WATCHER_KEYS.contains(&key_name) {
            keys.insert(key_name, value);
            locations.insert(key_name.to_owned(), src.location(key.span().start));
        } else {
            reader.unknown_key(
                src,
                key.span().start,
                prefix,
                key_name,
                WATCHER_KEYS,
                WATCHER_KEYS_LATER,
            );
        }
    }
    (keys, locations)
}

/// A path that may hold placeholders (`working_dir`, a sink's `file`),
/// expanded, relative to the file's directory.
fn read_path_template(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<Template> {
    let text = reader.string(src, key, value)?;
    let template = reader.expand(src, key, value, text, ctx)?;
    Some(absolutize_template(template, &src.here))
}

/// A sink's table: `{ file = ..., max_size = ..., backups = ...,
/// timestamps = ... }`, the default file when `file` is left out.
fn read_file_sink(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    table: &toml::de::DeTable<'_>,
    ctx: &Context<'_>,
    default_path: &Template,
) -> Option<OutputSink> {
    let mut path = Some(default_path.clone());
    let mut max_size = None;
    let mut backups = None;
    let mut timestamps = false;
    for (sub, item) in table {
        let sub_name = sub.get_ref().as_ref();
        let sub_key = format!("{key}.{sub_name}");
        match sub_name {
            "file" => path = read_path_template(reader, src, &sub_key, item, ctx),
            "max_size" => max_size = read_max_size(reader, src, &sub_key, item),
            "backups" => {
                backups = reader
                    .integer_in(src, &sub_key, item, 0, 1000)
                    .map(|n| (n as u32, item.span().start));
            }
            "timestamps" => {
                timestamps = reader.boolean(src, &sub_key, item).unwrap_or(false);
            }
            _ => reader.unknown_key(
                src,
                sub.span().start,
                &format!("{key}."),
                sub_name,
                SINK_KEYS,
                &[],
            ),
        }
    }
    if let (Some((_, at)), None) = (backups, max_size) {
        reader.invalid(
            src,
            at,
            &format!("{key}.backups"),
            "backups needs max_size (rotation by size)",
        );
    }
    path.map(|path| {
        OutputSink::File(FileSink {
            path,
            max_size,
            backups: backups.map_or(DEFAULT_BACKUPS, |(n, _)| n),
            timestamps,
        })
    })
}

/// A sink's `max_size`: a size like "50MB", or a number of bytes.
fn read_max_size(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    item: &Spanned<DeValue<'_>>,
) -> Option<u64> {
    match item.get_ref() {
        DeValue::String(text) => parse_size(text)
            .map_err(|message| reader.invalid(src, item.span().start, key, message))
            .ok(),
        DeValue::Integer(_) => reader
            .integer_in(src, key, item, 1, i64::MAX)
            .map(|n| n as u64),
        other => {
            reader.type_error(src, key, item, "a size like \"50MB\"", other);
            None
        }
    }
}

/// What `--check` asks the machine about, of one watcher as read (some
/// parts may be missing when other keys were wrong).
struct Parts<'p> {
    identity: &'p Identity,
    /// The command, unless a shell runs it.
    argv: Option<&'p [Template]>,
    working_dir: Option<&'p Template>,
    env: &'p [(String, Template)],
    stdout: Option<&'p OutputSink>,
    stderr: Option<&'p StderrSink>,
    /// Where each key (and, under "", the table) was written.
    locations: &'p BTreeMap<String, Location>,
}

/// `--check`: what this machine says about the watcher (see
/// [`crate::system`]), at the line of the key each finding is about.
fn check_on_this_machine(reader: &mut Reader, w: &WatcherKeys<'_, '_, '_>, parts: &Parts<'_>) {
    let path_var = parts
        .env
        .iter()
        .rev()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.render(1))
        .or_else(|| {
            parts
                .identity
                .copy_env
                .then(|| std::env::var("PATH").ok())
                .flatten()
        })
        .unwrap_or_else(|| ringmaster_spawn::DEFAULT_PATH.to_owned());
    let file_of = |sink: Option<&OutputSink>| match sink {
        Some(OutputSink::File(file)) => Some(PathBuf::from(file.path.render(1))),
        _ => None,
    };
    let stderr = match parts.stderr {
        Some(StderrSink::Sink(sink)) => file_of(Some(sink)),
        _ => None,
    };
    let log_files = [("stdout", file_of(parts.stdout)), ("stderr", stderr)]
        .into_iter()
        .filter_map(|(key, file)| Some((key, file?)))
        .collect();
    let subject = crate::system::Subject {
        user: parts.identity.user.as_deref(),
        group: parts.identity.group.as_deref(),
        program: parts
            .argv
            .and_then(|argv| argv.first())
            .map(|t| t.render(1)),
        path_var,
        working_dir: parts.working_dir.map(|t| PathBuf::from(t.render(1))),
        log_files,
    };
    for finding in crate::system::check(&subject) {
        let (key, message, error) = match finding {
            crate::system::Finding::Error(key, message) => (key, message, true),
            crate::system::Finding::Warning(key, message) => (key, message, false),
        };
        // `cmd` stands for whichever of cmd and args gave the command.
        let key = if key == "cmd" && w.get("cmd").is_none() && w.get("args").is_some() {
            "args"
        } else {
            key
        };
        let location = parts
            .locations
            .get(key)
            .or_else(|| parts.locations.get(""))
            .cloned()
            .unwrap_or_else(|| Location::file(w.src.path));
        if error {
            reader.errors.push(ConfigError::Invalid {
                location,
                key: w.key(key),
                message,
            });
        } else {
            reader.warnings.push(ConfigWarning {
                location,
                key: w.key(key),
                message,
            });
        }
    }
}

/// A watcher's table, for the readers of its parts.
struct WatcherKeys<'w, 's, 'v> {
    src: &'w Source<'s>,
    keys: &'w BTreeMap<&'w str, &'w Spanned<DeValue<'v>>>,
    /// `watchers.NAME.`
    prefix: &'w str,
}

impl<'v> WatcherKeys<'_, '_, 'v> {
    fn get(&self, key: &str) -> Option<&Spanned<DeValue<'v>>> {
        self.keys.get(key).copied()
    }

    /// The full key, `watchers.NAME.KEY`.
    fn key(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    fn boolean(&self, reader: &mut Reader, key: &str, default: bool) -> bool {
        self.get(key)
            .and_then(|v| reader.boolean(self.src, &self.key(key), v))
            .unwrap_or(default)
    }

    fn duration(&self, reader: &mut Reader, key: &str, default: Duration) -> Duration {
        self.get(key)
            .and_then(|v| reader.duration(self.src, &self.key(key), v))
            .unwrap_or(default)
    }

    fn string(&self, reader: &mut Reader, key: &str) -> Option<String> {
        let value = self.get(key)?;
        let text = reader.string(self.src, &self.key(key), value)?;
        if text.is_empty() {
            reader.invalid(
                self.src,
                value.span().start,
                &self.key(key),
                "must not be empty",
            );
        }
        Some(text.to_owned())
    }
}

/// The argv: `cmd` (split like a shell, or for `/bin/sh -c` with
/// `shell`) or `args`, exactly one of them; `None` after an error.
fn read_argv(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    name_key: &Spanned<std::borrow::Cow<'_, str>>,
    shell: bool,
    ctx: &Context<'_>,
) -> Option<Vec<Template>> {
    let name = name_key.get_ref().as_ref();
    match (w.get("cmd"), w.get("args")) {
        (Some(_), Some(args)) => {
            reader.invalid(
                w.src,
                args.span().start,
                &w.key("args"),
                "give either cmd or args, not both",
            );
            None
        }
        (None, None) => {
            reader.invalid(
                w.src,
                name_key.span().start,
                &format!("watchers.{name}"),
                "missing cmd (or args)",
            );
            None
        }
        (Some(cmd), None) => read_cmd(reader, w.src, &w.key("cmd"), cmd, shell, ctx),
        (None, Some(args)) => {
            if shell {
                reader.invalid(
                    w.src,
                    args.span().start,
                    &w.key("args"),
                    "shell = true needs cmd, a string for /bin/sh -c",
                );
                None
            } else {
                read_args(reader, w.src, &w.key("args"), args, ctx)
            }
        }
    }
}

/// `process_name`: a name per slot, each usable on a command line and
/// different from the others.
fn read_process_name(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    numprocesses: u32,
    ctx: &Context<'_>,
) -> Option<Template> {
    w.get("process_name").and_then(|value| {
        let template = reader
            .string(w.src, &w.key("process_name"), value)
            .and_then(|text| reader.expand(w.src, &w.key("process_name"), value, text, ctx))?;
        // Each slot needs its own name, usable on a command line.
        let mut seen = std::collections::BTreeSet::new();
        for wid in 1..=numprocesses.max(1) {
            let rendered = template.render(wid);
            if rendered.is_empty() || rendered.contains([':', ' ', '/', '*']) {
                reader.invalid(
                    w.src,
                    value.span().start,
                    &w.key("process_name"),
                    format!("'{rendered}' is not a usable process name (no ':', ' ', '/' or '*')"),
                );
                return None;
            }
            if !seen.insert(rendered.clone()) {
                reader.invalid(
                    w.src,
                    value.span().start,
                    &w.key("process_name"),
                    format!(
                        "every process needs its own name, but two are '{rendered}' (use $(wid))"
                    ),
                );
                return None;
            }
        }
        Some(template)
    })
}

/// A watcher's environment, in order; a variable given again replaces the
/// earlier one.
type Environment = Vec<(String, Template)>;

/// `$(env.VAR)` for `env` values: the watcher's `env_file`, then the
/// daemon's environment.
fn lookup_file_env(file_env: &[(String, String)], var: &str) -> Option<String> {
    file_env
        .iter()
        .rev()
        .find(|(key, _)| key == var)
        .map(|(_, v)| v.clone())
        .or_else(|| std::env::var(var).ok())
}

/// The watcher's `env_file` (its pairs) and its whole environment: the
/// file's pairs, then `env` (whose values may use `$(env.VAR)` from the
/// file or the daemon's environment).
fn read_environment(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    name: &str,
    passed: &[String],
    metrics_port: Option<u16>,
) -> (Vec<(String, String)>, Environment) {
    let src = w.src;
    let daemon_env = |var: &str| std::env::var(var).ok();
    let base_ctx = Context {
        name,
        here: &src.here,
        env: &daemon_env,
        sockets: &[],
        metrics_port: None,
    };
    let mut file_env: Vec<(String, String)> = Vec::new();
    if let Some(value) = w.get("env_file")
        && let Some(text) = reader.string(src, &w.key("env_file"), value)
        && let Some(template) = reader.expand(src, &w.key("env_file"), value, text, &base_ctx)
    {
        let path = absolutize(Path::new(&template.render(0)), &src.here);
        match env_file::read(&path) {
            Ok(pairs) => file_env = pairs,
            Err(err) => {
                reader.invalid(src, value.span().start, &w.key("env_file"), err.to_string());
            }
        }
    }
    let file_lookup = |var: &str| lookup_file_env(&file_env, var);
    let env_ctx = Context {
        name,
        here: &src.here,
        env: &file_lookup,
        sockets: passed,
        metrics_port,
    };
    let mut env: Vec<(String, Template)> = file_env
        .iter()
        .map(|(key, value)| (key.clone(), Template::literal(value.clone())))
        .collect();
    if let Some(value) = w.get("env")
        && let Some(table) = reader.table(src, &w.key("env"), value)
    {
        for (var, item) in table {
            let var = var.get_ref().as_ref();
            let key = w.key(&format!("env.{var}"));
            if var.is_empty() || var.contains('=') || var.contains('\0') {
                reader.invalid(
                    src,
                    item.span().start,
                    &key,
                    "invalid environment variable name",
                );
                continue;
            }
            let text = match item.get_ref() {
                DeValue::String(s) => s.to_string(),
                DeValue::Integer(i) => i.to_string(),
                DeValue::Float(f) => f.to_string(),
                DeValue::Boolean(b) => b.to_string(),
                other => {
                    reader.type_error(src, &key, item, "a string", other);
                    continue;
                }
            };
            if let Some(template) = reader.expand(src, &key, item, &text, &env_ctx) {
                env.retain(|(existing, _)| existing != var);
                env.push((var.to_owned(), template));
            }
        }
    }
    (file_env, env)
}

/// Who the processes run as, and with what.
struct Identity {
    user: Option<String>,
    group: Option<String>,
    umask: Option<u32>,
    copy_env: bool,
    rlimits: Vec<(Rlimit, RlimitValue)>,
}

fn read_identity(reader: &mut Reader, w: &WatcherKeys<'_, '_, '_>) -> Identity {
    Identity {
        user: w.string(reader, "user"),
        group: w.string(reader, "group"),
        umask: w
            .get("umask")
            .and_then(|v| reader.octal(w.src, &w.key("umask"), v, 0o777)),
        copy_env: w.boolean(reader, "copy_env", true),
        rlimits: match w.get("rlimits") {
            Some(value) => read_rlimits(reader, w.src, &w.key("rlimits"), value),
            None => Vec::new(),
        },
    }
}

/// When processes start, restart, stop, and in which order.
struct Policy {
    autostart: bool,
    restart: Restart,
    exit_codes: Vec<i32>,
    start_secs: Duration,
    start_retries: StartRetries,
    backoff_max: Duration,
    stop_signal: i32,
    stop_timeout: Duration,
    stop_group: bool,
    stop_orphans: bool,
    priority: i32,
    essential: bool,
    /// `reload`: `Some(true)` rolling, `Some(false)` all at once.
    rolling_reload: Option<bool>,
}

fn read_policy(reader: &mut Reader, w: &WatcherKeys<'_, '_, '_>) -> Policy {
    let (src, k) = (w.src, |key: &str| w.key(key));
    let restart = w
        .get("restart")
        .and_then(|v| {
            reader.choice(
                src,
                &k("restart"),
                v,
                &[
                    ("always", Restart::Always),
                    ("on-failure", Restart::OnFailure),
                    ("never", Restart::Never),
                ],
            )
        })
        .unwrap_or(Restart::Always);
    let start_retries = match w.get("start_retries") {
        Some(value) => match value.get_ref() {
            DeValue::String(s) if s.as_ref() == "infinite" => StartRetries::Infinite,
            DeValue::Integer(_) => reader
                .integer_in(src, &k("start_retries"), value, 0, i64::from(u32::MAX))
                .map_or(StartRetries::Limited(defaults::START_RETRIES), |n| {
                    StartRetries::Limited(n as u32)
                }),
            _ => {
                reader.invalid(
                    src,
                    value.span().start,
                    &k("start_retries"),
                    "expected a number of retries or \"infinite\"",
                );
                StartRetries::Limited(defaults::START_RETRIES)
            }
        },
        None => StartRetries::Limited(defaults::START_RETRIES),
    };
    let priority = w
        .get("priority")
        .and_then(|v| {
            reader.integer_in(
                src,
                &k("priority"),
                v,
                i64::from(i32::MIN),
                i64::from(i32::MAX),
            )
        })
        .map_or(defaults::PRIORITY, |p| p as i32);
    Policy {
        autostart: w.boolean(reader, "autostart", true),
        restart,
        exit_codes: match w.get("exit_codes") {
            Some(value) => read_exit_codes(reader, src, &k("exit_codes"), value),
            None => vec![0],
        },
        start_secs: w.duration(reader, "start_secs", defaults::START_SECS),
        start_retries,
        backoff_max: w.duration(reader, "backoff_max", defaults::BACKOFF_MAX),
        stop_signal: match w.get("stop_signal") {
            Some(value) => {
                read_signal(reader, src, &k("stop_signal"), value).unwrap_or(libc_sigterm())
            }
            None => libc_sigterm(),
        },
        stop_timeout: w.duration(reader, "stop_timeout", defaults::STOP_TIMEOUT),
        stop_group: w.boolean(reader, "stop_group", true),
        stop_orphans: w.boolean(reader, "stop_orphans", true),
        priority,
        essential: w.boolean(reader, "essential", false),
        rolling_reload: w.get("reload").and_then(|v| {
            reader.choice(
                src,
                &k("reload"),
                v,
                &[("rolling", true), ("restart", false)],
            )
        }),
    }
}

/// `hooks = { before_start = "COMMAND", ... }` and `hook_timeout`.
fn read_hooks(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    ctx: &Context<'_>,
) -> crate::hooks::Hooks {
    use crate::hooks::{DEFAULT_HOOK_TIMEOUT, HookPoint};
    let mut hooks = crate::hooks::Hooks {
        commands: Vec::new(),
        timeout: w.duration(reader, "hook_timeout", DEFAULT_HOOK_TIMEOUT),
    };
    if hooks.timeout.is_zero()
        && let Some(value) = w.get("hook_timeout")
    {
        reader.invalid(
            w.src,
            value.span().start,
            &w.key("hook_timeout"),
            "must be more than 0",
        );
    }
    let Some(value) = w.get("hooks") else {
        return hooks;
    };
    let key = w.key("hooks");
    let Some(table) = reader.table(w.src, &key, value) else {
        return hooks;
    };
    let names: Vec<&str> = HookPoint::ALL.iter().map(|p| p.name()).collect();
    for (name_key, item) in table {
        let name = name_key.get_ref().as_ref();
        let Some(point) = HookPoint::ALL.into_iter().find(|p| p.name() == name) else {
            reader.unknown_key(
                w.src,
                name_key.span().start,
                &format!("{key}."),
                name,
                &names,
                &[],
            );
            continue;
        };
        if let Some(argv) = read_cmd(reader, w.src, &format!("{key}.{name}"), item, false, ctx) {
            hooks.commands.push((point, argv));
        }
    }
    hooks
}

/// Where stdout and stderr go (`None` for one with errors), and echo.
fn read_streams(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    name: &str,
    daemon: &DaemonConfig,
    ctx: &Context<'_>,
) -> (Option<OutputSink>, Option<StderrSink>, bool) {
    let default_path = |stream: &str| {
        Template::literal(format!("{}/{name}-", daemon.logs_dir.display()))
            .join(Template::wid())
            .join(Template::literal(format!(".{stream}.log")))
    };
    let (out_path, err_path) = (default_path("out"), default_path("err"));
    let stdout = match w.get("stdout") {
        Some(value) => read_sink(
            reader,
            w.src,
            &w.key("stdout"),
            value,
            ctx,
            &out_path,
            false,
        )
        .and_then(|s| match s {
            StderrSink::Sink(sink) => Some(sink),
            StderrSink::Stdout => None,
        }),
        None => Some(OutputSink::File(FileSink::plain(out_path.clone()))),
    };
    let stderr = match w.get("stderr") {
        Some(value) => read_sink(reader, w.src, &w.key("stderr"), value, ctx, &err_path, true),
        None => Some(StderrSink::Sink(OutputSink::File(FileSink::plain(
            err_path,
        )))),
    };
    (stdout, stderr, w.boolean(reader, "echo", false))
}

fn libc_sigterm() -> i32 {
    signals::parse("TERM").unwrap_or(15)
}

fn read_cmd(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    shell: bool,
    ctx: &Context<'_>,
) -> Option<Vec<Template>> {
    let text = reader.string(src, key, value)?;
    if text.trim().is_empty() {
        reader.invalid(src, value.span().start, key, "must not be empty");
        return None;
    }
    if shell {
        let script = reader.expand(src, key, value, text, ctx)?;
        return Some(vec![
            Template::literal("/bin/sh"),
            Template::literal("-c"),
            script,
        ]);
    }
    if let Some(found) = crate::shell_syntax::find(text) {
        reader.warnings.push(ConfigWarning {
            location: src.location(value.span().start),
            key: key.to_owned(),
            message: format!(
                "looks like shell syntax ({found}), but no shell runs this command: set shell = true or use args"
            ),
        });
    }
    let Some(words) = shlex::split(text) else {
        reader.invalid(
            src,
            value.span().start,
            key,
            "unbalanced quotes (cmd is split like a shell would, without running one)",
        );
        return None;
    };
    let mut argv = Vec::with_capacity(words.len());
    for word in words {
        argv.push(reader.expand(src, key, value, &word, ctx)?);
    }
    Some(argv)
}

fn read_args(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<Vec<Template>> {
    let DeValue::Array(items) = value.get_ref() else {
        reader.type_error(src, key, value, "an array of strings", value.get_ref());
        return None;
    };
    if items.is_empty() {
        reader.invalid(
            src,
            value.span().start,
            key,
            "must name at least the program",
        );
        return None;
    }
    let mut argv = Vec::with_capacity(items.len());
    for item in items {
        let text = reader.string(src, key, item)?;
        argv.push(reader.expand(src, key, item, text, ctx)?);
    }
    Some(argv)
}

fn read_exit_codes(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Vec<i32> {
    let DeValue::Array(items) = value.get_ref() else {
        reader.type_error(src, key, value, "an array of exit codes", value.get_ref());
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| reader.integer_in(src, key, item, 0, 255))
        .map(|code| code as i32)
        .collect()
}

fn read_signal(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Option<i32> {
    let text = match value.get_ref() {
        DeValue::String(s) => s.to_string(),
        DeValue::Integer(i) => i.as_str().to_owned(),
        other => {
            reader.type_error(src, key, value, "a signal name like \"TERM\"", other);
            return None;
        }
    };
    let parsed = signals::parse(&text);
    if parsed.is_none() {
        let hint = did_you_mean(&text.to_ascii_uppercase(), signals::all_names())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        reader.invalid(
            src,
            value.span().start,
            key,
            format!("unknown signal '{text}'{hint}"),
        );
    }
    parsed
}

fn read_rlimits(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
) -> Vec<(Rlimit, RlimitValue)> {
    let Some(table) = reader.table(src, key, value) else {
        return Vec::new();
    };
    let mut limits = Vec::new();
    for (name, item) in table {
        let name = name.get_ref().as_ref();
        let item_key = format!("{key}.{name}");
        let Some(&(_, rlimit)) = Rlimit::ALL.iter().find(|(n, _)| *n == name) else {
            let hint = did_you_mean(name, Rlimit::ALL.iter().map(|(n, _)| *n))
                .map(|s| format!(" (did you mean '{s}'?)"))
                .unwrap_or_default();
            reader.invalid(
                src,
                item.span().start,
                &item_key,
                format!("unknown resource limit{hint}"),
            );
            continue;
        };
        let limit = match item.get_ref() {
            DeValue::String(s) if matches!(s.as_ref(), "unlimited" | "infinity") => {
                Some(RlimitValue::Unlimited)
            }
            DeValue::Integer(_) => reader
                .integer_in(src, &item_key, item, 0, i64::MAX)
                .map(|n| RlimitValue::Limit(n as u64)),
            _ => {
                reader.invalid(
                    src,
                    item.span().start,
                    &item_key,
                    "expected a non-negative integer or \"unlimited\"",
                );
                None
            }
        };
        if let Some(limit) = limit {
            limits.push((rlimit, limit));
        }
    }
    limits
}

fn read_sink(
    reader: &mut Reader,
    src: &Source<'_>,
    key: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
    default_path: &Template,
    is_stderr: bool,
) -> Option<StderrSink> {
    match value.get_ref() {
        DeValue::String(s) => match (s.as_ref(), is_stderr) {
            ("null", _) => Some(StderrSink::Sink(OutputSink::Null)),
            ("stdout", true) => Some(StderrSink::Stdout),
            (other, _) => {
                let expected = if is_stderr {
                    "\"stdout\", \"null\" or a table like { file = \"...\" }"
                } else {
                    "\"null\" or a table like { file = \"...\" }"
                };
                reader.invalid(
                    src,
                    value.span().start,
                    key,
                    format!("unknown value '{other}'; expected {expected}"),
                );
                None
            }
        },
        DeValue::Table(table) => {
            read_file_sink(reader, src, key, table, ctx, default_path).map(StderrSink::Sink)
        }
        other => {
            reader.type_error(src, key, value, "a string or a table", other);
            None
        }
    }
}
