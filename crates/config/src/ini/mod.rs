//! The INI dialects (`supervisord.conf`, `circus.ini`).
//!
//! Theory of operation: a dialect's reader does not build the model
//! itself. It translates the INI files into native TOML text, line by line,
//! remembering for each TOML line the INI file, line and key it came from;
//! that text goes through the TOML reader like any other file, and every
//! location in the result (errors, and the locations kept in the model for
//! later errors) is mapped back to the INI line. So both dialects mean
//! exactly what the same TOML means, `--convert` prints that TOML, and
//! feeding it back in yields the same model by construction. Problems only
//! the dialect can see (a bad boolean, `%(` without `)`, an unknown key)
//! are reported by the dialect's reader against the INI line directly.

pub(crate) mod circus;
mod emit;
mod files;
mod section;
pub(crate) mod supervisor;
mod values;

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ConfigErrors, ConfigWarning, Location};
use crate::model::Config;

/// Where a line of generated TOML came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The INI file and line.
    pub location: Location,
    /// The INI key as written there, with its section: `program:web.startsecs`.
    pub key: String,
}

/// An INI configuration translated to TOML.
#[derive(Debug, Default)]
pub(crate) struct Converted {
    /// The TOML text, comments included.
    pub toml: String,
    /// The origin of each line of `toml` (index = line - 1).
    pub origins: Vec<Option<Origin>>,
    /// Keys and sections that mean nothing here, said once each.
    pub warnings: Vec<ConfigWarning>,
}

impl Converted {
    /// Reads the TOML as if it were the file at `main` (the INI file it came
    /// from, whose directory anchors relative paths) and maps every location
    /// back to the INI files.
    /// `logs_dir` as for [`crate::toml_reader::load`].
    /// `system_checks` as for [`crate::check`].
    pub(crate) fn load(
        &self,
        main: &Path,
        logs_dir: Option<&Path>,
        system_checks: bool,
    ) -> Result<Config, ConfigErrors> {
        match crate::toml_reader::load_text(main, &self.toml, logs_dir, system_checks) {
            Ok(mut config) => {
                if let Some(location) = config.daemon.socket_group_location.as_mut() {
                    *location = self.map_location(location, main);
                }
                for watcher in &mut config.watchers {
                    for location in watcher.locations.values_mut() {
                        *location = self.map_location(location, main);
                    }
                }
                for note in &mut config.notes {
                    note.location = self.map_location(&note.location, main);
                }
                for warning in &mut config.warnings {
                    if let Some(origin) = self.origin(&warning.location) {
                        warning.key.clone_from(&origin.key);
                    }
                    warning.location = self.map_location(&warning.location, main);
                }
                Ok(config)
            }
            Err(ConfigErrors(errors)) => Err(ConfigErrors(
                errors
                    .into_iter()
                    .map(|e| self.map_error(e, main))
                    .collect(),
            )),
        }
    }

    fn origin(&self, location: &Location) -> Option<&Origin> {
        location
            .line
            .checked_sub(1)
            .and_then(|index| self.origins.get(index))
            .and_then(Option::as_ref)
    }

    fn map_location(&self, location: &Location, main: &Path) -> Location {
        self.origin(location)
            .map_or_else(|| Location::file(main), |o| o.location.clone())
    }

    fn map_error(&self, error: ConfigError, main: &Path) -> ConfigError {
        match error {
            ConfigError::Invalid {
                location,
                key,
                message,
            } => match self.origin(&location) {
                Some(origin) => ConfigError::Invalid {
                    location: origin.location.clone(),
                    key: origin.key.clone(),
                    message: format!("{message} (as ringmaster's {key})"),
                },
                None => ConfigError::Invalid {
                    location: Location::file(main),
                    key,
                    message,
                },
            },
            ConfigError::Syntax { location, message } => ConfigError::Syntax {
                location: self.map_location(&location, main),
                message: format!("{message} (in the TOML translation; please report this)"),
            },
            other => other,
        }
    }
}

/// The comment that opens a translation: where it comes from, that it is
/// one file holding the included ones too (their includes are not kept),
/// and where to keep it.
pub(crate) fn emit_preamble(out: &mut emit::Emitter, files: &[files::IniFile]) {
    let main = files[0].path.display();
    out.comment(&format!(
        "Translated by `ringmasterd --convert` from {main}."
    ));
    if files.len() > 1 {
        out.comment("One merged file: it also holds what the original includes, translated here:");
        for file in &files[1..] {
            out.comment(&format!("  {}", file.path.display()));
        }
    }
    out.comment(
        "Relative paths are relative to this file's directory: keep it next to the original.",
    );
    out.blank();
}

