//! Placeholders: `$(name)`, `$(wid)`, `$(here)`, `$(env.VAR)`.
//!
//! Everything but `$(wid)` is known when the file is read, so it is expanded
//! then; `$(wid)` is kept as a [`Part::Wid`] and filled in per process.
//! `$(wid)` may carry an offset and a zero-padded width, `$(wid-1:02)` (the
//! slot counted from 0, two digits: supervisord's `%(process_num)02d`).
//! `$$(` writes a literal `$(` (useful with `shell = true`).

use std::fmt;

/// One piece of a [`Template`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Literal(String),
    /// The worker slot number, shifted by `offset` and zero-padded to
    /// `width` digits (`$(wid)` is offset 0, width 0).
    Wid(WidFormat),
}

/// How `$(wid)` is written: `$(wid+OFFSET:0WIDTH)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WidFormat {
    /// Added to the 1-based slot number.
    pub offset: i64,
    /// Minimum digits, zero-padded.
    pub width: usize,
}

impl WidFormat {
    /// The text for slot `wid`.
    pub fn render(self, wid: u32) -> String {
        let n = i64::from(wid) + self.offset;
        let width = self.width;
        if n < 0 {
            format!(
                "-{:0width$}",
                n.unsigned_abs(),
                width = width.saturating_sub(1)
            )
        } else {
            format!("{n:0width$}")
        }
    }

    /// Parses what follows `wid` in a placeholder: `""`, `"-1"`, `"+4:03"`.
    fn parse(spec: &str) -> Option<Self> {
        let (offset, width) = match spec.split_once(':') {
            Some((offset, width)) => (offset, Some(width)),
            None => (spec, None),
        };
        let offset = match offset.as_bytes().first() {
            None => 0,
            Some(b'+' | b'-')
                if offset.len() > 1 && offset[1..].bytes().all(|b| b.is_ascii_digit()) =>
            {
                offset.parse().ok()?
            }
            Some(_) => return None,
        };
        let width = match width {
            None => 0,
            Some(w)
                if w.len() >= 2 && w.starts_with('0') && w.bytes().all(|b| b.is_ascii_digit()) =>
            {
                w.parse().ok().filter(|&w: &usize| w <= 32)?
            }
            Some(_) => return None,
        };
        Some(Self { offset, width })
    }
}

impl fmt::Display for WidFormat {
    /// Writes the placeholder back: `$(wid)`, `$(wid-1:02)`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("$(wid")?;
        if self.offset != 0 {
            write!(f, "{:+}", self.offset)?;
        }
        if self.width > 0 {
            write!(f, ":0{}", self.width)?;
        }
        f.write_str(")")
    }
}

/// A string that may still contain `$(wid)`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    parts: Vec<Part>,
}

impl Template {
    /// A template with no placeholder.
    pub fn literal(text: impl Into<String>) -> Self {
        Self {
            parts: vec![Part::Literal(text.into())],
        }
    }

    /// A template that is just the worker slot.
    pub fn wid() -> Self {
        Self {
            parts: vec![Part::Wid(WidFormat::default())],
        }
    }

    /// This template followed by `other`.
    pub fn join(mut self, other: Template) -> Self {
        for part in other.parts {
            match part {
                Part::Literal(text) => self.push_literal(&text),
                Part::Wid(format) => self.parts.push(Part::Wid(format)),
            }
        }
        self
    }

    /// The parts, in order.
    pub fn parts(&self) -> &[Part] {
        &self.parts
    }

    /// The text for worker slot `wid`.
    pub fn render(&self, wid: u32) -> String {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Wid(format) => out.push_str(&format.render(wid)),
            }
        }
        out
    }

    /// Whether the template depends on the worker slot.
    pub fn uses_wid(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Wid(_)))
    }

    /// Prepends `prefix` (used to make relative paths absolute).
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        match self.parts.first_mut() {
            Some(Part::Literal(text)) => text.insert_str(0, prefix),
            _ => self.parts.insert(0, Part::Literal(prefix.to_owned())),
        }
        self
    }

    /// The leading literal text (empty when it starts with a placeholder).
    pub fn leading_literal(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(text)) => text,
            _ => "",
        }
    }

    fn push_literal(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        if let Some(Part::Literal(last)) = self.parts.last_mut() {
            last.push_str(text);
        } else {
            self.parts.push(Part::Literal(text.to_owned()));
        }
    }
}

