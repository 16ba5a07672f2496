//! `stats`: figures read from /proc for the processes named.

use serde_json::json;

use crate::support::{Daemon, stdout};

#[test]
fn stats_reports_cpu_memory_files_and_trees() {
    let daemon = Daemon::start(
        r#"
[watchers.busy]
cmd = "while :; do :; done"
shell = true
start_secs = "0"

[watchers.family]
cmd = "sleep 1000 & sleep 1000 & wait"
shell = true
start_secs = "0"

[watchers.idle]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
autostart = false
"#,
    );
    daemon.wait_for("busy running", |p| {
        p["name"] == "busy:1" && p["state"] == "RUNNING"
    });
    daemon.wait_for("family running", |p| {
        p["name"] == "family:1" && p["state"] == "RUNNING"
    });
    // The family's children are there once the shell has forked them.
    let family_pid = daemon.process("family:1")["pid"].as_i64().unwrap() as i32;
    crate::support::wait_until("two children", crate::support::DEADLINE, || {
        (crate::support::descendants(family_pid).len() >= 2).then_some(())
    });

    let reply = daemon.request("stats", json!({"tree": true}));
    assert_eq!(reply["ok"], true, "{reply}");
    let result = &reply["result"];
    assert!(result["window_secs"].as_f64().unwrap() >= 0.2);
    let by_name = |name: &str| {
        result["processes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()
            .clone()
    };
    let busy = by_name("busy:1");
    assert!(busy["cpu_percent"].as_f64().unwrap() > 0.0, "{busy}");
    assert!(busy["rss_bytes"].as_u64().unwrap() > 0);
    assert!(busy["fds"].as_u64().unwrap() >= 3);
    assert_eq!(busy["threads"], 1);
    let family = by_name("family:1");
    assert_eq!(family["tree"]["processes"], 3, "{family}");
    assert!(family["tree"]["rss_bytes"].as_u64() > family["rss_bytes"].as_u64());
    let idle = by_name("idle:1");
    assert_eq!(idle["state"], "STOPPED");
    assert!(idle["pid"].is_null() && idle["cpu_percent"].is_null());

    // The table, and names as everywhere else.
    let table = stdout(&daemon.ctl(&["stats", "busy"]));
    let mut lines = table.lines();
    assert!(lines.next().unwrap().starts_with("NAME"), "{table}");
    assert!(
        lines.next().unwrap().starts_with("busy:1  RUNNING"),
        "{table}"
    );
    assert_eq!(lines.next(), None);
    let unknown = daemon.ctl(&["stats", "nope"]);
    assert_eq!(unknown.status.code(), Some(1));
}
