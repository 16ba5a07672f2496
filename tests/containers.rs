//! As PID 1 of a container: essential processes, exit codes, signals
//! (test plan C15-C17).

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, Daemon, descendants, stat_field};

/// The daemon inside the namespace: unshare's only child.
fn inner_pid(daemon: &Daemon) -> i32 {
    crate::support::wait_until("the daemon inside the namespace", DEADLINE, || {
        descendants(daemon.pid())
            .into_iter()
            .find(|&pid| stat_field(pid, 4).as_deref() == Some(&daemon.pid().to_string()))
    })
}

#[test]
fn an_essential_process_ending_ends_the_container_with_its_code() {
    let mut daemon = Daemon::builder()
        .pid1()
        .body(
            r#"
[watchers.app]
cmd = "@TESTKIT@ exit 7 300"
start_secs = "0"
restart = "never"
essential = true

[watchers.sidecar]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
        )
        .start();
    assert_eq!(daemon.wait_exit(DEADLINE), Some(7));
    let log = daemon.daemon_log();
    assert!(log.contains("essential process ended"), "{log}");
    assert!(
        log.contains("STOPPING -> STOPPED process=sidecar:1"),
        "{log}"
    );
}

#[test]
fn an_essential_process_that_gives_up_ends_it_too() {
    let mut daemon = Daemon::builder()
        .pid1()
        .body(
            r#"
[watchers.app]
cmd = "@TESTKIT@ exit 3"
start_secs = "1s"
start_retries = 1
essential = true

[watchers.sidecar]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
        )
        .start();
    assert_eq!(daemon.wait_exit(DEADLINE), Some(3));
    assert!(
        daemon.daemon_log().contains("FATAL"),
        "{}",
        daemon.daemon_log()
    );
}

#[test]
fn sigterm_to_pid_1_stops_everything_and_exits_0() {
    let mut daemon = Daemon::builder()
        .pid1()
        .body(
            r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 3
start_secs = "0"
"#,
        )
        .start();
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let pid1 = inner_pid(&daemon);
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid1), Signal::SIGTERM).unwrap();
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    assert_eq!(
        daemon.daemon_log().matches("STOPPING -> STOPPED").count(),
        3,
        "{}",
        daemon.daemon_log()
    );
}
