//! Writes TOML text line by line, remembering where each line came from.

use std::fmt::Write as _;

use super::Origin;

/// TOML text being built, with an origin per line.
#[derive(Debug, Default)]
pub(crate) struct Emitter {
    text: String,
    origins: Vec<Option<Origin>>,
    /// A table header written only once an entry follows it: a table with
    /// nothing in it (a circus.ini's `[daemon]`) is left out.
    pending: Option<(String, Option<Origin>)>,
}

impl Emitter {
    /// A `# ...` comment (several lines if `text` has several).
    pub(crate) fn comment(&mut self, text: &str) {
        for line in text.lines() {
            self.push(format!("# {line}").trim_end(), None);
        }
    }

    /// An empty line.
    pub(crate) fn blank(&mut self) {
        self.push("", None);
    }

    /// A table header: `[watchers.web]` from `["watchers", "web"]`,
    /// written when its first entry is.
    pub(crate) fn header(&mut self, path: &[&str], origin: Option<Origin>) {
        let path: Vec<String> = path.iter().map(|p| key(p)).collect();
        self.pending = Some((format!("[{}]", path.join(".")), origin));
    }

    /// `key = value`, where `value` is already TOML.
    pub(crate) fn entry(&mut self, name: &str, value: &str, origin: Option<Origin>) {
        if let Some((header, origin)) = self.pending.take() {
            self.push(&header, origin);
        }
        self.push(&format!("{} = {value}", key(name)), origin);
    }

    /// Ends the last line with `# note`.
    pub(crate) fn note_last(&mut self, note: &str) {
        if self.text.ends_with('\n') {
            self.text.pop();
            let _ = writeln!(self.text, "  # {note}");
        }
    }

    /// Lists, as comments, what was read but not carried over.
    pub(crate) fn dropped(&mut self, warnings: &[crate::error::ConfigWarning]) {
        if warnings.is_empty() {
            return;
        }
        self.comment("Read but not carried over (ringmasterd warns about each):");
        for warning in warnings {
            self.comment(&format!("  {warning}"));
        }
    }

    fn push(&mut self, line: &str, origin: Option<Origin>) {
        // Anything but an entry after a header: the table stayed empty.
        self.pending = None;
        self.text.push_str(line);
        self.text.push('\n');
        self.origins.push(origin);
    }

    /// The text and the origin of each of its lines.
    pub(crate) fn finish(self) -> (String, Vec<Option<Origin>>) {
        (self.text, self.origins)
    }
}

/// A TOML basic string holding `text` exactly.
pub(crate) fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A key, bare when TOML allows it, quoted otherwise.
pub(crate) fn key(name: &str) -> String {
    let bare = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare { name.to_owned() } else { string(name) }
}

/// An inline table of strings: `{ A = "1", B = "2" }`.
pub(crate) fn table_of_strings(pairs: &[(String, String)]) -> String {
    if pairs.is_empty() {
        return "{}".into();
    }
    let items: Vec<String> = pairs
        .iter()
        .map(|(k, v)| format!("{} = {}", key(k), string(v)))
        .collect();
    format!("{{ {} }}", items.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_keys_survive_toml() {
        let tricky = "a \"quoted\" \\ back\nslash\ttab \u{1} é";
        let doc = format!(
            "{} = {}\nt = {}\n",
            key("we:ird key"),
            string(tricky),
            table_of_strings(&[
                ("PATH".into(), "/bin:/usr/bin".into()),
                ("a.b".into(), "x".into())
            ])
        );
        let table = toml::de::DeTable::parse(&doc).unwrap();
        let get = |t: &toml::de::DeTable<'_>, k: &str| -> String {
            match t.get(k).map(toml::Spanned::get_ref) {
                Some(toml::de::DeValue::String(s)) => s.to_string(),
                other => panic!("{k}: {other:?}"),
            }
        };
        assert_eq!(get(table.get_ref(), "we:ird key"), tricky);
        let Some(toml::de::DeValue::Table(t)) =
            table.get_ref().get("t").map(toml::Spanned::get_ref)
        else {
            panic!("no table t");
        };
        assert_eq!(get(t, "PATH"), "/bin:/usr/bin");
        assert_eq!(get(t, "a.b"), "x");
    }
}
