//! The whole stack (spec §5b, test plan A, G38): one-shot jobs, start
//! order by `depends_on`, and stopping in the reverse order.

use crate::support::{Daemon, free_port};

/// A migration as a one-shot job: it runs once, however short its run, and
/// ends EXITED as a success that `status` counts as fine; a one-shot that
/// fails is retried under the BACKOFF rules and ends FATAL.
#[test]
fn a_one_shot_job_runs_once_and_counts_as_done() {
    let daemon = Daemon::start(
        r#"
[watchers.migrate]
cmd = "sh -c 'echo migrated >> @DIR@/runs'"
restart = "never"

[watchers.broken]
cmd = "sh -c 'echo tried >> @DIR@/tries; exit 2'"
restart = "never"
start_retries = 1
backoff_max = "50ms"
"#,
    );
    let done = daemon.wait_state("migrate:1", "EXITED");
    assert_eq!(done["completed"], true, "{done}");
    assert_eq!(done["reason"], "completed (exit status 0)", "{done}");
    assert_eq!(done["restarts"], 0, "{done}");
    // EXITED with no restart coming: nothing runs it again.
    assert_eq!(daemon.read("runs"), "migrated\n");

    let fatal = daemon.wait_state("broken:1", "FATAL");
    assert_eq!(fatal["completed"], false, "{fatal}");
    assert_eq!(daemon.read("tries"), "tried\ntried\n");

    let only_the_job = daemon.ctl(&["status", "migrate"]);
    assert_eq!(only_the_job.status.code(), Some(0), "{only_the_job:?}");
    let text = String::from_utf8_lossy(&only_the_job.stdout);
    assert!(
        text.contains("EXITED") && text.contains("completed (exit status 0)"),
        "{text}"
    );
    let with_the_failure = daemon.ctl(&["status"]);
    assert_eq!(
        with_the_failure.status.code(),
        Some(3),
        "{with_the_failure:?}"
    );
}

/// Test plan G38 with real processes: a database that takes its time, a
/// migration that needs it, an app that needs the migration done, a proxy
/// in front. Each step checks its predecessor's work and would fail for
/// good (no retries) if it ran too early; shutdown goes the other way.
#[test]
fn a_stack_starts_in_dependency_order_and_stops_in_reverse() {
    let mut daemon = Daemon::start(
        r#"
[watchers.proxy]
cmd = "@TESTKIT@ sleep"
depends_on = ["app"]
start_secs = "0"
priority = 1

[watchers.app]
cmd = "sh -c 'test -e @DIR@/migrations && exec @TESTKIT@ sleep'"
depends_on = ["db", "migrate"]
start_retries = 0
start_secs = "200ms"

[watchers.migrate]
cmd = "sh -c 'test -e @DIR@/db-up && echo migrated >> @DIR@/migrations'"
depends_on = ["db"]
restart = "never"
start_retries = 0

[watchers.db]
cmd = "sh -c 'sleep 0.5; touch @DIR@/db-up; exec @TESTKIT@ sleep'"
ready = { cmd = "test -e @DIR@/db-up", interval = "50ms" }
priority = 999
"#,
    );
    let proxy = daemon.wait_state("proxy:1", "RUNNING");
    assert_eq!(daemon.process("db:1")["state"], "RUNNING");
    assert_eq!(daemon.process("app:1")["state"], "RUNNING");
    assert_eq!(daemon.process("migrate:1")["completed"], true);
    assert_eq!(daemon.read("migrations"), "migrated\n");
    assert_eq!(proxy["restarts"], 0, "{proxy}");

    daemon.shut_down_in_order(crate::support::DEADLINE, &["proxy:1", "app:1", "db:1"]);
}

/// `start` of the top of a stopped stack starts what it needs first, and a
/// dependency that fails leaves it STOPPED with the reason.
#[test]
fn start_pulls_in_dependencies_and_a_failed_one_blocks() {
    let daemon = Daemon::start(
        r#"
[watchers.db]
cmd = "@TESTKIT@ sleep"
autostart = false
start_secs = "0"

[watchers.web]
cmd = "@TESTKIT@ sleep"
autostart = false
depends_on = ["db"]
start_secs = "0"

[watchers.broken]
cmd = "sh -c 'exit 7'"
autostart = false
start_retries = 0

[watchers.needs_broken]
cmd = "@TESTKIT@ sleep"
autostart = false
depends_on = ["broken"]
"#,
    );
    let started = daemon.ctl(&["start", "web"]);
    assert_eq!(started.status.code(), Some(0), "{started:?}");
    assert_eq!(daemon.process("db:1")["state"], "RUNNING");

    let refused = daemon.ctl(&["start", "needs_broken"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("not started: dependency 'broken' failed"),
        "{text}"
    );
    let blocked = daemon.process("needs_broken:1");
    assert_eq!(blocked["state"], "STOPPED", "{blocked}");
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("broken:1: FATAL, exited too quickly (exit status 7)"),
        "{blocked}"
    );
}

