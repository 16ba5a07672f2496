//! `circus.ini` → native TOML.
//!
//! Each `[watcher:x]` becomes `[watchers.x]`, following circusd's reading:
//! the environment is `[env]` (plus the daemon's with `copy_env`) and the
//! `[env:PATTERN]` sections whose fnmatch patterns match the watcher, with
//! `$VAR` taken from the daemon's environment; `$(circus.env.X)` and
//! `((circus.env.X))` (any case) are resolved when the file is read and
//! `$(circus.wid)` becomes `$(wid)`. Circus starts higher priorities first,
//! ringmaster lower ones, so priorities are negated. Circus has no
//! start_secs; its flapping window (1 s) and max_retry (5) play that part.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ringmaster_ini::{Dialect, Entry};

use super::emit::{self, Emitter};
use super::files::{IniFile, expand_include};
use super::section::{Expand, KeyTable, Values, Writer};
use super::{Converted, Origin, Report, Sec, at, dir_of};
use crate::error::{ConfigError, ConfigErrors};

const CIRCUS_KEYS: &[&str] = &["umask", "loglevel", "include", "include_dir"];

const CIRCUS_IGNORED: &[(&str, &str)] = &[
    (
        "endpoint",
        "ringmaster is controlled through its Unix socket ([daemon] socket)",
    ),
    (
        "endpoint_owner",
        "the control socket's access is set by socket_mode and socket_group",
    ),
    (
        "pubsub_endpoint",
        "use `ringmasterctl events` for state changes",
    ),
    (
        "multicast_endpoint",
        "ringmaster does not announce itself on the network",
    ),
    ("stats_endpoint", "ringmaster has no stats endpoint"),
    ("statsd", "ringmaster has no statsd plugin"),
    ("httpd", "ringmaster has no web console"),
    ("httpd_host", "ringmaster has no web console"),
    ("httpd_port", "ringmaster has no web console"),
    ("debug", "use --log-level debug"),
    ("debug_gc", "ringmaster has no garbage collector"),
    (
        "pidfile",
        "ringmasterd runs in the foreground and writes no pid file",
    ),
    (
        "loggerconfig",
        "ringmasterd logs to stderr; --log-format json for structure",
    ),
    (
        "logoutput",
        "ringmasterd logs to stderr (journald, docker logs)",
    ),
    ("fqdn_prefix", "ringmaster does not publish stats"),
    ("papa_endpoint", "ringmaster does not use papa"),
    (
        "check_delay",
        "ringmaster notices a process's death at once (SIGCHLD), no polling",
    ),
    (
        "warmup_delay",
        "ringmaster starts watchers one after the other without a fixed delay",
    ),
];

const WATCHER_KEYS: &[&str] = &[
    "virtualenv",
    "virtualenv_py_ver",
    "cmd",
    "args",
    "shell",
    "working_dir",
    "uid",
    "gid",
    "numprocesses",
    "singleton",
    "stop_signal",
    "stop_children",
    "graceful_timeout",
    "priority",
    "max_retry",
    "respawn",
    "autostart",
    "copy_env",
    "use_sockets",
    "stdin_socket",
    "close_child_stdout",
    "close_child_stderr",
];

const WATCHER_IGNORED: &[(&str, &str)] = &[
    (
        "warmup_delay",
        "ringmaster spawns a watcher's processes one after the other without a fixed delay",
    ),
    (
        "send_hup",
        "reloading the configuration is not supported yet by this version",
    ),
    (
        "copy_path",
        "sys.path is a Python notion; set PYTHONPATH in [env]",
    ),
    (
        "check_flapping",
        "ringmaster retries quick failures with backoff (start_secs, start_retries)",
    ),
    (
        "flapping_attempts",
        "ringmaster retries quick failures with backoff",
    ),
    (
        "flapping_window",
        "ringmaster retries quick failures with backoff",
    ),
    ("retry_in", "ringmaster retries quick failures with backoff"),
    ("close_child_stdin", "a child's stdin is always /dev/null"),
    ("use_papa", "ringmaster does not use papa"),
];

/// Keys of Circus that need what ringmaster does not have yet.
const WATCHER_UNSUPPORTED: &[(&str, &str)] = &[
    (
        "executable",
        "an argv[0] different from the program is not supported yet",
    ),
    (
        "on_demand",
        "starting a watcher on its socket's first connection is not supported yet",
    ),
    (
        "max_age",
        "restarting processes by age is not supported yet",
    ),
    (
        "max_age_variance",
        "restarting processes by age is not supported yet",
    ),
    ("shell_args", "put the arguments in cmd"),
    ("respawn_delay", "not supported yet"),
];

/// `[circus]`'s keys.
const CIRCUS: KeyTable = KeyTable {
    original: "circusd",
    known: CIRCUS_KEYS,
    ignored: CIRCUS_IGNORED,
    unsupported: &[],
};

/// `[watcher:x]`'s keys.
const WATCHER: KeyTable = KeyTable {
    original: "circusd",
    known: WATCHER_KEYS,
    ignored: WATCHER_IGNORED,
    unsupported: WATCHER_UNSUPPORTED,
};

/// `[socket:x]`'s keys.
const SOCKET: KeyTable = KeyTable {
    original: "circusd",
    known: &[
        "host",
        "port",
        "path",
        "family",
        "type",
        "backlog",
        "umask",
        "so_reuseport",
        "proto",
    ],
    ignored: &[
        (
            "blocking",
            "the workers set their own socket's blocking mode (the daemon never accepts on it)",
        ),
        (
            "replace",
            "a stale socket file (nobody answers on it) is always replaced, and a live socket or any other file never is",
        ),
    ],
    unsupported: &[(
        "interface",
        "binding to one network device (SO_BINDTODEVICE) is not supported: give the interface's address as host",
    )],
};

/// Section kinds circusd knows, for warnings on unknown ones.
const SECTION_KINDS: &[&str] = &[
    "circus",
    "env",
    "env:PATTERN",
    "watcher:NAME",
    "socket:NAME",
    "plugin:NAME",
];

/// Reads `path` and its includes and translates them.
pub(crate) fn convert(path: &Path) -> Result<Converted, ConfigErrors> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let files = read_all(path, &env)?;
    let mut report = Report::default();
    let mut out = Emitter::default();
    translate(&files, &env, &mut report, &mut out);
    report.sort_warnings(&files);
    out.dropped(&report.warnings);
    if !report.errors.is_empty() {
        return Err(ConfigErrors(report.errors));
    }
    let (toml, origins) = out.finish();
    Ok(Converted {
        toml,
        origins,
        warnings: report.warnings,
    })
}

