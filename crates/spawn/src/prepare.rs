//! Everything resolved in the parent before a fork: who, what, where.

use std::ffi::{CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};

use nix::sys::resource::Resource;
use nix::unistd::{Gid, Group, Uid, User};

/// Default search path when the child's environment has no PATH.
/// The PATH a child gets when its environment has none.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// Why a launch could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The user does not exist.
    #[error("no such user '{0}'")]
    NoUser(String),
    /// The group does not exist.
    #[error("no such group '{0}'")]
    NoGroup(String),
    /// A numeric uid without passwd entry and no group to go with it.
    #[error("uid {0} has no passwd entry; set group explicitly")]
    NumericUidNeedsGroup(u32),
    /// The daemon is not root and cannot switch to another user.
    #[error("cannot run as {what} '{name}': the daemon is not running as root")]
    NotRoot {
        /// "user" or "group".
        what: &'static str,
        /// The requested name.
        name: String,
    },
    /// Looking up users or groups failed.
    #[error("cannot look up {what}: {source}")]
    Lookup {
        /// What was looked up.
        what: String,
        /// The error.
        source: nix::Error,
    },
    /// A string contains a NUL byte and cannot be passed to exec.
    #[error("{0} contains a NUL byte")]
    Nul(&'static str),
    /// No program given.
    #[error("empty command")]
    EmptyCommand,
}

/// The identity a child switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// Target uid.
    pub uid: libc::uid_t,
    /// Target primary gid.
    pub gid: libc::gid_t,
    /// Full supplementary group list (including `gid`).
    pub groups: Vec<libc::gid_t>,
}

/// A user resolved from passwd, with the environment it implies.
#[derive(Debug, Clone)]
pub struct ResolvedUser {
    /// The identity to switch to (`None` when no switch is needed).
    pub credentials: Option<Credentials>,
    /// HOME, USER, LOGNAME, SHELL from passwd, when a user was named.
    pub env: Vec<(String, OsString)>,
}

/// Resolves `user`/`group` into credentials; fails for unknown names and
/// for switching identity without root.
pub fn resolve_user(user: Option<&str>, group: Option<&str>) -> Result<ResolvedUser, PrepareError> {
    let euid = Uid::effective();
    let egid = Gid::effective();
    let mut env = Vec::new();
    let passwd = match user {
        None => None,
        Some(name) => Some(lookup_user(name)?),
    };
    let group_gid = match group {
        None => None,
        Some(name) => Some(lookup_group(name)?),
    };
    let (uid, primary_gid, user_name) = match (&passwd, user) {
        (Some(Some(entry)), _) => {
            env.push(("HOME".to_owned(), entry.dir.clone().into_os_string()));
            env.push(("USER".to_owned(), OsString::from(&entry.name)));
            env.push(("LOGNAME".to_owned(), OsString::from(&entry.name)));
            env.push(("SHELL".to_owned(), entry.shell.clone().into_os_string()));
            (entry.uid, entry.gid, Some(entry.name.clone()))
        }
        (Some(None), Some(name)) => {
            // A numeric uid without a passwd entry (common in containers).
            let uid: u32 = name
                .parse()
                .map_err(|_| PrepareError::NoUser(name.to_owned()))?;
            let gid = group_gid.ok_or(PrepareError::NumericUidNeedsGroup(uid))?;
            (Uid::from_raw(uid), gid, None)
        }
        _ => (euid, egid, None),
    };
    let gid = group_gid.unwrap_or(primary_gid);

    if user.is_none() && group.is_none() {
        return Ok(ResolvedUser {
            credentials: None,
            env,
        });
    }
    if !euid.is_root() {
        if uid != euid {
            return Err(PrepareError::NotRoot {
                what: "user",
                name: user.unwrap_or_default().to_owned(),
            });
        }
        if gid != egid {
            return Err(PrepareError::NotRoot {
                what: "group",
                name: group.unwrap_or_default().to_owned(),
            });
        }
        // Already that identity: nothing to switch.
        return Ok(ResolvedUser {
            credentials: None,
            env,
        });
    }
    let groups = match &user_name {
        Some(name) => {
            let cname = CString::new(name.as_str()).map_err(|_| PrepareError::Nul("user name"))?;
            nix::unistd::getgrouplist(&cname, gid).map_err(|source| PrepareError::Lookup {
                what: format!("groups of user '{name}'"),
                source,
            })?
        }
        None => vec![gid],
    };
    let mut groups: Vec<libc::gid_t> = groups.into_iter().map(Gid::as_raw).collect();
    if !groups.contains(&gid.as_raw()) {
        groups.insert(0, gid.as_raw());
    }
    Ok(ResolvedUser {
        credentials: Some(Credentials {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            groups,
        }),
        env,
    })
}

