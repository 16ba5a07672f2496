//! Shell syntax in a command no shell runs: `cmd = "echo hi && sleep 100"`
//! with `shell = false` runs `echo` with `&&` among its arguments, which
//! is never what was meant. Found outside quotes as a shell would see it,
//! so that a quoted `'&&'` or `"*.log"` passes.

/// The first thing in `command` that only a shell would act on, as
/// written (`&&`, `|`, `>`, `$HOME`, `~`, `*`); `None` when there is none.
/// ringmaster's own `$(...)` placeholders and `$$` are not shell syntax.
pub(crate) fn find(command: &str) -> Option<String> {
    let chars: Vec<char> = command.chars().collect();
    let (mut single, mut double, mut word_start) = (false, false, true);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if single {
            single = c != '\'';
            i += 1;
            continue;
        }
        match c {
            '\\' => {
                i += 2;
                word_start = false;
                continue;
            }
            '\'' if !double => single = true,
            '"' => double = !double,
            '$' => match next {
                Some('$') => i += 1,
                Some('(') if ours(&chars[i + 2..]) => {}
                Some('(') => return Some("$(...)".into()),
                Some(n) if n.is_ascii_alphabetic() || n == '_' || n == '{' => {
                    let name: String = chars[i + 1..]
                        .iter()
                        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '{' | '}'))
                        .collect();
                    return Some(format!("${name}"));
                }
                _ => {}
            },
            _ if double => {}
            '&' | '|' => {
                let twice = next == Some(c);
                return Some(if twice {
                    format!("{c}{c}")
                } else {
                    c.to_string()
                });
            }
            ';' | '>' | '<' | '`' => return Some(c.to_string()),
            '~' if word_start => return Some("~".into()),
            '*' => return Some("*".into()),
            _ => {}
        }
        word_start = c.is_whitespace();
        i += 1;
    }
    None
}

/// Whether what follows `$(` is one of ringmaster's placeholders.
fn ours(rest: &[char]) -> bool {
    let name: String = rest.iter().take_while(|&&c| c != ')').collect();
    name == "name"
        || name == "here"
        || name == "metrics_port"
        || name.starts_with("env.")
        || name.starts_with("sockets.")
        || name
            .strip_prefix("wid")
            .is_some_and(|spec| spec.is_empty() || spec.starts_with(['+', '-', ':']))
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn shell_syntax_outside_quotes_is_found() {
        for (command, found) in [
            ("echo hi && sleep 100 | cat", "&&"),
            ("run || true", "||"),
            ("gunicorn app:app | tee out", "|"),
            ("a; b", ";"),
            ("server > out.log 2>&1", ">"),
            ("server < in", "<"),
            ("worker &", "&"),
            ("python $HOME/app.py", "$HOME"),
            ("python ${APP}/app.py", "${APP}"),
            ("ls ~/logs", "~"),
            ("rm /tmp/*.pid", "*"),
            ("echo `date`", "`"),
            ("echo $(date)", "$(...)"),
            ("echo \"$HOME\"", "$HOME"),
        ] {
            assert_eq!(find(command).as_deref(), Some(found), "{command}");
        }
    }

    #[test]
    fn quoted_escaped_and_ringmaster_syntax_is_not() {
        for command in [
            "gunicorn --bind 127.0.0.1:8000 app:app",
            "grep -e '&&' file",
            "echo \"a | b\"",
            "find . -name '*.log'",
            "echo \\&\\& done",
            "server --port $(env.PORT) --id $(wid-1:02) --name $(name)",
            "price $$5",
            "python -m http.server",
            "echo a~b",
        ] {
            assert_eq!(find(command), None, "{command}");
        }
    }
}