/// The main file, then the files its `[circus] include` and `include_dir`
/// name (relative to its directory), as circusd reads them.
fn read_all(main: &Path, env: &[(String, String)]) -> Result<Vec<IniFile>, ConfigErrors> {
    let first = IniFile::read(main, Dialect::Circus).map_err(ConfigErrors)?;
    let here = dir_of(main);
    let mut errors = Vec::new();
    let mut extra: Vec<PathBuf> = Vec::new();
    if let Some(circus) = first.doc.section("circus") {
        for (key, suffix) in [("include", ""), ("include_dir", "/*.ini")] {
            let Some(entry) = circus.get(key) else {
                continue;
            };
            let value = match expand_circus(&entry.value, env, None) {
                Ok(value) => value,
                Err(message) => {
                    errors.push(invalid(main, entry.line, &format!("circus.{key}"), message));
                    continue;
                }
            };
            for pattern in value.split_whitespace() {
                let pattern = format!("{pattern}{suffix}");
                match expand_include(&pattern, &here) {
                    Ok(found) => extra.extend(found),
                    Err(message) => {
                        errors.push(invalid(main, entry.line, &format!("circus.{key}"), message));
                    }
                }
            }
        }
    }
    let mut files = vec![first];
    for path in extra {
        let canonical = std::fs::canonicalize(&path).unwrap_or(path.clone());
        if files
            .iter()
            .any(|f| std::fs::canonicalize(&f.path).unwrap_or(f.path.clone()) == canonical)
        {
            continue;
        }
        match IniFile::read(&path, Dialect::Circus) {
            Ok(file) => {
                if let Some(circus) = file.doc.section("circus") {
                    errors.push(invalid(
                        &path,
                        circus.line,
                        "[circus]",
                        "an included file may not have a [circus] section (circusd reads includes from the main file only)",
                    ));
                }
                files.push(file);
            }
            Err(mut errs) => errors.append(&mut errs),
        }
    }
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(ConfigErrors(errors))
    }
}

fn invalid(file: &Path, line: usize, key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        location: at(file, line),
        key: key.to_owned(),
        message: message.into(),
    }
}

/// Whether `$(circus.env.X)` may stay a `$(env.X)` reference, given X's
/// name and today's value.
type KeepRef<'k> = dyn Fn(&str, &str) -> bool + 'k;

/// Replaces `$(circus.NAME)` and `((circus.NAME))` (any case): `env.X`
/// from `env` (last definition wins, names compared in lower case). With
/// `template` (a TOML template is being written), `wid` becomes `$(wid)`,
/// a literal `$(` is escaped, and `env.X` stays a `$(env.X)` reference
/// where the given function allows.
fn expand_circus(
    text: &str,
    env: &[(String, String)],
    template: Option<&KeepRef<'_>>,
) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    loop {
        let dollar = find_ci(rest, "$(circus.");
        let paren = find_ci(rest, "((circus.");
        let (start, open, close) = match (dollar, paren) {
            (Some(d), Some(p)) if p < d => (p, "((circus.".len(), "))"),
            (Some(d), _) => (d, "$(circus.".len(), ")"),
            (None, Some(p)) => (p, "((circus.".len(), "))"),
            (None, None) => break,
        };
        let after = &rest[start + open..];
        let name_len = after
            .find(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '-')))
            .unwrap_or(after.len());
        if !after[name_len..].starts_with(close) || name_len == 0 {
            // Not a well-formed reference: Circus leaves it as it is.
            push_literal(&mut out, &rest[..start + open], template.is_some());
            rest = after;
            continue;
        }
        push_literal(&mut out, &rest[..start], template.is_some());
        let name = after[..name_len].to_lowercase();
        let value = if let Some(var) = name.strip_prefix("env.") {
            let found = env.iter().rev().find(|(k, _)| k.to_lowercase() == var);
            match found {
                Some((key, value)) if template.is_some_and(|keep| keep(key, value)) => {
                    Some(format!("$(env.{key})"))
                }
                Some((_, value)) => {
                    push_literal(&mut out, value, template.is_some());
                    None
                }
                None => return Err(format!("$(circus.env.{var}): no such environment variable")),
            }
        } else if name == "wid" {
            match template {
                Some(_) => Some("$(wid)".to_owned()),
                None => {
                    return Err(
                        "$(circus.wid) is only known in a watcher's cmd, args and paths".into(),
                    );
                }
            }
        } else if let Some(socket) = name.strip_prefix("sockets.") {
            // The descriptor the process gets it on: ringmaster's own
            // placeholder says it (with use_sockets, every socket is
            // passed, in the file's order).
            match template {
                Some(_) => Some(format!("$(sockets.{socket})")),
                None => {
                    return Err(format!(
                        "$(circus.{name}) is only known in a watcher's cmd and args"
                    ));
                }
            }
        } else {
            return Err(format!(
                "$(circus.{name}) cannot be expanded (known: circus.env.NAME, circus.wid)"
            ));
        };
        if let Some(value) = value {
            out.push_str(&value);
        }
        rest = &after[name_len + close.len()..];
    }
    push_literal(&mut out, rest, template.is_some());
    Ok(out)
}

fn push_literal(out: &mut String, text: &str, template: bool) {
    if template {
        out.push_str(&text.replace("$(", "$$("));
    } else {
        out.push_str(text);
    }
}

/// Whether `name` can be written as `$(env.NAME)`.
fn valid_env_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `text`, written into a command, would change how it is split
/// (shlex: whitespace, quotes, backslashes).
fn splits_command(text: &str) -> bool {
    text.contains(['"', '\'', '\\']) || text.contains(char::is_whitespace)
}

/// Case-insensitive find of an ASCII needle.
fn find_ci(haystack: &str, needle: &str) -> Option<usize> {
    haystack.char_indices().map(|(i, _)| i).find(|&i| {
        haystack
            .get(i..i + needle.len())
            .is_some_and(|s| s.eq_ignore_ascii_case(needle))
    })
}

