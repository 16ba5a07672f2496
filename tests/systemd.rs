//! systemd's notify protocol (`Type=notify`), with a datagram socket
//! standing in for systemd.

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{DEADLINE, Daemon, report};

/// The notify socket: each datagram is one notification.
struct Systemd {
    socket: UnixDatagram,
    path: std::path::PathBuf,
}

impl Systemd {
    fn bind(dir: &std::path::Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket.set_read_timeout(Some(DEADLINE)).unwrap();
        Self { socket, path }
    }

    /// The next notification (panics after the deadline).
    fn next(&self) -> String {
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).expect("a notification in time");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    /// Notifications up to and including the first that contains `needle`.
    fn until(&self, needle: &str) -> Vec<String> {
        let mut seen = Vec::new();
        loop {
            let message = self.next();
            let done = message.contains(needle);
            seen.push(message);
            if done {
                return seen;
            }
        }
    }
}

const STACK: &str = r#"
[watchers.fast]
cmd = "@TESTKIT@ print-env"
start_secs = "0"

[watchers.slow]
cmd = "@TESTKIT@ sleep"
start_secs = "300ms"
"#;

#[test]
fn ready_status_reloading_and_stopping() {
    let builder = Daemon::builder().body(STACK);
    let systemd = Systemd::bind(builder.path());
    let daemon = builder
        .env("NOTIFY_SOCKET", systemd.path.to_str().unwrap())
        .start();

    // READY=1 only once the slow process is RUNNING too, with the counts.
    let before_ready = systemd.until("READY=1");
    let ready = before_ready.last().unwrap();
    assert_eq!(ready, "READY=1\nSTATUS=2 running\n", "{before_ready:?}");
    assert!(
        before_ready[..before_ready.len() - 1]
            .iter()
            .all(|m| m.starts_with("STATUS=")),
        "{before_ready:?}"
    );
    assert_eq!(daemon.process("slow:1")["state"], "RUNNING");

    // systemd's variables never reach a child.
    let env = report(
        &daemon
            .wait_file("logs/fast-1.out.log", "\nend\n")
            .replace("env ", ""),
    );
    assert!(!env.contains_key("NOTIFY_SOCKET"), "{env:?}");

    // A reload is bracketed by RELOADING=1 (with the monotonic clock) and READY=1.
    daemon.signal(Signal::SIGHUP);
    let reloading = systemd.next();
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines[0], "RELOADING=1", "{reloading}");
    let usec: u64 = lines[1]
        .strip_prefix("MONOTONIC_USEC=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(usec > 0);
    assert_eq!(systemd.next(), "READY=1\nSTATUS=2 running\n");

    // STOPPING=1 comes first at shutdown.
    assert!(daemon.ctl(&["shutdown"]).status.success());
    assert_eq!(systemd.next(), "STOPPING=1\nSTATUS=stopping\n");
}

#[test]
fn watchdog_at_half_the_interval() {
    let builder = Daemon::builder().body(STACK).watchdog_usec(200_000);
    let systemd = Systemd::bind(builder.path());
    let daemon = builder
        .env("NOTIFY_SOCKET", systemd.path.to_str().unwrap())
        .start();
    systemd.until("READY=1");
    // The watchdog is the daemon's: its variables do not reach children.
    let env = report(
        &daemon
            .wait_file("logs/fast-1.out.log", "\nend\n")
            .replace("env ", ""),
    );
    assert!(
        !env.keys()
            .any(|k| k.starts_with("WATCHDOG_") || k == "NOTIFY_SOCKET"),
        "{env:?}"
    );
    let started = std::time::Instant::now();
    for _ in 0..3 {
        systemd.until("WATCHDOG=1");
    }
    // Three pings at 100 ms take at least 200 ms (the first is immediate).
    assert!(started.elapsed() >= Duration::from_millis(150));
}

/// Under journald (JOURNAL_STREAM set) the daemon's lines carry no
/// timestamp of their own: journald adds one.
#[test]
fn no_timestamps_for_journald() {
    let daemon = Daemon::builder()
        .body(STACK)
        .env("JOURNAL_STREAM", "8:123456")
        .start();
    // The line is written just after the socket is bound: wait for it.
    let start_line = |daemon: &Daemon| {
        crate::support::wait_until("the start line", DEADLINE, || {
            daemon
                .daemon_log()
                .lines()
                .find(|l| l.contains("started"))
                .map(str::to_owned)
        })
    };
    let started = start_line(&daemon);
    assert!(started.trim_start().starts_with("INFO"), "{started}");
    let plain = Daemon::start(STACK);
    let started = start_line(&plain);
    assert!(started.starts_with("20"), "{started}");
}

/// examples/ringmaster.service is a unit systemd accepts as it is
/// (checked by the real `systemd-analyze verify`, with the binary path
/// pointed at this build).
#[test]
fn the_example_unit_verifies() {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ringmaster.service"
    ))
    .unwrap();
    assert!(unit.contains("Type=notify") && unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
    // The daemon makes a cgroup per process in the service's own.
    assert!(unit.contains("\nDelegate=yes\n") && !unit.contains("\nProtectControlGroups=true"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringmaster.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/ringmasterd", crate::support::ringmasterd()),
    )
    .unwrap();
    let output = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (installed by .ci/run)");
    let complaints = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{complaints}");
    assert!(
        !complaints.contains("ringmaster.service"),
        "systemd-analyze complains: {complaints}"
    );
}
