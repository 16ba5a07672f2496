//! What only the running system can tell about a watcher, asked by
//! `ringmasterd --check` while the file is read (so these come in the same
//! pass as every other error): whether its user and group exist and the
//! daemon may switch to them, whether its command will run for that user
//! (found in the PATH the process gets, executable, reachable, and its
//! `#!` interpreter too), whether its working directory exists and can be
//! entered, and whether the daemon can write its log files.
//!
//! What will certainly fail is an error; what may still work when the
//! process starts (a directory something creates first) is a warning.

use std::path::{Path, PathBuf};

use ringmaster_spawn::PrepareError;
use ringmaster_spawn::access::{self, Identity};

/// One watcher, as far as the system checks go (values for wid 1).
pub(crate) struct Subject<'a> {
    /// `user` and `group`.
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
    /// The program, unless a shell runs the command.
    pub program: Option<String>,
    /// The PATH the process gets.
    pub path_var: String,
    /// Its working directory.
    pub working_dir: Option<PathBuf>,
    /// Its log files, by the key that names them (`stdout`, `stderr`).
    pub log_files: Vec<(&'static str, PathBuf)>,
}

/// Something found, for the key it is about.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Finding {
    /// Will fail.
    Error(&'static str, String),
    /// May fail.
    Warning(&'static str, String),
}

/// Everything the system says about `subject`.
pub(crate) fn check(subject: &Subject<'_>) -> Vec<Finding> {
    let mut found = Vec::new();
    let who = match ringmaster_spawn::resolve_user(subject.user, subject.group) {
        Ok(resolved) => match (resolved.credentials, subject.user) {
            (Some(credentials), user) => Identity {
                uid: credentials.uid,
                groups: credentials.groups,
                name: user.map_or_else(
                    || format!("uid {}", credentials.uid),
                    |u| format!("user '{u}'"),
                ),
            },
            (None, _) => Identity::current(),
        },
        Err(err) => {
            let key = match &err {
                PrepareError::NoGroup(_) | PrepareError::NotRoot { what: "group", .. } => "group",
                _ => "user",
            };
            let hint = if matches!(err, PrepareError::NotRoot { .. }) {
                " (ringmasterd --check asks as the user it runs as: run it as the daemon's user)"
            } else {
                ""
            };
            found.push(Finding::Error(key, format!("{err}{hint}")));
            // Without the identity, what it could run is unknown.
            check_logs(subject, &mut found);
            return found;
        }
    };
    let dir_ok = match &subject.working_dir {
        Some(dir) => check_working_dir(dir, &who, &mut found),
        None => true,
    };
    if let (Some(program), true) = (&subject.program, dir_ok) {
        let dir = subject.working_dir.as_deref().unwrap_or(Path::new("/"));
        if let Err(problem) = access::check_program(program, &subject.path_var, dir, &who) {
            found.push(Finding::Error("cmd", problem.to_string()));
        }
    }
    check_logs(subject, &mut found);
    found
}

/// The working directory exists and `who` may enter it; false when the
/// program cannot be looked for from it.
fn check_working_dir(dir: &Path, who: &Identity, found: &mut Vec<Finding>) -> bool {
    match std::fs::metadata(dir) {
        Err(_) => {
            found.push(Finding::Warning(
                "working_dir",
                format!(
                    "{} does not exist (yet?): the process cannot start unless something creates it first",
                    dir.display()
                ),
            ));
            false
        }
        Ok(meta) if !meta.is_dir() => {
            let message = format!("{} is not a directory", dir.display());
            found.push(Finding::Error("working_dir", message));
            false
        }
        Ok(_) => match access::check_reach(&dir.join("."), who) {
            Ok(()) => true,
            Err(problem) => {
                found.push(Finding::Error("working_dir", problem.to_string()));
                false
            }
        },
    }
}

/// The daemon can create (or write) each log file.
fn check_logs(subject: &Subject<'_>, found: &mut Vec<Finding>) {
    for (key, file) in &subject.log_files {
        if let Some(message) = log_problem(file) {
            found.push(Finding::Error(key, message));
        }
    }
}

/// Why the daemon could not write `file`, if it could not.
fn log_problem(file: &Path) -> Option<String> {
    use nix::unistd::{AccessFlags, access};
    if file.exists() {
        return access(file, AccessFlags::W_OK)
            .is_err()
            .then(|| format!("log file {} is not writable by the daemon", file.display()));
    }
    // The daemon creates missing directories: the nearest that exists
    // must let it.
    let mut dir = file.parent()?;
    while !dir.exists() {
        dir = dir.parent()?;
    }
    access(dir, AccessFlags::W_OK | AccessFlags::X_OK)
        .is_err()
        .then(|| {
            format!(
                "log file {} cannot be created: {} is not writable by the daemon",
                file.display(),
                dir.display()
            )
        })
}