/// `$VAR` (upper case, as Circus's parse_env_dict matches it) from the
/// daemon's environment, written as `$(env.VAR)` for the TOML reader to
/// resolve at load time.
/// `virtualenv = DIR` as Circus's `util.load_virtualenv` does it: the
/// venv's `bin` first on PATH (when it exists), and PYTHONPATH made of the
/// packages its `.pth` files name, then what PYTHONPATH was, then its
/// site-packages. Returns the variables to set (Circus's `$VAR` syntax, so
/// a PATH inherited from the daemon stays a reference). Circus picks the
/// site-packages of the Python it runs on; here, without one, that is
/// `virtualenv_py_ver` or else the venv's only `lib/pythonX.Y`. The `.pth`
/// packages are sorted (Circus joins a set, in no stable order).
fn virtualenv(
    dir: &str,
    py_ver: Option<&str>,
    copy_env: bool,
    env: &[(String, String)],
    daemon_env: &[(String, String)],
) -> Result<Vec<(String, String)>, String> {
    if !copy_env {
        return Err("copy_env must be True to use virtualenv (as circusd requires)".into());
    }
    let root = Path::new(dir);
    let sitedir = site_packages(root, py_ver)?;
    // Circus's watcher.env then: circusd's environment (copy_env is
    // required), updated with the watcher's.
    let last = |vars: &[(String, String)], key: &str| {
        vars.iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let mut set = Vec::new();
    let bindir = root.join("bin");
    if bindir.is_dir() {
        // The daemon's PATH stays a reference, not today's value.
        let path = last(env, "PATH").unwrap_or_else(|| "$PATH".into());
        set.push(("PATH".to_owned(), format!("{}:{path}", bindir.display())));
    }
    let packages = pth_packages(&sitedir);
    let site = sitedir.display().to_string();
    // Circus's own branches, quirks included: with the site-packages
    // already on the path, the .pth packages are dropped.
    let py_path = last(env, "PYTHONPATH")
        .or_else(|| last(daemon_env, "PYTHONPATH"))
        .filter(|p| !p.is_empty());
    let path = match (packages.is_empty(), &py_path) {
        (true, _) => None,
        (false, Some(py_path)) => Some(format!("{}:{py_path}", packages.join(":"))),
        (false, None) => Some(packages.join(":")),
    };
    let parts = match path {
        Some(path) if !path.split(':').any(|p| p == site) => vec![path, site],
        _ => py_path.into_iter().chain([site]).collect(),
    };
    set.push(("PYTHONPATH".to_owned(), parts.join(":")));
    Ok(set)
}

/// The venv's one `lib/{python,pypy}X.Y/site-packages`: of `py_ver`, or
/// of the only version there is.
fn site_packages(root: &Path, py_ver: Option<&str>) -> Result<PathBuf, String> {
    let lib = root.join("lib");
    let versions: Vec<String> = if let Some(ver) = py_ver {
        vec![ver.to_owned()]
    } else {
        let mut found: Vec<String> = std::fs::read_dir(&lib)
            .map(|dirs| {
                dirs.filter_map(Result::ok)
                    .filter_map(|d| d.file_name().into_string().ok())
                    .filter_map(|n| {
                        n.strip_prefix("python")
                            .or(n.strip_prefix("pypy"))
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        found.sort();
        found.dedup();
        found
    };
    let tried: Vec<PathBuf> = versions
        .iter()
        .flat_map(|ver| {
            ["python", "pypy"].map(|kind| lib.join(format!("{kind}{ver}")).join("site-packages"))
        })
        .collect();
    match tried.iter().filter(|d| d.is_dir()).collect::<Vec<_>>()[..] {
        [only] => Ok(only.clone()),
        [] if tried.is_empty() => Err(format!(
            "{} has no lib/pythonX.Y: not a virtualenv",
            root.display()
        )),
        [] => {
            let tried: Vec<String> = tried.iter().map(|d| d.display().to_string()).collect();
            Err(format!("{} does not exist", tried.join(",")))
        }
        _ => Err(format!(
            "{} holds more than one Python: set virtualenv_py_ver",
            root.display()
        )),
    }
}

/// The packages the `.pth` files of `sitedir` name that exist, sorted.
fn pth_packages(sitedir: &Path) -> Vec<String> {
    let mut packages: Vec<String> = std::fs::read_dir(sitedir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".pth"))
                .filter_map(|e| std::fs::read_to_string(e.path()).ok())
                .flat_map(|text| {
                    text.lines()
                        .filter(|l| !l.starts_with('#') && !l.starts_with("import"))
                        .map(|l| sitedir.join(l.trim_end()))
                        .filter(|p| p.exists())
                        .map(|p| normalize(&p).display().to_string())
                        .collect::<Vec<_>>()
                })
                .collect()
        })
        .unwrap_or_default();
    packages.sort();
    packages.dedup();
    packages
}

/// `path` with `.` and `..` resolved lexically, as Python's
/// `os.path.abspath` does.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for part in path.components() {
        match part {
            std::path::Component::ParentDir => {
                out.pop();
            }
            std::path::Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

fn dollar_vars(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c == '$' {
            let rest = &value[i + 1..];
            let len = rest
                .char_indices()
                .take_while(|&(j, ch)| {
                    ch.is_ascii_uppercase() || (j > 0 && (ch.is_ascii_digit() || ch == '_'))
                })
                .count();
            if len > 0 {
                let _ = write!(out, "$(env.{})", &rest[..len]);
                for _ in 0..len {
                    chars.next();
                }
                continue;
            }
            if rest.starts_with('(') {
                out.push_str("$$");
                continue;
            }
        }
        out.push(c);
    }
    out
}

fn translate(files: &[IniFile], env: &[(String, String)], report: &mut Report, out: &mut Emitter) {
    let merged = super::merged_sections(files, false, super::Later::Loses, report);
    let sections: Vec<Sec<'_>> = merged.iter().map(|m| m.sec(None)).collect();
    let named = |name: &str| sections.iter().find(|s| s.section.name == name).copied();

    super::emit_preamble(out, files);
    let local_env = named("env").map_or_else(Vec::new, |sec| read_env(sec, env, report));
    let global_env: Vec<(String, String)> = env.iter().chain(&local_env).cloned().collect();
    let umask = named("circus").and_then(|sec| emit_circus(sec, &global_env, report, out));
    let sockets: Vec<String> = sections
        .iter()
        .filter_map(|s| s.section.name.strip_prefix("socket:"))
        .map(str::to_owned)
        .collect();
    let ctx = Context {
        local_env: &local_env,
        global_env: &global_env,
        umask: umask.as_ref(),
        sockets: &sockets,
    };
    let watchers: Vec<&str> = sections
        .iter()
        .filter_map(|s| s.section.name.strip_prefix("watcher:"))
        .collect();
    for sec in &sections {
        let name = sec.section.name.as_str();
        let kind = name.split_once(':').map_or(name, |(kind, _)| kind);
        let header = || format!("[{name}]");
        match kind {
            "circus" | "env" if !name.contains(':') => {}
            "env" => {
                for pattern in name["env:".len()..].split(',').map(str::trim) {
                    if !watchers.iter().any(|w| fnmatch(pattern, w)) {
                        let message = format!("'{pattern}' matches no watcher");
                        report.warn(sec.file, sec.section.line, header(), message);
                    }
                }
            }
            "watcher" => {
                let watcher = &name["watcher:".len()..];
                let section_env = matching_env(&sections, watcher);
                emit_watcher(&ctx, *sec, watcher, &section_env, report, out);
            }
            "socket" if name.contains(':') => {
                emit_socket(*sec, &name["socket:".len()..], &global_env, report, out);
            }
            "plugin" if name.contains(':') => report.warn(
                sec.file,
                sec.section.line,
                header(),
                "ignored: Circus plugins are Python classes that ringmaster cannot load",
            ),
            _ => report.unknown_section(*sec, kind, SECTION_KINDS, "circusd"),
        }
    }
}

/// `[env]`: expanded against the daemon's environment, as circusd does.
fn read_env(sec: Sec<'_>, env: &[(String, String)], report: &mut Report) -> Vec<(String, String)> {
    let mut local_env = Vec::new();
    for entry in &sec.section.entries {
        match expand_circus(&entry.value, env, None) {
            Ok(value) => local_env.push((entry.key.clone(), value)),
            Err(message) => report.error(
                sec.file_of(&entry.key),
                entry.line,
                sec.name(&entry.key),
                message,
            ),
        }
    }
    local_env
}

/// `[circus]` as `[daemon]` (left out when empty); returns its umask,
/// which every watcher gets.
fn emit_circus(
    sec: Sec<'_>,
    global_env: &[(String, String)],
    report: &mut Report,
    out: &mut Emitter,
) -> Option<(String, Origin)> {
    CIRCUS.check(sec, report, &[], |_| false);
    let expand = |value: &str, _: &Path| expand_circus(value, global_env, None);
    let values = Values::new(sec, &expand);
    out.header(&["daemon"], None);
    if let Some(text) = values.text(report, "loglevel") {
        let level = match text.trim().to_ascii_lowercase().as_str() {
            level @ ("error" | "info" | "debug") => Some(level.to_owned()),
            "critical" => Some("error".to_owned()),
            "warning" | "warn" => Some("warn".to_owned()),
            other => {
                let message =
                    format!("bad loglevel '{other}' (critical, error, warning, info or debug)");
                values.error(report, "loglevel", message);
                None
            }
        };
        if let Some(level) = level {
            out.entry(
                "log_level",
                &emit::string(&level),
                Some(sec.origin("loglevel")),
            );
        }
    }
    out.blank();
    values
        .octal(report, "umask", "umask")
        .map(|mask| (mask, sec.origin("umask")))
}

/// What the `[env:PATTERN]` sections whose patterns match `watcher` set,
/// later sections overriding earlier ones.
fn matching_env(sections: &[Sec<'_>], watcher: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    for sec in sections {
        let Some(patterns) = sec.section.name.strip_prefix("env:") else {
            continue;
        };
        if patterns
            .split(',')
            .map(str::trim)
            .any(|p| fnmatch(p, watcher))
        {
            for entry in &sec.section.entries {
                env.retain(|(k, _)| *k != entry.key);
                env.push((entry.key.clone(), entry.value.clone()));
            }
        }
    }
    env
}

/// What a watcher's keys hold besides plain options: its stream options,
/// by stream, and its `rlimit_*`.
struct SortedKeys<'a> {
    streams: BTreeMap<&'static str, BTreeMap<String, &'a Entry>>,
    rlimits: Vec<(String, String, Origin)>,
}

/// The key families of a watcher that are not in [`WATCHER`]'s table.
fn is_key_family(key: &str) -> bool {
    key.starts_with("stdout_stream.")
        || key.starts_with("stderr_stream.")
        || key.starts_with("rlimit_")
        || key.starts_with("hooks.")
}

/// Sorts a watcher's keys: stream options and rlimits gathered, hooks,
/// ignored and unsupported keys said, unknown ones warned about.
fn scan_watcher_keys<'a>(sec: Sec<'a>, report: &mut Report) -> SortedKeys<'a> {
    WATCHER.check(
        sec,
        report,
        &[
            "stdout_stream.class",
            "stderr_stream.class",
            "rlimit_nofile",
            "hooks.before_start",
        ],
        is_key_family,
    );
    let mut streams: BTreeMap<&'static str, BTreeMap<String, &'a Entry>> = BTreeMap::new();
    let mut rlimits: Vec<(String, String, Origin)> = Vec::new();
    for entry in &sec.section.entries {
        let key = entry.key.as_str();
        if let Some(option) = key.strip_prefix("stdout_stream.") {
            let stdout = streams.entry("stdout").or_default();
            stdout.insert(option.to_owned(), entry);
        } else if let Some(option) = key.strip_prefix("stderr_stream.") {
            let stderr = streams.entry("stderr").or_default();
            stderr.insert(option.to_owned(), entry);
        } else if let Some(limit) = key.strip_prefix("rlimit_") {
            let value = entry.value.trim().to_owned();
            rlimits.push((limit.to_owned(), value, sec.origin(key)));
        } else if key.starts_with("hooks.") {
            report.warn(
                sec.file_of(key),
                entry.line,
                sec.name(key),
                "ignored: a Circus hook names a Python function, which ringmaster cannot call; \
                 write the hook as a command in native TOML (hooks = { before_start = \"...\" })",
            );
        }
    }
    SortedKeys { streams, rlimits }
}