/// Reads `path` in `dialect`: the model, the warnings and the TOML text
/// (`logs_dir` as for [`crate::toml_reader::load`]).
pub(crate) fn read(
    path: &Path,
    dialect: crate::Dialect,
    logs_dir: Option<&Path>,
    system_checks: bool,
) -> Result<(Config, Converted), ConfigErrors> {
    let converted = match dialect {
        crate::Dialect::Supervisord => supervisor::convert(path)?,
        crate::Dialect::Circus => circus::convert(path)?,
        crate::Dialect::Toml => unreachable_toml(path)?,
    };
    let mut config = converted.load(path, logs_dir, system_checks)?;
    config.dialect = dialect;
    Ok((config, converted))
}

fn unreachable_toml(path: &Path) -> Result<Converted, ConfigErrors> {
    Err(ConfigErrors(vec![ConfigError::File {
        path: path.to_path_buf(),
        message: "native TOML is not an INI dialect".into(),
    }]))
}

/// Keys people write that mean something in the other dialect or in an
/// older version, with what to write instead (checked before did-you-mean).
const CONFUSIONS: &[(&str, &str, &str)] = &[
    ("circusd", "user", "Circus calls it uid"),
    ("circusd", "group", "Circus calls it gid"),
    ("circusd", "directory", "Circus calls it working_dir"),
    ("circusd", "numprocs", "Circus calls it numprocesses"),
    ("circusd", "command", "Circus calls it cmd"),
    ("supervisord", "uid", "supervisord calls it user"),
    (
        "supervisord",
        "working_dir",
        "supervisord calls it directory",
    ),
    (
        "supervisord",
        "numprocesses",
        "supervisord calls it numprocs",
    ),
    ("supervisord", "cmd", "supervisord calls it command"),
    (
        "supervisord",
        "http_port",
        "a supervisord 2.x key: [unix_http_server] file, or [inet_http_server] port",
    ),
    (
        "supervisord",
        "http_username",
        "a supervisord 2.x key: [unix_http_server] username",
    ),
    (
        "supervisord",
        "http_password",
        "a supervisord 2.x key: [unix_http_server] password",
    ),
];

/// A section with the file it came from, as both dialects read it.
#[derive(Clone, Copy)]
pub(crate) struct Sec<'a> {
    /// The file of its header (its first definition).
    pub file: &'a Path,
    /// The section (several definitions merged, for one given again in
    /// another file).
    pub section: &'a ringmaster_ini::Section,
    /// `[DEFAULT]`, whose keys every section inherits (supervisord).
    pub defaults: Option<&'a ringmaster_ini::Section>,
    /// For a merged section, the file each key that came from a later
    /// definition is in (the others are in `file`).
    pub key_files: &'a [(String, &'a Path)],
}

impl<'a> Sec<'a> {
    /// The entry for `key`, or `[DEFAULT]`'s.
    pub(crate) fn get(&self, key: &str) -> Option<&'a ringmaster_ini::Entry> {
        self.section
            .get(key)
            .or_else(|| self.defaults.and_then(|d| d.get(key)))
    }

    /// The file `key` was set in (its section's, unless it came from a
    /// definition in another file).
    pub(crate) fn file_of(&self, key: &str) -> &'a Path {
        self.key_files
            .iter()
            .find(|(k, _)| k == key)
            .map_or(self.file, |(_, file)| file)
    }

    /// `section.key`, as messages name it.
    pub(crate) fn name(&self, key: &str) -> String {
        format!("{}.{key}", self.section.name)
    }

    /// Where `key` was set (the header when it was not).
    pub(crate) fn origin(&self, key: &str) -> Origin {
        let line = self.get(key).map_or(self.section.line, |e| e.line);
        Origin {
            location: at(self.file_of(key), line),
            key: self.name(key),
        }
    }

    /// The section's header line.
    pub(crate) fn header_origin(&self) -> Origin {
        Origin {
            location: at(self.file, self.section.line),
            key: format!("[{}]", self.section.name),
        }
    }

    /// The line of `key` (the header's when it was not set).
    pub(crate) fn line(&self, key: &str) -> usize {
        self.get(key).map_or(self.section.line, |e| e.line)
    }
}

/// Errors and warnings collected while translating.
#[derive(Default)]
pub(crate) struct Report {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<ConfigWarning>,
}