fn lookup_user(name: &str) -> Result<Option<User>, PrepareError> {
    let found = match name.parse::<u32>() {
        Ok(uid) => User::from_uid(Uid::from_raw(uid)),
        Err(_) => User::from_name(name),
    }
    .map_err(|source| PrepareError::Lookup {
        what: format!("user '{name}'"),
        source,
    })?;
    if found.is_none() && name.parse::<u32>().is_err() {
        return Err(PrepareError::NoUser(name.to_owned()));
    }
    Ok(found)
}

fn lookup_group(name: &str) -> Result<Gid, PrepareError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(Gid::from_raw(gid));
    }
    Group::from_name(name)
        .map_err(|source| PrepareError::Lookup {
            what: format!("group '{name}'"),
            source,
        })?
        .map(|g| g.gid)
        .ok_or_else(|| PrepareError::NoGroup(name.to_owned()))
}

/// What to launch, in Rust types.
#[derive(Debug, Clone, Default)]
pub struct LaunchRequest {
    /// argv; argv[0] is the program (searched in PATH when it has no '/').
    pub argv: Vec<String>,
    /// The complete environment, in order (later duplicates win).
    pub env: Vec<(OsString, OsString)>,
    /// Directory to chdir to.
    pub working_dir: String,
    /// Identity to switch to.
    pub credentials: Option<Credentials>,
    /// umask to set.
    pub umask: Option<u32>,
    /// Resource limits as (resource, soft, hard).
    pub rlimits: Vec<(Resource, u64, u64)>,
    /// Add `LISTEN_PID` with the child's own pid, as systemd does for the
    /// sockets it passes (filled in by the child, which alone knows it).
    pub listen_pid: bool,
}

/// A launch ready for fork: C strings only, nothing left to allocate.
#[derive(Debug)]
pub struct Launch {
    pub(crate) program: String,
    pub(crate) candidates: Vec<CString>,
    pub(crate) argv: Vec<CString>,
    pub(crate) envp: Vec<CString>,
    pub(crate) working_dir: CString,
    pub(crate) credentials: Option<Credentials>,
    pub(crate) umask: Option<libc::mode_t>,
    pub(crate) rlimits: Vec<(Resource, u64, u64)>,
    pub(crate) listen_pid: bool,
}

impl Launch {
    /// Converts a request into C strings and the list of paths to try.
    pub fn prepare(request: LaunchRequest) -> Result<Self, PrepareError> {
        let program = request
            .argv
            .first()
            .ok_or(PrepareError::EmptyCommand)?
            .clone();
        if program.is_empty() {
            return Err(PrepareError::EmptyCommand);
        }
        let argv = request
            .argv
            .iter()
            .map(|a| CString::new(a.as_bytes()).map_err(|_| PrepareError::Nul("an argument")))
            .collect::<Result<Vec<_>, _>>()?;

        // Later duplicates win, first position is kept.
        let mut env: Vec<(OsString, OsString)> = Vec::with_capacity(request.env.len());
        for (key, value) in request.env {
            if let Some(slot) = env.iter_mut().find(|(k, _)| *k == key) {
                slot.1 = value;
            } else {
                env.push((key, value));
            }
        }
        let path_var = env
            .iter()
            .find(|(k, _)| k == "PATH")
            .map_or_else(|| OsString::from(DEFAULT_PATH), |(_, v)| v.clone());
        if request.listen_pid {
            // The child adds its own.
            env.retain(|(key, _)| key != "LISTEN_PID");
        }
        let envp = env
            .into_iter()
            .map(|(mut key, value)| {
                key.push("=");
                key.push(value);
                CString::new(key.into_vec())
                    .map_err(|_| PrepareError::Nul("an environment variable"))
            })
            .collect::<Result<Vec<_>, _>>()?;

        let candidates = crate::access::candidates(OsStr::new(&program), &path_var)
            .into_iter()
            .map(|c| CString::new(c).map_err(|_| PrepareError::Nul("PATH or the program")))
            .collect::<Result<Vec<_>, _>>()?;
        let working_dir = CString::new(OsStr::new(&request.working_dir).as_bytes())
            .map_err(|_| PrepareError::Nul("working_dir"))?;
        Ok(Self {
            program,
            candidates,
            argv,
            envp,
            working_dir,
            credentials: request.credentials,
            umask: request.umask.map(|m| m as libc::mode_t),
            rlimits: request.rlimits,
            listen_pid: request.listen_pid,
        })
    }

    /// The program as configured (argv[0]).
    pub fn program_name(&self) -> &str {
        &self.program
    }
}