/// Spec §5b health: a worker that hangs (alive, answering nothing: here
/// stopped with SIGSTOP) fails its checks and is restarted, with the
/// reason kept; a slow one that answers within its timeout is left alone.
#[test]
fn a_hung_worker_is_restarted_and_a_slow_one_is_not() {
    let (hung_port, slow_port) = (free_port(), free_port());
    let daemon = Daemon::start(&format!(
        r#"
[watchers.hung]
cmd = "@TESTKIT@ http-late 0 127.0.0.1:{hung_port}"
ready = {{ tcp = "127.0.0.1:{hung_port}", interval = "20ms" }}
health = {{ http = "http://127.0.0.1:{hung_port}/health", interval = "100ms", timeout = "300ms", failures = 3 }}
stop_timeout = "1s"

[watchers.slow]
cmd = "@TESTKIT@ http-late 0 127.0.0.1:{slow_port} 250"
ready = {{ tcp = "127.0.0.1:{slow_port}", interval = "20ms" }}
health = {{ http = "http://127.0.0.1:{slow_port}/", interval = "100ms", timeout = "2s", failures = 2 }}
"#
    ));
    let hung = daemon.wait_state("hung:1", "RUNNING");
    let slow = daemon.wait_state("slow:1", "RUNNING");
    let hung_pid = hung["pid"].as_i64().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(hung_pid as i32),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    daemon.wait_for("hung:1 unhealthy", |p| {
        p["name"] == "hung:1" && p["state"] == "RUNNING" && p["health"]["failures"] == 1
    });
    // Its next failures come 400 ms apart: still RUNNING, unhealthy.
    let line = String::from_utf8_lossy(&daemon.ctl(&["status", "hung"]).stdout).into_owned();
    assert!(
        line.contains("RUNNING (unhealthy 1/3)") || line.contains("RUNNING (unhealthy 2/3)"),
        "{line}"
    );

    let replaced = daemon.wait_for("hung:1 replaced", |p| {
        p["name"] == "hung:1"
            && p["state"] == "RUNNING"
            && p["pid"].as_i64().is_some_and(|pid| pid != hung_pid)
    });
    let health = &replaced["health"];
    assert_eq!(health["restarts"], 1, "{replaced}");
    assert_eq!(health["failures"], 0, "{replaced}");
    assert_eq!(replaced["restarts"], 1, "{replaced}");
    assert!(
        health["last_failure"]
            .as_str()
            .unwrap()
            .contains("no answer within 300ms"),
        "{replaced}"
    );
    assert!(
        daemon
            .daemon_log()
            .contains("unhealthy: 3 health checks failed in a row"),
        "{}",
        daemon.daemon_log()
    );

    // The slow one answered every check in 250 ms, within its 2 s.
    let slow_now = daemon.wait_for("slow:1 checked 4 times", |p| {
        p["name"] == "slow:1" && p["health"]["checks"].as_u64().is_some_and(|n| n >= 4)
    });
    assert_eq!(slow_now["pid"], slow["pid"], "{slow_now}");
    assert_eq!(slow_now["health"]["failures"], 0, "{slow_now}");
    assert_eq!(slow_now["health"]["restarts"], 0, "{slow_now}");
}

/// A `cmd` health check runs as the watcher's processes do, and a command
/// that outlives its timeout is a failure.
#[test]
fn a_cmd_health_check_fails_on_its_exit_code_or_its_timeout() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
health = { cmd = "sh -c 'test ! -e @DIR@/sick'", interval = "50ms", timeout = "5s", failures = 1000 }

[watchers.stuck]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
health = { cmd = "sleep 30", interval = "50ms", timeout = "200ms", failures = 1 }
"#,
    );
    let app = daemon.wait_for("app:1 checked", |p| {
        p["name"] == "app:1" && p["health"]["checks"].as_u64().is_some_and(|n| n >= 2)
    });
    assert_eq!(app["health"]["failures"], 0, "{app}");
    std::fs::write(daemon.path("sick"), "").unwrap();
    let sick = daemon.wait_for("app:1 failing", |p| {
        p["name"] == "app:1" && p["health"]["failures"].as_u64() >= Some(2)
    });
    assert_eq!(
        sick["health"]["last_failure"], "check command: exit status 1",
        "{sick}"
    );
    std::fs::remove_file(daemon.path("sick")).unwrap();
    let well = daemon.wait_for("app:1 well again", |p| {
        p["name"] == "app:1" && p["health"]["failures"] == 0
    });
    assert_eq!(
        well["pid"], app["pid"],
        "below the threshold: not restarted"
    );

    let stuck = daemon.wait_for("stuck:1 restarted", |p| {
        p["name"] == "stuck:1" && p["health"]["restarts"] == 1
    });
    assert_eq!(
        stuck["health"]["last_failure"], "check command did not finish within 200ms",
        "{stuck}"
    );
}

