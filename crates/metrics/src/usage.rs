//! CPU, memory and descriptors from /proc, for every live process of a
//! snapshot and for the daemon, and each process tree's from its cgroup. Blocking: the caller runs it off the
//! async runtime.

use crate::{Snapshot, Usage};

/// Fills in the usage of the daemon and of every process with a pid. A
/// process that exited meanwhile is left without (its series are then
/// absent from this scrape, as the process is).
pub fn measure(snapshot: &mut Snapshot) {
    snapshot.daemon.usage = read(snapshot.daemon.pid);
    for process in &mut snapshot.processes {
        process.usage = process.pid.and_then(read);
        process.tree = process.cgroup.as_deref().map(ringmaster_cgroup::usage_of);
    }
}

/// The usage of `pid`, if it still exists.
fn read(pid: i32) -> Option<Usage> {
    let process = procfs::process::Process::new(pid).ok()?;
    let stat = process.stat().ok()?;
    Some(Usage {
        cpu_seconds: (stat.utime + stat.stime) as f64 / procfs::ticks_per_second() as f64,
        rss_bytes: stat.rss * procfs::page_size(),
        open_fds: process.fd_count().ok().map(|n| n as u64),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_process_is_measured() {
        let mut snapshot = Snapshot::default();
        snapshot.daemon.pid = std::process::id() as i32;
        measure(&mut snapshot);
        let usage = snapshot.daemon.usage.unwrap();
        assert!(usage.rss_bytes > 0);
        assert!(usage.open_fds.unwrap() >= 3);
    }
}
