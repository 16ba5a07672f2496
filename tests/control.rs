//! The control socket and ringmasterctl (test plan F31-F33).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    Connection, Daemon, copy_binary, is_root, open_dir, ringmasterctl, ringmasterd, stderr, stdout,
};

/// Test plan F31: the socket is 0600 by default.
#[test]
fn socket_is_private_by_default() {
    let daemon = Daemon::start("");
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
}

/// Test plan F31: socket_mode and socket_group are applied; a peer that is
/// neither root, the daemon's user nor a group member is refused by its
/// credentials even when the file mode lets it connect.
#[test]
fn peer_credentials_are_checked() {
    if !is_root() {
        eprintln!("SKIPPED: this test needs root (CI runs as root)");
        return;
    }
    let dir = open_dir();
    let ctl = copy_binary(ringmasterctl(), dir.path());
    let daemon = Daemon::builder()
        .daemon("socket_mode = \"0666\"\nsocket_group = \"nogroup\"")
        .start();
    std::fs::set_permissions(daemon.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let meta = std::fs::metadata(&daemon.socket).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o666);
    assert_eq!(meta.gid(), 65534, "socket_group not applied");

    // daemon (uid 1) is not root, not the daemon's user, not in nogroup.
    let refused = Command::new(&ctl)
        .args(["-s", daemon.socket.to_str().unwrap(), "status"])
        .uid(1)
        .gid(1)
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        stderr(&refused).contains("may not use this socket"),
        "{refused:?}"
    );

    // nobody's primary group is nogroup, the socket_group: allowed.
    let allowed = Command::new(&ctl)
        .args(["-s", daemon.socket.to_str().unwrap(), "status"])
        .uid(65534)
        .gid(65534)
        .output()
        .unwrap();
    assert_eq!(allowed.status.code(), Some(0), "{allowed:?}");
}

/// Test plan F32: a huge line, garbage, an unknown command and bad
/// arguments each get an error reply with a kind, and the same connection
/// keeps working.
#[test]
fn protocol_errors_are_replies_not_crashes() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
    );
    let mut conn = Connection::open(&daemon.socket);
    let mut huge = vec![b'x'; 2 * 1024 * 1024];
    huge.push(b'\n');
    conn.send_raw(&huge);
    let reply = conn.read_reply();
    assert_eq!(reply["error"]["kind"], "line_too_long", "{reply}");

    conn.send_raw(b"this is not json\n");
    assert_eq!(conn.read_reply()["error"]["kind"], "bad_request");
    conn.send_raw(b"{\"id\": 5}\n");
    let reply = conn.read_reply();
    assert_eq!(reply["error"]["kind"], "bad_request");
    assert_eq!(reply["id"], 5);
    conn.send_raw(&[0xff, 0xfe, b'\n']);
    assert_eq!(conn.read_reply()["error"]["kind"], "bad_request");

    let reply = conn.call("stauts", json!({}));
    assert_eq!(reply["error"]["kind"], "unknown_command");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'status'"),
        "{reply}"
    );
    let reply = conn.call("start", json!({"names": "web"}));
    assert_eq!(reply["error"]["kind"], "bad_args", "{reply}");
    let reply = conn.call("start", json!({"names": ["wbe"]}));
    assert_eq!(reply["error"]["kind"], "not_found");
    assert!(
        reply["error"]["message"]
            .as_str()
            .unwrap()
            .contains("did you mean 'web'"),
        "{reply}"
    );
    let reply = conn.call("stop", json!({"names": ["web:9"]}));
    assert_eq!(reply["error"]["kind"], "not_found");

    let reply = conn.call("status", json!({"names": ["web"]}));
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(reply["result"]["processes"][0]["name"], "web:1");
}

/// Test plan F32: clients that vanish mid-request, send half a line, or
/// never read their replies do not stall the daemon for anyone else.
#[test]
fn misbehaving_clients_do_not_stall_others() {
    let daemon = Daemon::start(
        r#"
[watchers.slow]
cmd = "@TESTKIT@ sleep"
start_secs = "2s"
autostart = false
"#,
    );
    // Vanishes while its start is pending.
    {
        let mut conn = Connection::open(&daemon.socket);
        conn.send_raw(b"{\"id\":1,\"cmd\":\"start\",\"args\":{\"names\":[\"slow\"]}}\n");
    }
    // Sends half a line and keeps the connection open.
    let mut half = UnixStream::connect(&daemon.socket).unwrap();
    half.write_all(b"{\"id\":1,\"cmd\":\"sta").unwrap();
    // Floods requests and never reads the replies.
    let mut flood = UnixStream::connect(&daemon.socket).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let line = b"{\"id\":1,\"cmd\":\"status\"}\n".repeat(1000);
    for _ in 0..100 {
        if flood.write_all(&line).is_err() {
            break;
        }
    }
    // Everyone else is served.
    for _ in 0..20 {
        let reply = daemon.request("status", json!({}));
        assert_eq!(reply["ok"], true);
    }
    daemon.wait_state("slow:1", "RUNNING");
    drop(half);
    let mut buf = [0u8; 1024];
    let _ = flood.read(&mut buf);
}