/// What every watcher of one file is read against.
struct Context<'a> {
    /// `[env]`, expanded.
    local_env: &'a [(String, String)],
    /// circusd's environment updated with `[env]`.
    global_env: &'a [(String, String)],
    /// `[circus] umask`.
    umask: Option<&'a (String, Origin)>,
    /// Every `[socket:NAME]`, in the file's order: what `use_sockets`
    /// passes.
    sockets: &'a [String],
}

/// A `[watcher:x]` as read, before it is written out.
struct Watcher {
    command: String,
    shell: bool,
    numprocesses: i64,
    working_dir: (String, Origin),
    uid: Option<String>,
    gid: Option<String>,
    policy: Policy,
    copy_env: bool,
    env: Vec<(String, String)>,
    /// By stream: the sink as TOML.
    sinks: BTreeMap<&'static str, String>,
    /// Whether a stream goes to circusd's own output.
    echo: bool,
    /// With `use_sockets`: every socket, passed from fd 3.
    sockets: Vec<String>,
    /// `stdin_socket`.
    stdin_socket: Option<String>,
}

/// How a watcher is started, stopped and restarted.
struct Policy {
    autostart: bool,
    respawn: bool,
    max_retry: i64,
    stop_signal: String,
    graceful_timeout: f64,
    stop_children: Option<bool>,
    priority: i64,
}

