//! What ringmaster's HTTP listener serves: `/metrics` (the OpenMetrics
//! text of every process, watcher and the daemon itself), `/targets` (a
//! Prometheus `http_sd` document, one target per worker) and `/health`.
//!
//! Theory of operation: the engine hands over a [`Snapshot`], plain data
//! copied out of its state in one short turn; everything that takes time
//! happens here, off the engine: [`measure`] reads /proc for each pid
//! (CPU, memory, descriptors), and [`render`] writes the exposition with
//! the prometheus-client crate. Nothing here keeps state between scrapes.

mod multiproc;
mod render;
mod usage;

pub use multiproc::{MAX_FILE_BYTES, Merged, go_float, merge_dir, python_repr};
pub use render::{CONTENT_TYPE, TEXT_CONTENT_TYPE, render, to_text_format, wants_openmetrics};
pub use usage::measure;

/// Everything one scrape shows, as the engine saw it.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The daemon itself.
    pub daemon: DaemonFigures,
    /// Every watcher, in configuration order.
    pub watchers: Vec<WatcherFigures>,
    /// Every process slot, watcher by watcher.
    pub processes: Vec<ProcessFigures>,
}

/// The daemon's own figures.
#[derive(Debug, Clone, Default)]
pub struct DaemonFigures {
    /// Its pid.
    pub pid: i32,
    /// Unix time it started.
    pub started_at: f64,
    /// Unix time of the snapshot.
    pub now: f64,
    /// Its version.
    pub version: String,
    /// CPU, memory and descriptors, once measured.
    pub usage: Option<Usage>,
}

/// One watcher.
#[derive(Debug, Clone, Default)]
pub struct WatcherFigures {
    /// Its name.
    pub name: String,
    /// `numprocesses`.
    pub desired: u32,
    /// Processes RUNNING now.
    pub running: u32,
    /// Whether it starts with the daemon (`/health` counts only these).
    pub autostart: bool,
    /// Worker 1's own metrics port, when it has one.
    pub metrics_port: Option<u16>,
    /// Its workers' multiprocess directory (`prometheus_multiproc`).
    pub multiproc_dir: Option<std::path::PathBuf>,
}

/// One process slot.
#[derive(Debug, Clone, Default)]
pub struct ProcessFigures {
    /// Its watcher.
    pub watcher: String,
    /// `web:2`.
    pub name: String,
    /// Its slot, from 1.
    pub wid: u32,
    /// Its state, upper-case (`RUNNING`).
    pub state: String,
    /// A one-shot job that completed: a success, not a process down.
    pub completed: bool,
    /// Why it is not running, when it is not.
    pub reason: Option<String>,
    /// Its pid while alive.
    pub pid: Option<i32>,
    /// Automatic restarts since the daemon started.
    pub restarts: u32,
    /// Unix time its current process was spawned.
    pub started_at: Option<f64>,
    /// The exit code (or 128 + signal) of its previous run.
    pub last_exit_code: Option<i32>,
    /// Output bytes read from it so far: stdout, then stderr.
    pub log_bytes: [u64; 2],
    /// CPU, memory and descriptors of the live process, once measured.
    pub usage: Option<Usage>,
    /// The cgroup its tree runs in, when it has one.
    pub cgroup: Option<std::path::PathBuf>,
    /// What its whole tree uses, from its cgroup, once measured.
    pub tree: Option<ringmaster_cgroup::TreeUsage>,
}

impl ProcessFigures {
    /// Whether it is up: RUNNING.
    pub fn up(&self) -> bool {
        self.state == "RUNNING"
    }
}

/// What /proc says of one process.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// User and system CPU time, in seconds.
    pub cpu_seconds: f64,
    /// Resident memory, in bytes.
    pub rss_bytes: u64,
    /// Open descriptors (none when /proc/PID/fd cannot be read).
    pub open_fds: Option<u64>,
}

/// The `http_sd` document of `/targets`: one target per worker of each
/// watcher with a `metrics_port`, `127.0.0.1:<metrics_port + wid - 1>`,
/// labelled with its watcher, slot and process name.
pub fn targets(snapshot: &Snapshot) -> String {
    let mut groups = Vec::new();
    for watcher in &snapshot.watchers {
        let Some(port) = watcher.metrics_port else {
            continue;
        };
        for process in snapshot
            .processes
            .iter()
            .filter(|p| p.watcher == watcher.name)
        {
            let port = u32::from(port) + process.wid - 1;
            groups.push(serde_json::json!({
                "targets": [format!("127.0.0.1:{port}")],
                "labels": {
                    "watcher": watcher.name,
                    "wid": process.wid.to_string(),
                    "process": process.name,
                },
            }));
        }
    }
    let mut text = serde_json::Value::Array(groups).to_string();
    text.push('\n');
    text
}

/// `/health`: whether every process of every autostart watcher is RUNNING
/// (or a one-shot job that completed), and the text to answer with: `ok`,
/// or one line per process that is not.
pub fn health(snapshot: &Snapshot) -> (bool, String) {
    let mut down = String::new();
    for watcher in snapshot.watchers.iter().filter(|w| w.autostart) {
        for process in snapshot
            .processes
            .iter()
            .filter(|p| p.watcher == watcher.name)
        {
            if process.up() || process.completed {
                continue;
            }
            down.push_str(&process.name);
            down.push(' ');
            down.push_str(&process.state);
            if let Some(reason) = &process.reason {
                down.push_str(" (");
                down.push_str(reason);
                down.push(')');
            }
            down.push('\n');
        }
    }
    if down.is_empty() {
        (true, "ok\n".to_owned())
    } else {
        (false, down)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn process(watcher: &str, wid: u32, state: &str) -> ProcessFigures {
        ProcessFigures {
            watcher: watcher.into(),
            name: format!("{watcher}:{wid}"),
            wid,
            state: state.into(),
            ..ProcessFigures::default()
        }
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            watchers: vec![
                WatcherFigures {
                    name: "web".into(),
                    desired: 2,
                    autostart: true,
                    metrics_port: Some(9101),
                    ..WatcherFigures::default()
                },
                WatcherFigures {
                    name: "batch".into(),
                    desired: 1,
                    autostart: false,
                    ..WatcherFigures::default()
                },
            ],
            processes: vec![
                process("web", 1, "RUNNING"),
                process("web", 2, "RUNNING"),
                process("batch", 1, "STOPPED"),
            ],
            ..Snapshot::default()
        }
    }

    #[test]
    fn targets_list_each_worker_on_its_own_port() {
        let text = targets(&snapshot());
        let parsed: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            parsed,
            serde_json::json!([
                {"targets": ["127.0.0.1:9101"], "labels": {"watcher": "web", "wid": "1", "process": "web:1"}},
                {"targets": ["127.0.0.1:9102"], "labels": {"watcher": "web", "wid": "2", "process": "web:2"}},
            ])
        );
    }

    #[test]
    fn health_counts_only_autostart_watchers_and_names_what_is_down() {
        let mut snap = snapshot();
        assert_eq!(health(&snap), (true, "ok\n".to_owned()));
        snap.processes[1].state = "BACKOFF".into();
        snap.processes[1].reason = Some("exited with 3".into());
        assert_eq!(
            health(&snap),
            (false, "web:2 BACKOFF (exited with 3)\n".to_owned())
        );
        snap.processes[1].state = "EXITED".into();
        snap.processes[1].completed = true;
        assert!(health(&snap).0, "a completed one-shot job is healthy");
    }
}