/// Test plan F33: every exit code of ringmasterctl, and the message that
/// names the socket when the daemon cannot be reached.
#[test]
fn ctl_exit_codes() {
    let daemon = Daemon::start(
        r#"
[watchers.up]
cmd = "@TESTKIT@ sleep"
start_secs = "0"

[watchers.down]
cmd = "@TESTKIT@ sleep"
autostart = false
"#,
    );
    daemon.wait_state("up:1", "RUNNING");
    let ok = daemon.ctl(&["status", "up"]);
    assert_eq!(ok.status.code(), Some(0), "{ok:?}");
    let line = stdout(&ok);
    assert!(line.starts_with("up:1  RUNNING   pid "), "{line:?}");
    assert!(line.contains(", uptime 0:00:"), "{line:?}");

    let not_running = daemon.ctl(&["status"]);
    assert_eq!(not_running.status.code(), Some(3), "{not_running:?}");
    assert!(
        stdout(&not_running).contains("down:1  STOPPED"),
        "{not_running:?}"
    );

    let refused = daemon.ctl(&["stop", "nope"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    assert!(
        stderr(&refused).contains("no watcher 'nope'"),
        "{refused:?}"
    );

    let usage = daemon.ctl(&["frobnicate"]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");
    let usage = daemon.ctl(&["start"]);
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");

    let missing = daemon.path("no-daemon.sock");
    let unreachable = Command::new(ringmasterctl())
        .arg("-s")
        .arg(&missing)
        .arg("status")
        .output()
        .unwrap();
    assert_eq!(unreachable.status.code(), Some(4), "{unreachable:?}");
    assert!(
        stderr(&unreachable).contains(missing.to_str().unwrap()),
        "{unreachable:?}"
    );

    // $RINGMASTER_SOCKET and -c CONFIG find the socket too.
    let by_env = Command::new(ringmasterctl())
        .arg("status")
        .arg("up")
        .env("RINGMASTER_SOCKET", &daemon.socket)
        .output()
        .unwrap();
    assert_eq!(by_env.status.code(), Some(0), "{by_env:?}");
    let by_config = Command::new(ringmasterctl())
        .arg("-c")
        .arg(&daemon.config)
        .args(["pid"])
        .output()
        .unwrap();
    assert_eq!(by_config.status.code(), Some(0), "{by_config:?}");
    assert_eq!(stdout(&by_config).trim(), daemon.pid().to_string());

    let json = daemon.ctl(&["--json", "status", "up"]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["processes"][0]["state"], "RUNNING");

    let version = daemon.ctl(&["version"]);
    assert!(
        stdout(&version).contains("ringmasterd 0.1.0 (protocol 1)"),
        "{version:?}"
    );

    let start = daemon.ctl(&["start", "down"]);
    assert_eq!(start.status.code(), Some(0), "{start:?}");
    assert_eq!(stdout(&start), "down:1: running\n");
    let again = daemon.ctl(&["start", "down:1"]);
    assert_eq!(stdout(&again), "down:1: already running\n");
    let signal = daemon.ctl(&["signal", "KILL", "down"]);
    assert_eq!(signal.status.code(), Some(0), "{signal:?}");
    let bad_signal = daemon.ctl(&["signal", "NOPE", "down"]);
    assert_eq!(bad_signal.status.code(), Some(1), "{bad_signal:?}");
}

/// A second daemon on a live socket refuses to start; a stale socket file
/// is replaced.
#[test]
fn one_daemon_per_socket_and_stale_sockets_are_replaced() {
    let daemon = Daemon::start("");
    let second = Command::new(ringmasterd())
        .arg(&daemon.config)
        .output()
        .unwrap();
    assert_eq!(second.status.code(), Some(1), "{second:?}");
    assert!(stderr(&second).contains("already running"), "{second:?}");

    let builder = Daemon::builder();
    let stale = builder.path().join("rm.sock");
    drop(std::os::unix::net::UnixListener::bind(&stale).unwrap());
    assert!(stale.exists());
    let fresh = builder.start();
    assert_eq!(fresh.request("version", json!(null))["ok"], true);
}
