//! Stopping processes and the daemon (test plan group B, C-19).

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, Daemon, group_alive, group_members, pid_alive, wait_until};

fn pid_of(entry: &serde_json::Value) -> i32 {
    entry["pid"].as_i64().unwrap() as i32
}

/// Test plan B8: a child that ignores SIGTERM is SIGKILLed after
/// stop_timeout and stays STOPPING until then; other requests are answered
/// meanwhile (never "busy").
#[test]
fn stop_escalates_to_sigkill_and_others_are_served_meanwhile() {
    let daemon = Daemon::start(
        r#"
[watchers.stubborn]
cmd = "@TESTKIT@ ignore-term"
start_secs = "0"
stop_timeout = "1s"
"#,
    );
    daemon.wait_state("stubborn:1", "RUNNING");
    daemon.wait_file("logs/stubborn-1.out.log", "ignoring TERM");
    let started = Instant::now();
    let socket = daemon.socket.clone();
    let stopper = std::thread::spawn(move || {
        let mut conn = crate::support::Connection::open(&socket);
        conn.call("stop", serde_json::json!({"names": ["stubborn"]}))
    });
    let stopping = daemon.wait_state("stubborn:1", "STOPPING");
    assert!(!stopping["pid"].is_null());
    let reply = stopper.join().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["processes"][0]["ok"], true, "{reply}");
    assert!(
        elapsed >= Duration::from_millis(950),
        "stopped after {elapsed:?}, before stop_timeout"
    );
    let entry = daemon.process("stubborn:1");
    assert_eq!(entry["state"], "STOPPED");
    assert_eq!(entry["last_exit"]["signal"], "KILL", "{entry}");
}

