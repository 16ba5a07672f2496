//! Reading one INI section, the same way in both dialects: each kind of
//! section has one table of its keys, every value is read through one
//! [`Values`] (expanded as the dialect expands, then parsed, with one
//! error style naming file:line:section.key), and every setting is written
//! through one [`Writer`] that marks the original's defaults.

use std::path::Path;
use std::str::FromStr;

use ringmaster_protocol::signals;

use super::emit::Emitter;
use super::{Origin, Report, Sec, values};

/// How a dialect treats the keys of one kind of section.
pub(crate) struct KeyTable {
    /// The original program, which ignores unknown keys: `supervisord`.
    pub original: &'static str,
    /// Keys translated into the model.
    pub known: &'static [&'static str],
    /// Keys the original honours that mean nothing here, with why:
    /// a warning each, then ignored.
    pub ignored: &'static [(&'static str, &'static str)],
    /// Keys that need what ringmaster does not have yet, with what to do
    /// instead: an error each (running without them would not be the
    /// program the file describes).
    pub unsupported: &'static [(&'static str, &'static str)],
}

impl KeyTable {
    /// Says what is odd about each key of `sec`: ignored keys and unknown
    /// ones (with did-you-mean among `known`, `ignored` and `also`) are
    /// warnings, unsupported ones errors. Keys `special` claims are the
    /// caller's (a dialect's key families such as `stdout_stream.*`).
    pub(crate) fn check(
        &self,
        sec: Sec<'_>,
        report: &mut Report,
        also: &[&str],
        special: impl Fn(&str) -> bool,
    ) {
        for entry in &sec.section.entries {
            let key = entry.key.as_str();
            let file = sec.file_of(key);
            if special(key) || self.known.contains(&key) {
                continue;
            }
            if let Some((_, why)) = self.ignored.iter().find(|(k, _)| *k == key) {
                report.warn(file, entry.line, sec.name(key), format!("ignored: {why}"));
            } else if let Some((_, why)) = self.unsupported.iter().find(|(k, _)| *k == key) {
                report.error(file, entry.line, sec.name(key), *why);
            } else {
                let known: Vec<&str> = self
                    .known
                    .iter()
                    .copied()
                    .chain(self.ignored.iter().map(|(k, _)| *k))
                    .chain(also.iter().copied())
                    .collect();
                report.unknown_key(file, &sec.section.name, entry, &known, self.original);
            }
        }
    }
}

/// A value expander: the dialect's `%(...)s` or `$(circus...)`, for a
/// value written in the given file (`%(here)s` is that file's directory).
pub(crate) type Expand<'e> = dyn Fn(&str, &Path) -> Result<String, String> + 'e;

/// The values of one section, expanded by one expander.
#[derive(Clone, Copy)]
pub(crate) struct Values<'a> {
    /// The section read.
    pub sec: Sec<'a>,
    expand: &'a Expand<'a>,
}

impl<'a> Values<'a> {
    /// `sec`'s values, expanded by `expand`.
    pub(crate) fn new(sec: Sec<'a>, expand: &'a Expand<'a>) -> Self {
        Self { sec, expand }
    }