impl Report {
    /// An error about `key` at `file:line`.
    pub(crate) fn error(
        &mut self,
        file: &Path,
        line: usize,
        key: String,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError::Invalid {
            location: at(file, line),
            key,
            message: message.into(),
        });
    }

    /// An unknown key of `[section]`, with the nearest known one: the
    /// `original` program (supervisord, circusd) ignores such a key without
    /// a word, so it is a warning here, and ignored too.
    pub(crate) fn unknown_key(
        &mut self,
        file: &Path,
        section: &str,
        entry: &ringmaster_ini::Entry,
        known: &[&str],
        original: &str,
    ) {
        // Known confusions first: what a name means elsewhere.
        let hint = CONFUSIONS
            .iter()
            .find(|(program, key, _)| *program == original && *key == entry.key)
            .map(|(_, _, hint)| format!(" ({hint})"))
            .or_else(|| {
                ringmaster_protocol::did_you_mean(&entry.key, known.iter().copied())
                    .map(|s| format!(" (did you mean '{s}'?)"))
            })
            .unwrap_or_default();
        self.warn(
            file,
            entry.line,
            format!("{section}.{}", entry.key),
            format!("unknown key{hint}: ignored, as {original} ignores it"),
        );
    }

    /// Puts the warnings in reading order: by file (as `files` lists them),
    /// then line, those on one line in the order they were said.
    pub(crate) fn sort_warnings(&mut self, files: &[files::IniFile]) {
        let index = |path: &Path| files.iter().position(|f| f.path == path);
        self.warnings
            .sort_by_key(|w| (index(&w.location.file), w.location.line));
    }

    /// A section of an unknown `kind` (`programm` of `[programm:x]`), with
    /// the nearest of `kinds` (`program:NAME`): ignored, as `original`
    /// ignores it, and said.
    pub(crate) fn unknown_section(
        &mut self,
        sec: Sec<'_>,
        kind: &str,
        kinds: &[&str],
        original: &str,
    ) {
        let kind_of = |k: &str| k.split_once(':').map_or(k, |(kind, _)| kind).to_owned();
        let names: Vec<String> = kinds.iter().map(|k| kind_of(k)).collect();
        let hint = ringmaster_protocol::did_you_mean(kind, names.iter().map(String::as_str))
            .and_then(|k| kinds.iter().find(|s| kind_of(s) == k))
            .map(|s| format!(" (did you mean [{s}]?)"))
            .unwrap_or_default();
        self.warn(
            sec.file,
            sec.section.line,
            format!("[{}]", sec.section.name),
            format!("unknown section{hint}: ignored, as {original} ignores it"),
        );
    }

    /// A warning about `key` at `file:line`.
    pub(crate) fn warn(
        &mut self,
        file: &Path,
        line: usize,
        key: String,
        message: impl Into<String>,
    ) {
        self.warnings.push(ConfigWarning {
            location: at(file, line),
            key,
            message: message.into(),
        });
    }
}

/// A section as the original's parser has it once every file is read.
pub(crate) struct Merged<'a> {
    /// The file of its first definition.
    pub file: &'a Path,
    /// The section, merged when it was given again in another file.
    pub section: std::borrow::Cow<'a, ringmaster_ini::Section>,
    /// For each key set by a later definition, its file.
    pub key_files: Vec<(String, &'a Path)>,
}

impl<'a> Merged<'a> {
    /// The section to translate.
    pub(crate) fn sec(&'a self, defaults: Option<&'a ringmaster_ini::Section>) -> Sec<'a> {
        Sec {
            file: self.file,
            section: &self.section,
            defaults,
            key_files: &self.key_files,
        }
    }
}

/// How a key given again in a later file counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Later {
    /// supervisord (RawConfigParser, strict=False): the later value, its
    /// `%(here)s` its own file's directory (`Sec::file_of`), as
    /// supervisord's `expand_here` makes it after reading each file.
    Wins,
    /// Circus (StrictConfigParser): the first value.
    Loses,
}

