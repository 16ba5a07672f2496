//! Will this program run? The questions exec would answer with a bare
//! errno, asked beforehand for a given identity, so that `--check` (and a
//! spawn error) can say which file or directory is in the way: the
//! program, a directory on its path, or the interpreter its `#!` names.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Who the program runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its uid.
    pub uid: u32,
    /// Every group it has (primary included).
    pub groups: Vec<u32>,
    /// How messages name it: `user 'app'`, `uid 1000`.
    pub name: String,
}

impl Identity {
    /// The daemon's own identity.
    pub fn current() -> Self {
        let uid = nix::unistd::geteuid().as_raw();
        let mut groups: Vec<u32> = nix::unistd::getgroups()
            .map(|g| g.into_iter().map(nix::unistd::Gid::as_raw).collect())
            .unwrap_or_default();
        groups.push(nix::unistd::getegid().as_raw());
        let name = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid))
            .ok()
            .flatten()
            .map_or_else(|| format!("uid {uid}"), |u| format!("user '{}'", u.name));
        Self { uid, groups, name }
    }

    /// Whether it may do `bit` (4 read, 2 write, 1 execute/search) on a
    /// file with `meta`'s owner and mode. Root may do anything but execute
    /// a file that no one may execute.
    fn may(&self, meta: &std::fs::Metadata, bit: u32) -> bool {
        let mode = meta.permissions().mode();
        if self.uid == 0 {
            return bit != 1 || meta.is_dir() || mode & 0o111 != 0;
        }
        let shift = if meta.uid() == self.uid {
            6
        } else if self.groups.contains(&meta.gid()) {
            3
        } else {
            0
        };
        (mode >> shift) & bit != 0
    }
}

/// Why a program cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProgramProblem {
    /// Not found in any directory of PATH.
    #[error(
        "command not found: '{program}' is in no directory of the PATH the process gets ({path})"
    )]
    NotInPath {
        /// The program as written.
        program: String,
        /// That PATH.
        path: String,
    },
    /// The path does not exist.
    #[error("{} does not exist", .0.display())]
    Missing(PathBuf),
    /// A directory on the way may not be entered.
    #[error("{who} cannot enter {} (mode {mode:03o}), so {} is out of its reach", dir.display(), path.display())]
    NoSearch {
        /// The directory.
        dir: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// What is behind it.
        path: PathBuf,
        /// Who tried.
        who: String,
    },
    /// Not a regular file.
    #[error("{} is not a file", .0.display())]
    NotAFile(PathBuf),
    /// No execute permission for this identity.
    #[error("{} is not executable by {who} (mode {mode:03o})", path.display())]
    NotExecutable {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Who tried.
        who: String,
    },
    /// A script that this identity may not read (its interpreter must).
    #[error("{} is a script {who} may not read (mode {mode:03o})", path.display())]
    NotReadable {
        /// The script.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
        /// Who tried.
        who: String,
    },
    /// The interpreter a `#!` line names cannot be run.
    #[error("{} starts with #!{interpreter}, and {problem}", script.display())]
    Interpreter {
        /// The script.
        script: PathBuf,
        /// The interpreter as written.
        interpreter: String,
        /// What is wrong with it.
        problem: Box<ProgramProblem>,
    },
}

/// The paths exec tries for `program`: itself when it has a `/`, else each
/// directory of `path_var` (an empty entry is the working directory).
pub fn candidates(program: &OsStr, path_var: &OsStr) -> Vec<Vec<u8>> {
    if program.as_bytes().contains(&b'/') {
        return vec![program.as_bytes().to_vec()];
    }
    path_var
        .as_bytes()
        .split(|&b| b == b':')
        .map(|dir| {
            let dir = if dir.is_empty() { b".".as_slice() } else { dir };
            let mut full = dir.to_vec();
            full.push(b'/');
            full.extend_from_slice(program.as_bytes());
            full
        })
        .collect()
}

/// Finds `program` as exec would (PATH `path_var`, relative paths against
/// `working_dir`) and checks that `who` can run it, following one `#!`.
/// Returns the file that would run.
pub fn check_program(
    program: &str,
    path_var: &str,
    working_dir: &Path,
    who: &Identity,
) -> Result<PathBuf, ProgramProblem> {
    let found: Vec<PathBuf> = candidates(OsStr::new(program), OsStr::new(path_var))
        .into_iter()
        .map(|c| working_dir.join(Path::new(OsStr::from_bytes(&c))))
        .collect();
    if !program.contains('/') {
        // exec goes on past a candidate that is missing or not
        // executable; the first that would run is the answer.
        let runnable = found.iter().find(|c| check_file(c, who).is_ok()).cloned();
        return match runnable {
            Some(path) => check_script(&path, who).map(|()| path),
            None => match found.iter().find(|c| c.exists()) {
                // There, but not for this identity: say why.
                Some(path) => check_file(path, who).map(|()| path.clone()),
                None => Err(ProgramProblem::NotInPath {
                    program: program.to_owned(),
                    path: path_var.to_owned(),
                }),
            },
        };
    }
    let path = found.into_iter().next().unwrap_or_default();
    check_file(&path, who)?;
    check_script(&path, who)?;
    Ok(path)
}