/// `[watcher:x]` as `[watchers.x]`; `section_env` is what the
/// `[env:PATTERN]` sections matching it set.
fn emit_watcher(
    ctx: &Context<'_>,
    sec: Sec<'_>,
    name: &str,
    section_env: &[(String, String)],
    report: &mut Report,
    out: &mut Emitter,
) {
    let errors_before = report.errors.len();
    let keys = scan_watcher_keys(sec, report);
    let watcher = read_watcher(ctx, sec, keys.streams, section_env, report);
    if report.errors.len() == errors_before {
        write_watcher(sec, name, &watcher, ctx.umask, &keys.rlimits, out);
    }
}

/// Reads a watcher's options, expanding `$(circus.env.X)` against the
/// daemon's environment, `[env]` and the watcher's own, as circusd does.
fn read_watcher(
    ctx: &Context<'_>,
    sec: Sec<'_>,
    mut streams: BTreeMap<&'static str, BTreeMap<String, &Entry>>,
    section_env: &[(String, String)],
    report: &mut Report,
) -> Watcher {
    let expand_global = |value: &str, _: &Path| expand_circus(value, ctx.global_env, None);
    let copy_env = Values::new(sec, &expand_global).boolean(report, "copy_env", false);
    let mut env = child_environment(ctx, section_env);
    let lookup: Vec<(String, String)> = ctx.global_env.iter().chain(&env).cloned().collect();
    let expand_plain = |value: &str, _: &Path| expand_circus(value, &lookup, None);
    let plain = Values::new(sec, &expand_plain);
    // $(circus.env.X) of the daemon's environment stays a reference (the
    // converted file then follows the daemon's environment, as the
    // original does); what the file sets, or the venv, is written in.
    let mut set_here: Vec<String> = env.iter().map(|(k, _)| k.to_lowercase()).collect();
    if sec.get("virtualenv").is_some() {
        set_here.extend(["path".to_owned(), "pythonpath".to_owned()]);
    }
    let daemons = |key: &str| valid_env_name(key) && !set_here.contains(&key.to_lowercase());
    // Circus splits cmd and args after expanding them: a value that would
    // split differently is written in.
    let keep_unsplit = |key: &str, value: &str| daemons(key) && !splits_command(value);
    let keep_in_path = |key: &str, _: &str| daemons(key);
    let expand_command = |value: &str, _: &Path| expand_circus(value, &lookup, Some(&keep_unsplit));
    let command_values = Values::new(sec, &expand_command);
    let expand_path = |value: &str, _: &Path| expand_circus(value, &lookup, Some(&keep_in_path));
    let path_values = Values::new(sec, &expand_path);
    let never = |_: &str, _: &str| false;
    let expand_name = |value: &str, _: &Path| expand_circus(value, &lookup, Some(&never));
    let name_values = Values::new(sec, &expand_name);

    if !plain.has("cmd") {
        plain.section_error(report, "a watcher needs cmd");
    }
    let command = match (
        command_values.text(report, "cmd"),
        command_values.text(report, "args"),
    ) {
        (Some(cmd), Some(args)) if !args.trim().is_empty() => format!("{cmd} {args}"),
        (cmd, _) => cmd.unwrap_or_default(),
    };
    let numprocesses = plain.int(report, "numprocesses", 1);
    if plain.boolean(report, "singleton", false) && numprocesses > 1 {
        let message = format!("cannot have {numprocesses} processes with a singleton watcher");
        plain.error(report, "numprocesses", message);
    }
    let sockets = if plain.boolean(report, "use_sockets", false) {
        ctx.sockets.to_vec()
    } else {
        if command.contains("$(sockets.") {
            plain.error(
                report,
                "cmd",
                "$(circus.sockets.NAME) needs use_sockets = True (without it the process gets no socket)",
            );
        }
        Vec::new()
    };
    let stdin_socket = plain
        .text(report, "stdin_socket")
        .map(|s| s.trim().to_owned());
    // The main file's directory, as a reference (see supervisor.rs).
    let working_dir = path_values.text(report, "working_dir").map_or_else(
        || ("$(here)".to_owned(), sec.header_origin()),
        |dir| (dir, sec.origin("working_dir")),
    );
    let mut echo = false;
    let mut sinks = BTreeMap::new();
    for stream in ["stdout", "stderr"] {
        let options = streams.remove(stream).unwrap_or_default();
        let sink = read_stream(plain, stream, &options, &expand_path, &mut echo, report);
        if let Some(sink) = sink {
            sinks.insert(stream, sink);
        }
    }
    apply_virtualenv(plain, copy_env, &mut env, ctx.global_env, report);
    Watcher {
        command,
        shell: plain.boolean(report, "shell", false),
        numprocesses,
        working_dir,
        uid: name_values.text(report, "uid"),
        gid: name_values.text(report, "gid"),
        policy: read_policy(plain, report),
        copy_env,
        env: env
            .iter()
            .map(|(k, v)| (k.clone(), dollar_vars(v)))
            .collect(),
        sinks,
        echo,
        sockets,
        stdin_socket,
    }
}

/// `virtualenv`: sets what [`virtualenv`] says in `env`.
fn apply_virtualenv(
    plain: Values<'_>,
    copy_env: bool,
    env: &mut Vec<(String, String)>,
    global_env: &[(String, String)],
    report: &mut Report,
) {
    let Some(entry) = plain.sec.get("virtualenv") else {
        return;
    };
    let py_ver = plain.sec.get("virtualenv_py_ver").map(|e| e.value.trim());
    match virtualenv(entry.value.trim(), py_ver, copy_env, env, global_env) {
        Ok(set) => {
            for (key, value) in set {
                env.retain(|(k, _)| *k != key);
                env.push((key, value));
            }
        }
        Err(message) => plain.error(report, "virtualenv", message),
    }
}

