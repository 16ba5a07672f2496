//! An INI reader that reads `supervisord.conf` and `circus.ini` the way
//! their own Python parsers do, and remembers the line of every section and
//! key so that every later error can name `FILE:LINE: key`.
//!
//! Theory of operation: each dialect is a line loop transcribed from the
//! parser its project uses, quirks included:
//!
//! - [`Dialect::Supervisor`]: Python 3's `RawConfigParser` as supervisord
//!   configures it (`inline_comment_prefixes = (';', '#')`). Full-line
//!   comments start with `;` or `#` after any indentation; an inline
//!   comment starts at a `;` or `#` preceded by whitespace (found the way
//!   CPython's loop finds it); a line indented deeper than its key's line
//!   continues the value, blank lines inside a value are kept, and the
//!   joined value loses trailing whitespace; keys are lowercased.
//! - [`Dialect::Circus`]: Circus's `StrictConfigParser` (a Python 2.7 era
//!   loop): comments only at column 0 (`#`, `;`, `rem`), a line starting
//!   with whitespace continues the value (blank ones are skipped), only the
//!   first `;` of a value can start a comment and only after whitespace, a
//!   value of `""` is empty, keys keep their case.
//!
//! A section or key defined twice means what it means to the original,
//! and is said (a [`Document::warnings`] entry naming both lines): a
//! section given again is merged into the first in both dialects; a key
//! given again replaces the earlier value in supervisord's parser
//! (`strict=False`), while Circus's keeps the first value, and its quirk
//! with it: the duplicate's continuation lines extend the first value.
//!
//! Interpolation (`%(here)s`, `$(circus.env.X)`) is not done here: the
//! [`percent`] module implements Python's `%` formatting for Supervisor's
//! expansions, applied per key by the dialect's reader in the config crate.

pub mod percent;
mod pyshlex;

pub use pyshlex::supervisor_env;

/// Which Python parser's rules to follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// supervisord's `UnhosedConfigParser` (a `RawConfigParser`).
    Supervisor,
    /// Circus's `StrictConfigParser`.
    Circus,
}

/// One `key = value` in a section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key as the dialect sees it (lowercased for Supervisor).
    pub key: String,
    /// The value with continuation lines joined by `\n`.
    pub value: String,
    /// 1-based line of the key.
    pub line: usize,
}

/// One `[section]` and its entries, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The text between the brackets, as written.
    pub name: String,
    /// 1-based line of the header.
    pub line: usize,
    /// The entries, in file order.
    pub entries: Vec<Entry>,
}

impl Section {
    /// The entry for `key`, if any.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

/// A parsed file: its sections in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Document {
    /// The sections, `[DEFAULT]` included if present; a section given
    /// twice appears once, merged.
    pub sections: Vec<Section>,
    /// Lines the original parser accepts without a word but that are
    /// probably mistakes (a key or section given twice), each naming both
    /// lines.
    pub warnings: Vec<SyntaxError>,
}

impl Document {
    /// The section named `name`, if any.
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// A line the dialect's parser would refuse (or that we refuse on purpose).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct SyntaxError {
    /// 1-based line.
    pub line: usize,
    /// The key involved, when there is one.
    pub key: Option<String>,
    /// What is wrong, for a person.
    pub message: String,
}

/// Parses `text` with `dialect`'s rules, reporting every bad line at once.
pub fn parse(text: &str, dialect: Dialect) -> Result<Document, Vec<SyntaxError>> {
    let mut reader = Reader::default();
    // Python reads text files with universal newlines: \r\n and \r end lines.
    let text = text.replace("\r\n", "\n").replace('\r', "\n");
    for (index, line) in text.split('\n').enumerate() {
        match dialect {
            Dialect::Supervisor => reader.supervisor_line(index + 1, line),
            Dialect::Circus => reader.circus_line(index + 1, line),
        }
    }
    reader.finish(dialect)
}

/// Where a value being read lives: section and entry indices.
#[derive(Debug, Clone, Copy)]
struct Cursor {
    section: usize,
    entry: Target,
}

/// What continuation lines extend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    /// Nothing yet (just after a section header).
    Nothing,
    /// The entry with this index in the section.
    Entry(usize),
}

