//! The interactive session (`ringmasterctl` with no command), driven
//! through a real PTY as a person would use it.

use std::path::Path;
use std::process::{Command, Stdio};

use rexpect::session::PtySession;

use crate::support::{DEADLINE, Daemon, ringmasterctl, ringmasterd, wait_until};

const TWO_SLEEPERS: &str = r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"

[watchers.ticker]
cmd = "i=0; while :; do i=$$((i+1)); echo \"tick $i\"; sleep 0.05; done"
shell = true
start_secs = "0"
"#;

/// A session against `daemon`, with its history under `home`.
fn session(daemon: &Daemon, home: &Path) -> PtySession {
    let mut command = Command::new(ringmasterctl());
    command
        .arg("-s")
        .arg(&daemon.socket)
        .env("HOME", home)
        .env("TERM", "xterm")
        .env("NO_COLOR", "1")
        .env_remove("RINGMASTER_SOCKET");
    rexpect::session::spawn_command(command, Some(20_000)).unwrap()
}

#[test]
fn commands_completion_help_and_history() {
    let daemon = Daemon::start(TWO_SLEEPERS);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let home = tempfile::tempdir().unwrap();
    let mut s = session(&daemon, home.path());
    s.exp_string("ringmasterd 0.1.0 at").unwrap();
    s.exp_string("3 processes: 3 RUNNING").unwrap();
    s.exp_string("ringmaster> ").unwrap();

    s.send_line("status web").unwrap();
    s.exp_string("web:2").unwrap();
    s.exp_string("ringmaster> ").unwrap();

    // Tab completes a command, then a live name.
    s.send("statu\t").unwrap();
    s.flush().unwrap();
    s.exp_string("status").unwrap();
    s.send(" tick\t").unwrap();
    s.flush().unwrap();
    s.exp_string("ticker").unwrap();
    s.send_line("").unwrap();
    s.exp_string("ticker:1  RUNNING").unwrap();
    s.exp_string("ringmaster> ").unwrap();

    s.send_line("stop web:2").unwrap();
    s.exp_string("web:2: stopped").unwrap();
    assert_eq!(daemon.process("web:2")["state"], "STOPPED");

    s.send_line("help").unwrap();
    s.exp_string("Commands (help COMMAND for its options):")
        .unwrap();
    s.send_line("help tail").unwrap();
    s.exp_string("Keep printing new output until interrupted")
        .unwrap();
    // A bad line says why and leaves the session open.
    s.send_line("frobnicate").unwrap();
    s.exp_string("no command 'frobnicate'; type help for the list")
        .unwrap();
    s.send_line("start").unwrap();
    s.exp_string("required").unwrap();
    s.send_line("status 'unbalanced").unwrap();
    s.exp_string("unbalanced quotes").unwrap();
    s.send_line("quit").unwrap();
    s.exp_eof().unwrap();

    let history = home.path().join(".ringmasterctl_history");
    let text = std::fs::read_to_string(&history).unwrap();
    assert!(
        text.contains("status web") && text.contains("stop web:2"),
        "{text}"
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&history).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);

    // The next session remembers: Up brings back the last line.
    let mut s = session(&daemon, home.path());
    s.exp_string("ringmaster> ").unwrap();
    s.send("\x1b[A").unwrap();
    s.flush().unwrap();
    s.exp_string("quit").unwrap();
    s.send_line("").unwrap();
    s.exp_eof().unwrap();
}

#[test]
fn ctrl_c_ends_a_follow_and_the_session_outlives_the_daemon() {
    let mut daemon = Daemon::start(TWO_SLEEPERS);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let home = tempfile::tempdir().unwrap();
    let mut s = session(&daemon, home.path());
    s.exp_string("ringmaster> ").unwrap();

    s.send_line("tail -f ticker").unwrap();
    s.exp_regex(r"tick \d+").unwrap();
    s.exp_regex(r"tick \d+").unwrap();
    s.send_control('c').unwrap();
    s.exp_string("ringmaster> ").unwrap();
    s.send_line("status ticker").unwrap();
    s.exp_string("ticker:1  RUNNING").unwrap();

    // The daemon goes away and comes back on the same socket.
    s.send_line("shutdown").unwrap();
    s.exp_string("shut down").unwrap();
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    s.send_line("status").unwrap();
    s.exp_string("cannot reach ringmasterd").unwrap();
    daemon.child = Command::new(ringmasterd())
        .arg(&daemon.config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("RINGMASTER_SOCKET")
        .spawn()
        .unwrap();
    wait_until("the new daemon's socket", DEADLINE, || {
        std::os::unix::net::UnixStream::connect(&daemon.socket)
            .ok()
            .map(|_| ())
    });
    s.send_line("status ticker").unwrap();
    s.exp_string("(reconnected to ringmasterd at").unwrap();
    s.exp_string("ticker:1").unwrap();
    s.send_control('d').unwrap();
    s.exp_eof().unwrap();
}

/// Another tool's command at the prompt says what to do instead, and
/// supervisorctl's `tail -N` works there too.
#[test]
fn other_tools_commands_at_the_prompt() {
    let daemon = Daemon::start(TWO_SLEEPERS);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let home = tempfile::tempdir().unwrap();
    let mut s = session(&daemon, home.path());
    s.exp_string("ringmaster> ").unwrap();
    s.send_line("add web").unwrap();
    s.exp_string("`add`: ringmaster reads watchers from the configuration file")
        .unwrap();
    s.exp_string("ringmaster> ").unwrap();
    s.send_line("tail -1 ticker:1").unwrap();
    s.exp_regex("tick [0-9]+").unwrap();
    s.exp_string("ringmaster> ").unwrap();
    // A typo: did-you-mean and help, not clap's usage of a program.
    s.send_line("stauts").unwrap();
    s.exp_string("no command 'stauts' (did you mean 'status'?); type help for the list")
        .unwrap();
    s.exp_string("ringmaster> ").unwrap();
    // A usage error shows the usage as typed at the prompt.
    s.send_line("start").unwrap();
    let before = s.exp_string("Usage: start <NAMES>...").unwrap();
    assert!(!before.contains("ringmaster> start <"), "{before}");
    s.exp_string("ringmaster> ").unwrap();
    s.send_line("quit").unwrap();
    s.exp_eof().unwrap();
}
