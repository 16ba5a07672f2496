//! ringmasterd in a terminal (the laptop user): Ctrl-C stops everything
//! gracefully, one line per watcher; a second Ctrl-C hurries it.

use std::process::{Command, Stdio};

use rexpect::process::WaitStatus;

use crate::support::{
    DEADLINE, Daemon, kill_tree, pid_alive, ringmasterctl, ringmasterd, testkit, wait_until,
};

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
    s.exp_string("worker: stopped (1 process)").unwrap();
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

/// Issue 13: a terminal that goes away (the window closed, the ssh
/// connection dropped) sends SIGHUP, and every later write to it fails
/// with EIO. The daemon used to panic on its next log line and exit,
/// leaving its children behind. It reloads (SIGHUP's meaning), keeps
/// supervising, and shuts down cleanly when asked.
#[test]
fn daemon_survives_its_terminal_hanging_up() {
    let builder = Daemon::builder().body(
        r#"
[watchers.web]
cmd = "sh -c 'while :; do echo tick; sleep 0.01; done'"
start_secs = "0"
echo = true
"#,
    );
    let config = builder.write_config();
    let dir = builder.into_dir();
    let socket = dir.path().join("rm.sock");
    // script(1) runs the daemon as the session leader of a new PTY; killing
    // script closes the PTY's master side, which is what a hang-up is.
    let mut script = Command::new("script")
        .args(["-q", "-e", "-c"])
        .arg(format!("exec {} {}", ringmasterd(), config.display()))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .env_remove("RINGMASTER_SOCKET")
        .spawn()
        .expect("script(1) from bsdutils (installed by .ci/run)");
    let ctl = |args: &[&str]| {
        Command::new(ringmasterctl())
            .arg("-s")
            .arg(&socket)
            .args(args)
            .output()
            .unwrap()
    };
    let pid: i32 = wait_until("the daemon on its terminal", DEADLINE, || {
        let out = ctl(&["pid"]);
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    });
    let _guard = KillTree(pid);
    wait_until("web:1 running", DEADLINE, || {
        String::from_utf8_lossy(&ctl(&["status", "web"]).stdout)
            .contains("RUNNING")
            .then_some(())
    });
    // What the reload that SIGHUP triggers will find.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[watchers.added]\ncmd = \"{} sleep\"\n", testkit()),
    )
    .unwrap();
    script.kill().unwrap();
    script.wait().unwrap();
    wait_until("the reload SIGHUP asked for", DEADLINE, || {
        String::from_utf8_lossy(&ctl(&["status", "added"]).stdout)
            .contains("RUNNING")
            .then_some(())
    });
    let restart = ctl(&["restart", "web"]);
    assert!(restart.status.success(), "{restart:?}");
    assert!(pid_alive(pid), "the daemon died with its terminal");
    let shutdown = ctl(&["shutdown"]);
    assert!(shutdown.status.success(), "{shutdown:?}");
    wait_until("the daemon to exit", DEADLINE, || {
        (!pid_alive(pid)).then_some(())
    });
    assert!(!socket.exists(), "socket left behind");
}

/// Kills a process tree we did not spawn directly, by pid, on drop.
struct KillTree(i32);

impl Drop for KillTree {
    fn drop(&mut self) {
        kill_tree(self.0);
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
}
