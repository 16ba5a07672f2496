//! `supervisord.conf` → native TOML.
//!
//! Each `[program:x]` becomes `[watchers.x]` with supervisord's defaults
//! written out (startsecs 1, startretries 3, autorestart unexpected,
//! exitcodes 0, priority 999, stopwaitsecs 10), the `SUPERVISOR_*`
//! variables supervisord gives its children, and its `%(...)s` expansions
//! resolved: names known when the file is read become text,
//! `%(process_num)02d` becomes `$(wid-1:02)` (shifted by numprocs_start),
//! `%(ENV_X)s` becomes `$(env.X)` unless an `environment=` line defines X.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ringmaster_ini::Dialect;
use ringmaster_ini::percent::{self, Directive, Piece, Value};

use super::emit::{self, Emitter};
use super::files::{IniFile, expand_include};
use super::section::{KeyTable, Values, Writer};
use super::{Converted, Origin, Report, Sec, at, dir_of, values};
use crate::error::{ConfigError, ConfigErrors};
use crate::template::WidFormat;

/// Keys of `[program:x]` that map onto the model.
const PROGRAM_KEYS: &[&str] = &[
    "command",
    "process_name",
    "numprocs",
    "numprocs_start",
    "priority",
    "autostart",
    "startsecs",
    "startretries",
    "autorestart",
    "exitcodes",
    "stopsignal",
    "stopwaitsecs",
    "stopasgroup",
    "killasgroup",
    "user",
    "redirect_stderr",
    "stdout_logfile",
    "stdout_logfile_maxbytes",
    "stdout_logfile_backups",
    "stderr_logfile",
    "stderr_logfile_maxbytes",
    "stderr_logfile_backups",
    "environment",
    "directory",
    "umask",
    "stdout_syslog",
    "stderr_syslog",
];

/// Keys of `[program:x]` supervisord knows that mean nothing here.
const PROGRAM_IGNORED: &[(&str, &str)] = &[
    (
        "stdout_capture_maxbytes",
        "capture mode feeds supervisord's event listeners, which ringmaster does not have",
    ),
    (
        "stderr_capture_maxbytes",
        "capture mode feeds supervisord's event listeners, which ringmaster does not have",
    ),
    (
        "stdout_events_enabled",
        "ringmaster has no event listeners; use `ringmasterctl tail -f`",
    ),
    (
        "stderr_events_enabled",
        "ringmaster has no event listeners; use `ringmasterctl tail -f`",
    ),
    (
        "serverurl",
        "children reach ringmaster through $RINGMASTER_SOCKET",
    ),
];

/// Keys of `[supervisord]` that shape the model.
const SUPERVISORD_KEYS: &[&str] = &[
    "loglevel",
    "umask",
    "childlogdir",
    "user",
    "directory",
    "environment",
];

/// Keys of `[supervisord]` that mean nothing here.
const SUPERVISORD_IGNORED: &[(&str, &str)] = &[
    (
        "logfile",
        "ringmasterd logs to stderr (journald, docker logs); redirect it if you want a file",
    ),
    ("logfile_maxbytes", "ringmasterd logs to stderr"),
    ("logfile_backups", "ringmasterd logs to stderr"),
    (
        "pidfile",
        "ringmasterd runs in the foreground and writes no pid file",
    ),
    ("nodaemon", "ringmasterd always runs in the foreground"),
    ("silent", "ringmasterd's log goes to stderr only"),
    (
        "minfds",
        "ringmasterd raises its own descriptor limit; children get rlimits per watcher",
    ),
    ("minprocs", "set rlimits per watcher instead"),
    (
        "nocleanup",
        "ringmaster never deletes log files at start-up",
    ),
    ("strip_ansi", "log files get the bytes the process wrote"),
    ("identifier", "ringmaster has no XML-RPC interface"),
];

/// `[program:x]`'s keys.
const PROGRAM: KeyTable = KeyTable {
    original: "supervisord",
    known: PROGRAM_KEYS,
    ignored: PROGRAM_IGNORED,
    unsupported: &[],
};

/// `[supervisord]`'s keys.
const SUPERVISORD: KeyTable = KeyTable {
    original: "supervisord",
    known: SUPERVISORD_KEYS,
    ignored: SUPERVISORD_IGNORED,
    unsupported: &[],
};

/// `[unix_http_server]`'s keys.
/// `[inet_http_server]`: supervisord's XML-RPC over TCP, served the same.
const INET_HTTP_SERVER: KeyTable = KeyTable {
    original: "supervisord",
    known: &["port", "username", "password"],
    ignored: &[],
    unsupported: &[],
};

const UNIX_HTTP_SERVER: KeyTable = KeyTable {
    original: "supervisord",
    known: &["file", "chmod", "chown"],
    ignored: &[
        (
            "username",
            "access is checked by Unix peer credentials, socket mode and group",
        ),
        (
            "password",
            "access is checked by Unix peer credentials, socket mode and group",
        ),
    ],
    unsupported: &[],
};

/// `[group:x]`'s keys.
const GROUP: KeyTable = KeyTable {
    original: "supervisord",
    known: &["programs"],
    ignored: &[(
        "priority",
        "ringmaster orders processes by each program's own priority",
    )],
    unsupported: &[],
};

/// Section kinds supervisord knows, for errors on unknown ones.
const SECTION_KINDS: &[&str] = &[
    "supervisord",
    "unix_http_server",
    "inet_http_server",
    "supervisorctl",
    "include",
    "program:NAME",
    "group:NAME",
    "eventlistener:NAME",
    "fcgi-program:NAME",
    "rpcinterface:NAME",
    "ctlplugin:NAME",
];

/// What `%(name)s` can stand for while a value is read.
#[derive(Clone)]
struct Names<'a> {
    here: String,
    host: &'a str,
    env: &'a BTreeMap<String, String>,
    /// `[supervisord] environment` and the program's own `environment=`:
    /// their `ENV_X` become text, not `$(env.X)`.
    defined_env: BTreeMap<String, String>,
    program: Option<&'a str>,
    group: Option<&'a str>,
    numprocs: Option<i64>,
    /// `numprocs_start`; `None` where `%(process_num)` is not available.
    process_num_start: Option<i64>,
    /// Whether `%(ENV_X)s` may stay a `$(env.X)` reference (not where the
    /// expanded text is split afterwards: command, environment).
    env_refs: bool,
    /// `here` as a reference to the main file's directory, which the
    /// converted file is kept in (see [`here_reference`]), used where
    /// references may be (`env_refs`).
    here_ref: Option<String>,
    /// The main file's directory.
    main_dir: PathBuf,
}

impl<'a> Names<'a> {
    /// The names known outside `[program:x]` in `file` (read with the main
    /// file `main`): `here`, `host_node_name`, `ENV_X`.
    fn outside_programs(
        file: &Path,
        main: &Path,
        host: &'a str,
        env: &'a BTreeMap<String, String>,
        env_refs: bool,
    ) -> Self {
        Self {
            here: dir_of(file).to_string_lossy().into_owned(),
            here_ref: here_reference(&dir_of(file), &dir_of(main)),
            main_dir: dir_of(main),
            host,
            env,
            defined_env: BTreeMap::new(),
            program: None,
            group: None,
            numprocs: None,
            process_num_start: None,
            env_refs,
        }
    }