    /// Whether `key` is set.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.sec.get(key).is_some()
    }

    /// An error about `key` (at its line, or the header's when unset).
    pub(crate) fn error(&self, report: &mut Report, key: &str, message: impl Into<String>) {
        let sec = self.sec;
        report.error(sec.file_of(key), sec.line(key), sec.name(key), message);
    }

    /// A warning about `key` (at its line, or the header's when unset).
    pub(crate) fn warn(&self, report: &mut Report, key: &str, message: impl Into<String>) {
        let sec = self.sec;
        report.warn(sec.file_of(key), sec.line(key), sec.name(key), message);
    }

    /// An error about the section as a whole, at its header.
    pub(crate) fn section_error(&self, report: &mut Report, message: impl Into<String>) {
        let sec = self.sec;
        report.error(
            sec.file,
            sec.section.line,
            format!("[{}]", sec.section.name),
            message,
        );
    }

    /// `key` expanded; `None` when unset or when the expansion failed
    /// (reported).
    pub(crate) fn text(&self, report: &mut Report, key: &str) -> Option<String> {
        let entry = self.sec.get(key)?;
        match (self.expand)(&entry.value, self.sec.file_of(key)) {
            Ok(value) => Some(value),
            Err(message) => {
                self.error(report, key, message);
                None
            }
        }
    }

    /// `key` expanded and parsed as `T` (`what` names it in the error).
    pub(crate) fn parsed<T: FromStr>(
        &self,
        report: &mut Report,
        key: &str,
        what: &str,
    ) -> Option<T> {
        let value = self.text(report, key)?;
        let parsed = value.trim().parse::<T>().ok();
        if parsed.is_none() {
            self.error(report, key, format!("'{}' is not {what}", value.trim()));
        }
        parsed
    }

    /// An integer, `default` when unset or wrong (reported).
    pub(crate) fn int(&self, report: &mut Report, key: &str, default: i64) -> i64 {
        self.parsed(report, key, "an integer").unwrap_or(default)
    }

    /// A number of seconds or the like, `default` when unset or wrong.
    pub(crate) fn number(&self, report: &mut Report, key: &str, default: f64) -> f64 {
        self.parsed(report, key, "a number").unwrap_or(default)
    }

    /// A boolean as both originals take it, `default` when unset or
    /// wrong (reported).
    pub(crate) fn boolean(&self, report: &mut Report, key: &str, default: bool) -> bool {
        let Some(value) = self.text(report, key) else {
            return default;
        };
        values::boolean(&value).unwrap_or_else(|| {
            self.error(report, key, values::not_a_boolean(&value));
            default
        })
    }

    /// An octal mode or umask, three digits or more (`what`: "umask").
    pub(crate) fn octal(&self, report: &mut Report, key: &str, what: &str) -> Option<String> {
        let value = self.text(report, key)?;
        let mode = values::octal(&value);
        if mode.is_none() {
            self.error(
                report,
                key,
                format!("'{}' is not an octal {what}", value.trim()),
            );
        }
        mode.map(|mode| format!("{mode:03o}"))
    }

    /// A signal by name (`TERM`, `SIGTERM`) or by a number that has one,
    /// as its name without `SIG`; `default` when unset or wrong.
    pub(crate) fn signal(&self, report: &mut Report, key: &str, default: &str) -> String {
        let Some(value) = self.text(report, key) else {
            return default.to_owned();
        };
        // A number must be one with a name (both originals check it is a
        // signal).
        let name = signals::parse(&value)
            .map(signals::name)
            .filter(|name| name.parse::<i32>().is_err());
        if let Some(name) = name {
            name.trim_start_matches("SIG").to_owned()
        } else {
            self.error(
                report,
                key,
                format!("'{}' is not a signal name or number", value.trim()),
            );
            default.to_owned()
        }
    }
}

/// Writes one section's translation, pointing each line at the key it
/// came from, or at the header for what the file left to the default.
pub(crate) struct Writer<'a, 'o> {
    sec: Sec<'a>,
    out: &'o mut Emitter,
    /// What marks a default: "supervisord's default".
    default_note: &'static str,
}

impl<'a, 'o> Writer<'a, 'o> {
    /// A writer of `sec`'s translation into `out`.
    pub(crate) fn new(sec: Sec<'a>, out: &'o mut Emitter, default_note: &'static str) -> Self {
        Self {
            sec,
            out,
            default_note,
        }
    }

    /// Where `key` was set, or the header when the file left it out.
    pub(crate) fn origin(&self, key: &str) -> Origin {
        if self.sec.get(key).is_some() {
            self.sec.origin(key)
        } else {
            self.sec.header_origin()
        }
    }

    /// The comment naming the section and the table header.
    pub(crate) fn begin(&mut self, table: &[&str]) {
        let sec = self.sec;
        self.out.comment(&format!(
            "[{}] from {}:{}",
            sec.section.name,
            sec.file.display(),
            sec.section.line
        ));
        self.out.header(table, Some(sec.header_origin()));
    }

    /// `name = value` (TOML), from `key`.
    pub(crate) fn entry(&mut self, name: &str, value: &str, key: &str) {
        let origin = self.origin(key);
        self.out.entry(name, value, Some(origin));
    }

    /// `name = value` from `origin`.
    pub(crate) fn entry_at(&mut self, name: &str, value: &str, origin: Origin) {
        self.out.entry(name, value, Some(origin));
    }

    /// `name = value` from `key`, marked as the original's default when
    /// the file does not set `key`.
    pub(crate) fn setting(&mut self, name: &str, value: &str, key: &str) {
        self.entry(name, value, key);
        if self.sec.get(key).is_none() {
            self.out.note_last(self.default_note);
        }
    }

    /// `name = value` from the header: what the original implies.
    pub(crate) fn header_entry(&mut self, name: &str, value: &str) {
        let origin = self.sec.header_origin();
        self.out.entry(name, value, Some(origin));
    }

    /// `name = value` from the header, with `note` at the end.
    pub(crate) fn implied(&mut self, name: &str, value: &str, note: &str) {
        self.header_entry(name, value);
        self.out.note_last(note);
    }

    /// Ends the last line with `# note`.
    pub(crate) fn note(&mut self, note: &str) {
        self.out.note_last(note);
    }

    /// Whether the file sets `key`.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.sec.get(key).is_some()
    }

    /// The blank line that ends the table.
    pub(crate) fn end(self) {
        self.out.blank();
    }
}
