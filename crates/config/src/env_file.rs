//! `env_file`: `KEY=VALUE` lines, as docker and systemd read them.
//!
//! Blank lines and `#` comments are skipped, an `export ` prefix is allowed,
//! values may be bare (trimmed), 'single-quoted' (literal) or
//! "double-quoted" (with `\n`, `\t`, `\"`, `\\` escapes). No interpolation.

use std::path::Path;

use crate::error::{ConfigError, Location};

/// Reads an env file into ordered pairs.
pub(crate) fn read(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse(path, &text)
}

fn parse(path: &Path, text: &str) -> Result<Vec<(String, String)>, ConfigError> {
    let mut pairs = Vec::new();
    for (index, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line).trim_start();
        let location = Location {
            file: path.to_path_buf(),
            line: index + 1,
            column: 1,
        };
        let Some((key, value)) = line.split_once('=') else {
            return Err(ConfigError::Syntax {
                location,
                message: format!("expected KEY=VALUE, found '{line}'"),
            });
        };
        let key = key.trim();
        if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(ConfigError::Syntax {
                location,
                message: format!("invalid variable name '{key}'"),
            });
        }
        let value =
            unquote(value.trim()).map_err(|message| ConfigError::Syntax { location, message })?;
        pairs.push((key.to_owned(), value));
    }
    Ok(pairs)
}

fn unquote(value: &str) -> Result<String, String> {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner
            .strip_suffix('\'')
            .map(str::to_owned)
            .ok_or_else(|| "unterminated single quote".to_owned());
    }
    if let Some(inner) = value.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .ok_or_else(|| "unterminated double quote".to_owned())?;
        let mut out = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some(other) => out.push(other),
                None => out.push('\\'),
            }
        }
        return Ok(out);
    }
    // An unquoted value ends at a " #" comment.
    Ok(value
        .split_once(" #")
        .map_or(value, |(before, _)| before.trim_end())
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_common_forms() {
        let text = "# c\n\nA=1\nexport B = two words # note\nC='x # y'\nD=\"a\\nb\"\nE=\n";
        let pairs = parse(Path::new(".env"), text).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two words".into()),
                ("C".into(), "x # y".into()),
                ("D".into(), "a\nb".into()),
                ("E".into(), String::new()),
            ]
        );
    }

    #[test]
    fn reports_line() {
        let err = parse(Path::new(".env"), "A=1\nnonsense\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            ".env:2:1: expected KEY=VALUE, found 'nonsense'"
        );
    }
}