/// Every section of `files` in reading order, each once: a section given
/// again in another file is merged into its first definition, as the
/// original's parser (which reads every file into one) does, with a
/// warning naming both. What each file's parser found odd (a key or
/// section given twice in it) is said too. `[DEFAULT]` is left out when
/// `skip_default` (the caller reads it apart).
pub(crate) fn merged_sections<'a>(
    files: &'a [files::IniFile],
    skip_default: bool,
    later: Later,
    report: &mut Report,
) -> Vec<Merged<'a>> {
    let mut merged: Vec<Merged<'a>> = Vec::new();
    for file in files {
        for said in &file.doc.warnings {
            report.warn(
                &file.path,
                said.line,
                said.key.clone().unwrap_or_default(),
                said.message.clone(),
            );
        }
        for section in &file.doc.sections {
            if skip_default && section.name == "DEFAULT" {
                continue;
            }
            let Some(first) = merged.iter_mut().find(|m| m.section.name == section.name) else {
                merged.push(Merged {
                    file: &file.path,
                    section: std::borrow::Cow::Borrowed(section),
                    key_files: Vec::new(),
                });
                continue;
            };
            report.warn(
                &file.path,
                section.line,
                format!("[{}]", section.name),
                format!(
                    "section [{}] is given again (first at {}:{}): merged into it",
                    section.name,
                    first.file.display(),
                    first.section.line
                ),
            );
            merge_into(first, section, &file.path, later);
        }
    }
    merged
}

/// Adds `section`'s entries (from `file`) to `into`, as `later` says.
fn merge_into<'a>(
    into: &mut Merged<'a>,
    section: &ringmaster_ini::Section,
    file: &'a Path,
    later: Later,
) {
    for entry in &section.entries {
        let entries = &mut into.section.to_mut().entries;
        let existing = entries.iter().position(|e| e.key == entry.key);
        if existing.is_some() && later == Later::Loses {
            continue;
        }
        // The key's file is kept: its `%(here)s` is that file's directory,
        // as supervisord's `expand_here` makes it after reading each file.
        let entry = entry.clone();
        into.key_files.retain(|(k, _)| *k != entry.key);
        into.key_files.push((entry.key.clone(), file));
        match existing {
            Some(index) => entries[index] = entry,
            None => entries.push(entry),
        }
    }
}

/// A location in an INI file.
pub(crate) fn at(file: &Path, line: usize) -> Location {
    Location {
        file: file.to_path_buf(),
        line,
        column: 0,
    }
}

