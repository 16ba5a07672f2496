//! Process trees by cgroup v2: `stop` ends everything a process started,
//! `setsid` and double-forked escapees included (supervisord #1101,
//! Circus #1044).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::support::{DEADLINE, Daemon, pid_alive, wait_until};

/// Whether this machine lets the daemon make cgroups (root and a
/// writable cgroup2 mount); a test without says SKIPPED. In CI (root, a
/// cgroup2 mount) they must be there.
fn cgroups_here(daemon: &Daemon) -> Option<PathBuf> {
    let base = daemon.cgroup_base();
    if base.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "no cgroups in CI: {}",
            daemon.daemon_log()
        );
        eprintln!("SKIPPED: the daemon cannot make cgroups here");
    }
    base
}

/// The pids listed in `file`, once it has `count` of them.
fn pids_in(file: &std::path::Path, count: usize) -> Vec<i32> {
    wait_until(&format!("{count} escapees"), DEADLINE, || {
        let pids: Vec<i32> = std::fs::read_to_string(file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        (pids.len() >= count).then_some(pids)
    })
}

/// A watcher whose process leaves COUNT double-forked `setsid` daemons
/// behind, each ignoring SIGTERM, holding no pipe, writing its pid to
/// `@DIR@/escapees`.
fn escapees(count: u32, extra_daemon: &str) -> (Daemon, Vec<i32>) {
    let builder = Daemon::builder();
    let list = builder.path().join("escapees");
    let daemon = builder
        .daemon(extra_daemon)
        .body(&format!(
            r#"
[watchers.forker]
cmd = "for i in $(seq {count}); do (setsid sh -c 'trap \"\" TERM; echo $$ >> @DIR@/escapees; exec sleep 1000' </dev/null >/dev/null 2>&1 &); done; exec sleep 1000"
shell = true
start_secs = "0"
stop_timeout = "1s"
"#
        ))
        .start();
    daemon.wait_state("forker:1", "RUNNING");
    let pids = pids_in(&list, count as usize);
    (daemon, pids)
}

#[test]
fn stop_ends_a_double_forked_setsid_daemon_that_ignores_term() {
    let (daemon, pids) = escapees(1, "");
    let Some(base) = cgroups_here(&daemon) else {
        return;
    };
    let escapee = pids[0];
    let cgroup = PathBuf::from(daemon.process("forker:1")["cgroup"].as_str().unwrap());
    assert!(
        cgroup.starts_with(&base),
        "{} not under {}",
        cgroup.display(),
        base.display()
    );
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    assert!(procs.lines().any(|l| l == escapee.to_string()), "{procs}");

    let started = Instant::now();
    let output = daemon.ctl(&["stop", "forker"]);
    assert!(output.status.success(), "{output:?}");
    // STOPPING lasted until the cgroup was empty: stop_timeout, then
    // SIGKILL to the whole cgroup.
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "{:?}",
        started.elapsed()
    );
    assert!(!pid_alive(escapee), "the escapee {escapee} survived stop");
    assert_eq!(daemon.process("forker:1")["state"], "STOPPED");
    wait_until("the empty cgroup removed", DEADLINE, || {
        (!cgroup.exists()).then_some(())
    });
}

#[test]
fn without_cgroups_the_escapee_outlives_stop_as_with_supervisord() {
    let (daemon, pids) = escapees(1, "cgroups = false");
    assert!(daemon.process("forker:1")["cgroup"].is_null());
    wait_until("the choice logged", DEADLINE, || {
        daemon
            .daemon_log()
            .contains("cgroups = false")
            .then_some(())
    });
    let output = daemon.ctl(&["stop", "forker"]);
    assert!(output.status.success(), "{output:?}");
    let escapee = pids[0];
    let survived = pid_alive(escapee);
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(escapee),
        nix::sys::signal::Signal::SIGKILL,
    );
    assert!(survived, "the escapee was stopped without a cgroup");
}

#[test]
fn a_hundred_escapees_none_left_after_stop() {
    let (daemon, pids) = escapees(100, "");
    if cgroups_here(&daemon).is_none() {
        return;
    }
    let output = daemon.ctl(&["stop", "forker"]);
    assert!(output.status.success(), "{output:?}");
    let left: Vec<i32> = pids.into_iter().filter(|&p| pid_alive(p)).collect();
    assert!(left.is_empty(), "left after stop: {left:?}");
}