/// Spec §5b hooks, in the order of a life: before_start before the spawn
/// (its output in the log, marked), after_start once RUNNING, before_stop
/// while the process is still alive, after_stop with how it ended.
#[test]
fn hooks_run_around_a_process_with_its_pid_and_exit() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
env = { ORDER = "@DIR@/order" }
hooks = { before_start = "sh -c 'echo prepared $RINGMASTER_PROCESS $RINGMASTER_HOOK; echo prep >> $ORDER'", after_start = "sh -c 'echo started $RINGMASTER_PID >> $ORDER'", before_stop = "sh -c 'kill -0 $RINGMASTER_PID && echo stopping-alive >> $ORDER'", after_stop = "sh -c 'echo stopped $RINGMASTER_EXIT >> $ORDER'" }
"#,
    );
    let running = daemon.wait_state("app:1", "RUNNING");
    let pid = running["pid"].as_i64().unwrap();
    daemon.wait_file("order", "started");
    assert_eq!(daemon.read("order"), format!("prep\nstarted {pid}\n"));
    let log = daemon.wait_file("logs/app-1.out.log", "prepared");
    assert!(
        log.contains("[hook before_start] prepared app:1 before_start\n"),
        "{log}"
    );

    let stopped = daemon.ctl(&["stop", "app"]);
    assert_eq!(stopped.status.code(), Some(0), "{stopped:?}");
    let order = daemon.wait_file("order", "stopped");
    assert_eq!(
        order,
        format!("prep\nstarted {pid}\nstopping-alive\nstopped SIGTERM\n")
    );
}

/// A before_start hook that fails, or outlives hook_timeout, fails the
/// start under the BACKOFF rules, with the reason; the process never runs.
#[test]
fn a_failing_before_start_hook_aborts_the_start() {
    let daemon = Daemon::start(
        r#"
[watchers.gated]
cmd = "@TESTKIT@ sleep"
hooks = { before_start = "sh -c 'echo no database; exit 3'" }
start_retries = 1
backoff_max = "50ms"

[watchers.slow]
cmd = "@TESTKIT@ sleep"
hooks = { before_start = "sleep 30" }
hook_timeout = "200ms"
start_retries = 0
"#,
    );
    let gated = daemon.wait_state("gated:1", "FATAL");
    assert_eq!(
        gated["reason"], "before_start hook failed (exit status 3); gave up after 2 attempts",
        "{gated}"
    );
    assert_eq!(
        gated["last_exit"],
        serde_json::Value::Null,
        "never ran: {gated}"
    );
    let log = daemon.read("logs/gated-1.out.log");
    assert_eq!(
        log.matches("[hook before_start] no database\n").count(),
        2,
        "{log}"
    );
    let slow = daemon.wait_state("slow:1", "FATAL");
    assert_eq!(
        slow["reason"],
        "before_start hook failed (did not finish within 200ms); gave up after 1 attempts",
        "{slow}"
    );
}

/// `events` carries each health change: a failure (RUNNING -> RUNNING,
/// with the count and why) and the pass that clears them.
#[test]
fn health_changes_are_events() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
health = { cmd = "test ! -e @DIR@/sick", interval = "50ms", failures = 1000 }
"#,
    );
    daemon.wait_state("app:1", "RUNNING");
    let mut events = crate::support::Connection::open(&daemon.socket);
    events.send_raw(b"{\"id\":7,\"cmd\":\"events\"}\n");
    std::fs::write(daemon.path("sick"), "").unwrap();
    let next_health_event = |events: &mut crate::support::Connection| loop {
        let line = events.read_reply();
        let event = line["event"].clone();
        if event["process"] == "app:1" && event["from"] == "RUNNING" && event["to"] == "RUNNING" {
            return event;
        }
    };
    let sick = next_health_event(&mut events);
    let reason = sick["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("unhealthy ") && reason.ends_with("/1000: check command: exit status 1"),
        "{sick}"
    );
    std::fs::remove_file(daemon.path("sick")).unwrap();
    loop {
        let event = next_health_event(&mut events);
        if event["reason"] == "healthy again" {
            break;
        }
    }
}

/// A reload applies a changed graph without restarting anything: the
/// watchers are unchanged, and the next shutdown goes by the new order.
#[test]
fn reload_applies_a_changed_dependency_graph_without_restarts() {
    let mut daemon = Daemon::start(
        r#"
[watchers.first]
cmd = "@TESTKIT@ sleep"
start_secs = "0"

[watchers.second]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
depends_on = ["first"]
"#,
    );
    let first = daemon.wait_state("first:1", "RUNNING")["pid"].clone();
    let second = daemon.wait_state("second:1", "RUNNING")["pid"].clone();
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let flipped = text.replace("depends_on = [\"first\"]\n", "").replace(
        "[watchers.first]\n",
        "[watchers.first]\ndepends_on = [\"second\"]\n",
    );
    std::fs::write(&daemon.config, flipped).unwrap();
    let reload = daemon.ctl(&["--json", "reload"]);
    assert_eq!(reload.status.code(), Some(0), "{reload:?}");
    let result: serde_json::Value = serde_json::from_slice(&reload.stdout).unwrap();
    assert_eq!(result["changed"], serde_json::json!([]), "{result}");
    assert_eq!(daemon.process("first:1")["pid"], first);
    assert_eq!(daemon.process("second:1")["pid"], second);

    daemon.shut_down_in_order(crate::support::DEADLINE, &["first:1", "second:1"]);
}