/// The directory of `file`, as text, for `%(here)s`.
pub(crate) fn dir_of(file: &Path) -> PathBuf {
    file.parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// What the dialects' tests share: reading fixtures and comparing models.
#[cfg(test)]
pub(crate) mod fixtures {
    use std::path::{Path, PathBuf};

    use crate::model::Config;

    /// `tests/fixtures/NAME` of the repository.
    pub(crate) fn dir(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures")
            .join(name)
    }

    /// The model without where things were written.
    pub(crate) fn without_locations(mut config: Config) -> Config {
        config.path = PathBuf::new();
        config.dialect = crate::Dialect::Toml;
        config.daemon.socket_group_location = None;
        let nowhere = crate::error::Location::file(Path::new("?"));
        if let Some(xmlrpc) = config.daemon.xmlrpc.as_mut() {
            xmlrpc.location = nowhere.clone();
        }
        if let Some(metrics) = config.daemon.metrics.as_mut() {
            metrics.location = nowhere;
        }
        for watcher in &mut config.watchers {
            watcher.locations.clear();
        }
        config
    }

    /// Reads `path` and writes its `--convert` TOML next to it; then moves
    /// both to another directory and reads each there, from a third
    /// working directory, in an environment where every variable has
    /// another value: both must give the same model. So the converted file
    /// keeps what the original leaves to the daemon's environment and to
    /// its own place (`%(ENV_X)s`, `%(here)s`, relative paths) as
    /// references, instead of what they were when it was converted.
    pub(crate) fn round_trip(original: &Path, dialect: crate::Dialect) {
        let converted_in = tempfile::tempdir().unwrap();
        copy_dir(original.parent().unwrap(), converted_in.path());
        let file_name = original.file_name().unwrap();
        let name = original.display();
        let path = converted_in.path().join(file_name);
        let loaded = crate::read(&path, None).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(loaded.dialect, dialect, "{name}");
        std::fs::write(converted_in.path().join("converted.toml"), &loaded.toml).unwrap();

        let moved_to = tempfile::tempdir().unwrap();
        copy_dir(converted_in.path(), moved_to.path());
        let working_dir = tempfile::tempdir().unwrap();
        let model = |file: &Path| model_elsewhere(&moved_to.path().join(file), working_dir.path());
        assert_eq!(
            model(Path::new("converted.toml")),
            model(Path::new(file_name)),
            "{name}, converted:\n{}",
            loaded.toml
        );
    }

    /// The model of `path` (without locations) as read by a copy of this
    /// test binary (see [`model_of_file`]) started in `working_dir`, with
    /// every environment variable given another value.
    fn model_elsewhere(path: &Path, working_dir: &Path) -> String {
        let other_env = std::env::vars().map(|(k, v)| {
            let v = if k.starts_with("RUST") || k.starts_with("CARGO") {
                v
            } else {
                format!("{v}-elsewhere")
            };
            (k, v)
        });
        let out = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "ini::fixtures::model_of_file", "--nocapture"])
            .env_clear()
            .envs(other_env)
            .env(MODEL_OF, path)
            .current_dir(working_dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let model = stdout
            .split_once("MODEL<<")
            .and_then(|(_, rest)| rest.split_once(">>MODEL"))
            .map(|(model, _)| model.to_owned());
        model.unwrap_or_else(|| {
            panic!(
                "{} read elsewhere:\n{stdout}\n{}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }

    /// The variable naming the file [`model_of_file`] reads.
    const MODEL_OF: &str = "RINGMASTER_TEST_MODEL_OF";

    /// Not a test of its own: the other half of [`model_elsewhere`], which
    /// runs this test binary again with only this test, in another
    /// directory and environment, so that no test changes this process's
    /// environment under the others. Without `RINGMASTER_TEST_MODEL_OF`
    /// there is nothing to do.
    #[test]
    fn model_of_file() {
        let Some(path) = std::env::var_os(MODEL_OF) else {
            return;
        };
        let path = Path::new(&path);
        let loaded = crate::read(path, None).unwrap_or_else(|e| panic!("{e}"));
        println!("MODEL<<{:#?}>>MODEL", without_locations(loaded.config));
    }

    fn copy_dir(from: &Path, to: &Path) {
        for entry in std::fs::read_dir(from).unwrap() {
            let entry = entry.unwrap();
            let target = to.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir(&target).unwrap();
                copy_dir(&entry.path(), &target);
            } else {
                std::fs::copy(entry.path(), &target).unwrap();
            }
        }
    }

    /// Every file in `dir` starts with `; warn: LINE: TEXT` lines and is
    /// read, with exactly those warnings (what the original accepts in
    /// silence is said here, not refused), and round-trips (see
    /// [`round_trip`]); returns the configurations.
    pub(crate) fn warn_fixtures(dir: &Path, at_least: usize) -> Vec<(String, crate::Config)> {
        let mut read = Vec::new();
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            // Subdirectories hold files the fixtures include.
            .filter(|p| p.is_file())
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path).unwrap();
            // `LINE: text` is about the fixture itself, `FILE:LINE: text`
            // about a file it includes; @DIR@ is the fixtures' directory.
            let here = dir.display().to_string();
            let mut want: Vec<String> = text
                .lines()
                .map_while(|l| l.strip_prefix("; warn: "))
                .map(|w| w.replace("@DIR@", &here))
                .map(|w| {
                    if w.starts_with(|c: char| c.is_ascii_digit()) {
                        format!("{}:{w}", path.display())
                    } else {
                        format!("{here}/{w}")
                    }
                })
                .collect();
            assert!(!want.is_empty(), "{}: no '; warn:' line", path.display());
            let loaded =
                crate::read(&path, None).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let mut got: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
            want.sort();
            got.sort();
            assert_eq!(got, want, "{}", path.display());
            round_trip(&path, loaded.dialect);
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            read.push((name, loaded.config));
        }
        assert!(
            read.len() >= at_least,
            "{} warn fixtures in {}",
            read.len(),
            dir.display()
        );
        read
    }

    /// Every file in `dir` starts with `; expect: LINE: TEXT` and fails
    /// with exactly that error (`LINE` 0: the file as a whole).
    pub(crate) fn bad_fixtures(dir: &Path, at_least: usize) {
        let mut seen = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
            let expect = text
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("; expect: "))
                .unwrap_or_else(|| panic!("{}: no '; expect:' line", path.display()));
            let (line, rest) = expect.split_once(": ").unwrap();
            let want = if line == "0" {
                format!("{}: {rest}", path.display())
            } else {
                format!("{}:{line}: {rest}", path.display())
            };
            let errors = crate::read(&path, None)
                .map(|_| ())
                .unwrap_err()
                .to_string();
            assert!(
                errors.contains(&want),
                "{}:\nwant {want}\ngot  {errors}",
                path.display()
            );
            seen += 1;
        }
        assert!(seen >= at_least, "{seen} bad fixtures in {}", dir.display());
    }
}
