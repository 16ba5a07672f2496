//! When a process counts as started (its `ready` check) and as healthy
//! while it runs (its `health` check).

use std::time::Duration;

use crate::template::Template;

/// How long a process may take to pass its check when `timeout` is not
/// given: a web app that loads for a minute is slow, not broken.
pub const DEFAULT_READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a polled check (tcp, http) is tried when `interval` is not
/// given.
pub const DEFAULT_READY_INTERVAL: Duration = Duration::from_millis(250);

/// How often a `health` check runs when `interval` is not given.
pub const DEFAULT_HEALTH_INTERVAL: Duration = Duration::from_secs(10);
/// How long one `health` check may take when `timeout` is not given.
pub const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// Failures in a row that restart a process when `failures` is not given.
pub const DEFAULT_HEALTH_FAILURES: u32 = 3;

/// A watcher's `health = { ... }`: checked while a process is RUNNING;
/// after `failures` failures in a row the process is restarted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Health {
    /// What is checked: `Tcp`, `Http` or `Cmd` only.
    pub check: ReadyCheck,
    /// From the end of one check to the start of the next (and from
    /// RUNNING to the first).
    pub interval: Duration,
    /// How long one check may take; longer is a failure.
    pub timeout: Duration,
    /// Failures in a row that restart the process.
    pub failures: u32,
}

/// A watcher's `ready = { ... }`: its processes are STARTING until the
/// check passes, and one that has not passed within `timeout` is a failed
/// start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// What is checked.
    pub check: ReadyCheck,
    /// How long a process has to pass it.
    pub timeout: Duration,
    /// Between two tries of a polled check.
    pub interval: Duration,
}

/// What a readiness check looks at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadyCheck {
    /// A TCP connection to `HOST:PORT` is accepted.
    Tcp(Template),
    /// `GET URL` answers 2xx.
    Http(Template),
    /// This command (argv, split like `cmd`, no shell), run as the
    /// watcher's user with its environment, exits 0.
    Cmd(Vec<Template>),
    /// The process (or one of its descendants) sends `READY=1` to its
    /// own `NOTIFY_SOCKET`, as sd_notify(3) does.
    Notify,
    /// A line of the process's output (stdout or stderr) matches this
    /// regular expression.
    Log(String),
}

impl ReadyCheck {
    /// The check's kind, as the configuration names it.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Tcp(_) => "tcp",
            Self::Http(_) => "http",
            Self::Cmd(_) => "cmd",
            Self::Notify => "notify",
            Self::Log(_) => "log",
        }
    }
}

/// The regex of a `ready = { log = "..." }` check, as it is matched: on
/// the bytes of each line, with ASCII classes (`\d`, `\w`, `\s` and case
/// folding are ASCII's; other characters match as written). Unicode
/// tables would add a tenth to the daemon's resident memory, for log
/// lines that are ASCII where it matters.
pub fn log_pattern(text: &str) -> Result<regex::bytes::Regex, regex::Error> {
    regex::bytes::RegexBuilder::new(text).unicode(false).build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_patterns_match_bytes_with_ascii_classes() {
        let ready = log_pattern(r"celery@\S+ ready").unwrap();
        assert!(ready.is_match(b"[tasks] celery@web-1 ready."));
        let port = log_pattern(r"(?i)listening at: http://\S+:(\d+)").unwrap();
        assert!(port.is_match(b"[INFO] Listening at: http://127.0.0.1:8000 (12)"));
        // Other characters match as written, invalid UTF-8 lines too.
        assert!(
            log_pattern("démarré")
                .unwrap()
                .is_match("serveur démarré".as_bytes())
        );
        assert!(log_pattern("ok").unwrap().is_match(b"\xff\xfe ok"));
        // ASCII classes: a non-ASCII letter is no word character.
        assert!(!log_pattern(r"^\w+$").unwrap().is_match("é".as_bytes()));
    }
}
