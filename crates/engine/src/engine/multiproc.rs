//! `prometheus_multiproc = true`: the directory the Python client's
//! multiprocess mode needs, owned by ringmaster.
//!
//! Each such watcher has a directory `NAME` under `SOCKET.prometheus`
//! beside the control socket (`/run/ringmaster.sock.prometheus/web`).
//! It is made fresh when the watcher starts, that is when one of its
//! processes is spawned while none is alive (so a rolling restart keeps
//! the counters of the workers it replaces, as the client means them to
//! be kept), owned by the watcher's user with mode 0700, and named in
//! every worker's `PROMETHEUS_MULTIPROC_DIR` (and the old lower-case
//! `prometheus_multiproc_dir`). When a process exits, the `live*` gauge
//! files of every pid no longer alive are removed (the client's
//! `mark_process_dead`; the pids are the workers', which for gunicorn are
//! the children of the process ringmaster reaped), off the engine's
//! thread. The parent directory is the daemon's own and nobody else's:
//! a directory there that someone else can write is refused.

use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use ringmaster_config::WatcherConfig;

use super::Engine;
use crate::process::ProcId;

/// The directory holding every watcher's directory.
pub(crate) fn base_dir(socket: &Path) -> PathBuf {
    let name = socket
        .file_name()
        .map_or_else(|| "ringmaster".into(), |n| n.to_string_lossy().into_owned());
    socket
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join(format!("{name}.prometheus"))
}

impl Engine {
    /// The multiprocess directory of `config`'s workers, when it has one.
    pub(super) fn multiproc_dir(&self, config: &WatcherConfig) -> Option<PathBuf> {
        config
            .prometheus_multiproc
            .then(|| base_dir(&self.config.daemon.socket).join(&config.name))
    }

    /// The directory for slot `id`'s spawn: made fresh when none of its
    /// watcher's processes is alive, else the one in use.
    pub(super) fn prepare_multiproc(&self, id: ProcId) -> Result<Option<PathBuf>, String> {
        let config = self.watcher(id);
        let Some(dir) = self.multiproc_dir(config) else {
            return Ok(None);
        };
        let watcher = self.procs[id].watcher;
        let others_alive = self
            .procs
            .live_slots(watcher)
            .iter()
            .any(|&slot| slot != id && self.procs[slot].pid().is_some());
        if others_alive && dir.is_dir() {
            return Ok(Some(dir));
        }
        let owner = ringmaster_spawn::resolve_user(config.user.as_deref(), config.group.as_deref())
            .map_err(|err| err.to_string())?
            .credentials
            .map(|c| (c.uid, c.gid));
        fresh(&dir, owner).map_err(|err| {
            format!(
                "cannot make the prometheus_multiproc directory {}: {err}",
                dir.display()
            )
        })?;
        tracing::info!(watcher = %config.name, dir = %dir.display(), "fresh prometheus_multiproc directory");
        Ok(Some(dir))
    }

    /// After a process of a `prometheus_multiproc` watcher exited: its
    /// dead workers' live gauges go, on the blocking pool.
    pub(super) fn sweep_live_gauges(&self, id: ProcId) {
        if let Some(dir) = self.multiproc_dir(self.watcher(id)) {
            tokio::task::spawn_blocking(move || remove_dead_live_gauges(&dir));
        }
    }
}

/// Empties or makes `dir` (mode 0700, owned by `owner` when given), in a
/// parent only root and the daemon's user can write.
fn fresh(dir: &Path, owner: Option<(u32, u32)>) -> Result<(), String> {
    let base = dir.parent().ok_or("no parent directory")?;
    let parent = ringmaster_safefs::Dir::open(base, true).map_err(|err| err.to_string())?;
    if let Some(writers) = parent.writers() {
        return Err(format!("{} can be written by {writers}", base.display()));
    }
    // remove_dir_all never follows a link planted inside.
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err.to_string()),
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(dir)
        .map_err(|err| err.to_string())?;
    if let Some((uid, gid)) = owner {
        std::os::unix::fs::lchown(dir, Some(uid), Some(gid)).map_err(|err| err.to_string())?;
    }
    Ok(())
}

/// Removes `gauge_live*_PID.db` files of pids that no longer exist.
fn remove_dead_live_gauges(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let Some(pid) = name
            .strip_prefix("gauge_live")
            .and_then(|rest| rest.strip_suffix(".db"))
            .and_then(|rest| rest.rsplit_once('_'))
            .and_then(|(_, pid)| pid.parse::<i32>().ok())
        else {
            continue;
        };
        let gone = pid > 0
            && matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            );
        if gone && let Err(err) = std::fs::remove_file(entry.path()) {
            tracing::warn!(file = %entry.path().display(), "cannot remove a dead worker's gauges: {err}");
        }
    }
}