#[derive(Default)]
struct Reader {
    sections: Vec<Section>,
    /// Lines of each entry's value, joined at the end.
    pieces: Vec<Vec<Vec<String>>>,
    cursor: Option<Cursor>,
    /// Indentation of the last line that was not a continuation.
    indent: usize,
    errors: Vec<SyntaxError>,
    warnings: Vec<SyntaxError>,
}

impl Reader {
    fn error(&mut self, line: usize, key: Option<&str>, message: String) {
        self.errors.push(SyntaxError {
            line,
            key: key.map(str::to_owned),
            message,
        });
    }

    fn supervisor_line(&mut self, number: usize, line: &str) {
        let comment = supervisor_comment_start(line);
        let value = py_strip(&line[..comment.unwrap_or(line.len())]);
        if value.is_empty() {
            // A blank line inside a value is part of it (not a commented one).
            if comment.is_none() {
                self.continue_value(String::new());
            }
            return;
        }
        let indent = line.len() - py_lstrip(line).len();
        if self.in_value() && indent > self.indent {
            self.continue_value(value.to_owned());
            return;
        }
        self.indent = indent;
        if let Some((key, val)) = self.header_or_option(number, value, line) {
            self.add_entry(
                Dialect::Supervisor,
                number,
                key.to_lowercase(),
                py_strip(val).to_owned(),
            );
        }
    }

    fn circus_line(&mut self, number: usize, line: &str) {
        if py_strip(line).is_empty() || line.starts_with(['#', ';']) {
            return;
        }
        let first_word = line.split_whitespace().next().unwrap_or("");
        if first_word.eq_ignore_ascii_case("rem") && line.starts_with(['r', 'R']) {
            return;
        }
        let starts_with_space = line.chars().next().is_some_and(char::is_whitespace);
        if starts_with_space && self.in_value() {
            self.continue_value(py_strip(line).to_owned());
            return;
        }
        let Some((key, mut val)) = self.header_or_option(number, line, line) else {
            return;
        };
        // Only the first ';' counts, and only after whitespace (at index 0,
        // Python's val[-1] looks at the last character).
        if let Some(pos) = val.find(';') {
            let before = if pos == 0 {
                val.chars().next_back()
            } else {
                val[..pos].chars().next_back()
            };
            if before.is_some_and(char::is_whitespace) {
                val = &val[..pos];
            }
        }
        let mut val = py_strip(val);
        if val == "\"\"" {
            val = "";
        }
        self.add_entry(Dialect::Circus, number, key.to_owned(), val.to_owned());
    }