impl fmt::Display for Template {
    /// Shows the template with `$(wid)` written back in.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for part in &self.parts {
            match part {
                Part::Literal(text) => f.write_str(&text.replace("$(", "$$("))?,
                Part::Wid(format) => write!(f, "{format}")?,
            }
        }
        Ok(())
    }
}

/// What placeholders expand to while a file is read.
pub(crate) struct Context<'a> {
    /// The watcher's name.
    pub name: &'a str,
    /// The directory of the file being read.
    pub here: &'a str,
    /// Looks up `$(env.VAR)`.
    pub env: &'a dyn Fn(&str) -> Option<String>,
    /// The watcher's `sockets`, in order: `$(sockets.NAME)` is 3 plus the
    /// index of NAME, the descriptor the child finds it on.
    pub sockets: &'a [String],
    /// The watcher's `metrics_port`: `$(metrics_port)` is it plus the
    /// worker slot less one.
    pub metrics_port: Option<u16>,
}

/// Expands every placeholder but `$(wid)`. A `$(` is ours only when one of
/// our names follows (`name`, `here`, `wid` and its forms, `env.`,
/// `sockets.`, `metrics_port`); anything else (`$(id -u)`, `$((i+1))`) is
/// the program's text, passed as written, and noted in `notes` so that a
/// typo such as `$(wdi)` can be seen (`ringmasterd --check`).
pub(crate) fn expand(
    input: &str,
    ctx: &Context<'_>,
    notes: &mut Vec<String>,
) -> Result<Template, String> {
    let mut template = Template::default();
    let mut rest = input;
    while let Some(pos) = rest.find('$') {
        template.push_literal(&rest[..pos]);
        let after = &rest[pos..];
        if let Some(escaped) = after.strip_prefix("$$(") {
            template.push_literal("$(");
            rest = escaped;
            continue;
        }
        let Some(inner) = after.strip_prefix("$(") else {
            template.push_literal("$");
            rest = &after[1..];
            continue;
        };
        let name = inner.find(')').map(|end| &inner[..end]);
        if let Some(Some(part)) = name.map(|name| placeholder(name, ctx)).transpose()? {
            match part {
                Part::Literal(text) => template.push_literal(&text),
                wid @ Part::Wid(_) => template.parts.push(wid),
            }
            rest = &inner[name.map_or(0, str::len) + 1..];
            continue;
        }
        // Not ours: the program's own text, scanned on after the `$(` (a
        // placeholder may still follow inside it).
        let shown = name.map_or_else(
            || inner.chars().take(20).collect::<String>(),
            |name| format!("{name})"),
        );
        notes.push(format!(
            "$({shown} is not a ringmaster placeholder: passed to the program as written"
        ));
        template.push_literal("$(");
        rest = inner;
    }
    template.push_literal(rest);
    Ok(template)
}

/// What `$(name)` stands for: `None` when the name is not one of ours,
/// an error when it is ours but wrong (`$(env.NOPE)`, `$(wid*2)`).
fn placeholder(name: &str, ctx: &Context<'_>) -> Result<Option<Part>, String> {
    if let Some(spec) = name.strip_prefix("wid") {
        // `$(wid)` and its forms; `$(widget)` is someone else's.
        if !(spec.is_empty() || spec.starts_with(['+', '-', ':'])) {
            return Ok(None);
        }
        return WidFormat::parse(spec).map(|f| Some(Part::Wid(f))).ok_or_else(|| {
            format!(
                "bad placeholder $({name}): write $(wid), $(wid-1), $(wid+10) or $(wid-1:02) (offset, then zero-padded width)"
            )
        });
    }
    match name {
        "name" => Ok(Some(Part::Literal(ctx.name.to_owned()))),
        "here" => Ok(Some(Part::Literal(ctx.here.to_owned()))),
        "metrics_port" => match ctx.metrics_port {
            Some(port) => Ok(Some(Part::Wid(WidFormat {
                offset: i64::from(port) - 1,
                width: 0,
            }))),
            None => Err("$(metrics_port): this watcher has no metrics_port".into()),
        },
        _ => {
            if let Some(var) = name.strip_prefix("env.") {
                (ctx.env)(var)
                    .map(|value| Some(Part::Literal(value)))
                    .ok_or_else(|| format!("$(env.{var}): environment variable {var} is not set"))
            } else if let Some(socket) = name.strip_prefix("sockets.") {
                socket_fd(socket, ctx.sockets).map(|fd| Some(Part::Literal(fd.to_string())))
            } else {
                Ok(None)
            }
        }
    }
}

