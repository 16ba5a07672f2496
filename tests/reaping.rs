//! Reaping: orphans adopted as subreaper never steal our children's exit
//! statuses (test plan C15/C16), as subreaper and as PID 1.

use crate::support::{DEADLINE, Daemon, descendants, stat_field, wait_until};

/// Test plan C16: 1000 quick-exit children, each with its own exit code,
/// all attributed correctly while orphan storms are being reaped, and no
/// zombie is left afterwards.
#[test]
fn exits_are_attributed_correctly_during_an_orphan_storm() {
    storm(Daemon::builder(), 0);
}

/// The same as PID 1 of its own PID namespace, as in a container (test
/// plan C15): every orphan of the namespace comes to the daemon.
#[test]
fn as_pid_1_too() {
    // unshare stays as the daemon's parent: one more process to see.
    storm(Daemon::builder().pid1(), 1);
}

fn storm(builder: crate::support::Builder, extra: usize) {
    let daemon = builder
        .body(
            r#"
[watchers.storm]
cmd = "@TESTKIT@ orphan-storm 150 30"
numprocesses = 4
start_secs = "0"
stdout = "null"

[watchers.quick]
cmd = "@TESTKIT@ exit wid"
numprocesses = 1000
start_secs = "0"
restart = "never"
stdout = "null"
stderr = "null"
"#,
        )
        .start();
    let status = daemon.wait_all("every quick process exited", |p| {
        !p["name"].as_str().unwrap().starts_with("quick:") || p["state"] == "EXITED"
    });
    for entry in status
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("quick:"))
    {
        let wid: u64 = entry["name"].as_str().unwrap()[6..].parse().unwrap();
        assert_eq!(entry["last_exit"]["code"], wid % 256, "{entry}");
        assert_eq!(entry["restarts"], 0, "{entry}");
    }
    // The storms' orphans are adopted and reaped: only the four storm
    // leaders remain, and no zombie.
    wait_until("orphans reaped", DEADLINE, || {
        let left = descendants(daemon.pid());
        let zombies = left
            .iter()
            .filter(|&&pid| stat_field(pid, 3).as_deref() == Some("Z"))
            .count();
        (left.len() == 4 + extra && zombies == 0).then_some(())
    });
    for entry in daemon
        .status()
        .iter()
        .filter(|p| p["name"].as_str().unwrap().starts_with("storm:"))
    {
        assert_eq!(entry["state"], "RUNNING", "{entry}");
    }
}