/// `path` exists, is a file, and `who` may reach and execute it.
fn check_file(path: &Path, who: &Identity) -> Result<(), ProgramProblem> {
    check_reach(path, who)?;
    let meta = std::fs::metadata(path).map_err(|_| ProgramProblem::Missing(path.to_owned()))?;
    if !meta.is_file() {
        return Err(ProgramProblem::NotAFile(path.to_owned()));
    }
    if !who.may(&meta, 1) {
        return Err(ProgramProblem::NotExecutable {
            path: path.to_owned(),
            mode: meta.permissions().mode() & 0o7777,
            who: who.name.clone(),
        });
    }
    Ok(())
}

/// Every directory on the way to `path` may be entered by `who`.
pub fn check_reach(path: &Path, who: &Identity) -> Result<(), ProgramProblem> {
    let mut dir = PathBuf::new();
    let parents: Vec<_> = path
        .parent()
        .map(Path::components)
        .into_iter()
        .flatten()
        .collect();
    for part in parents {
        dir.push(part);
        let Ok(meta) = std::fs::metadata(&dir) else {
            return Err(ProgramProblem::Missing(dir));
        };
        if !who.may(&meta, 1) {
            return Err(ProgramProblem::NoSearch {
                dir,
                mode: meta.permissions().mode() & 0o7777,
                path: path.to_owned(),
                who: who.name.clone(),
            });
        }
    }
    Ok(())
}

/// A script (`#!` first) must be readable, and its interpreter runnable.
fn check_script(path: &Path, who: &Identity) -> Result<(), ProgramProblem> {
    let Some(interpreter) = shebang(path) else {
        return Ok(());
    };
    if let Ok(meta) = std::fs::metadata(path)
        && !who.may(&meta, 4)
    {
        return Err(ProgramProblem::NotReadable {
            path: path.to_owned(),
            mode: meta.permissions().mode() & 0o7777,
            who: who.name.clone(),
        });
    }
    let interpreter_path = Path::new(&interpreter);
    check_file(interpreter_path, who).map_err(|problem| ProgramProblem::Interpreter {
        script: path.to_owned(),
        interpreter: interpreter.clone(),
        problem: Box::new(problem),
    })
}

/// The interpreter of a `#!` line, if the file starts with one.
fn shebang(path: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let read = std::fs::File::open(path).ok()?.read(&mut head).ok()?;
    let line = head[..read].strip_prefix(b"#!")?;
    let line = line.split(|&b| b == b'\n').next()?;
    let text = String::from_utf8_lossy(line);
    text.split_whitespace().next().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn nobody() -> Identity {
        Identity {
            uid: 65534,
            groups: vec![65534],
            name: "user 'nobody'".into(),
        }
    }

    fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn programs_are_found_in_path_and_relative_to_the_working_dir() {
        let me = Identity::current();
        let sh = check_program("sh", "/nonexistent:/bin:/usr/bin", Path::new("/"), &me).unwrap();
        assert!(sh.ends_with("sh"), "{}", sh.display());
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("run"), "#!/bin/sh\n", 0o755);
        assert!(check_program("./run", "", dir.path(), &me).is_ok());
        let err = check_program("nope-no-such-tool", "/bin", Path::new("/"), &me).unwrap_err();
        assert!(matches!(err, ProgramProblem::NotInPath { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "command not found: 'nope-no-such-tool' is in no directory of the PATH the process gets (/bin)"
        );
        let err = check_program("./missing", "", dir.path(), &me).unwrap_err();
        assert!(matches!(err, ProgramProblem::Missing(_)), "{err}");
    }

    #[test]
    fn a_file_without_execute_permission_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tool");
        write(&file, "#!/bin/sh\n", 0o644);
        let err = check_program(file.to_str().unwrap(), "", dir.path(), &Identity::current())
            .unwrap_err();
        assert!(err.to_string().contains("is not executable by"), "{err}");
    }

    /// The venv under a private home: the script is fine, its interpreter
    /// is out of reach for the user the process runs as.
    #[test]
    fn an_interpreter_out_of_reach_is_named_not_the_script() {
        let home = tempfile::tempdir().unwrap();
        let private = home.path().join("private");
        std::fs::create_dir(&private).unwrap();
        write(&private.join("python3"), "", 0o755);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let script = home.path().join("gunicorn");
        write(
            &script,
            &format!("#!{}/python3\nimport sys\n", private.display()),
            0o755,
        );
        let who = nobody();
        let err = check_program(script.to_str().unwrap(), "", home.path(), &who).unwrap_err();
        let ProgramProblem::Interpreter { problem, .. } = &err else {
            panic!("{err}");
        };
        assert!(
            matches!(**problem, ProgramProblem::NoSearch { .. }),
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("starts with #!"), "{text}");
        assert!(
            text.contains(&format!("cannot enter {} (mode 700)", private.display())),
            "{text}"
        );
    }
}