    /// A section header (opened), or a `key = value` line split at its
    /// first `=` or `:`; anything else is reported and gives `None`.
    fn header_or_option<'l>(
        &mut self,
        number: usize,
        text: &'l str,
        line: &str,
    ) -> Option<(&'l str, &'l str)> {
        if let Some(name) = section_header(text) {
            self.open_section(number, name);
            return None;
        }
        if self.cursor.is_none() {
            self.error(
                number,
                None,
                format!("a key outside any [section]: {:?}", line.trim()),
            );
            return None;
        }
        match split_option(text) {
            Some((key, val)) if !key.is_empty() => Some((key, val)),
            Some(_) => {
                self.error(number, None, format!("an empty key in {:?}", line.trim()));
                None
            }
            None => {
                self.error(
                    number,
                    None,
                    format!(
                        "not a section, a key = value or a comment: {:?}",
                        line.trim()
                    ),
                );
                None
            }
        }
    }

    /// Whether a key has been read that continuation lines would extend.
    fn in_value(&self) -> bool {
        self.cursor.is_some_and(|c| c.entry != Target::Nothing)
    }

    fn continue_value(&mut self, line: String) {
        if let Some(Cursor {
            section,
            entry: Target::Entry(entry),
        }) = self.cursor
        {
            self.pieces[section][entry].push(line);
        }
    }

    fn open_section(&mut self, number: usize, name: &str) {
        let index = if let Some(index) = self.sections.iter().position(|s| s.name == name) {
            let first = self.sections[index].line;
            self.warnings.push(SyntaxError {
                line: number,
                key: Some(format!("[{name}]")),
                message: format!(
                    "section [{name}] is given again (first at line {first}): merged into it"
                ),
            });
            index
        } else {
            self.sections.push(Section {
                name: name.to_owned(),
                line: number,
                entries: Vec::new(),
            });
            self.pieces.push(Vec::new());
            self.sections.len() - 1
        };
        self.cursor = Some(Cursor {
            section: index,
            entry: Target::Nothing,
        });
    }

    fn add_entry(&mut self, dialect: Dialect, number: usize, key: String, value: String) {
        let Some(cursor) = self.cursor else {
            return;
        };
        let section = &mut self.sections[cursor.section];
        if let Some(index) = section.entries.iter().position(|e| e.key == key) {
            let entry = &mut section.entries[index];
            let (first, name) = (entry.line, section.name.clone());
            let kept = match dialect {
                // RawConfigParser(strict=False): the later value replaces
                // the earlier, and its continuation lines extend it.
                Dialect::Supervisor => {
                    entry.line = number;
                    self.pieces[cursor.section][index] = vec![value];
                    "the later value counts, as in supervisord"
                }
                // StrictConfigParser skips the duplicate, but its
                // continuation lines still extend the first value.
                Dialect::Circus => "the first value counts, as in Circus",
            };
            self.warnings.push(SyntaxError {
                line: number,
                key: Some(format!("{name}.{key}")),
                message: format!(
                    "{key} is given again in [{name}] (first at line {first}): {kept}"
                ),
            });
            self.cursor = Some(Cursor {
                section: cursor.section,
                entry: Target::Entry(index),
            });
            return;
        }
        section.entries.push(Entry {
            key,
            value: String::new(),
            line: number,
        });
        self.pieces[cursor.section].push(vec![value]);
        self.cursor = Some(Cursor {
            section: cursor.section,
            entry: Target::Entry(section.entries.len() - 1),
        });
    }

    fn finish(mut self, dialect: Dialect) -> Result<Document, Vec<SyntaxError>> {
        if !self.errors.is_empty() {
            self.errors.sort_by_key(|e| e.line);
            return Err(self.errors);
        }
        for (section, pieces) in self.sections.iter_mut().zip(self.pieces) {
            for (entry, lines) in section.entries.iter_mut().zip(pieces) {
                let joined = lines.join("\n");
                entry.value = match dialect {
                    Dialect::Supervisor => joined.trim_end().to_owned(),
                    Dialect::Circus => joined,
                };
            }
        }
        self.warnings.sort_by_key(|w| w.line);
        Ok(Document {
            sections: self.sections,
            warnings: self.warnings,
        })
    }
}

/// Where CPython's `RawConfigParser` (with `;` and `#` as inline comment
/// prefixes) starts a comment on `line`, if anywhere.
fn supervisor_comment_start(line: &str) -> Option<usize> {
    let stripped = py_strip(line);
    if stripped.starts_with(['#', ';']) {
        return Some(0);
    }
    // CPython advances every prefix to its next occurrence in rounds and
    // stops at the first round where one is at the start of the line or
    // after whitespace, taking the smallest such index of that round.
    let mut positions: Vec<(char, Option<usize>)> = vec![(';', None), ('#', None)];
    loop {
        let mut next = Vec::new();
        let mut found: Option<usize> = None;
        for (prefix, after) in &positions {
            let from = after.map_or(0, |i| i + 1);
            let Some(offset) = line.get(from..).and_then(|rest| rest.find(*prefix)) else {
                continue;
            };
            let index = from + offset;
            next.push((*prefix, Some(index)));
            let at_start_or_after_space = index == 0
                || line[..index]
                    .chars()
                    .next_back()
                    .is_some_and(char::is_whitespace);
            if at_start_or_after_space {
                found = Some(found.map_or(index, |f: usize| f.min(index)));
            }
        }
        if found.is_some() || next.is_empty() {
            return found;
        }
        positions = next;
    }
}

/// `[name]` at the start of `text` (CPython's `\[(?P<header>.+)\]` with
/// `match`: the name runs to the last `]`).
fn section_header(text: &str) -> Option<&str> {
    let rest = text.strip_prefix('[')?;
    let rest = rest.split('\n').next().unwrap_or(rest);
    let close = rest.rfind(']')?;
    (close > 0).then(|| &rest[..close])
}

