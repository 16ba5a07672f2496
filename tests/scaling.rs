//! `incr` and `decr`: numprocesses changed at run time, lowest free slots
//! reused, highest stopped first (test plan item 35).

use crate::support::{Daemon, pid_alive, stderr, stdout};

const WEB: &str = r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"

[watchers.worker]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#;

#[test]
fn incr_and_decr_reuse_the_lowest_free_slots() {
    let daemon = Daemon::start(WEB);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");

    let added = daemon.ctl(&["incr", "web"]);
    assert!(added.status.success(), "{}", stderr(&added));
    assert_eq!(stdout(&added), "web:3: running\n");
    let added = daemon.ctl(&["incr", "web", "2"]);
    assert_eq!(stdout(&added), "web:4: running\nweb:5: running\n");
    // Listed with their watcher, in slot order.
    assert_eq!(
        daemon.names(),
        ["web:1", "web:2", "web:3", "web:4", "web:5", "worker:1"]
    );

    let doomed: Vec<i64> = ["web:4", "web:5"]
        .iter()
        .map(|n| daemon.process(n)["pid"].as_i64().unwrap())
        .collect();
    let removed = daemon.ctl(&["decr", "web", "2"]);
    assert!(removed.status.success(), "{}", stderr(&removed));
    assert_eq!(stdout(&removed), "web:4: stopped\nweb:5: stopped\n");
    for pid in doomed {
        assert!(!pid_alive(pid as i32), "pid {pid} of a removed slot");
    }
    assert_eq!(daemon.names(), ["web:1", "web:2", "web:3", "worker:1"]);
    // A removed slot is no longer a name.
    let gone = daemon.ctl(&["status", "web:5"]);
    assert_eq!(gone.status.code(), Some(1), "{}", stderr(&gone));
    // Stopping the watcher touches only its current processes.
    assert!(daemon.ctl(&["stop", "web"]).status.success());
    assert!(daemon.ctl(&["start", "web"]).status.success());
    assert_eq!(daemon.names(), ["web:1", "web:2", "web:3", "worker:1"]);

    // The lowest free slot comes back first.
    let again = daemon.ctl(&["incr", "web"]);
    assert_eq!(stdout(&again), "web:4: running\n");
    assert_eq!(daemon.process("web:4")["state"], "RUNNING");

    // Down to nothing, and more than there is is just everything.
    let all = daemon.ctl(&["decr", "web", "10"]);
    assert!(all.status.success(), "{}", stderr(&all));
    assert_eq!(daemon.names(), ["worker:1"]);
    let back = daemon.ctl(&["incr", "web"]);
    assert_eq!(stdout(&back), "web:1: running\n");

    let unknown = daemon.ctl(&["incr", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
    assert!(
        stderr(&unknown).contains("no watcher 'nope'"),
        "{}",
        stderr(&unknown)
    );
    let zero = daemon.ctl(&["decr", "web", "0"]);
    assert_eq!(zero.status.code(), Some(1));
    assert!(
        stderr(&zero).contains("count must be at least 1"),
        "{}",
        stderr(&zero)
    );
}