/// What the child's environment adds to the daemon's (with copy_env) or
/// is (without): `[env]`, then `[env:PATTERN]`; circus expands values
/// later with `$VAR`.
fn child_environment(ctx: &Context<'_>, section_env: &[(String, String)]) -> Vec<(String, String)> {
    let mut env = ctx.local_env.to_vec();
    for (k, v) in section_env {
        env.retain(|(existing, _)| existing != k);
        env.push((k.clone(), v.clone()));
    }
    env
}

/// Start, stop and restart options, with circusd's defaults.
fn read_policy(plain: Values<'_>, report: &mut Report) -> Policy {
    Policy {
        autostart: plain.boolean(report, "autostart", true),
        respawn: plain.boolean(report, "respawn", true),
        max_retry: plain.int(report, "max_retry", 5),
        stop_signal: plain.signal(report, "stop_signal", "TERM"),
        graceful_timeout: plain.number(report, "graceful_timeout", 30.0),
        stop_children: plain
            .has("stop_children")
            .then(|| plain.boolean(report, "stop_children", false)),
        priority: plain.int(report, "priority", 0),
    }
}

/// One stream's sink: `close_child_*` closes it, no stream options send
/// it to circusd's own output, else its `*_stream.*` options say.
fn read_stream(
    plain: Values<'_>,
    stream: &str,
    options: &BTreeMap<String, &Entry>,
    expand_path: &Expand<'_>,
    echo: &mut bool,
    report: &mut Report,
) -> Option<String> {
    if plain.boolean(report, &format!("close_child_{stream}"), false) {
        Some(emit::string("null"))
    } else if options.is_empty() {
        // No stream: circusd's children write to circusd's own output.
        *echo = true;
        Some(emit::string("null"))
    } else {
        stream_sink(report, plain.sec, stream, options, expand_path, echo)
    }
}

/// Writes a watcher read without errors as `[watchers.NAME]`.
fn write_watcher(
    sec: Sec<'_>,
    name: &str,
    watcher: &Watcher,
    umask: Option<&(String, Origin)>,
    rlimits: &[(String, String, Origin)],
    out: &mut Emitter,
) {
    let mut w = Writer::new(sec, out, "circusd's default");
    w.begin(&["watchers", name]);
    w.entry("cmd", &emit::string(&watcher.command), "cmd");
    if watcher.shell {
        w.entry("shell", "true", "shell");
    }
    if watcher.numprocesses != 1 {
        let count = watcher.numprocesses.to_string();
        w.entry("numprocesses", &count, "numprocesses");
    }
    let (dir, origin) = &watcher.working_dir;
    w.entry_at("working_dir", &emit::string(dir), origin.clone());
    if let Some(uid) = &watcher.uid {
        w.entry("user", &emit::string(uid), "uid");
    }
    if let Some(gid) = &watcher.gid {
        w.entry("group", &emit::string(gid), "gid");
    }
    if let Some((mask, origin)) = umask {
        w.entry_at("umask", &emit::string(mask), origin.clone());
    }
    write_policy(&mut w, &watcher.policy);
    w.entry("copy_env", &watcher.copy_env.to_string(), "copy_env");
    if !watcher.env.is_empty() {
        w.header_entry("env", &emit::table_of_strings(&watcher.env));
    }
    if let Some((_, _, origin)) = rlimits.first() {
        let items: Vec<String> = rlimits
            .iter()
            .map(|(limit, value, _)| {
                let value = if value.is_empty() {
                    emit::string("unlimited")
                } else {
                    value.clone()
                };
                format!("{} = {value}", emit::key(limit))
            })
            .collect();
        let table = format!("{{ {} }}", items.join(", "));
        w.entry_at("rlimits", &table, origin.clone());
    }
    for (stream, sink) in &watcher.sinks {
        w.entry(stream, sink, &format!("{stream}_stream.class"));
    }
    if watcher.echo {
        w.header_entry("echo", "true");
    }
    if !watcher.sockets.is_empty() {
        let names: Vec<String> = watcher.sockets.iter().map(|s| emit::string(s)).collect();
        w.entry("sockets", &format!("[{}]", names.join(", ")), "use_sockets");
    }
    if let Some(socket) = &watcher.stdin_socket {
        w.entry("stdin_socket", &emit::string(socket), "stdin_socket");
    }
    w.end();
}

/// `[socket:NAME]` as `[sockets.NAME]`, with Circus's defaults: host
/// localhost, port 8080, a unix socket's mode from its umask (a decimal
/// number, 8 by default, as circusd reads it).
fn emit_socket(
    sec: Sec<'_>,
    name: &str,
    env: &[(String, String)],
    report: &mut Report,
    out: &mut Emitter,
) {
    SOCKET.check(sec, report, &[], |_| false);
    let expand = |value: &str, _: &Path| expand_circus(value, env, None);
    let values = Values::new(sec, &expand);
    let errors_before = report.errors.len();
    let family = values
        .text(report, "family")
        .map_or_else(|| "AF_INET".to_owned(), |f| f.trim().to_ascii_uppercase());
    let kind = values.text(report, "type").map_or_else(
        || "SOCK_STREAM".to_owned(),
        |t| t.trim().to_ascii_uppercase(),
    );
    let datagram = match kind.as_str() {
        "SOCK_STREAM" => false,
        "SOCK_DGRAM" => true,
        other => {
            values.error(
                report,
                "type",
                format!("'{other}' is not SOCK_STREAM or SOCK_DGRAM"),
            );
            false
        }
    };
    if let Some(proto) = values.text(report, "proto") {
        let proto = proto.trim().to_ascii_lowercase();
        let expected = if datagram { "udp" } else { "tcp" };
        if !proto.is_empty() && proto != expected && !(family == "AF_UNIX" && proto == "0") {
            values.error(
                report,
                "proto",
                format!("protocol '{proto}' is not supported here ({kind} means {expected})"),
            );
        }
    }
    let path = values.text(report, "path");
    let address = match (family.as_str(), path) {
        (_, Some(path)) => {
            if datagram {
                values.error(report, "type", "a unix datagram socket is not supported");
            }
            format!("unix://{}", path.trim())
        }
        ("AF_UNIX", None) => {
            values.error(report, "path", "an AF_UNIX socket needs a path");
            String::new()
        }
        ("AF_INET" | "AF_INET6", None) => {
            let host = values
                .text(report, "host")
                .map_or_else(|| "localhost".to_owned(), |h| h.trim().to_owned());
            let port = values.int(report, "port", 8080);
            let host = match (family.as_str(), host.as_str()) {
                ("AF_INET6", "localhost") => "[::1]".to_owned(),
                ("AF_INET6", h) if !h.starts_with('[') => format!("[{h}]"),
                _ => host,
            };
            let scheme = if datagram { "udp" } else { "tcp" };
            format!("{scheme}://{host}:{port}")
        }
        (other, None) => {
            values.error(
                report,
                "family",
                format!("'{other}' is not AF_INET, AF_INET6 or AF_UNIX"),
            );
            String::new()
        }
    };
    let unix = address.starts_with("unix://");
    let umask = values.int(report, "umask", 8);
    if report.errors.len() > errors_before {
        return;
    }
    let mut w = Writer::new(sec, out, "circusd's default");
    w.begin(&["sockets", name]);
    w.entry(
        "address",
        &emit::string(&address),
        if unix { "path" } else { "port" },
    );
    if values.has("backlog") {
        let backlog = values.int(report, "backlog", 2048);
        w.entry("backlog", &backlog.to_string(), "backlog");
    }
    if values.boolean(report, "so_reuseport", false) {
        w.entry("reuseport", "true", "so_reuseport");
    }
    if unix {
        let mode = 0o777 & !(umask as u32 & 0o777);
        w.entry("mode", &emit::string(&format!("{mode:04o}")), "umask");
    }
    w.end();
}