    /// The names for a value written in `file`: `here` is its directory
    /// (a key of a section given again in an included file).
    fn for_file(&self, file: &Path) -> std::borrow::Cow<'_, Names<'a>> {
        let dir = dir_of(file);
        if dir.to_string_lossy() == self.here {
            return std::borrow::Cow::Borrowed(self);
        }
        std::borrow::Cow::Owned(Names {
            here: dir.to_string_lossy().into_owned(),
            here_ref: here_reference(&dir, &self.main_dir),
            ..self.clone()
        })
    }
}

/// `%(here)s` of a file in `dir` as a reference to `main_dir`, the main
/// file's directory, which the converted file is kept in: `$(here)`, or
/// `$(here)/conf.d` for a file included from below it; `None` for a file
/// elsewhere (its directory is then written in).
fn here_reference(dir: &Path, main_dir: &Path) -> Option<String> {
    let below = dir.strip_prefix(main_dir).ok()?;
    let plain = below
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    let below = below.to_str()?;
    match below {
        "" => Some("$(here)".to_owned()),
        _ if plain => Some(format!("$(here)/{}", below.replace("$(", "$$("))),
        _ => None,
    }
}

/// A value expanded into TOML template text (`$(` escaped, `$(wid...)`
/// and `$(env.X)` where they belong).
fn expand_template(names: &Names<'_>, value: &str) -> Result<String, String> {
    let pieces = percent::parse(value).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(&text.replace("$(", "$$(")),
            Piece::Directive(d) => out.push_str(&directive(names, &d)?),
        }
    }
    Ok(out)
}

/// A value expanded into plain text (no per-process names allowed).
fn expand_text(names: &Names<'_>, value: &str) -> Result<String, String> {
    let pieces = percent::parse(value).map_err(|e| e.to_string())?;
    let mut out = String::new();
    for piece in pieces {
        match piece {
            Piece::Literal(text) => out.push_str(&text),
            Piece::Directive(d) => {
                let value = plain_value(names, &d.name)?;
                out.push_str(&percent::format(&d, &value).map_err(|e| e.to_string())?);
            }
        }
    }
    Ok(out)
}

fn plain_value(names: &Names<'_>, name: &str) -> Result<Value, String> {
    let unknown = || {
        let mut known = vec!["here", "host_node_name", "ENV_X"];
        if names.program.is_some() {
            known.extend(["program_name", "group_name"]);
        }
        if names.numprocs.is_some() {
            known.push("numprocs");
        }
        if names.process_num_start.is_some() {
            known.push("process_num");
        }
        format!(
            "%({name}) cannot be expanded here (known: {})",
            known.join(", ")
        )
    };
    Ok(match name {
        "here" => Value::Str(names.here.clone()),
        "host_node_name" => Value::Str(names.host.to_owned()),
        "program_name" => Value::Str(names.program.ok_or_else(unknown)?.to_owned()),
        "group_name" => Value::Str(names.group.ok_or_else(unknown)?.to_owned()),
        "numprocs" => Value::Int(names.numprocs.ok_or_else(unknown)?),
        _ => match name.strip_prefix("ENV_") {
            Some(var) => match names.defined_env.get(var).or_else(|| names.env.get(var)) {
                Some(value) => Value::Str(value.clone()),
                None => {
                    return Err(format!("%({name}): environment variable {var} is not set"));
                }
            },
            None => return Err(unknown()),
        },
    })
}

fn directive(names: &Names<'_>, d: &Directive) -> Result<String, String> {
    if d.name == "process_num"
        && let Some(start) = names.process_num_start
    {
        let padded_plainly =
            !d.left && !d.plus && !d.space && !d.alternate && d.precision.is_none();
        let decimal = matches!(d.conversion, 'd' | 'i' | 'u' | 's');
        if !padded_plainly || !decimal || (d.width > 0 && !d.zero) {
            return Err("%(process_num) can only be written plainly or zero-padded here (%(process_num)d, %(process_num)02d)".into());
        }
        let format = WidFormat {
            offset: start - 1,
            width: d.width,
        };
        return Ok(format.to_string());
    }
    let plain = d.conversion == 's' && d.width == 0 && d.precision.is_none();
    // Where the text is split after expansion (command), only a value that
    // cannot change the split is kept a reference.
    let may_refer = |value: &str| names.env_refs || !splits_command(value);
    if d.name == "here"
        && let Some(reference) = &names.here_ref
        && plain
        && may_refer(&names.here)
    {
        return Ok(reference.clone());
    }
    // $(env.X) keeps the reference when the daemon's environment supplies X.
    if let Some(var) = d.name.strip_prefix("ENV_")
        && let Some(value) = names.env.get(var)
        && may_refer(value)
        && !names.defined_env.contains_key(var)
        && plain
    {
        return Ok(format!("$(env.{var})"));
    }
    let value = plain_value(names, &d.name)?;
    let text = percent::format(d, &value).map_err(|e| e.to_string())?;
    Ok(text.replace("$(", "$$("))
}

/// Reads `path` and its includes and translates them.
pub(crate) fn convert(path: &Path) -> Result<Converted, ConfigErrors> {
    let env: BTreeMap<String, String> = std::env::vars().collect();
    let host = nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .unwrap_or_default();
    let files = read_all(path, &env)?;
    let mut report = Report::default();
    let mut out = Emitter::default();
    translate(&files, &env, &host, &mut report, &mut out);
    report.sort_warnings(&files);
    out.dropped(&report.warnings);
    if !report.errors.is_empty() {
        report.errors.sort_by_key(location_of);
        return Err(ConfigErrors(report.errors));
    }
    let (toml, origins) = out.finish();
    Ok(Converted {
        toml,
        origins,
        warnings: report.warnings,
    })
}

fn location_of(error: &ConfigError) -> (PathBuf, usize) {
    match error {
        ConfigError::Invalid { location, .. } | ConfigError::Syntax { location, .. } => {
            (location.file.clone(), location.line)
        }
        ConfigError::Read { path, .. } | ConfigError::File { path, .. } => (path.clone(), 0),
    }
}

