//! Readiness (spec §5b, test plan H40b): a process with a `ready` check is
//! STARTING until the check passes, and one that never passes is a failed
//! start under the BACKOFF rules, with the reason.

use std::time::{Duration, Instant};

use crate::support::{DEADLINE, Daemon, free_port, wait_until};

/// How long `name` stays STARTING after the daemon is up: polled until
/// RUNNING, asserting it is STARTING (or queued to start) meanwhile.
fn starting_for(daemon: &Daemon, name: &str) -> Duration {
    let since = Instant::now();
    wait_until("RUNNING", DEADLINE, || {
        let process = daemon.process(name);
        match process["state"].as_str() {
            Some("RUNNING") => Some(()),
            Some("STARTING") => None,
            // The daemon starts its processes a few at a time: one may
            // not have left the start queue yet.
            Some("STOPPED") if process["reason"] == "start queued" => None,
            other => panic!("{name} went {other:?}: {process}"),
        }
    });
    since.elapsed()
}

#[test]
fn a_worker_that_listens_after_2s_is_starting_for_those_2s_then_running() {
    let port = free_port();
    let daemon = Daemon::start(&format!(
        r#"
[watchers.tcp]
cmd = "@TESTKIT@ http-late 2000 127.0.0.1:{port}"
ready = {{ tcp = "127.0.0.1:{port}", interval = "50ms" }}
start_secs = "0s"
"#
    ));
    let waited = starting_for(&daemon, "tcp:1");
    assert!(
        waited >= Duration::from_millis(1800),
        "RUNNING after {waited:?}"
    );
    assert!(daemon.read("logs/tcp-1.out.log").contains("listening on"));
}

#[test]
fn an_http_check_waits_for_a_2xx_answer() {
    let port = free_port();
    let daemon = Daemon::start(&format!(
        r#"
[watchers.web]
cmd = "@TESTKIT@ http-late 1500 127.0.0.1:{port}"
ready = {{ http = "http://127.0.0.1:{port}/health", interval = "50ms" }}
start_secs = "0s"
"#
    ));
    let waited = starting_for(&daemon, "web:1");
    assert!(
        waited >= Duration::from_millis(1300),
        "RUNNING after {waited:?}"
    );
}

#[test]
fn a_log_check_matches_a_line_of_output_even_when_the_output_goes_nowhere() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "echo booting; sleep 1; echo 'server ready on port 80'; exec sleep 100"
shell = true
stdout = "null"
ready = { log = "^server ready on port \\d+$" }
start_secs = "0s"
"#,
    );
    let waited = starting_for(&daemon, "app:1");
    assert!(
        waited >= Duration::from_millis(800),
        "RUNNING after {waited:?}"
    );
}

#[test]
fn one_that_never_gets_ready_is_fatal_after_its_retries_with_the_reason() {
    let port = free_port();
    let daemon = Daemon::start(&format!(
        r#"
[watchers.never]
cmd = "@TESTKIT@ sleep"
ready = {{ tcp = "127.0.0.1:{port}", timeout = "300ms", interval = "50ms" }}
start_retries = 1
"#
    ));
    let fatal = daemon.wait_state("never:1", "FATAL");
    assert_eq!(
        fatal["reason"], "not ready within 300ms; gave up after 2 attempts",
        "{fatal}"
    );
    // Each try's process was stopped, not left running.
    let log = daemon.daemon_log();
    assert_eq!(
        log.matches("not ready within 300ms; stopping it").count(),
        2,
        "{log}"
    );
}

/// The `NOTIFY_SOCKET` the daemon gave process `name`.
fn notify_socket_of(daemon: &Daemon, name: &str) -> String {
    let pid = daemon.process(name)["pid"].as_i64().unwrap();
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    environ
        .split(|b| *b == 0)
        .find_map(|v| v.strip_prefix(b"NOTIFY_SOCKET="))
        .map_or_else(
            || panic!("{name} has no NOTIFY_SOCKET"),
            |v| String::from_utf8_lossy(v).into_owned(),
        )
}

#[test]
fn a_notify_check_passes_on_ready_1_from_the_process_or_a_child_of_it() {
    let daemon = Daemon::start(
        r#"
[watchers.itself]
cmd = "@TESTKIT@ notify-late 1000"
ready = { notify = true }
start_secs = "0s"
[watchers.forks]
cmd = "@TESTKIT@ notify-late 1000 child"
ready = { notify = true }
start_secs = "0s"
"#,
    );
    let socket = notify_socket_of(&daemon, "itself:1");
    assert!(socket.starts_with("@ringmaster-notify-"), "{socket}");
    let waited = starting_for(&daemon, "itself:1");
    assert!(
        waited >= Duration::from_millis(700),
        "RUNNING after {waited:?}"
    );
    daemon.wait_state("forks:1", "RUNNING");
}

#[test]
fn ready_1_from_a_process_outside_the_tree_does_not_count() {
    use std::os::linux::net::SocketAddrExt;
    let daemon = Daemon::start(
        r#"
[watchers.waits]
cmd = "@TESTKIT@ notify-late 100000"
ready = { notify = true }
[watchers.later]
cmd = "@TESTKIT@ notify-late 1000"
ready = { notify = true }
"#,
    );
    let socket = notify_socket_of(&daemon, "waits:1");
    let name = socket.trim_start_matches('@');
    let address = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let stranger = std::os::unix::net::UnixDatagram::unbound().unwrap();
    stranger.send_to_addr(b"READY=1\n", &address).unwrap();
    // `later` notifies after our message: once it is RUNNING, ours has
    // been read too (one socket, read in order).
    daemon.wait_state("later:1", "RUNNING");
    assert_eq!(daemon.process("waits:1")["state"], "STARTING");
}

#[test]
fn a_cmd_check_passes_when_its_command_exits_0_and_runs_with_the_watchers_environment() {
    let daemon = Daemon::start(
        r#"
[watchers.app]
cmd = "sleep 1; touch @DIR@/up-$RINGMASTER_WID; exec sleep 100"
shell = true
numprocesses = 2
env = { MARKER = "@DIR@/up" }
ready = { cmd = "sh -c 'test -e $MARKER-$RINGMASTER_WID && test $RINGMASTER_PID -gt 1'", interval = "100ms" }
start_secs = "0s"
"#,
    );
    let waited = starting_for(&daemon, "app:2");
    assert!(
        waited >= Duration::from_millis(800),
        "RUNNING after {waited:?}"
    );
    daemon.wait_state("app:1", "RUNNING");
}

#[test]
fn a_cmd_check_that_keeps_failing_is_a_failed_start() {
    let daemon = Daemon::start(
        r#"
[watchers.never]
cmd = "@TESTKIT@ sleep"
ready = { cmd = "false", timeout = "400ms", interval = "50ms" }
start_retries = 0
"#,
    );
    let fatal = daemon.wait_state("never:1", "FATAL");
    assert_eq!(
        fatal["reason"], "not ready within 400ms; gave up after 1 attempts",
        "{fatal}"
    );
}