#[test]
fn stats_and_metrics_count_the_whole_tree() {
    let port = crate::support::free_port();
    let builder = Daemon::builder();
    let list = builder.path().join("escapees");
    let daemon = builder
        .daemon(&format!("metrics = \"127.0.0.1:{port}\""))
        .body(
            r#"
[watchers.forker]
cmd = "(setsid sh -c 'echo $$ >> @DIR@/escapees; while :; do :; done' </dev/null >/dev/null 2>&1 &); exec sleep 1000"
shell = true
start_secs = "0"
"#,
        )
        .start();
    daemon.wait_state("forker:1", "RUNNING");
    pids_in(&list, 1);
    if cgroups_here(&daemon).is_none() {
        return;
    }
    // The escapee burns CPU outside the process tree of the leader.
    let reply = daemon.request("stats", serde_json::json!({"tree": true}));
    let tree = &reply["result"]["processes"][0]["tree"];
    assert_eq!(tree["processes"], 2, "{reply}");
    assert!(tree["cpu_percent"].as_f64().unwrap() > 20.0, "{reply}");
    let text = wait_until("tree figures", DEADLINE, || {
        crate::support::http_get(port, "/metrics")
    });
    let labels = r#"{watcher="forker",process="forker:1",wid="1"}"#;
    assert_eq!(
        crate::metrics::sample(&text, &format!("ringmaster_process_tree_processes{labels}")),
        Some(2.0),
        "{text}"
    );
    let cpu = crate::metrics::sample(
        &text,
        &format!("ringmaster_process_tree_cpu_seconds_total{labels}"),
    );
    assert!(cpu.is_some_and(|c| c > 0.0), "{text}");
}

#[test]
fn a_crashed_daemons_leftovers_are_ended_at_start() {
    let (mut first, pids) = escapees(1, "");
    let Some(base) = cgroups_here(&first) else {
        return;
    };
    let socket = first.socket.clone();
    let leader = first.process("forker:1")["pid"].as_i64().unwrap() as i32;
    first.signal(nix::sys::signal::Signal::SIGKILL);
    first.wait_exit(DEADLINE);
    assert!(
        pid_alive(leader) && pid_alive(pids[0]),
        "the crash took the processes along"
    );
    let second = Daemon::builder()
        .socket_at(&socket)
        .body("[watchers.quiet]\ncmd = \"sleep 1000\"\nstart_secs = \"0\"\n")
        .start();
    // The socket answers before the cgroups are seen to (a daemon that
    // still runs on it must be found first): wait for the line.
    let second_base = wait_until("the second daemon's cgroups", DEADLINE, || {
        second.cgroup_base()
    });
    assert_eq!(second_base, base);
    second.wait_state("quiet:1", "RUNNING");
    assert!(
        second
            .daemon_log()
            .contains("ended what a previous daemon left")
    );
    assert!(
        !pid_alive(leader) && !pid_alive(pids[0]),
        "a leftover survived"
    );
    drop(first);
}

#[test]
fn a_fork_bomb_is_capped_by_pids_max() {
    let builder = Daemon::builder();
    let go = builder.path().join("go");
    let daemon = builder
        .body(
            r#"
[watchers.bomb]
cmd = "while [ ! -e @DIR@/go ]; do sleep 0.05; done; b() { b | b & }; b; exec sleep 1000"
shell = true
start_secs = "0"
stop_timeout = "1s"
"#,
        )
        .start();
    daemon.wait_state("bomb:1", "RUNNING");
    let Some(base) = cgroups_here(&daemon) else {
        return;
    };
    let controllers =
        std::fs::read_to_string(base.join("cgroup.subtree_control")).unwrap_or_default();
    if !controllers.split_whitespace().any(|c| c == "pids") {
        eprintln!(
            "SKIPPED: the pids controller is not enabled in this machine's cgroup2 hierarchy ({})",
            base.display()
        );
        return;
    }
    let cgroup = PathBuf::from(daemon.process("bomb:1")["cgroup"].as_str().unwrap());
    std::fs::write(cgroup.join("pids.max"), "64").unwrap();
    std::fs::write(&go, "").unwrap();
    wait_until("the cap reached", DEADLINE, || {
        let events = std::fs::read_to_string(cgroup.join("pids.events")).unwrap_or_default();
        events
            .lines()
            .any(|l| l.starts_with("max ") && l != "max 0")
            .then_some(())
    });
    let current: u64 = std::fs::read_to_string(cgroup.join("pids.current"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(current <= 64, "{current} processes");
    let output = daemon.ctl(&["stop", "bomb"]);
    assert!(output.status.success(), "{output:?}");
    wait_until("the cgroup removed", DEADLINE, || {
        (!cgroup.exists()).then_some(())
    });
}
