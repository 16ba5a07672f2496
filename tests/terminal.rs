//! ringmasterd in a terminal (the laptop user): Ctrl-C stops everything
//! gracefully, one line per watcher; a second Ctrl-C hurries it.

use std::process::Command;

use rexpect::process::WaitStatus;

use crate::support::{Daemon, ringmasterd};

/// The daemon on a PTY, in the builder's directory.
fn on_a_terminal(body: &str) -> (tempfile::TempDir, rexpect::session::PtySession) {
    let builder = Daemon::builder().body(body);
    let config = builder.write_config();
    let mut command = Command::new(ringmasterd());
    command
        .arg(&config)
        .env("NO_COLOR", "1")
        .env_remove("RINGMASTER_SOCKET");
    let session = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    (builder.into_dir(), session)
}

#[test]
fn one_ctrl_c_stops_everything_with_a_line_per_watcher() {
    let (_dir, mut s) = on_a_terminal(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"
priority = 20

[watchers.worker]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
priority = 10
"#,
    );
    s.exp_string("STARTING -> RUNNING process=web:2").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("SIGINT: shutting down").unwrap();
    // Reverse priority order: web first.
    s.exp_string("web: stopped (2 processes)").unwrap();
    s.exp_string("worker: stopped (1 processes)").unwrap();
    s.exp_string("ringmasterd stopped").unwrap();
    s.exp_eof().unwrap();
    assert!(matches!(s.process().wait(), Ok(WaitStatus::Exited(_, 0))));
}

#[test]
fn a_second_ctrl_c_stops_the_rest_at_once() {
    let (_dir, mut s) = on_a_terminal(
        r#"
[watchers.stubborn]
cmd = "@TESTKIT@ ignore-term"
start_secs = "0"
stop_timeout = "3s"
priority = 20

[watchers.worker]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
priority = 10
"#,
    );
    s.exp_string("STARTING -> RUNNING process=worker:1")
        .unwrap();
    s.exp_string("STARTING -> RUNNING process=stubborn:1")
        .unwrap();
    s.send_control('c').unwrap();
    s.exp_string("RUNNING -> STOPPING process=stubborn:1")
        .unwrap();
    s.send_control('c').unwrap();
    s.exp_string("SIGINT during shutdown: stopping everything at once")
        .unwrap();
    // The worker no longer waits for the stubborn process to go.
    let before = s.exp_string("stubborn: stopped").unwrap();
    assert!(before.contains("worker: stopped"), "{before}");
    s.exp_eof().unwrap();
}