/// Test plan B10: stop kills every member of the process group.
#[test]
fn stop_kills_the_whole_group() {
    let daemon = Daemon::start(
        r#"
[watchers.family]
cmd = "sleep 60 & sleep 60 & wait"
shell = true
start_secs = "0"
"#,
    );
    let pgid = pid_of(&daemon.wait_state("family:1", "RUNNING"));
    wait_until("three group members", DEADLINE, || {
        (crate::support::descendants(daemon.pid()).len() >= 3).then_some(())
    });
    let output = daemon.ctl(&["stop", "family"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        !group_alive(pgid),
        "group {pgid} still has members after stop"
    );
}

/// Test plan B11: the leader exits on TERM but a member ignores it; stop
/// returns only once the member has been SIGKILLed and the group is empty.
#[test]
fn stop_waits_for_term_ignoring_group_member() {
    let daemon = Daemon::start(
        r#"
[watchers.leader]
cmd = "@TESTKIT@ group-ignore-term"
start_secs = "0"
stop_timeout = "500ms"
"#,
    );
    let pgid = pid_of(&daemon.wait_state("leader:1", "RUNNING"));
    let log = daemon.wait_file("logs/leader-1.out.log", "member pid=");
    let member: i32 = log
        .lines()
        .find_map(|l| l.strip_prefix("member pid="))
        .unwrap()
        .parse()
        .unwrap();
    let started = Instant::now();
    let output = daemon.ctl(&["stop", "leader"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "returned before the member was killed"
    );
    assert!(!pid_alive(member), "member {member} survived stop");
    assert!(!group_alive(pgid));
    assert_eq!(daemon.process("leader:1")["state"], "STOPPED");
}

/// Test plan B12: a grandchild that setsids and holds the stdout pipe does
/// not hang stop: the state changes on waitpid, not on pipe EOF.
#[test]
fn setsid_grandchild_holding_the_pipe_does_not_hang_stop() {
    let daemon = Daemon::start(
        r#"
[watchers.holder]
cmd = "@TESTKIT@ hold-pipe-setsid"
start_secs = "0"
stop_timeout = "10s"
"#,
    );
    daemon.wait_state("holder:1", "RUNNING");
    daemon.wait_file("logs/holder-1.out.log", "escapee pid=");
    let started = Instant::now();
    let output = daemon.ctl(&["stop", "holder"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    assert_eq!(daemon.process("holder:1")["state"], "STOPPED");
    // And it can be started again at once, with a fresh pipe.
    let output = daemon.ctl(&["start", "holder"]);
    assert!(output.status.success(), "{output:?}");
}

/// Test plan C19: stop_group = true signals the group, false only the leader.
#[test]
fn stop_group_controls_who_gets_the_signal() {
    let daemon = Daemon::start(
        r#"
[watchers.grouped]
cmd = "sleep 60 & echo member=$!; exec sleep 60"
shell = true
start_secs = "0"

[watchers.leader_only]
cmd = "sleep 60 & echo member=$!; exec sleep 60"
shell = true
start_secs = "0"
stop_group = false
"#,
    );
    let member_of = |file: &str| -> i32 {
        let text = daemon.wait_file(file, "member=");
        text.lines()
            .find_map(|l| l.strip_prefix("member="))
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    };
    daemon.wait_state("grouped:1", "RUNNING");
    daemon.wait_state("leader_only:1", "RUNNING");
    let grouped_member = member_of("logs/grouped-1.out.log");
    let lone_member = member_of("logs/leader_only-1.out.log");
    assert!(daemon.ctl(&["stop", "all"]).status.success());
    assert!(
        !pid_alive(grouped_member),
        "group member survived a group stop"
    );
    assert!(
        pid_alive(lone_member),
        "stop_group = false signalled the whole group"
    );
}

/// Test plan B13/B14: SIGTERM stops watchers in reverse priority order, one
/// priority level at a time, then the daemon exits 0 with nothing left.
#[test]
fn sigterm_stops_in_reverse_priority_then_exits_zero() {
    let mut daemon = Daemon::start(
        r#"
[watchers.db]
cmd = "@TESTKIT@ term-log @DIR@/order"
priority = 10
start_secs = "0"

[watchers.app]
cmd = "@TESTKIT@ term-log @DIR@/order"
priority = 20
numprocesses = 2
start_secs = "0"

[watchers.proxy]
cmd = "@TESTKIT@ term-log @DIR@/order"
priority = 30
start_secs = "0"
"#,
    );
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");
    for log in ["db-1", "app-1", "app-2", "proxy-1"] {
        daemon.wait_file(&format!("logs/{log}.out.log"), "ready");
    }
    daemon.signal(Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    let order = daemon.read("order");
    let order: Vec<&str> = order.lines().collect();
    assert_eq!(order.len(), 4, "{order:?}");
    assert_eq!(order[0], "proxy:1");
    let mut middle = order[1..3].to_vec();
    middle.sort_unstable();
    assert_eq!(middle, ["app:1", "app:2"]);
    assert_eq!(order[3], "db:1");
    assert!(crate::support::descendants(daemon.pid()).is_empty());
    assert!(!daemon.socket.exists(), "socket left behind");
}

/// Test plan B14: SIGINT is graceful too; SIGQUIT stops everything at once.
#[test]
fn sigint_and_sigquit_exit_zero_leaving_nothing() {
    for signal in [Signal::SIGINT, Signal::SIGQUIT] {
        let mut daemon = Daemon::start(
            r#"
[watchers.a]
cmd = "@TESTKIT@ sleep"
numprocesses = 3
start_secs = "0"
priority = 1

[watchers.b]
cmd = "@TESTKIT@ sleep"
numprocesses = 3
start_secs = "0"
priority = 2
"#,
        );
        let entries = daemon.wait_all("all running", |p| p["state"] == "RUNNING");
        let pids: Vec<i32> = entries.iter().map(pid_of).collect();
        daemon.signal(signal);
        assert_eq!(daemon.wait_exit(DEADLINE), Some(0), "{signal}");
        for pid in pids {
            assert!(!pid_alive(pid), "{signal}: child {pid} left behind");
        }
    }
}

/// `ringmasterctl shutdown` answers once everything is stopped.
#[test]
fn ctl_shutdown_replies_after_everything_stopped() {
    let mut daemon = Daemon::start(
        r#"
[watchers.a]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"
"#,
    );
    let pids: Vec<i32> = daemon
        .wait_all("running", |p| p["state"] == "RUNNING")
        .iter()
        .map(pid_of)
        .collect();
    let output = daemon.ctl(&["shutdown"]);
    assert!(output.status.success(), "{output:?}");
    assert!(
        crate::support::stdout(&output).contains("2 processes stopped"),
        "{output:?}"
    );
    for pid in pids {
        assert!(!pid_alive(pid));
    }
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
}

/// A second SIGTERM during a graceful shutdown stops every remaining
/// priority level at once instead of waiting for the current one.
#[test]
fn second_sigterm_escalates_to_fast_shutdown() {
    let mut daemon = Daemon::start(
        r#"
[watchers.stubborn]
cmd = "@TESTKIT@ ignore-term"
priority = 20
start_secs = "0"
stop_timeout = "60s"

[watchers.patient]
cmd = "@TESTKIT@ sleep"
priority = 10
start_secs = "0"
"#,
    );
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");
    daemon.wait_file("logs/stubborn-1.out.log", "ignoring TERM");
    daemon.signal(Signal::SIGTERM);
    daemon.wait_state("stubborn:1", "STOPPING");
    assert_eq!(
        daemon.process("patient:1")["state"],
        "RUNNING",
        "lower priority waits its turn"
    );
    daemon.signal(Signal::SIGTERM);
    daemon.wait_state("patient:1", "STOPPED");
    assert_eq!(daemon.process("stubborn:1")["state"], "STOPPING");
    let stubborn = pid_of(&daemon.process("stubborn:1"));
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(stubborn), Signal::SIGKILL).unwrap();
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
}

/// Concurrent restarts and a racing stop/start leave exactly one live
/// process per slot, and every request gets an answer.
#[test]
fn concurrent_requests_on_one_process_stay_consistent() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
start_secs = "100ms"
stop_timeout = "2s"
"#,
    );
    daemon.wait_state("web:1", "RUNNING");
    let socket = daemon.socket.clone();
    let workers: Vec<_> = ["restart", "restart", "stop", "start", "restart"]
        .into_iter()
        .map(|cmd| {
            let socket = socket.clone();
            std::thread::spawn(move || {
                let mut conn = crate::support::Connection::open(&socket);
                conn.call(cmd, serde_json::json!({"names": ["web"]}))
            })
        })
        .collect();
    for worker in workers {
        let reply = worker.join().unwrap();
        assert_eq!(reply["ok"], true, "{reply}");
    }
    let output = daemon.ctl(&["start", "web"]);
    assert!(output.status.success(), "{output:?}");
    let entry = daemon.wait_state("web:1", "RUNNING");
    let live: Vec<i32> = crate::support::descendants(daemon.pid())
        .into_iter()
        .filter(|&p| pid_alive(p))
        .collect();
    assert_eq!(
        live,
        vec![pid_of(&entry)],
        "exactly the reported process is alive"
    );
}

/// The state changes in the daemon's log, as `(process, "FROM -> TO")`,
/// in the order they happened.
fn transitions(daemon: &Daemon) -> Vec<(String, String)> {
    daemon
        .daemon_log()
        .lines()
        .filter_map(|line| {
            let (_, rest) = line.split_once(" INFO ")?;
            let (change, fields) = rest.split_once(" process=")?;
            change.contains(" -> ").then(|| {
                let name = fields.split_whitespace().next().unwrap_or_default();
                (name.to_owned(), change.to_owned())
            })
        })
        .collect()
}

/// Waits until the logged transitions satisfy `done`; returns them.
fn wait_logged(
    daemon: &Daemon,
    what: &str,
    done: impl Fn(&[(String, String)]) -> bool,
) -> Vec<(String, String)> {
    wait_until(what, DEADLINE, || {
        let log = transitions(daemon);
        done(&log).then_some(log)
    })
}

/// How many logged transitions are `change`.
fn count(log: &[(String, String)], change: &str) -> usize {
    log.iter().filter(|(_, c)| c == change).count()
}

fn position(log: &[(String, String)], process: &str, change: &str) -> usize {
    log.iter()
        .rposition(|(p, c)| p == process && c == change)
        .unwrap_or_else(|| panic!("no {process} {change} in {log:?}"))
}

/// Issue 13: `stop all` and `start all` signalled everything at once
/// (Redis stopping with the app that uses it). They follow priority as the
/// daemon's own start and shutdown do: stop from the highest priority,
/// each level once the one above is down; start from the lowest.
#[test]
fn stop_all_and_start_all_follow_priority() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "@TESTKIT@ ignore-term"
start_secs = "0"
stop_timeout = "300ms"
priority = 20

[watchers.redis]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
priority = 10
"#,
    );
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    daemon.wait_file("logs/app-1.out.log", "ignoring TERM");
    let stop = daemon.ctl(&["stop", "all"]);
    assert!(stop.status.success(), "{stop:?}");
    daemon.wait_all("stopped", |p| p["state"] == "STOPPED");
    let log = wait_logged(&daemon, "the stops logged", |log| {
        log.iter()
            .any(|(p, c)| p == "redis:1" && c == "STOPPING -> STOPPED")
    });
    // The app took its stop_timeout (SIGKILL); Redis was told only after.
    assert!(
        position(&log, "app:1", "STOPPING -> STOPPED")
            < position(&log, "redis:1", "RUNNING -> STOPPING"),
        "{log:?}"
    );

    let start = daemon.ctl(&["start", "all"]);
    assert!(start.status.success(), "{start:?}");
    let log = wait_logged(&daemon, "the starts logged", |log| {
        count(log, "STARTING -> RUNNING") == 4
    });
    assert!(
        position(&log, "redis:1", "STOPPED -> STARTING")
            < position(&log, "app:1", "STOPPED -> STARTING"),
        "{log:?}"
    );

    // restart: stopped in the same order, then started from the bottom.
    let restart = daemon.ctl(&["restart", "all"]);
    assert!(restart.status.success(), "{restart:?}");
    let log = wait_logged(&daemon, "the restarts logged", |log| {
        count(log, "STARTING -> RUNNING") == 6
    });
    let app_down = position(&log, "app:1", "STOPPING -> STOPPED");
    let redis_stop = position(&log, "redis:1", "RUNNING -> STOPPING");
    let redis_up = position(&log, "redis:1", "STOPPED -> STARTING");
    let app_up = position(&log, "app:1", "STOPPED -> STARTING");
    assert!(
        app_down < redis_stop && redis_stop < redis_up && redis_up < app_up,
        "{log:?}"
    );
    daemon.wait_all("running again", |p| p["state"] == "RUNNING");
}

