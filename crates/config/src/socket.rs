//! Finding the control socket a configuration file names, without judging
//! the rest of the file: `ringmasterctl -c FILE reread` must reach the
//! daemon to hear what is wrong with FILE after a bad edit.
//!
//! Only the one setting is read, line by line: `[daemon] socket` in TOML,
//! `[unix_http_server] file` in a supervisord.conf; a circus.ini names no
//! socket. A file that does not say (or cannot be read) means
//! `$RINGMASTER_SOCKET`, then the default path, as for the daemon.

use std::path::{Path, PathBuf};

use crate::template::{self, Context};
use crate::{Dialect, detect_dialect};

/// The socket the daemon started with `path` listens on.
pub fn socket_of(path: &Path) -> PathBuf {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let here = path.parent().unwrap_or(Path::new("/"));
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let named = match detect_dialect(&path) {
        Dialect::Toml => setting(&text, "daemon", "socket").and_then(|line| toml_path(&line, here)),
        Dialect::Supervisord => {
            setting(&text, "unix_http_server", "file").and_then(|line| supervisor_path(&line, here))
        }
        Dialect::Circus => None,
    };
    named.unwrap_or_else(|| {
        std::env::var_os(ringmaster_protocol::SOCKET_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(ringmaster_protocol::default_socket_path, PathBuf::from)
    })
}

/// The last line `KEY = ...` (or `KEY: ...`) in section `[SECTION]`.
fn setting(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    let mut found = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('[') {
            inside = trimmed
                .strip_prefix('[')
                .and_then(|rest| rest.split(']').next())
                .is_some_and(|name| name.trim() == section);
            continue;
        }
        let Some(rest) = trimmed.strip_prefix(key) else {
            continue;
        };
        let rest = rest.trim_start();
        if inside && (rest.starts_with('=') || rest.starts_with(':')) {
            found = Some(trimmed.to_owned());
        }
    }
    found
}

/// `socket = "..."` read as the one-line TOML it is, with `$(here)` and
/// `$(env.X)` expanded and a relative path taken from the file's directory.
fn toml_path(line: &str, here: &Path) -> Option<PathBuf> {
    let table = toml::de::DeTable::parse(line).ok()?;
    let value = table.get_ref().get("socket")?;
    let text = value.get_ref().as_str()?;
    let env = |var: &str| std::env::var(var).ok();
    let here_text = here.to_string_lossy();
    let ctx = Context {
        name: "",
        here: &here_text,
        env: &env,
        sockets: &[],
        metrics_port: None,
    };
    let expanded = template::expand(text, &ctx, &mut Vec::new()).ok()?;
    Some(here.join(expanded.render(0)))
}

/// `file = ...` of `[unix_http_server]`, with supervisord's `%(here)s` and
/// `%(ENV_X)s`, and its inline comments (`;` or `#` after whitespace)
/// removed.
fn supervisor_path(line: &str, here: &Path) -> Option<PathBuf> {
    let (_, value) = line.split_once(['=', ':'])?;
    let comment = value
        .char_indices()
        .find(|&(i, c)| matches!(c, ';' | '#') && value[..i].ends_with(char::is_whitespace))
        .map(|(i, _)| i);
    let value = &value[..comment.unwrap_or(value.len())];
    let mut text = value.trim().replace("%(here)s", &here.to_string_lossy());
    while let Some(start) = text.find("%(ENV_") {
        let end = text[start..].find(")s")? + start;
        let var = &text[start + "%(ENV_".len()..end];
        let value = std::env::var(var).ok()?;
        text.replace_range(start..end + 2, &value);
    }
    (!text.is_empty()).then(|| here.join(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(name: &str, text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn toml_socket_is_found_in_a_file_with_errors() {
        let (dir, path) = written(
            "r.toml",
            "[daemon]\nsocket = \"run/rm.sock\"\n[watchers.web]\ncmd = \n oops = [\n",
        );
        assert_eq!(socket_of(&path), dir.path().join("run/rm.sock"));
        let (_dir, path) = written("r.toml", "[daemon]\nsocket = '/x/$(here)-y.sock'\n");
        let here = path.parent().unwrap().display().to_string();
        assert_eq!(socket_of(&path), PathBuf::from(format!("/x/{here}-y.sock")));
    }

    #[test]
    fn supervisor_socket_with_here_and_comments() {
        let (dir, path) = written(
            "s.conf",
            "[unix_http_server]\nfile=%(here)s/sv.sock   # the socket\nchmod=0700\n[program:x]\nbroken line\n",
        );
        assert_eq!(socket_of(&path), dir.path().join("sv.sock"));
    }

    #[test]
    fn a_file_that_names_none_means_the_default() {
        let (_dir, path) = written("c.ini", "[circus]\n[watcher:x]\ncmd = x\n");
        let expected = std::env::var_os(ringmaster_protocol::SOCKET_ENV)
            .filter(|p| !p.is_empty())
            .map_or_else(ringmaster_protocol::default_socket_path, PathBuf::from);
        assert_eq!(socket_of(&path), expected);
    }
}