/// The policy's options, circusd's defaults marked. Circus's flapping
/// window (1 s) and max_retry stand for start_secs and start_retries;
/// Circus starts higher priorities first, so they are negated.
fn write_policy(w: &mut Writer<'_, '_>, policy: &Policy) {
    w.entry("autostart", &policy.autostart.to_string(), "autostart");
    let restart = if policy.respawn { "always" } else { "never" };
    w.setting("restart", &emit::string(restart), "respawn");
    w.implied(
        "start_secs",
        &emit::string("1s"),
        "circusd's flapping window",
    );
    let retries = if policy.max_retry < 0 {
        emit::string("infinite")
    } else {
        policy.max_retry.to_string()
    };
    w.setting("start_retries", &retries, "max_retry");
    w.entry(
        "stop_signal",
        &emit::string(&policy.stop_signal),
        "stop_signal",
    );
    let timeout = emit::string(&duration_text(policy.graceful_timeout));
    w.setting("stop_timeout", &timeout, "graceful_timeout");
    if let Some(group) = policy.stop_children {
        w.entry("stop_group", &group.to_string(), "stop_children");
    }
    w.entry("priority", &(-policy.priority).to_string(), "priority");
    if !w.has("priority") {
        w.note("circusd's default, negated");
    }
}

/// A `stdout_stream.*` / `stderr_stream.*` group as a ringmaster sink.
fn stream_sink(
    report: &mut Report,
    sec: Sec<'_>,
    stream: &str,
    options: &BTreeMap<String, &Entry>,
    expand_path: &Expand<'_>,
    echo: &mut bool,
) -> Option<String> {
    let stream = Stream {
        sec,
        name: stream,
        options,
    };
    if let Some(sink) = stream_class(&stream, echo, report) {
        return Some(sink);
    }
    let mut items = Vec::new();
    match options.get("filename") {
        // Circus writes to a temporary file of its own choosing.
        None => {
            let message = format!(
                "a file stream without filename: the {} goes to its default log file",
                stream.name
            );
            stream.warn_first(report, "filename", message);
        }
        Some(entry) => match expand_path(&entry.value, sec.file_of(&entry.key)) {
            Ok(file) => items.push(format!("file = {}", emit::string(&file))),
            Err(message) => {
                stream.error(report, entry, "filename", message);
                return None;
            }
        },
    }
    let max_bytes = stream.count(report, "max_bytes").unwrap_or(0);
    let backups = stream.count(report, "backup_count").unwrap_or(0);
    // Python's RotatingFileHandler rolls over only with both set.
    if max_bytes > 0 && backups > 0 {
        items.push(format!(
            "max_size = {}",
            emit::string(&format!("{max_bytes}B"))
        ));
        items.push(format!("backups = {backups}"));
    }
    if let Some(entry) = options.get("time_format") {
        let message = "each line is stamped in RFC 3339 UTC, not this format";
        stream.warn(report, entry, "time_format", message);
        items.push("timestamps = true".into());
    }
    for (option, entry) in options {
        if !matches!(
            option.as_str(),
            "class" | "filename" | "max_bytes" | "backup_count" | "time_format"
        ) {
            // FileStream takes **kwargs and ignores what it does not know.
            stream.warn(report, entry, option, "unknown stream option (class, filename, max_bytes, backup_count, time_format): ignored, as circusd ignores it");
        }
    }
    Some(format!("{{ {} }}", items.join(", ")))
}

/// One stream's `*_stream.*` options.
struct Stream<'a> {
    sec: Sec<'a>,
    /// `stdout` or `stderr`.
    name: &'a str,
    options: &'a BTreeMap<String, &'a Entry>,
}

impl Stream<'_> {
    /// `watcher:x.stdout_stream.OPTION`, as messages name it.
    fn key(&self, option: &str) -> String {
        format!("{}.{}_stream.{option}", self.sec.section.name, self.name)
    }

    /// A warning about `option`, set at `entry`.
    fn warn(&self, report: &mut Report, entry: &Entry, option: &str, message: &str) {
        let file = self.sec.file_of(&entry.key);
        report.warn(file, entry.line, self.key(option), message);
    }

    /// A warning about `option`, unset, at the stream's first option.
    fn warn_first(&self, report: &mut Report, option: &str, message: String) {
        let first = self.options.values().min_by_key(|e| e.line);
        let (file, line) = first.map_or((self.sec.file, self.sec.section.line), |e| {
            (self.sec.file_of(&e.key), e.line)
        });
        report.warn(file, line, self.key(option), message);
    }

    /// An error about `option`, set at `entry`.
    fn error(&self, report: &mut Report, entry: &Entry, option: &str, message: String) {
        let file = self.sec.file_of(&entry.key);
        report.error(file, entry.line, self.key(option), message);
    }

    /// A non-negative integer option (not expanded: Circus passes stream
    /// options as they are).
    fn count(&self, report: &mut Report, option: &str) -> Option<u64> {
        let entry = self.options.get(option)?;
        let n = entry.value.trim().parse::<u64>().ok();
        if n.is_none() {
            let message = format!("'{}' is not a non-negative integer", entry.value);
            self.error(report, entry, option, message);
        }
        n
    }
}