/// CPython's option pattern `(?P<option>.*?)\s*(?P<vi>=|:)\s*(?P<value>.*)$`:
/// the key is what precedes the first `=` or `:`.
fn split_option(text: &str) -> Option<(&str, &str)> {
    let text = text.split('\n').next().unwrap_or(text);
    let at = text.find(['=', ':'])?;
    let key = text[..at].trim_end_matches(py_space);
    let value = text[at + 1..].trim_start_matches(py_space);
    Some((key, value))
}

/// Python's `str.isspace` for one character.
fn py_space(c: char) -> bool {
    c.is_whitespace()
}

/// Python's `str.strip()`.
fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// Python's `str.lstrip()`.
fn py_lstrip(s: &str) -> &str {
    s.trim_start_matches(py_space)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sup(text: &str) -> Document {
        parse(text, Dialect::Supervisor).unwrap()
    }

    fn circus(text: &str) -> Document {
        parse(text, Dialect::Circus).unwrap()
    }

    fn value<'a>(doc: &'a Document, section: &str, key: &str) -> &'a str {
        &doc.section(section).unwrap().get(key).unwrap().value
    }

    #[test]
    fn supervisor_comments_continuations_and_case() {
        let doc = sup("; top comment\n\
             [program:web]\n\
             Command = /bin/cat --x=1 ; a comment\n\
             \x20 --more # also a comment\n\
             \n\
             \x20 --after-blank\n\
             url: http://host:80/#frag\n\
             semi = a;b\n\
             \x20   # indented full-line comment\n\
             [supervisord]\n\
             logfile=/tmp/x.log\n");
        let web = doc.section("program:web").unwrap();
        assert_eq!(web.line, 2);
        let command = web.get("command").unwrap();
        assert_eq!(command.line, 3);
        assert_eq!(command.value, "/bin/cat --x=1\n--more\n\n--after-blank");
        // ':' splits the key too; '#' after a non-space is kept.
        assert_eq!(value(&doc, "program:web", "url"), "http://host:80/#frag");
        assert_eq!(value(&doc, "program:web", "semi"), "a;b");
        assert_eq!(value(&doc, "supervisord", "logfile"), "/tmp/x.log");
    }

    #[test]
    fn supervisor_inline_comment_rounds_follow_cpython() {
        // CPython stops at the first round with a valid prefix: '#' at 9
        // (round one) wins over ';' at 6 (valid only in round three).
        assert_eq!(supervisor_comment_start("a;b;c ;d #e"), Some(9));
        assert_eq!(supervisor_comment_start("x = 1 ;c"), Some(6));
        assert_eq!(supervisor_comment_start("x = a#b"), None);
        assert_eq!(supervisor_comment_start("   # c"), Some(0));
    }

    #[test]
    fn circus_comments_continuations_and_case() {
        let doc = circus(
            "# comment\n\
             rem a remark\n\
             [watcher:Web]\n\
             CMD = python app.py ; comment\n\
             args = --a #not a comment\n\
             \x20 --b ; kept in a continuation\n\
             \n\
             \x20 --c\n\
             empty = \"\"\n\
             semi = a;b ;c\n\
             [env:web]\n\
             PATH = $PATH:/opt\n",
        );
        assert_eq!(value(&doc, "watcher:Web", "CMD"), "python app.py");
        assert_eq!(
            value(&doc, "watcher:Web", "args"),
            "--a #not a comment\n--b ; kept in a continuation\n--c"
        );
        assert_eq!(value(&doc, "watcher:Web", "empty"), "");
        // Only the first ';' is looked at, and it follows a non-space.
        assert_eq!(value(&doc, "watcher:Web", "semi"), "a;b ;c");
        assert_eq!(value(&doc, "env:web", "PATH"), "$PATH:/opt");
    }

    #[test]
    fn section_names_run_to_the_last_bracket() {
        let doc = sup("[a] b ]\nk=v\n");
        assert_eq!(doc.sections[0].name, "a] b ");
        let doc = circus("[watcher:x] ; c\nk=v\n");
        assert_eq!(doc.sections[0].name, "watcher:x");
    }

    #[test]
    fn errors_name_lines_and_duplicates_both_lines() {
        for dialect in [Dialect::Supervisor, Dialect::Circus] {
            let errors =
                parse("k=v\n[s]\na=1\na=2\nnot an option\n=x\n[s]\n", dialect).unwrap_err();
            let lines: Vec<usize> = errors.iter().map(|e| e.line).collect();
            assert_eq!(lines, [1, 5, 6], "{dialect:?}: {errors:?}");
        }
    }

    /// Issue 14: a key or section given twice means what it means to the
    /// original parser, and is said with both lines.
    #[test]
    fn duplicates_mean_what_the_originals_make_of_them() {
        let text = "[s]\na=1\nb=x\n  more\na=2\n  two\n[t]\nc=3\n[s]\nd=4\n";
        let doc = sup(text);
        assert_eq!(value(&doc, "s", "a"), "2\ntwo");
        assert_eq!(doc.section("s").unwrap().get("a").unwrap().line, 5);
        assert_eq!(value(&doc, "s", "d"), "4");
        assert_eq!(doc.sections.len(), 2);
        let said: Vec<(usize, &str)> = doc
            .warnings
            .iter()
            .map(|w| (w.line, w.message.as_str()))
            .collect();
        assert_eq!(
            said,
            [
                (
                    5,
                    "a is given again in [s] (first at line 2): the later value counts, as in supervisord"
                ),
                (
                    9,
                    "section [s] is given again (first at line 1): merged into it"
                ),
            ]
        );
        let doc = parse(text, Dialect::Circus).unwrap();
        // Circus keeps the first value, extended by the duplicate's
        // continuation line.
        assert_eq!(value(&doc, "s", "a"), "1\ntwo");
        assert!(
            doc.warnings[0]
                .message
                .ends_with("the first value counts, as in Circus")
        );
    }

    #[test]
    fn crlf_and_missing_final_newline() {
        let doc = sup("[s]\r\na = 1\r\nb = 2");
        assert_eq!(value(&doc, "s", "a"), "1");
        assert_eq!(value(&doc, "s", "b"), "2");
        assert_eq!(doc.section("s").unwrap().get("b").unwrap().line, 3);
    }
}

