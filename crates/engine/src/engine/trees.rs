//! Process trees by cgroup v2 (see ringmaster-cgroup): each run of a
//! process gets a cgroup of its own, `WATCHER-WID-SEQ`, which the child
//! starts in (clone3) or joins before it execs. Whether a process's tree
//! is still alive is then whether its cgroup is populated (or its process
//! group has members not yet reaped), so STOPPING lasts until every
//! process it started is gone, `setsid` escapees included. A signal for
//! the process group also goes to the processes of the cgroup outside
//! the group (once each: a second SIGTERM means "hurry" to some
//! programs), so an escapee gets the stop signal too, as systemd's
//! `KillMode=control-group` does; and the SIGKILL of `stop_timeout` (or
//! of the shutdown deadline) goes to the whole cgroup (`cgroup.kill`).
//! A cgroup found empty is removed with the orphan sweep that follows,
//! a moment after the exit: right after its last process exits, `rmdir`
//! costs half a millisecond, which a restart should not wait for. One
//! still populated when its slot starts again (an orphan left by
//! `stop_orphans = false`) is kept aside the same way until it is empty.
//! Without cgroups (`cgroups = false`, or none the daemon can make) each
//! of these falls back to the process group, as before.

use std::os::fd::OwnedFd;

use nix::unistd::Pid;
use ringmaster_cgroup::Leaf;

use super::Engine;
use crate::process::ProcId;

impl Engine {
    /// A fresh cgroup for the next run of slot `id`, with its directory
    /// and `cgroup.procs` open for the spawn; none without cgroups, or
    /// (with a warning) when it cannot be made.
    pub(super) fn cgroup_for_spawn(&mut self, id: ProcId) -> Option<(Leaf, (OwnedFd, OwnedFd))> {
        let tree = self.trees.as_ref()?;
        self.cgroup_seq += 1;
        let name = &self.procs[id].name;
        let leaf_name = format!("{}-{}-{}", name.watcher, name.wid, self.cgroup_seq);
        let made = tree.create(&leaf_name).and_then(|leaf| {
            let fds = (leaf.open_dir()?, leaf.open_procs()?);
            Ok((leaf, fds))
        });
        match made {
            Ok(made) => Some(made),
            Err(err) => {
                tracing::warn!(
                    process = %self.procs[id].shown(),
                    "cannot make its cgroup ({err}): it runs without one, stopped by process group"
                );
                None
            }
        }
    }

    /// Slot `id` runs in `leaf` now: its last run's cgroup is removed, or
    /// kept aside while something still runs in it.
    pub(super) fn adopt_cgroup(&mut self, id: ProcId, leaf: Option<Leaf>) {
        if let Some(old) = std::mem::replace(&mut self.procs[id].cgroup, leaf)
            && old.remove().is_err()
        {
            self.stale_cgroups.push(old);
        }
    }

    /// Whether slot `id`'s tree has processes: its cgroup is populated,
    /// or process group `pgid` has members. A cgroup found empty is set
    /// aside for removal.
    pub(super) fn tree_alive(&mut self, id: ProcId, pgid: Option<Pid>) -> bool {
        // Members that exited but are not reaped yet have left the
        // cgroup, not the process group.
        let group_alive = self.group_alive(pgid);
        let Some(leaf) = &self.procs[id].cgroup else {
            return group_alive;
        };
        if leaf.populated() {
            return true;
        }
        if group_alive {
            return true;
        }
        // Removed with the orphan sweep, a moment later: not in the way of
        // a restart.
        if let Some(leaf) = self.procs[id].cgroup.take() {
            self.stale_cgroups.push(leaf);
        }
        false
    }

    /// `signal`, sent to process group `-target`, to the processes of
    /// slot `id`'s cgroup that are outside that group too.
    pub(super) fn signal_outside_group(&mut self, id: ProcId, target: i32, signal: i32) {
        let Some(leaf) = &self.procs[id].cgroup else {
            return;
        };
        let pgid = -target;
        for pid in leaf.pids() {
            if nix::unistd::getpgid(Some(Pid::from_raw(pid))).is_ok_and(|g| g.as_raw() != pgid) {
                let _ = self.os.signal(pid, signal);
            }
        }
    }

    /// SIGKILL to everything in slot `id`'s cgroup.
    pub(super) fn kill_tree(&self, id: ProcId) {
        if let Some(leaf) = &self.procs[id].cgroup
            && let Err(err) = leaf.kill()
        {
            tracing::error!(process = %self.procs[id].shown(), "cannot kill its cgroup: {err}");
        }
    }

    /// Removes the cgroups kept aside that are empty now.
    pub(super) fn remove_stale_cgroups(&mut self) {
        self.stale_cgroups.retain(|leaf| leaf.remove().is_err());
    }

    /// At the end: every cgroup left, and the daemon's own.
    pub(super) fn remove_cgroups(&mut self) {
        for id in self.procs.ids() {
            if let Some(leaf) = self.procs[id].cgroup.take() {
                let _ = leaf.remove();
            }
        }
        self.remove_stale_cgroups();
        if let Some(tree) = &self.trees {
            tree.remove();
        }
    }
}