/// The sink a stream class implies, when it is not a file stream: echo
/// for circusd's own output, the default file for a Python class (which
/// cannot run here; the process must still run, and nothing it writes be
/// lost). `None` for a file stream, read from its options.
fn stream_class(stream: &Stream<'_>, echo: &mut bool, report: &mut Report) -> Option<String> {
    let class = stream.options.get("class").map(|e| e.value.trim());
    match class {
        Some("StdoutStream" | "FancyStdoutStream") => {
            for (option, entry) in stream.options.iter().filter(|(k, _)| *k != "class") {
                let message = "ignored: echoed lines are prefixed with the process name";
                stream.warn(report, entry, option, message);
            }
            *echo = true;
            Some(emit::string("null"))
        }
        None | Some("FileStream" | "WatchedFileStream") => None,
        Some("TimedRotatingFileStream") => {
            // The file is still written, whole; only the rotation differs.
            stream.warn_first(report, "class", "rotation by time is not supported: written as a FileStream (rotate by size with max_bytes, or with logrotate)".into());
            None
        }
        Some(other) => {
            let message = format!(
                "stream class '{other}' is a Python class and cannot run here: the {} goes to its default log file instead, and the stream's other options are ignored",
                stream.name
            );
            stream.warn_first(report, "class", message);
            Some("{}".into())
        }
    }
}

fn duration_text(seconds: f64) -> String {
    if seconds.fract() == 0.0 {
        format!("{}s", seconds as u64)
    } else {
        format!("{}ms", (seconds * 1000.0).round() as u64)
    }
}

/// Python's `fnmatch` for `*`, `?` and `[...]` (case-sensitive on Linux).
fn fnmatch(pattern: &str, name: &str) -> bool {
    glob::Pattern::new(pattern).is_ok_and(|p| p.matches(name))
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use crate::ini::fixtures::{bad_fixtures, dir, round_trip, warn_fixtures};

    fn fixtures() -> PathBuf {
        dir("circus")
    }

    #[test]
    fn every_fixture_converts_and_round_trips() {
        for name in ["full.ini", "minimal.ini"] {
            round_trip(&fixtures().join(name), crate::Dialect::Circus);
        }
    }

    /// Issue 14: what circusd accepts in silence is read, and said.
    #[test]
    fn warn_fixtures_read_as_circusd_reads_them() {
        let read = warn_fixtures(&fixtures().join("warn"), 9);
        let command = |name: &str| {
            let config = &read.iter().find(|(n, _)| n == name).unwrap().1;
            config.watchers[0].command.argv[0].render(1)
        };
        // The first value counts, as in Circus's StrictConfigParser.
        assert_eq!(command("dup-key.ini"), "true");
        assert_eq!(command("dup-section.ini"), "true");
        // A Python stream class, or no filename: the default log file, so
        // nothing the process writes is lost.
        let stdout_file = |name: &str| {
            let config = &read.iter().find(|(n, _)| n == name).unwrap().1;
            match &config.watchers[0].stdout {
                crate::OutputSink::File(file) => file.path.render(1),
                other @ crate::OutputSink::Null => panic!("{name}: {other:?}"),
            }
        };
        for name in ["python-stream.ini", "no-filename.ini"] {
            assert!(stdout_file(name).ends_with("/x-1.out.log"), "{name}");
        }
        assert_eq!(stdout_file("timed.ini"), "/tmp/x.log");
        // Given again in an included file: merged, the first value kept,
        // a key only the later definition has added.
        let config = &read
            .iter()
            .find(|(n, _)| n == "include-again.ini")
            .unwrap()
            .1;
        assert_eq!(config.watchers.len(), 1);
        assert_eq!(config.watchers[0].command.argv[0].render(1), "first");
        assert_eq!(config.watchers[0].numprocesses, 2);
    }

    #[test]
    fn bad_fixtures_name_file_line_and_key() {
        bad_fixtures(&fixtures().join("bad"), 15);
    }

    #[test]
    fn the_full_fixture_means_what_circusd_means() {
        let loaded = crate::read(&fixtures().join("full.ini"), None).unwrap();
        let config = &loaded.config;
        let names: Vec<&str> = config.watchers.iter().map(|w| w.name.as_str()).collect();
        assert_eq!(names, ["web", "worker", "extra", "more"]);
        let web = &config.watchers[0];
        let argv: Vec<String> = web.command.argv.iter().map(|t| t.render(2)).collect();
        let home = std::env::var("HOME").unwrap_or_default();
        assert_eq!(
            argv,
            [
                "/bin/echo",
                "--root",
                "/srv/app",
                "--wid",
                "2",
                "--greet",
                "hello",
                "--home",
                &home
            ]
        );
        assert_eq!(web.numprocesses, 3);
        assert_eq!(web.priority, -10, "circus starts higher priorities first");
        assert_eq!(web.stop_timeout, std::time::Duration::from_millis(2500));
        assert_eq!(web.start_retries, crate::StartRetries::Infinite);
        assert_eq!(web.umask, Some(0o002));
        assert!(web.copy_env && web.echo && !web.autostart && web.stop_group);
        let env: std::collections::BTreeMap<&str, String> = web
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.render(1)))
            .collect();
        let path = std::env::var("PATH").unwrap_or_default();
        assert_eq!(env["PATH"], format!("{path}:/opt/app/bin"));
        assert_eq!(env["APP_ROOT"], "/srv/app");
        assert_eq!(env["WORKER_SHARE"], "shared");
        let worker = &config.watchers[1];
        assert_eq!(worker.user.as_deref(), Some("nobody"));
        assert_eq!(worker.group.as_deref(), Some("nogroup"));
        assert!(!worker.copy_env);
        let worker_env: Vec<&str> = worker.env.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(worker_env, ["APP_ROOT", "GREETING", "PATH", "WORKER_SHARE"]);
        assert_eq!(config.watchers[2].restart, crate::Restart::Never);
        let warned: Vec<&str> = loaded.warnings.iter().map(|w| w.key.as_str()).collect();
        for key in [
            "circus.check_delay",
            "circus.endpoint",
            "watcher:web.send_hup",
            "watcher:web.hooks.before_start",
            "[plugin:flapping]",
            "watcher:more.stdout_stream.time_format",
        ] {
            assert!(warned.contains(&key), "no warning for {key}: {warned:?}");
        }
    }
}