/// A process waiting for its level's turn in a `stop all` is taken out of
/// it by a later request that names it: the `stop all` answers for it at
/// once (not stopped) and leaves it running.
#[test]
fn a_later_request_takes_a_process_out_of_a_stop_all() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "@TESTKIT@ ignore-term"
start_secs = "0"
stop_timeout = "60s"
priority = 20

[watchers.redis]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
priority = 10
"#,
    );
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    // RUNNING (start_secs 0) is not "ignoring TERM yet": its line is.
    daemon.wait_file("logs/app-1.out.log", "ignoring TERM");
    let app = pid_of(&daemon.process("app:1"));
    let stop_all = std::thread::spawn({
        let socket = daemon.socket.clone();
        move || {
            std::process::Command::new(crate::support::ringmasterctl())
                .arg("-s")
                .arg(socket)
                .args(["stop", "all"])
                .output()
                .unwrap()
        }
    });
    daemon.wait_state("app:1", "STOPPING");
    // The app holds its level as long as the test wants (its stop_timeout
    // is long): Redis waits its turn while the start arrives.
    let start = daemon.ctl(&["start", "redis"]);
    assert!(start.status.success(), "{start:?}");
    assert_eq!(daemon.process("app:1")["state"], "STOPPING");
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(app), Signal::SIGKILL).unwrap();
    let stop_all = stop_all.join().unwrap();
    assert_eq!(stop_all.status.code(), Some(1), "{stop_all:?}");
    let text = String::from_utf8_lossy(&stop_all.stdout);
    assert!(
        text.contains("redis:1: ERROR (started again by another request)"),
        "{text}"
    );
    assert_eq!(daemon.process("app:1")["state"], "STOPPED");
    assert_eq!(daemon.process("redis:1")["state"], "RUNNING");
}

