//! What `/metrics`, `/health` and `/targets` are made of: a copy of the
//! figures the engine holds, taken in one turn. Reading /proc and
//! rendering happen in the HTTP task, never here.

use std::sync::atomic::Ordering;
use std::time::SystemTime;

use ringmaster_metrics::{DaemonFigures, ProcessFigures, Snapshot, WatcherFigures};
use ringmaster_protocol::ProcessState;
use ringmaster_spawn::Exit;

use super::Engine;

/// Seconds since the epoch of `time`.
fn unix(time: SystemTime) -> f64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl Engine {
    /// The figures of every live watcher and process, and the daemon's.
    pub(super) fn metrics_snapshot(&self) -> Snapshot {
        let mut snapshot = Snapshot {
            daemon: DaemonFigures {
                pid: std::process::id() as i32,
                started_at: unix(self.started_wall),
                now: unix(SystemTime::now()),
                version: env!("CARGO_PKG_VERSION").to_owned(),
                usage: None,
            },
            ..Snapshot::default()
        };
        for watcher_id in self.procs.watcher_ids() {
            let watcher = self.procs.watcher(watcher_id);
            if watcher.removed {
                continue;
            }
            let config = &watcher.config;
            let mut running = 0;
            for &slot in self.procs.live_slots(watcher_id) {
                let process = &self.procs[slot];
                let info = process.info(config);
                running += u32::from(info.state == ProcessState::Running);
                snapshot.processes.push(ProcessFigures {
                    watcher: config.name.clone(),
                    name: process.name.to_string(),
                    wid: process.name.wid,
                    state: info.state.as_str().to_owned(),
                    completed: info.completed,
                    reason: info.reason,
                    pid: info.pid,
                    restarts: info.restarts,
                    started_at: info.started_at,
                    last_exit_code: process.life.last_exit.map(|exit| match exit {
                        Exit::Code(code) => code,
                        Exit::Signal { signal, .. } => 128 + signal,
                    }),
                    log_bytes: process
                        .log_bytes
                        .each_ref()
                        .map(|count| count.load(Ordering::Relaxed)),
                    usage: None,
                    cgroup: process.cgroup.as_ref().map(|leaf| leaf.path().to_owned()),
                    tree: None,
                });
            }
            snapshot.watchers.push(WatcherFigures {
                name: config.name.clone(),
                desired: watcher.live,
                running,
                autostart: config.autostart,
                metrics_port: config.metrics_port,
                multiproc_dir: self.multiproc_dir(config),
            });
        }
        snapshot
    }
}