/// The main file, then every included file in include order. Included
/// files may include others (relative to their own directory); a loop is an
/// error naming the chain.
fn read_all(main: &Path, env: &BTreeMap<String, String>) -> Result<Vec<IniFile>, ConfigErrors> {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    let mut stack = vec![main.to_path_buf()];
    read_with_includes(main, env, &mut stack, &mut files, &mut errors);
    if errors.is_empty() {
        Ok(files)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// `path` with links resolved, or as it is when that fails.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Reads `path` and, depth first, what its `[include]` names (`stack`:
/// the files being read, to catch loops).
fn read_with_includes(
    path: &Path,
    env: &BTreeMap<String, String>,
    stack: &mut Vec<PathBuf>,
    files: &mut Vec<IniFile>,
    errors: &mut Vec<ConfigError>,
) {
    let file = match IniFile::read(path, Dialect::Supervisor) {
        Ok(file) => file,
        Err(mut errs) => {
            errors.append(&mut errs);
            return;
        }
    };
    let include = file
        .doc
        .section("include")
        .map(|s| (s.line, s.get("files").cloned()));
    files.push(file);
    let Some((line, entry)) = include else {
        return;
    };
    let Some(entry) = entry else {
        errors.push(ConfigError::Invalid {
            location: at(path, line),
            key: "include".into(),
            message: "[include] needs files = PATTERN ...".into(),
        });
        return;
    };
    let here = dir_of(path);
    let names = Names::outside_programs(path, path, "", env, true);
    let include_error = |message: String| ConfigError::Invalid {
        location: at(path, entry.line),
        key: "include.files".into(),
        message,
    };
    let patterns = match expand_text(&names, &entry.value) {
        Ok(text) => text,
        Err(message) => return errors.push(include_error(message)),
    };
    for pattern in patterns.split_whitespace() {
        let found = match expand_include(pattern, &here) {
            Ok(found) => found,
            Err(message) => {
                errors.push(include_error(message));
                continue;
            }
        };
        for included in found {
            let same = |p: &Path| canonical(p) == canonical(&included);
            if stack.iter().any(|p| same(p)) {
                let chain: Vec<String> = stack
                    .iter()
                    .chain(std::iter::once(&included))
                    .map(|p| p.display().to_string())
                    .collect();
                errors.push(include_error(format!(
                    "include loop: {}",
                    chain.join(" -> ")
                )));
                continue;
            }
            if files.iter().any(|f| same(&f.path)) {
                // Included twice (two patterns, two files): read once.
                continue;
            }
            stack.push(included.clone());
            read_with_includes(&included, env, stack, files, errors);
            stack.pop();
        }
    }
}

fn translate(
    files: &[IniFile],
    env: &BTreeMap<String, String>,
    host: &str,
    report: &mut Report,
    out: &mut Emitter,
) {
    let main = files[0].path.as_path();
    // Every section with its file; a name defined in two files is an error.
    let defaults = files.iter().find_map(|f| f.doc.section("DEFAULT"));
    let merged = super::merged_sections(files, true, super::Later::Wins, report);
    let sections: Vec<Sec<'_>> = merged.iter().map(|m| m.sec(defaults)).collect();

    // A file of programs alone is a conf.d fragment (what applications
    // ship for /etc/supervisor/conf.d/): read with supervisord's defaults.
    let empty = ringmaster_ini::Section {
        name: "supervisord".into(),
        line: 1,
        entries: Vec::new(),
    };
    let found = sections.iter().find(|s| s.section.name == "supervisord");
    if found.is_none() {
        report.warn(
            main,
            1,
            String::new(),
            "no [supervisord] section: read as a conf.d fragment, with supervisord's defaults",
        );
    }
    let supervisord = found.copied().unwrap_or(Sec {
        file: main,
        section: &empty,
        defaults,
        key_files: &[],
    });

    super::emit_preamble(out, files);

    let daemon = read_supervisord(supervisord, main, env, host, report);
    let server = |name: &str| sections.iter().find(|s| s.section.name == name).copied();
    let servers = (server("unix_http_server"), server("inet_http_server"));
    emit_daemon(&daemon, supervisord, servers, main, env, report, out);

    let (groups, group_list) = read_groups(&sections, report);
    let ctx = Context {
        main,
        daemon: &daemon,
        env,
        host,
    };
    for sec in &sections {
        let name = sec.section.name.as_str();
        match name.split_once(':') {
            Some((kind @ ("program" | "fcgi-program"), program)) => {
                let group = groups.get(program).map_or(program, String::as_str);
                let fcgi = kind == "fcgi-program";
                emit_program(&ctx, *sec, (program, group, fcgi), report, out);
            }
            Some(("group", _)) => {}
            None if matches!(
                name,
                "supervisord" | "unix_http_server" | "inet_http_server" | "include"
            ) => {}
            _ => other_section(*sec, report),
        }
    }
    if !group_list.is_empty() {
        out.header(&["groups"], None);
        for (group, members, origin) in group_list {
            let members: Vec<String> = members.iter().map(|m| emit::string(m)).collect();
            out.entry(&group, &format!("[{}]", members.join(", ")), Some(origin));
        }
        out.blank();
    }
}

/// A section that is not translated: what supervisord uses it for and
/// why it means nothing here (a warning), what is not supported yet (an
/// error), or a section supervisord does not know either (a warning).
fn other_section(sec: Sec<'_>, report: &mut Report) {
    let name = sec.section.name.as_str();
    let kind = name.split_once(':').map_or(name, |(kind, _)| kind);
    let named = name.contains(':');
    let ignored = match kind {
        "supervisorctl" => "ringmasterctl finds the socket from [unix_http_server] file or -s",
        "rpcinterface" | "ctlplugin" if named => {
            "ringmaster has no XML-RPC interface or ctl plugins"
        }
        "eventlistener" if named => {
            "event listeners are not supported; `ringmasterctl events` streams every state change"
        }
        _ => {
            report.unknown_section(sec, kind, SECTION_KINDS, "supervisord");
            return;
        }
    };
    report.warn(
        sec.file,
        sec.section.line,
        format!("[{name}]"),
        format!("ignored: {ignored}"),
    );
}

/// `[supervisord]`, as far as it shapes the model.
#[derive(Default)]
struct Daemon {
    logs_dir: Option<(String, Origin)>,
    log_level: Option<(String, Origin)>,
    user: Option<(String, Origin)>,
    umask: Option<(String, Origin)>,
    directory: Option<(String, Origin)>,
    environment: Vec<(String, String)>,
}

fn read_supervisord(
    sec: Sec<'_>,
    main: &Path,
    env: &BTreeMap<String, String>,
    host: &str,
    report: &mut Report,
) -> Daemon {
    let names = Names::outside_programs(sec.file, main, host, env, true);
    for entry in &sec.section.entries {
        let key = entry.key.as_str();
        if PROGRAM_KEYS.contains(&key) && !SUPERVISORD_KEYS.contains(&key) {
            report.warn(
                sec.file_of(key),
                entry.line,
                sec.name(key),
                "unknown key (a [program:x] key, not one of [supervisord]): ignored, as supervisord ignores it",
            );
        }
    }
    // nodaemon=true asks for what ringmasterd always does: not worth a word.
    let foreground = sec
        .get("nodaemon")
        .is_some_and(|e| values::boolean(&e.value) == Some(true));
    SUPERVISORD.check(sec, report, &[], |key| {
        (key == "nodaemon" && foreground) || PROGRAM_KEYS.contains(&key)
    });
    let expand = |value: &str, file: &Path| expand_text(&names.for_file(file), value);
    let values = Values::new(sec, &expand);
    let with_origin = |key: &str, value: String| (value, sec.origin(key));
    // childlogdir keeps `$(here)` (a path, not split); the other keys are
    // read as text.
    let logs_dir = values.text(report, "childlogdir").map(|text| {
        let raw = sec.get("childlogdir").map_or("", |e| e.value.as_str());
        let names = names.for_file(sec.file_of("childlogdir"));
        with_origin("childlogdir", expand_template(&names, raw).unwrap_or(text))
    });
    let log_level = values.text(report, "loglevel").and_then(|text| {
        let level = log_level(&text);
        if level.is_none() {
            let message = format!(
                "bad loglevel '{text}' (critical, error, warn, info, debug, trace or blather)"
            );
            values.error(report, "loglevel", message);
        }
        level.map(|level| with_origin("loglevel", level.into()))
    });
    let environment = values
        .text(report, "environment")
        .and_then(|text| {
            ringmaster_ini::supervisor_env(&text)
                .map_err(|message| values.error(report, "environment", message))
                .ok()
        })
        .unwrap_or_default();
    Daemon {
        logs_dir,
        log_level,
        user: values.text(report, "user").map(|u| with_origin("user", u)),
        umask: values
            .octal(report, "umask", "umask")
            .map(|m| with_origin("umask", m)),
        directory: values
            .text(report, "directory")
            .map(|d| with_origin("directory", d)),
        environment,
    }
}

fn emit_daemon(
    daemon: &Daemon,
    supervisord: Sec<'_>,
    (server, inet): (Option<Sec<'_>>, Option<Sec<'_>>),
    main: &Path,
    env: &BTreeMap<String, String>,
    report: &mut Report,
    out: &mut Emitter,
) {
    out.header(&["daemon"], Some(supervisord.header_origin()));
    if let Some(inet) = inet {
        emit_inet_http_server(inet, main, env, report, out);
    }
    if let Some(server) = server {
        let text_names = Names::outside_programs(server.file, main, "", env, false);
        // The socket's path keeps `$(here)` and `$(env.X)` references.
        let path_names = Names {
            env_refs: true,
            ..text_names.clone()
        };
        UNIX_HTTP_SERVER.check(server, report, &[], |_| false);
        for entry in &server.section.entries {
            let key = entry.key.as_str();
            if !UNIX_HTTP_SERVER.known.contains(&key) {
                continue;
            }
            let origin = Some(server.origin(key));
            let names = text_names.for_file(server.file_of(key));
            let value = match expand_text(&names, &entry.value) {
                Ok(value) => value,
                Err(message) => {
                    report.error(server.file, entry.line, server.name(key), message);
                    continue;
                }
            };
            match key {
                "file" => {
                    let names = path_names.for_file(server.file_of(key));
                    let path = expand_template(&names, &entry.value).unwrap_or(value);
                    out.entry("socket", &emit::string(&path), origin);
                }
                "chmod" => match values::octal(&value) {
                    Some(mode) => {
                        out.entry("socket_mode", &emit::string(&format!("{mode:04o}")), origin);
                    }
                    None => report.error(
                        server.file,
                        entry.line,
                        server.name(key),
                        format!("'{value}' is not an octal mode"),
                    ),
                },
                "chown" => {
                    let (user, group) = value.split_once(':').unwrap_or((&value, ""));
                    if !group.is_empty() {
                        out.entry("socket_group", &emit::string(group), origin);
                    }
                    if !user.is_empty() && user != "root" {
                        report.warn(server.file, entry.line, server.name(key), format!("the socket stays owned by the daemon's user, not '{user}'; access is by mode and group"));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some((dir, origin)) = &daemon.logs_dir {
        out.entry("logs_dir", &emit::string(dir), Some(origin.clone()));
    }
    if let Some((level, origin)) = &daemon.log_level {
        out.entry("log_level", &emit::string(level), Some(origin.clone()));
    }
    out.blank();
}

/// `[inet_http_server]` as `xmlrpc = { address, username, password }`:
/// `port = 9001` or `*:9001` listens on every address (and then needs
/// credentials, which the TOML reader checks).
fn emit_inet_http_server(
    inet: Sec<'_>,
    main: &Path,
    env: &BTreeMap<String, String>,
    report: &mut Report,
    out: &mut Emitter,
) {
    let names = Names::outside_programs(inet.file, main, "", env, false);
    INET_HTTP_SERVER.check(inet, report, &[], |_| false);
    let mut members = Vec::new();
    for entry in &inet.section.entries {
        let key = entry.key.as_str();
        if !INET_HTTP_SERVER.known.contains(&key) {
            continue;
        }
        let value = match expand_text(&names.for_file(inet.file_of(key)), &entry.value) {
            Ok(value) => value,
            Err(message) => {
                report.error(inet.file, entry.line, inet.name(key), message);
                continue;
            }
        };
        let value = match key {
            "port" => match value.rsplit_once(':') {
                Some(("" | "*", port)) => format!("0.0.0.0:{port}"),
                Some(_) => value,
                None => format!("0.0.0.0:{value}"),
            },
            _ => value,
        };
        let member = if key == "port" { "address" } else { key };
        members.push(format!("{member} = {}", emit::string(&value)));
    }
    if !members.is_empty() {
        out.entry(
            "xmlrpc",
            &format!("{{ {} }}", members.join(", ")),
            Some(inet.header_origin()),
        );
    }
}

/// Program name → group name, from `[group:x] programs=`.
/// A `[group:x]`: its name, programs and where `programs` was written.
type GroupEntry = (String, Vec<String>, Origin);

/// Also returns each group with its programs and where it was defined.
fn read_groups(
    sections: &[Sec<'_>],
    report: &mut Report,
) -> (BTreeMap<String, String>, Vec<GroupEntry>) {
    let mut groups = BTreeMap::new();
    let mut list = Vec::new();
    for sec in sections {
        let Some(group) = sec.section.name.strip_prefix("group:") else {
            continue;
        };
        GROUP.check(*sec, report, &[], |_| false);
        let mut members = Vec::new();
        let Some(entry) = sec.get("programs") else {
            report.error(
                sec.file,
                sec.section.line,
                format!("[{}]", sec.section.name),
                "a group needs programs = NAME, NAME ...",
            );
            continue;
        };
        let names = entry.value.split(',').map(str::trim);
        for program in names.filter(|p| !p.is_empty()) {
            let known = sections
                .iter()
                .any(|s| s.section.name == format!("program:{program}"));
            if known {
                groups.insert(program.to_owned(), group.to_owned());
                members.push(program.to_owned());
            } else {
                report.error(
                    sec.file_of("programs"),
                    entry.line,
                    sec.name("programs"),
                    format!("[group:{group}] names unknown program '{program}'"),
                );
            }
        }
        list.push((group.to_owned(), members, sec.origin("programs")));
    }
    (groups, list)
}

/// A program's `environment=`: expanded, then split into pairs the way
/// supervisord splits it (after expansion), with `%(process_num)` carried
/// through the split as a word and turned into `$(wid...)` afterwards.
fn environment(names: &Names<'_>, value: &str) -> Result<Vec<(String, String)>, String> {
    let pieces = percent::parse(value).map_err(|e| e.to_string())?;
    let mut text = String::new();
    let mut slots: Vec<String> = Vec::new();
    let literal_env = Names {
        env_refs: false,
        ..names.clone()
    };
    for piece in pieces {
        match piece {
            Piece::Literal(literal) => text.push_str(&literal),
            Piece::Directive(d) if d.name == "process_num" && names.process_num_start.is_some() => {
                // A run of word characters, as the number would be.
                let _ = write!(text, "RingmasterProcessNum{}X", slots.len());
                slots.push(directive(names, &d)?);
            }
            Piece::Directive(d) if env_reference(names, &d).is_some() => {
                // Kept a reference (the converted file then means the
                // daemon's variable, not today's value): a word through
                // the split, as the value would be, for it has nothing
                // the split looks at.
                let _ = write!(text, "RingmasterEnvRef{}X", slots.len());
                slots.push(env_reference(names, &d).unwrap_or_default());
            }
            Piece::Directive(d) => {
                let value = plain_value(&literal_env, &d.name)?;
                text.push_str(&percent::format(&d, &value).map_err(|e| e.to_string())?);
            }
        }
    }
    let pairs = ringmaster_ini::supervisor_env(&text)?;
    Ok(pairs
        .into_iter()
        .map(|(k, v)| {
            let mut v = v.replace("$(", "$$(");
            for (i, slot) in slots.iter().enumerate() {
                v = v.replace(&format!("RingmasterProcessNum{i}X"), slot);
                v = v.replace(&format!("RingmasterEnvRef{i}X"), slot);
            }
            (k, v)
        })
        .collect())
}

/// Whether `text`, written into a command, would change how supervisord
/// splits it (shlex: whitespace, quotes, backslashes).
fn splits_command(text: &str) -> bool {
    text.contains(['"', '\'', '\\']) || text.contains(char::is_whitespace)
}

/// `$(env.X)` for a plain `%(ENV_X)s` in `environment=` whose value today
/// would not change how supervisord splits the line (no quote, comma,
/// equals sign, backslash or space in it), when nothing in the file
/// defines X; `None` when the value must be written in.
fn env_reference(names: &Names<'_>, d: &Directive) -> Option<String> {
    let var = d.name.strip_prefix("ENV_")?;
    let value = names.env.get(var)?;
    let plain = d.conversion == 's' && d.width == 0 && d.precision.is_none();
    let splits = value.contains(['"', '\'', ',', '=', '\\']) || value.contains(char::is_whitespace);
    (plain && !splits && !names.defined_env.contains_key(var)).then(|| format!("$(env.{var})"))
}

/// What every program of one file is read against.
struct Context<'a> {
    /// The main file, whose directory the translation is kept in.
    main: &'a Path,
    /// `[supervisord]`, whose user, umask, directory and environment
    /// programs inherit.
    daemon: &'a Daemon,
    /// The daemon's environment, for `%(ENV_X)s`.
    env: &'a BTreeMap<String, String>,
    /// `%(host_node_name)s`.
    host: &'a str,
}

/// A `[program:x]` as read, before it is written out.
struct Program {
    command: Option<String>,
    process_name: Option<String>,
    numprocs: i64,
    directory: (String, Origin),
    user: Option<(String, Origin)>,
    umask: Option<(String, Origin)>,
    policy: Policy,
    /// `[supervisord] environment` then the program's own.
    env: Vec<(String, String)>,
    stdout: Option<String>,
    stderr: Option<String>,
    redirect_stderr: bool,
}

/// The keys only an `[fcgi-program:x]` has.
const FCGI_KEYS: &[&str] = &["socket", "socket_backlog", "socket_owner", "socket_mode"];

/// How a program is started, stopped and restarted.
struct Policy {
    priority: i64,
    autostart: bool,
    restart: &'static str,
    exit_codes: Vec<i64>,
    start_secs: i64,
    start_retries: i64,
    stop_signal: String,
    stop_timeout: i64,
    /// `stop_group`, when the file says (stopasgroup or killasgroup).
    stop_group: Option<bool>,
}

/// `[program:x]` as `[watchers.x]`; an `[fcgi-program:x]` (`fcgi`) also
/// as `[sockets.x]`, passed on its stdin as supervisord does.
fn emit_program(
    ctx: &Context<'_>,
    sec: Sec<'_>,
    (program, group, fcgi): (&str, &str, bool),
    report: &mut Report,
    out: &mut Emitter,
) {
    if program.is_empty() || program.contains([' ', ':', '/']) {
        report.error(
            sec.file,
            sec.section.line,
            format!("[{}]", sec.section.name),
            "a program name may not be empty or contain ' ', ':' or '/'",
        );
        return;
    }
    let also: &[&str] = if fcgi { FCGI_KEYS } else { &[] };
    PROGRAM.check(sec, report, also, |key| fcgi && FCGI_KEYS.contains(&key));
    let errors_before = report.errors.len();
    let read = read_program(ctx, sec, program, group, report);
    let socket = if fcgi {
        read_fcgi_socket(ctx, sec, program, group, report)
    } else {
        None
    };
    if report.errors.len() == errors_before {
        write_program(sec, (program, group, fcgi), &read, out);
        if let Some(socket) = socket {
            write_fcgi_socket(sec, program, &socket, out);
        }
    }
}

/// An fcgi-program's socket, as supervisord reads it.
struct FcgiSocket {
    address: String,
    backlog: Option<i64>,
    owner: Option<String>,
    group: Option<String>,
    mode: Option<String>,
}

/// `socket`, `socket_backlog`, `socket_owner` (`user[:group]`) and
/// `socket_mode` (0700 by default, as supervisord's) of `[fcgi-program:x]`.
fn read_fcgi_socket(
    ctx: &Context<'_>,
    sec: Sec<'_>,
    program: &str,
    group: &str,
    report: &mut Report,
) -> Option<FcgiSocket> {
    let names = Names {
        defined_env: ctx.daemon.environment.iter().cloned().collect(),
        program: Some(program),
        group: Some(group),
        ..Names::outside_programs(sec.file, ctx.main, ctx.host, ctx.env, true)
    };
    let expand = |value: &str, file: &Path| expand_text(&names.for_file(file), value);
    let values = Values::new(sec, &expand);
    let Some(address) = values.text(report, "socket") else {
        values.section_error(
            report,
            "an fcgi-program needs socket (tcp://HOST:PORT or unix:///PATH)",
        );
        return None;
    };
    let address = address.trim().to_owned();
    let unix = address.starts_with("unix://");
    if !unix && !address.starts_with("tcp://") {
        values.error(
            report,
            "socket",
            format!("'{address}' is not tcp://HOST:PORT or unix:///PATH"),
        );
        return None;
    }
    let backlog = values
        .has("socket_backlog")
        .then(|| values.int(report, "socket_backlog", 0));
    let (mut owner, mut owner_group, mut mode) = (None, None, None);
    if unix {
        if let Some(text) = values.text(report, "socket_owner") {
            let (user, grp) = text
                .trim()
                .split_once(':')
                .map_or((text.trim(), None), |(u, g)| (u, Some(g)));
            owner = Some(user.to_owned());
            owner_group = grp.map(str::to_owned);
        }
        mode = Some(
            values
                .octal(report, "socket_mode", "socket_mode")
                .unwrap_or_else(|| "0700".to_owned()),
        );
    } else {
        for key in ["socket_owner", "socket_mode"] {
            if values.has(key) {
                values.warn(
                    report,
                    key,
                    "ignored: only a unix socket has a file (supervisord ignores it too)",
                );
            }
        }
    }
    Some(FcgiSocket {
        address,
        backlog,
        owner,
        group: owner_group,
        mode,
    })
}

/// `[sockets.x]` of an fcgi-program.
fn write_fcgi_socket(sec: Sec<'_>, name: &str, socket: &FcgiSocket, out: &mut Emitter) {
    let mut w = Writer::new(sec, out, "supervisord's default");
    w.begin(&["sockets", name]);
    w.entry("address", &emit::string(&socket.address), "socket");
    if let Some(backlog) = socket.backlog {
        w.entry("backlog", &backlog.to_string(), "socket_backlog");
    }
    if let Some(owner) = &socket.owner {
        w.entry("owner", &emit::string(owner), "socket_owner");
    }
    if let Some(group) = &socket.group {
        w.entry("group", &emit::string(group), "socket_owner");
    }
    if let Some(mode) = &socket.mode {
        w.setting("mode", &emit::string(mode), "socket_mode");
    }
    w.end();
}

/// Reads a program's keys in supervisord's order: those read before its
/// per-process loop (no `%(process_num)`), then the per-process ones.
fn read_program(
    ctx: &Context<'_>,
    sec: Sec<'_>,
    program: &str,
    group: &str,
    report: &mut Report,
) -> Program {
    let base = Names {
        defined_env: ctx.daemon.environment.iter().cloned().collect(),
        program: Some(program),
        group: Some(group),
        ..Names::outside_programs(sec.file, ctx.main, ctx.host, ctx.env, true)
    };
    let expand_base = |value: &str, file: &Path| expand_text(&base.for_file(file), value);
    let plain = Values::new(sec, &expand_base);
    let policy = read_policy(plain, report);
    let redirect_stderr = plain.boolean(report, "redirect_stderr", false);
    let numprocs = plain.int(report, "numprocs", 1);
    if numprocs < 1 {
        plain.error(report, "numprocs", "numprocs must be at least 1");
    }
    let umask = match plain.octal(report, "umask", "umask") {
        Some(mask) => Some((mask, sec.origin("umask"))),
        None => ctx.daemon.umask.clone(),
    };
    let user = plain
        .text(report, "user")
        .map(|u| (u, sec.origin("user")))
        .or_else(|| ctx.daemon.user.clone());
    for stream in ["stdout", "stderr"] {
        let key = format!("{stream}_syslog");
        if plain.boolean(report, &key, false) {
            plain.error(report, &key, SYSLOG_UNSUPPORTED);
        }
    }

    // The per-process names: process_num, numprocs, and ENV_ of the
    // program's own environment.
    let mut names = Names {
        numprocs: Some(numprocs),
        process_num_start: Some(plain.int(report, "numprocs_start", 0)),
        ..base.clone()
    };
    let own_env = program_environment(plain, &names, report);
    names.defined_env.extend(own_env.iter().cloned());
    let expand_names = |value: &str, file: &Path| expand_template(&names.for_file(file), value);
    let each = Values::new(sec, &expand_names);
    let process_name = read_process_name(each, program, numprocs, report);
    let command = read_command(sec, &names, report);
    let directory = read_directory(each, ctx.daemon, report);
    let expand_each_text = |value: &str, file: &Path| expand_text(&names.for_file(file), value);
    let each_text = Values::new(sec, &expand_each_text);
    let (stdout, stderr) = read_streams(each, each_text, redirect_stderr, report);
    let mut env: Vec<(String, String)> = Vec::new();
    for (k, v) in ctx.daemon.environment.iter().chain(&own_env) {
        env.retain(|(existing, _)| existing != k);
        env.push((k.clone(), v.clone()));
    }
    Program {
        command,
        process_name,
        numprocs,
        directory,
        user,
        umask,
        policy,
        env,
        stdout,
        stderr,
        redirect_stderr,
    }
}

/// The stdout and stderr sinks (see [`sink`]); with `redirect_stderr`,
/// stderr goes to stdout's.
fn read_streams(
    each: Values<'_>,
    each_text: Values<'_>,
    redirect_stderr: bool,
    report: &mut Report,
) -> (Option<String>, Option<String>) {
    let stdout = sink(each, each_text, "stdout", report);
    if !redirect_stderr {
        return (stdout, sink(each, each_text, "stderr", report));
    }
    let given = each.sec.get("stderr_logfile").is_some_and(|e| {
        !matches!(
            e.value.to_ascii_lowercase().as_str(),
            "auto" | "none" | "off"
        )
    });
    if given {
        each.warn(
            report,
            "stderr_logfile",
            "ignored: redirect_stderr=true sends stderr to stdout's log",
        );
    }
    (stdout, Some(emit::string("stdout")))
}

/// Start, stop and restart settings, with supervisord's defaults.
fn read_policy(values: Values<'_>, report: &mut Report) -> Policy {
    let restart = match values.text(report, "autorestart") {
        None => "on-failure",
        Some(text) => match (
            values::boolean(&text),
            text.trim().to_ascii_lowercase().as_str(),
        ) {
            (Some(true), _) => "always",
            (Some(false), _) => "never",
            (None, "unexpected") => "on-failure",
            (None, other) => {
                let message = format!("'{other}' is not one of true, false, unexpected");
                values.error(report, "autorestart", message);
                "on-failure"
            }
        },
    };
    let stopasgroup = values.boolean(report, "stopasgroup", false);
    let killasgroup = values.boolean(report, "killasgroup", stopasgroup);
    if stopasgroup && !killasgroup {
        values.error(
            report,
            "killasgroup",
            "stopasgroup=true needs killasgroup=true (as in supervisord)",
        );
    }
    // supervisord signals only the leader unless told; ringmaster's
    // default is the whole group, kept when the file says nothing.
    let said = values.has("stopasgroup") || values.has("killasgroup");
    if killasgroup && !stopasgroup {
        values.warn(
            report,
            "killasgroup",
            "ringmaster sends the stop signal to the whole group too, not only the kill",
        );
    }
    Policy {
        priority: values.int(report, "priority", 999),
        autostart: values.boolean(report, "autostart", true),
        restart,
        exit_codes: read_exit_codes(values, report),
        start_secs: values.int(report, "startsecs", 1),
        start_retries: values.int(report, "startretries", 3),
        stop_signal: values.signal(report, "stopsignal", "TERM"),
        stop_timeout: values.int(report, "stopwaitsecs", 10),
        stop_group: said.then_some(stopasgroup || killasgroup),
    }
}

/// `exitcodes`: a comma-separated list of codes from 0 to 255.
fn read_exit_codes(values: Values<'_>, report: &mut Report) -> Vec<i64> {
    let text = values
        .text(report, "exitcodes")
        .unwrap_or_else(|| "0".into());
    let mut codes = Vec::new();
    for code in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
        match code.parse::<i64>() {
            Ok(n) if (0..=255).contains(&n) => codes.push(n),
            _ => values.error(
                report,
                "exitcodes",
                format!("'{code}' is not an exit code (0-255)"),
            ),
        }
    }
    codes
}

/// The program's own `environment=` pairs.
fn program_environment(
    values: Values<'_>,
    names: &Names<'_>,
    report: &mut Report,
) -> Vec<(String, String)> {
    let Some(entry) = values.sec.get("environment") else {
        return Vec::new();
    };
    let names = names.for_file(values.sec.file_of("environment"));
    environment(&names, &entry.value).unwrap_or_else(|message| {
        values.error(report, "environment", message);
        Vec::new()
    })
}

/// `process_name`, which must tell the processes apart when there are
/// several.
fn read_process_name(
    each: Values<'_>,
    program: &str,
    numprocs: i64,
    report: &mut Report,
) -> Option<String> {
    let given = each.sec.get("process_name");
    if numprocs > 1 && !given.is_some_and(|e| e.value.contains("%(process_num)")) {
        let key = if given.is_some() {
            "process_name"
        } else {
            "numprocs"
        };
        each.error(
            report,
            key,
            "%(process_num) must be present within process_name when numprocs > 1",
        );
    }
    match given {
        Some(_) => each.text(report, "process_name"),
        None => Some(program.to_owned()),
    }
}

/// `command`, required. supervisord splits the command after expanding
/// it: environment values are written in, so that they split the same way.
fn read_command(sec: Sec<'_>, names: &Names<'_>, report: &mut Report) -> Option<String> {
    let literal_env = Names {
        env_refs: false,
        ..names.clone()
    };
    let expand = |value: &str, file: &Path| expand_template(&literal_env.for_file(file), value);
    let values = Values::new(sec, &expand);
    if !values.has("command") {
        values.section_error(report, "program section does not specify a command");
    }
    values.text(report, "command")
}

/// `directory`, or `[supervisord] directory`, or else the main file's
/// directory, kept as the `$(here)` reference so that the converted file
/// means it wherever the two are kept together.
fn read_directory(each: Values<'_>, daemon: &Daemon, report: &mut Report) -> (String, Origin) {
    let sec = each.sec;
    each.text(report, "directory")
        .map(|d| (d, sec.origin("directory")))
        .or_else(|| {
            daemon
                .directory
                .as_ref()
                .map(|(d, o)| (d.replace("$(", "$$("), o.clone()))
        })
        .unwrap_or_else(|| ("$(here)".to_owned(), sec.header_origin()))
}

/// Writes a program read without errors as `[watchers.NAME]`.
fn write_program(
    sec: Sec<'_>,
    (name, group, fcgi): (&str, &str, bool),
    program: &Program,
    out: &mut Emitter,
) {
    let mut w = Writer::new(sec, out, "supervisord's default");
    w.begin(&["watchers", name]);
    if let Some(command) = &program.command {
        w.entry("cmd", &emit::string(command), "command");
    }
    if let Some(process_name) = &program.process_name {
        w.setting("process_name", &emit::string(process_name), "process_name");
    }
    if program.numprocs != 1 {
        w.entry("numprocesses", &program.numprocs.to_string(), "numprocs");
    }
    let (dir, origin) = &program.directory;
    w.entry_at("working_dir", &emit::string(dir), origin.clone());
    if let Some((user, origin)) = &program.user {
        w.entry_at("user", &emit::string(user), origin.clone());
    }
    if let Some((mask, origin)) = &program.umask {
        w.entry_at("umask", &emit::string(mask), origin.clone());
    }
    write_policy(&mut w, &program.policy);
    // supervisord children inherit its environment.
    w.header_entry("copy_env", "true");
    let mut env = program.env.clone();
    env.push(("SUPERVISOR_ENABLED".into(), "1".into()));
    if let Some(process_name) = &program.process_name {
        env.push(("SUPERVISOR_PROCESS_NAME".into(), process_name.clone()));
    }
    env.push(("SUPERVISOR_GROUP_NAME".into(), group.replace("$(", "$$(")));
    w.entry("env", &emit::table_of_strings(&env), "environment");
    if let Some(stdout) = &program.stdout {
        w.entry("stdout", stdout, "stdout_logfile");
    }
    if let Some(stderr) = &program.stderr {
        let key = if program.redirect_stderr {
            "redirect_stderr"
        } else {
            "stderr_logfile"
        };
        w.entry("stderr", stderr, key);
    }
    if fcgi {
        // supervisord gives an fcgi-program its socket on fd 0.
        w.header_entry("stdin_socket", &emit::string(name));
    }
    w.end();
}

/// The policy's settings, supervisord's defaults marked.
fn write_policy(w: &mut Writer<'_, '_>, policy: &Policy) {
    w.setting("autostart", &policy.autostart.to_string(), "autostart");
    w.setting("restart", &emit::string(policy.restart), "autorestart");
    let codes: Vec<String> = policy.exit_codes.iter().map(ToString::to_string).collect();
    w.setting(
        "exit_codes",
        &format!("[{}]", codes.join(", ")),
        "exitcodes",
    );
    let secs = emit::string(&format!("{}s", policy.start_secs));
    w.setting("start_secs", &secs, "startsecs");
    let retries = policy.start_retries.to_string();
    w.setting("start_retries", &retries, "startretries");
    w.setting(
        "stop_signal",
        &emit::string(&policy.stop_signal),
        "stopsignal",
    );
    let timeout = emit::string(&format!("{}s", policy.stop_timeout));
    w.setting("stop_timeout", &timeout, "stopwaitsecs");
    if let Some(group_wide) = policy.stop_group {
        let key = if w.has("killasgroup") {
            "killasgroup"
        } else {
            "stopasgroup"
        };
        w.entry("stop_group", &group_wide.to_string(), key);
    }
    w.setting("priority", &policy.priority.to_string(), "priority");
}

/// What supervisord's syslog output gets here.
const SYSLOG_UNSUPPORTED: &str =
    "syslog output is not supported yet; log to a file, or use echo = true with journald";

/// A stream's sink as TOML: `"null"`, or a table with the file (absent for
/// AUTO: ringmaster's default name under logs_dir) and rotation. `each`
/// expands the file name as a template, `each_text` the sizes as text.
fn sink(
    each: Values<'_>,
    each_text: Values<'_>,
    stream: &str,
    report: &mut Report,
) -> Option<String> {
    let file_key = format!("{stream}_logfile");
    let file = match each.sec.get(&file_key) {
        None => None,
        Some(entry) => match entry.value.trim().to_ascii_lowercase().as_str() {
            "auto" => None,
            "none" | "off" => return Some(emit::string("null")),
            "syslog" => {
                each.error(report, &file_key, SYSLOG_UNSUPPORTED);
                return None;
            }
            _ => Some(each.text(report, &file_key)?),
        },
    };
    let max_key = format!("{stream}_logfile_maxbytes");
    let max_bytes = match each_text.text(report, &max_key) {
        None if each.has(&max_key) => return None,
        None => 50 << 20,
        Some(text) => match byte_size(&text) {
            Ok(n) => n,
            Err(message) => {
                each.error(report, &max_key, message);
                return None;
            }
        },
    };
    let backups_key = format!("{stream}_logfile_backups");
    let backups = if each.has(&backups_key) {
        each_text.parsed::<u32>(report, &backups_key, "a number of backups")?
    } else {
        10
    };
    let mut items = Vec::new();
    if let Some(file) = file {
        items.push(format!("file = {}", emit::string(&file)));
    }
    if max_bytes > 0 {
        items.push(format!(
            "max_size = {}",
            emit::string(&size_text(max_bytes))
        ));
        items.push(format!("backups = {backups}"));
    }
    if items.is_empty() {
        // AUTO without rotation: ringmaster's default file.
        return None;
    }
    Some(format!("{{ {} }}", items.join(", ")))
}

/// supervisord's byte_size: an integer with an optional KB, MB or GB.
fn byte_size(value: &str) -> Result<u64, String> {
    let lower = value.trim().to_ascii_lowercase();
    let (digits, multiplier) = match lower.len().checked_sub(2).map(|i| lower.split_at(i)) {
        Some((digits, "kb")) => (digits, 1u64 << 10),
        Some((digits, "mb")) => (digits, 1 << 20),
        Some((digits, "gb")) => (digits, 1 << 30),
        _ => (lower.as_str(), 1),
    };
    digits
        .trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(multiplier))
        .ok_or_else(|| {
            format!("'{value}' is not a size (an integer, optionally with KB, MB or GB)")
        })
}

fn size_text(bytes: u64) -> String {
    if bytes % (1 << 30) == 0 {
        format!("{}GB", bytes >> 30)
    } else if bytes % (1 << 20) == 0 {
        format!("{}MB", bytes >> 20)
    } else if bytes % (1 << 10) == 0 {
        format!("{}KB", bytes >> 10)
    } else {
        format!("{bytes}B")
    }
}

fn log_level(value: &str) -> Option<&'static str> {
    Some(match value.trim().to_ascii_lowercase().as_str() {
        "critical" | "error" => "error",
        "warn" | "warning" => "warn",
        "info" => "info",
        "debug" => "debug",
        "trace" | "blather" => "trace",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use crate::ini::fixtures::{bad_fixtures, dir, round_trip, warn_fixtures};

    fn fixtures() -> PathBuf {
        dir("supervisor")
    }

    #[test]
    fn every_fixture_converts_and_round_trips() {
        for name in ["full.conf", "minimal.conf", "percent.conf"] {
            round_trip(&fixtures().join(name), crate::Dialect::Supervisord);
        }
    }

    #[test]
    fn bad_fixtures_name_file_line_and_key() {
        bad_fixtures(&fixtures().join("bad"), 19);
    }

    /// Issue 14: what supervisord accepts in silence is read, and said.
    #[test]
    fn warn_fixtures_read_as_supervisord_reads_them() {
        let read = warn_fixtures(&fixtures().join("warn"), 8);
        let command = |name: &str| {
            let config = &read.iter().find(|(n, _)| n == name).unwrap().1;
            config.watchers[0].command.argv[0].render(1)
        };
        // The later value counts, as in supervisord (strict=False).
        assert_eq!(command("duplicate-key.conf"), "false");
        assert_eq!(command("duplicate-section.conf"), "false");
        assert_eq!(command("no-supervisord.conf"), "true");
        // Given again in an included file: merged, the later value with its
        // own file's %(here)s, the first file's other keys kept.
        let config = &read
            .iter()
            .find(|(n, _)| n == "include-again.conf")
            .unwrap()
            .1;
        let web = config.watchers.iter().find(|w| w.name == "web").unwrap();
        let included = fixtures().join("warn/included");
        assert_eq!(
            web.command.argv[0].render(1),
            format!("{}/run-later", included.display())
        );
        assert_eq!(web.start_secs, std::time::Duration::ZERO);
        assert!(config.watchers.iter().any(|w| w.name == "other"));
    }

    /// Issue 14: %(here)s stays `$(here)` in --convert's output, so the
    /// converted file kept next to the original means the same wherever
    /// the two are moved; in a command only when the directory cannot
    /// change how the command splits.
    #[test]
    fn here_stays_a_reference_in_the_converted_file() {
        for (dir_name, command) in [("plain", "$(here)/run.sh"), ("with space", "{dir}/run.sh")] {
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join(dir_name);
            std::fs::create_dir(&dir).unwrap();
            let path = dir.join("app.conf");
            std::fs::write(
                &path,
                "[supervisord]\nchildlogdir=%(here)s/logs\n[unix_http_server]\nfile=%(here)s/s.sock\n\
                 [program:x]\ncommand=%(here)s/run.sh\nstdout_logfile=%(here)s/x.log\n",
            )
            .unwrap();
            let toml = crate::read(&path, None).unwrap().toml;
            for want in [
                "socket = \"$(here)/s.sock\"".to_owned(),
                "logs_dir = \"$(here)/logs\"".to_owned(),
                "file = \"$(here)/x.log\"".to_owned(),
                format!(
                    "cmd = \"{}\"",
                    command.replace("{dir}", &dir.display().to_string())
                ),
            ] {
                assert!(toml.contains(&want), "{dir_name}: no {want} in\n{toml}");
            }
        }
    }

    #[test]
    fn supervisors_own_fixtures_read() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/.venv/lib");
        let Some(fixtures) = std::fs::read_dir(&root)
            .ok()
            .and_then(|mut dirs| dirs.next())
            .and_then(Result::ok)
            .map(|python| {
                python
                    .path()
                    .join("site-packages/supervisor/tests/fixtures")
            })
            .filter(|dir| dir.is_dir())
        else {
            eprintln!("skipped: no supervisor package (run `python3 bench/run.py --setup`)");
            return;
        };
        let mut read = 0;
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&fixtures)
            .unwrap()
            .chain(std::fs::read_dir(fixtures.join("example")).unwrap())
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "conf"))
            .collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let result = crate::read(&path, Some(crate::Dialect::Supervisord));
            result.unwrap_or_else(|e| panic!("{name}: {e}"));
            round_trip(&path, crate::Dialect::Supervisord);
            read += 1;
        }
        assert!(read >= 26, "only {read} fixtures read");
        // include.conf: [supervisord] again in the included file, merged,
        // its %(here)s the included file's directory (supervisord's
        // expand_here after each file).
        let loaded = crate::read(&fixtures.join("include.conf"), None).unwrap();
        assert_eq!(
            loaded.config.daemon.logs_dir,
            fixtures.join("example"),
            "{}",
            loaded.toml
        );
        let merged = loaded
            .warnings
            .iter()
            .find(|w| w.message.contains("merged"))
            .unwrap();
        assert_eq!(merged.location.file, fixtures.join("example/included.conf"));
        // issue-986: %% in a command is a literal %.
        let loaded = crate::read(&fixtures.join("issue-986.conf"), None).unwrap();
        let argv: Vec<String> = loaded.config.watchers[0]
            .command
            .argv
            .iter()
            .map(|t| t.render(1))
            .collect();
        assert!(argv.iter().any(|a| a.contains("%h")), "{argv:?}");
    }

    #[test]
    fn the_full_fixture_means_what_supervisord_means() {
        let loaded = crate::read(&fixtures().join("full.conf"), None).unwrap();
        let cat = loaded
            .config
            .watchers
            .iter()
            .find(|w| w.name == "cat")
            .unwrap();
        assert_eq!(cat.numprocesses, 3);
        let argv: Vec<String> = cat.command.argv.iter().map(|t| t.render(1)).collect();
        let host = nix::unistd::gethostname().unwrap().into_string().unwrap();
        assert_eq!(
            argv,
            [
                "/bin/cat", "--name", "cat", "--group", "cat", "--of", "3", "--num", "10",
                "--host", &host, "--pct", "100%"
            ]
        );
        assert_eq!(cat.command.argv[8].render(3), "12");
        let env: std::collections::BTreeMap<String, String> = cat
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.render(2)))
            .collect();
        assert_eq!(env["B"], "11");
        assert_eq!(env["KEY2"], "value, 2");
        assert_eq!(env["SUPERVISOR_PROCESS_NAME"], "cat_11");
        assert_eq!(env["SUPERVISOR_GROUP_NAME"], "cat");
        assert_eq!(env["SUPERVISOR_ENABLED"], "1");
        let web = loaded
            .config
            .watchers
            .iter()
            .find(|w| w.name == "web")
            .unwrap();
        let web_env: Vec<(String, String)> = web
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.render(1)))
            .collect();
        assert!(web_env.contains(&("SUPERVISOR_GROUP_NAME".into(), "site".into())));
        assert_eq!(loaded.config.alias(cat, 1).as_deref(), Some("cat:cat_10"));
        assert_eq!(loaded.config.alias(web, 1).as_deref(), Some("site:web"));
        // [inet_http_server] serves supervisord's XML-RPC over TCP.
        let xmlrpc = loaded.config.daemon.xmlrpc.as_ref().unwrap();
        assert_eq!(xmlrpc.address.to_string(), "127.0.0.1:9001");
        assert!(xmlrpc.auth.is_none());
        let warned: Vec<String> = loaded.warnings.iter().map(|w| w.key.clone()).collect();
        for key in [
            "supervisord.logfile",
            "[rpcinterface:supervisor]",
            "[supervisorctl]",
            "[eventlistener:memmon]",
            "program:cat.stdout_capture_maxbytes",
            "unix_http_server.username",
        ] {
            assert!(
                warned.iter().any(|w| w == key),
                "no warning for {key}: {warned:?}"
            );
        }
    }
}