/// Random documents read by this crate and by the Python parser each
/// dialect's project uses must agree (`differential.py`).
#[cfg(test)]
mod differential {
    use super::*;

    /// Pieces of lines that exercise every rule: brackets, delimiters,
    /// comment characters with and without space before, indentation.
    const PIECES: &[&str] = &[
        "[",
        "]",
        "a",
        "B",
        "k",
        "x y",
        "=",
        ":",
        " = ",
        ";",
        " ;",
        "#",
        " #",
        " ",
        "\t",
        "rem",
        "REM x",
        "\"\"",
        "%",
        "(",
        ")",
        "[s]",
        "[DEFAULT]",
        "[t]",
        "v",
    ];

    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    /// Whole lines, a few names among them, so that keys and sections
    /// are often given twice.
    const LINES: &[&str] = &[
        "[s]",
        "[t]",
        "[DEFAULT]",
        "a = v",
        "a = x y",
        "a: v ; c",
        "B=1",
        "k = %(a)s",
        "  more",
    ];

    fn document(rng: &mut Rng) -> String {
        let mut text = String::from(if rng.next(4) == 0 { "" } else { "[s]\n" });
        for _ in 0..rng.next(12) {
            if rng.next(2) == 0 {
                text.push_str(LINES[rng.next(LINES.len())]);
            } else {
                for _ in 0..rng.next(6) {
                    text.push_str(PIECES[rng.next(PIECES.len())]);
                }
            }
            text.push('\n');
        }
        text
    }

    type Sections = Vec<(String, Vec<(String, String)>)>;

