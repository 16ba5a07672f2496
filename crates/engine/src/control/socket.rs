//! Binding the control socket safely: every step through its directory's
//! descriptor (ringmaster-safefs), bound under a temporary name, secured,
//! then linked into place without replacing.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use nix::unistd::{Group, Uid};
use ringmaster_config::DaemonConfig;
use ringmaster_safefs::{Dir, SafeError};
use tokio::net::UnixListener;

use super::Authorizer;
use crate::EngineError;

/// The start-up error for a socket at `path` that cannot be set up safely.
fn socket_error(path: &Path) -> impl Fn(SafeError) -> EngineError + Copy + '_ {
    move |source| EngineError::Socket {
        path: path.to_path_buf(),
        source: std::io::Error::other(source.to_string()),
    }
}

/// Checks whether a daemon answers at `path`: `Ok(true)` if one does,
/// `Ok(false)` if the path is absent or a stale socket.
pub fn probe_socket(path: &Path) -> Result<bool, EngineError> {
    let socket_err = socket_error(path);
    let (dir, name) = ringmaster_safefs::split(path).ok_or_else(|| EngineError::NotASocket {
        path: path.to_path_buf(),
    })?;
    let dir = match Dir::open(dir, false) {
        Ok(dir) => dir,
        Err(err) if err.is_not_found() => return Ok(false),
        Err(err) => return Err(socket_err(err)),
    };
    probe_in(&dir, name, path)
}

/// [`probe_socket`] for `name` in an opened directory.
fn probe_in(dir: &Dir, name: &OsStr, path: &Path) -> Result<bool, EngineError> {
    let socket_err = socket_error(path);
    match dir.stat(name).map_err(socket_err)? {
        None => Ok(false),
        Some(stat) if stat.st_mode & nix::libc::S_IFMT != nix::libc::S_IFSOCK => {
            Err(EngineError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Some(_) => Ok(std::os::unix::net::UnixStream::connect(
            dir.fd_path(name).map_err(socket_err)?,
        )
        .is_ok()),
    }
}

/// The control socket's file, removed when the daemon exits (through its
/// directory's descriptor, like every other operation on it).
#[derive(Debug)]
pub(crate) struct SocketFile {
    dir: Dir,
    name: std::ffi::OsString,
}

impl SocketFile {
    /// Removes the socket file.
    pub fn remove(&self) {
        let _ = self.dir.unlink(&self.name);
    }
}

/// Binds the control socket with the configured mode and group. A live
/// daemon on the same path is an error; a stale socket file is replaced.
/// Every step goes through the socket directory's descriptor, reached by
/// a checked walk (ringmaster-safefs), so a directory other users can
/// write cannot redirect the unlink, the bind, the chown or the chmod.
pub(crate) fn bind(
    daemon: &DaemonConfig,
) -> Result<(UnixListener, Authorizer, SocketFile), EngineError> {
    let path = &daemon.socket;
    let socket_err = socket_error(path);
    let group = match &daemon.socket_group {
        None => None,
        Some(name) => Some(
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| EngineError::NoSocketGroup(name.clone()))?
                .gid,
        ),
    };
    let (dir, name) = ringmaster_safefs::split(path)
        .ok_or_else(|| EngineError::NotASocket { path: path.clone() })?;
    let dir = open_parent(dir).map_err(socket_err)?;
    if probe_in(&dir, name, path)? {
        return Err(EngineError::AlreadyRunning { path: path.clone() });
    }
    match dir.unlink(name) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale control socket"),
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(socket_err(err)),
    }
    // Bound under a temporary name, given its group and mode, then renamed
    // into place: nobody can connect before it is set up as configured,
    // and a daemon started at the same moment on the same path is refused
    // rather than replaced (the rename does not replace).
    let mut staging = std::ffi::OsString::from(format!(".{}.", std::process::id()));
    staging.push(name);
    let _ = dir.unlink(&staging);
    let listener =
        UnixListener::bind(dir.fd_path(&staging).map_err(socket_err)?).map_err(|source| {
            EngineError::Socket {
                path: path.clone(),
                source,
            }
        })?;
    let placed = dir
        .secure_socket(&staging, None, group, daemon.socket_mode)
        .and_then(|()| dir.rename_no_replace(&staging, name));
    if let Err(err) = placed {
        let _ = dir.unlink(&staging);
        return Err(socket_err(err));
    }
    Ok((
        listener,
        Authorizer {
            daemon_uid: Uid::effective(),
            group,
        },
        SocketFile {
            dir,
            name: name.to_os_string(),
        },
    ))
}

/// Opens the socket's directory, creating it if needed. The per-user
/// fallback directory under /tmp must be ours and private, or we refuse it.
fn open_parent(dir: &Path) -> Result<Dir, SafeError> {
    let fallback = PathBuf::from(format!("/tmp/ringmaster-{}", Uid::effective()));
    if dir != fallback {
        return Dir::open(dir, true);
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| SafeError::Io {
                path: dir.to_path_buf(),
                source,
            },
        )?,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(SafeError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let opened = Dir::open(dir, false)?;
    // Walked without following a planted symlink; now it must be ours alone.
    if opened.writers().is_some() || !opened.is_private() {
        return Err(SafeError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                ErrorKind::PermissionDenied,
                "is not a private directory owned by us",
            ),
        });
    }
    Ok(opened)
}
