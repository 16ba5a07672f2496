//! The daemon's own stdout and stderr going away, filling up or failing
//! (issue 13, item 3), and ringmasterctl writing into a closed pipe (item
//! 4): nothing of it may kill or stall either program.

use std::fs::File;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, Daemon, ringmasterctl, wait_until};

/// A crash loop (a state change every few hundred microseconds, each
/// logged) and a process that echoes 10 MB to the daemon's stdout.
const NOISY: &str = r#"
[watchers.crasher]
cmd = "/bin/false"
start_secs = "0"
restart = "always"

[watchers.echoer]
cmd = "@TESTKIT@ lines 100000"
start_secs = "0"
restart = "never"
echo = true
stdout = { file = "@DIR@/echoer.log" }
"#;

/// Whatever happened to its output, the daemon answers, restarts, reloads,
/// and shuts down with status 0, removing its socket.
fn still_works(mut daemon: Daemon) {
    // The echoer's own log is complete although its echo went nowhere.
    let log = daemon.path("echoer.log");
    let log_size = || std::fs::metadata(&log).map_or(0, |m| m.len());
    daemon.wait_state("echoer:1", "EXITED");
    wait_until("the echoer's 10 MB in its log", DEADLINE, || {
        (log_size() == 10_000_000).then_some(())
    });
    daemon.signal(Signal::SIGHUP);
    let restarted = daemon.ctl(&["restart", "echoer"]);
    assert!(restarted.status.success(), "{restarted:?}");
    daemon.wait_for("the echoer's second run to end", |p| {
        p["name"] == "echoer:1" && p["state"] == "EXITED" && p["restarts"] == 0
    });
    wait_until("the second 10 MB in its log", DEADLINE, || {
        (log_size() == 20_000_000).then_some(())
    });
    // The crash loop goes on: the engine never waited for its log lines.
    let restarts = || daemon.process("crasher:1")["restarts"].as_u64().unwrap();
    let before = restarts();
    wait_until("more restarts of the crasher", DEADLINE, || {
        (restarts() > before + 10).then_some(())
    });
    let shutdown = daemon.ctl(&["shutdown"]);
    assert!(shutdown.status.success(), "{shutdown:?}");
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    assert!(!daemon.socket.exists(), "socket left behind");
}

/// `ringmasterd CONFIG 2>&1 | head -1`: the reader leaves after one line.
#[test]
fn daemon_survives_its_output_pipe_closing() {
    let (read, write) = nix::unistd::pipe().unwrap();
    let builder = Daemon::builder().body(NOISY);
    let daemon = builder.stdio(Stdio::from(write.try_clone().unwrap()), Stdio::from(write));
    let daemon = daemon.start();
    let mut first = [0u8; 1];
    nix::unistd::read(&read, &mut first).unwrap();
    drop(read); // every later write gets EPIPE
    still_works(daemon);
}

/// A pipe nobody reads: it fills, and a plain write would block forever.
#[test]
fn daemon_survives_output_nobody_reads() {
    let (read, write) = nix::unistd::pipe().unwrap();
    let daemon = Daemon::builder()
        .body(NOISY)
        .stdio(Stdio::from(write.try_clone().unwrap()), Stdio::from(write))
        .start();
    still_works(daemon);
    drop(read);
}

/// stderr and stdout on a full disk (ENOSPC on every write).
#[test]
fn daemon_survives_a_full_disk_under_its_output() {
    let full = || Stdio::from(File::options().write(true).open("/dev/full").unwrap());
    let daemon = Daemon::builder().body(NOISY).stdio(full(), full()).start();
    still_works(daemon);
}

/// `ringmasterctl tail -f web | head -c 100` and friends: the reader is
/// gone before ringmasterctl writes; it ends by SIGPIPE, as `cat` would,
/// and prints no panic.
#[test]
fn ctl_ends_quietly_when_its_reader_goes_away() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ lines 50; exec @TESTKIT@ sleep"
shell = true
start_secs = "0"
"#,
    );
    daemon.wait_state("web:1", "RUNNING");
    daemon.wait_file("logs/web-1.out.log", "0000000049 ");
    for args in [
        &["tail", "-f", "web"][..],
        &["--json", "tail", "-n", "2", "web:1"],
        &["status"],
    ] {
        let (read, write) = nix::unistd::pipe().unwrap();
        drop(read);
        let output = Command::new(ringmasterctl())
            .arg("-s")
            .arg(&daemon.socket)
            .args(args)
            .stdout(Stdio::from(write))
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.is_empty(), "{args:?}: {stderr}");
        assert_eq!(
            output.status.signal(),
            Some(Signal::SIGPIPE as i32),
            "{args:?}: {:?}",
            output.status
        );
    }
}