    /// Our sections, and whether a key or section was given twice.
    fn ours(text: &str, dialect: Dialect) -> Result<(Sections, bool), Vec<SyntaxError>> {
        let doc = parse(text, dialect)?;
        let duplicates = doc
            .warnings
            .iter()
            .any(|w| w.message.contains("given again"));
        let mut sections: Sections = doc
            .sections
            .into_iter()
            .map(|s| {
                let entries = s.entries.into_iter().map(|e| (e.key, e.value)).collect();
                (s.name, entries)
            })
            .collect();
        // Python keeps [DEFAULT] apart; the script prints it first.
        // (and only when it has keys).
        if let Some(at) = sections.iter().position(|(name, _)| name == "DEFAULT") {
            let default = sections.remove(at);
            if !default.1.is_empty() {
                sections.insert(0, default);
            }
        }
        Ok((sections, duplicates))
    }

    fn compare(dialect: Dialect, name: &str, seed: u64) {
        // RINGMASTER_INI_CASES=100000 for a longer hunt.
        let count = std::env::var("RINGMASTER_INI_CASES")
            .ok()
            .and_then(|n| n.parse().ok())
            .unwrap_or(3000);
        let dir =
            std::env::temp_dir().join(format!("ringmaster-ini-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut rng = Rng(seed);
        let mut texts = Vec::new();
        for i in 0..count {
            let text = document(&mut rng);
            let path = dir.join(format!("{i}.ini"));
            std::fs::write(&path, &text).unwrap();
            texts.push(text);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/src/differential.py");
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/.venv/bin/python");
        let python = std::env::var("RINGMASTER_PYTHON").unwrap_or_else(|_| {
            if dialect == Dialect::Circus || std::path::Path::new(venv).exists() {
                venv.into()
            } else {
                "python3".into()
            }
        });
        let output = std::process::Command::new(python)
            .arg(script)
            .arg(name)
            .arg(&dir)
            .arg(count.to_string())
            .output()
            .expect("python3 runs");
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8(output.stdout).unwrap();
        let answers: Vec<&str> = stdout.lines().collect();
        assert_eq!(answers.len(), count);
        let mut compared = 0;
        let mut duplicates = 0;
        for (text, answer) in texts.iter().zip(answers) {
            let parsed: serde_json::Value = serde_json::from_str(answer).unwrap();
            let theirs: Result<Sections, ()> = match parsed.get("ok") {
                Some(ok) => Ok(serde_json::from_value(ok.clone()).unwrap()),
                None => Err(()),
            };
            match (ours(text, dialect), theirs) {
                (Ok((a, twice)), Ok(b)) => {
                    assert_eq!(a, b, "{dialect:?} disagrees on:\n{text}");
                    compared += 1;
                    duplicates += usize::from(twice);
                }
                (Err(errors), Ok(_)) => {
                    // Empty keys (Circus takes them) are errors here on
                    // purpose; nothing else.
                    assert!(
                        errors.iter().all(|e| e.message.contains("empty key")),
                        "{dialect:?}: we refuse what Python reads: {errors:?}\n{text}"
                    );
                }
                (Ok(a), Err(())) => {
                    panic!("{dialect:?}: Python refuses ({answer}) what we read as {a:?}:\n{text}")
                }
                (Err(_), Err(())) => compared += 1,
            }
        }
        assert!(compared > count / 2, "only {compared} of {count} compared");
        // Keys and sections given twice are among them, often.
        assert!(
            duplicates > count / 20,
            "only {duplicates} of {count} with a duplicate"
        );
        eprintln!("{dialect:?}: {compared} of {count} compared, {duplicates} with duplicates");
    }

    #[test]
    fn supervisor_agrees_with_cpython() {
        compare(Dialect::Supervisor, "supervisor", 0x9E37_79B9_7F4A_7C15);
    }

    /// Needs the circus package: `RINGMASTER_PYTHON`, else bench/.venv
    /// (`python3 bench/run.py --setup`, which CI runs first).
    #[test]
    fn circus_agrees_with_circus() {
        let venv = concat!(env!("CARGO_MANIFEST_DIR"), "/../../bench/.venv/bin/python");
        if std::env::var_os("RINGMASTER_PYTHON").is_none() && !std::path::Path::new(venv).exists() {
            eprintln!("skipped: no circus (run `python3 bench/run.py --setup`)");
            return;
        }
        compare(Dialect::Circus, "circus", 0xD1B5_4A32_D192_ED03);
    }
}
