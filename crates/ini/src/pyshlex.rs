//! supervisord's `environment=` syntax: `KEY="value",KEY2=value2`, read the
//! way supervisord reads it, with Python's `shlex.shlex` in its non-POSIX
//! mode (quotes stay in the token and are stripped afterwards, `#` starts
//! a comment, characters outside the word set are tokens of their own).

/// Word characters of non-POSIX `shlex`, plus what supervisord adds.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || "/.+-():".contains(c)
}

/// Python's `str.isspace` as shlex uses it (its whitespace is `' \t\r\n'`).
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Tokenizes `text` like `list(shlex.shlex(text))` with supervisord's
/// extra word characters.
fn tokens(text: &str) -> Result<Vec<String>, String> {
    #[derive(PartialEq)]
    enum State {
        Space,
        Word,
        Quote(char),
    }
    let mut out = Vec::new();
    let mut token = String::new();
    let mut state = State::Space;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match state {
            State::Space => {
                if is_space(c) {
                } else if c == '#' {
                    // A comment runs to the end of the line.
                    for rest in chars.by_ref() {
                        if rest == '\n' {
                            break;
                        }
                    }
                } else if is_word(c) {
                    token.push(c);
                    state = State::Word;
                } else if c == '\'' || c == '"' {
                    token.push(c);
                    state = State::Quote(c);
                } else {
                    out.push(c.to_string());
                }
            }
            State::Quote(quote) => {
                token.push(c);
                if c == quote {
                    out.push(std::mem::take(&mut token));
                    state = State::Space;
                }
            }
            State::Word => {
                if is_space(c) {
                    out.push(std::mem::take(&mut token));
                    state = State::Space;
                } else if c == '#' {
                    out.push(std::mem::take(&mut token));
                    state = State::Space;
                    for rest in chars.by_ref() {
                        if rest == '\n' {
                            break;
                        }
                    }
                } else if is_word(c) || c == '\'' || c == '"' {
                    token.push(c);
                } else {
                    out.push(std::mem::take(&mut token));
                    state = State::Space;
                    out.push(c.to_string());
                }
            }
        }
    }
    match state {
        State::Quote(_) => return Err("no closing quotation".into()),
        State::Word => out.push(token),
        State::Space => {}
    }
    Ok(out)
}

/// Parses `KEY=val,KEY2="v, 2"` as supervisord's `dict_of_key_value_pairs`
/// does: tokens in threes (key, `=`, value), the fourth (the comma) skipped,
/// quotes stripped from the ends of values.
pub fn supervisor_env(text: &str) -> Result<Vec<(String, String)>, String> {
    let tokens = tokens(text).map_err(|e| format!("bad environment value {text:?}: {e}"))?;
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let (Some(key), Some(eq), Some(value)) =
            (tokens.get(i), tokens.get(i + 1), tokens.get(i + 2))
        else {
            return Err(format!(
                "unexpected end of KEY=value pairs in {text:?} (quote values that hold spaces, commas or $)"
            ));
        };
        if eq != "=" {
            return Err(format!(
                "expected KEY=value pairs in {text:?}, found {key:?} then {eq:?}"
            ));
        }
        let value = value.trim_matches(['\'', '"']).to_owned();
        pairs.retain(|(k, _)| k != key);
        pairs.push((key.clone(), value));
        i += 4;
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Vec<(String, String)> {
        supervisor_env(text).unwrap()
    }

    fn pair(k: &str, v: &str) -> (String, String) {
        (k.into(), v.into())
    }

    /// Expected values are what supervisor 4.3's dict_of_key_value_pairs
    /// returns for the same text.
    #[test]
    fn matches_supervisor() {
        assert_eq!(env("A=1,B=2"), [pair("A", "1"), pair("B", "2")]);
        assert_eq!(env("A=\"x, y\",B='z'"), [pair("A", "x, y"), pair("B", "z")]);
        assert_eq!(
            env("PATH=\"/usr/bin:$PATH\""),
            [pair("PATH", "/usr/bin:$PATH")]
        );
        assert_eq!(env("A=/a/b.c+d-(e):f"), [pair("A", "/a/b.c+d-(e):f")]);
        assert_eq!(env(""), []);
        assert_eq!(env("A=1 # comment"), [pair("A", "1")]);
        // The fourth token is skipped whatever it is.
        assert_eq!(env("A=1;B=2"), [pair("A", "1"), pair("B", "2")]);
        assert!(supervisor_env("PATH=/usr/bin:$PATH").is_err());
        assert!(supervisor_env("A=\"open").is_err());
        assert!(supervisor_env("A B").is_err());
    }
}