/// Issue 13: `sh -c "sleep 1000 & sleep 1000 & wait"` with its leader
/// killed -9: the sleeps stayed, adopted and shown nowhere. Now what is
/// left of the group is stopped (stop_signal, then SIGKILL) before the
/// restart, and `status` says so meanwhile.
#[test]
fn a_killed_leaders_group_is_stopped_before_the_restart() {
    let daemon = Daemon::start(
        r#"
[watchers.shell]
cmd = "sh -c 'sleep 1000 & sleep 1000 & wait'"
start_secs = "0"
"#,
    );
    let entry = daemon.wait_state("shell:1", "RUNNING");
    let leader = pid_of(&entry);
    let members = wait_until("the two sleeps", DEADLINE, || {
        let members: Vec<i32> = group_members(leader)
            .into_iter()
            .filter(|&p| p != leader)
            .collect();
        (members.len() == 2).then_some(members)
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(leader), Signal::SIGKILL).unwrap();
    let restarted = daemon.wait_for("a new leader", |p| {
        p["name"] == "shell:1" && p["state"] == "RUNNING" && p["pid"] != leader
    });
    assert_eq!(restarted["restarts"], 1);
    for member in members {
        assert!(!pid_alive(member), "{member} outlived its leader");
    }
    assert!(!group_alive(leader));
    // The leftovers were stopped before the new process started (read
    // from the daemon's log, which has every transition in order).
    let log = wait_logged(&daemon, "the restart logged", |log| {
        count(log, "STARTING -> RUNNING") == 2
    });
    let seen: Vec<&str> = log
        .iter()
        .filter(|(p, _)| p == "shell:1")
        .map(|(_, c)| c.as_str())
        .collect();
    assert_eq!(
        seen,
        [
            "STOPPED -> STARTING",
            "STARTING -> RUNNING",
            "RUNNING -> STOPPING",
            "STOPPING -> EXITED",
            "EXITED -> STARTING",
            "STARTING -> RUNNING"
        ]
    );
    let stopping = daemon
        .daemon_log()
        .lines()
        .find(|l| l.contains("RUNNING -> STOPPING process=shell:1"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(
        stopping.contains("leader killed by SIGKILL; stopping what is left of its process group"),
        "{stopping}"
    );
}

/// `stop_orphans = false`: a program that leaves a process behind on
/// purpose keeps it.
#[test]
fn stop_orphans_false_leaves_the_group_alone() {
    let daemon = Daemon::start(
        r#"
[watchers.launcher]
cmd = "sh -c 'sleep 1000 & exit 0'"
start_secs = "0"
restart = "never"
stop_orphans = false
"#,
    );
    let entry = daemon.wait_state("launcher:1", "EXITED");
    assert_eq!(entry["last_exit"]["code"], 0);
    // The sleep lives on in the leader's group (found by its parent: us).
    let left = crate::support::descendants(daemon.pid());
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(pid_alive(left[0]));
}

/// Issue 13: a gunicorn master killed -9 left its workers serving the port,
/// the new master failed "Connection in use" and status said RUNNING. Now
/// the workers are stopped first and the new master serves.
#[test]
fn gunicorn_comes_back_cleanly_after_its_master_is_killed() {
    let Some(gunicorn) = crate::support::venv_program("gunicorn") else {
        return;
    };
    let port = crate::support::free_port();
    let builder = Daemon::builder();
    std::fs::write(
        builder.path().join("app.py"),
        "def app(environ, start_response):\n    \
         start_response('200 OK', [('Content-Type', 'text/plain')])\n    \
         return [b'hello\\n']\n",
    )
    .unwrap();
    let daemon = builder
        .body(&format!(
            r#"
[watchers.web]
cmd = "{} --workers 2 --bind 127.0.0.1:{port} --chdir @DIR@ app:app"
start_secs = "1s"
stop_timeout = "5s"
"#,
            gunicorn.display()
        ))
        .start();
    let master = pid_of(&daemon.wait_state("web:1", "RUNNING"));
    let workers = wait_until("two workers serving", DEADLINE, || {
        let workers: Vec<i32> = group_members(master)
            .into_iter()
            .filter(|&p| p != master)
            .collect();
        (workers.len() == 2 && crate::support::http_get(port, "/").is_some()).then_some(workers)
    });
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(master), Signal::SIGKILL).unwrap();
    let entry = daemon.wait_for("a new master running", |p| {
        p["state"] == "RUNNING" && p["pid"] != master && p["restarts"] == 1
    });
    for worker in &workers {
        assert!(!pid_alive(*worker), "old worker {worker} still alive");
    }
    let new_master = pid_of(&entry);
    let response = wait_until("the new master's workers serving", DEADLINE, || {
        crate::support::http_get(port, "/")
    });
    assert!(response.ends_with("hello\n"), "{response}");
    let new_workers: Vec<i32> = group_members(new_master)
        .into_iter()
        .filter(|&p| p != new_master)
        .collect();
    assert_eq!(new_workers.len(), 2, "{new_workers:?}");
    // Still the same master: it did not fail to bind and restart again.
    assert_eq!(pid_of(&daemon.process("web:1")), new_master);
    assert_eq!(daemon.process("web:1")["restarts"], 1);
}

/// Issue 13: processes the daemon adopted (here a `setsid` escapee whose
/// parent exited) were still alive after `shutdown`. None survives it now.
#[test]
fn no_adopted_process_survives_shutdown() {
    let mut daemon = Daemon::start(
        r#"
[watchers.spawner]
cmd = "@TESTKIT@ escapee > @DIR@/escapee.txt & exit 0"
shell = true
start_secs = "0"
restart = "never"
# It may not have left the group yet when the shell exits.
stop_orphans = false
"#,
    );
    let line = daemon.wait_file("escapee.txt", "\n");
    let escapee: i32 = line
        .split("escapee pid=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|pid| pid.parse().ok())
        .unwrap();
    assert!(pid_alive(escapee));
    assert!(daemon.ctl(&["shutdown"]).status.success());
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    assert!(!pid_alive(escapee), "the escapee outlived the daemon");
}