/// The descriptor a child finds `socket` on: 3, 4, ... in the order of
/// its watcher's `sockets`.
fn socket_fd(socket: &str, sockets: &[String]) -> Result<usize, String> {
    match sockets.iter().position(|s| s == socket) {
        Some(index) => Ok(3 + index),
        None if sockets.is_empty() => Err(format!(
            "$(sockets.{socket}): this watcher passes no sockets (add sockets = [\"{socket}\"])"
        )),
        None => Err(format!(
            "$(sockets.{socket}): '{socket}' is not one of this watcher's sockets ({})",
            sockets.join(", ")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx_expand(input: &str) -> Result<Template, String> {
        expand_noting(input).map(|(t, _)| t)
    }

    fn expand_noting(input: &str) -> Result<(Template, Vec<String>), String> {
        let env = |var: &str| (var == "HOME").then(|| "/home/x".to_owned());
        let mut notes = Vec::new();
        let template = expand(
            input,
            &Context {
                name: "web",
                here: "/etc/rm",
                env: &env,
                sockets: &["web".to_owned(), "admin".to_owned()],
                metrics_port: None,
            },
            &mut notes,
        )?;
        Ok((template, notes))
    }

    #[test]
    fn expands_known_placeholders() {
        let t = ctx_expand("$(here)/$(name)-$(wid).log in $(env.HOME) costs $5").unwrap();
        assert_eq!(t.render(3), "/etc/rm/web-3.log in /home/x costs $5");
        assert!(t.uses_wid());
        assert_eq!(
            ctx_expand("echo $$(date)").unwrap().render(1),
            "echo $(date)"
        );
    }

    #[test]
    fn wid_offsets_and_widths() {
        let t = ctx_expand("$(name)_$(wid-1:02) $(wid+7) $(wid:03) $(wid-5)").unwrap();
        assert_eq!(t.render(1), "web_00 8 001 -4");
        assert_eq!(t.render(12), "web_11 19 012 7");
        // Written back as read, and read back the same.
        let shown = t.to_string();
        assert_eq!(shown, "web_$(wid-1:02) $(wid+7) $(wid:03) $(wid-5)");
        assert_eq!(ctx_expand(&shown).unwrap(), t);
        for bad in ["$(wid-)", "$(wid:2)", "$(wid-1:)", "$(wid:099)", "$(wid+x)"] {
            assert!(
                ctx_expand(bad).unwrap_err().contains("bad placeholder"),
                "{bad}"
            );
        }
    }

    #[test]
    fn rejects_what_is_ours_but_wrong() {
        assert!(
            ctx_expand("$(env.MISSING)")
                .unwrap_err()
                .contains("not set")
        );
        assert!(
            ctx_expand("$(sockets.api)")
                .unwrap_err()
                .contains("'api' is not one of this watcher's sockets (web, admin)")
        );
    }

    #[test]
    fn a_socket_placeholder_is_the_descriptor_the_child_gets() {
        let t = ctx_expand("gunicorn --bind fd://$(sockets.web) --bind fd://$(sockets.admin)");
        assert_eq!(t.unwrap().render(1), "gunicorn --bind fd://3 --bind fd://4");
    }

    /// Issue 14: shell one-liners keep their own `$(`, with a note each.
    #[test]
    fn the_programs_own_dollar_parens_pass_as_written() {
        for (input, output) in [
            ("echo $(id -u)", "echo $(id -u)"),
            ("i=$((i+1))", "i=$((i+1))"),
            (
                "for i in $(seq 5); do echo $i; done",
                "for i in $(seq 5); do echo $i; done",
            ),
            ("$(widget) $(wdi) $(name", "$(widget) $(wdi) $(name"),
            ("echo $(echo $(name))", "echo $(echo web)"),
        ] {
            let (template, notes) = expand_noting(input).unwrap();
            assert_eq!(template.render(1), output, "{input}");
            assert!(!notes.is_empty(), "{input}: no note");
        }
        let (_, notes) = expand_noting("$(wdi)-$(name)").unwrap();
        assert_eq!(
            notes,
            ["$(wdi) is not a ringmaster placeholder: passed to the program as written"]
        );
        // Written back (to_string) as an escaped $( and read back the same.
        let (template, _) = expand_noting("echo $(id -u) $(wid)").unwrap();
        assert_eq!(template.to_string(), "echo $$(id -u) $(wid)");
        assert_eq!(ctx_expand(&template.to_string()).unwrap(), template);
    }
}
