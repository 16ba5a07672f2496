//! The control socket and ringmasterctl (test plan F31-F33).

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::{
    Connection, Daemon, copy_binary, open_dir, require_root, ringmasterctl, ringmasterd, stderr,
    stdout, wait_until,
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
    require_root!();
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

/// Issue 13: a socket path in a directory another user can write is
/// reached by a checked walk: a directory on the way swapped for a symlink
/// (to a directory of root's) stops the daemon with an error naming it,
/// and nothing is created, chowned or chmodded there; a socket in such a
/// directory that is not swapped works, with its mode.
#[test]
fn a_socket_directory_swapped_for_a_symlink_is_refused() {
    require_root!();
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::os::unix::fs::symlink(&private, shared.join("run")).unwrap();
    let config = dir.join("swapped.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"{}/run/rm.sock\"\nlogs_dir = \"{}/logs\"\n",
            shared.display(),
            dir.display()
        ),
    )
    .unwrap();
    let refused = Command::new(ringmasterd()).arg(&config).output().unwrap();
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let message = stderr(&refused);
    assert!(
        message.contains("shared/run is a symlink in a directory uid 65534 (its owner) can write"),
        "{message}"
    );
    assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);

    // Not swapped: the socket is made there, through the directory's fd.
    std::fs::remove_file(shared.join("run")).unwrap();
    let config = builder.write_config();
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("{}/rm.sock", dir.display()),
        &format!("{}/rm.sock", shared.display()),
    );
    std::fs::write(&config, text).unwrap();
    let daemon = KillOnDrop(
        Command::new(ringmasterd())
            .arg(&config)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let socket = shared.join("rm.sock");
    crate::support::wait_until("the socket", crate::support::DEADLINE, || {
        UnixStream::connect(&socket).ok()
    });
    let mode = std::fs::metadata(&socket).unwrap().mode() & 0o777;
    assert_eq!(mode, 0o600);
    drop(daemon);
}

/// A daemon without watchers, killed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Issue 13: the accept loop waited for one of 256 permits and an idle
/// connection held its permit forever, so 256 idle clients locked every
/// `ringmasterctl` out, `stop` and `shutdown` included. Now 1000 idle
/// connections, 100 slow-loris clients and a gigabyte of garbage at once
/// leave a well-behaved client served, and the daemon's memory bounded.
#[test]
fn a_crowd_of_idle_slow_and_garbage_clients_locks_nobody_out() {
    crate::support::raise_nofile(4096);
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
    );
    daemon.wait_state("web:1", "RUNNING");
    let idle: Vec<UnixStream> = (0..1000)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    let mut slow: Vec<UnixStream> = (0..100)
        .map(|_| UnixStream::connect(&daemon.socket).unwrap())
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // Slow loris: a byte per client every 100 ms, never a newline.
    let slow_cut = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let loris = std::thread::spawn({
        let stop = stop.clone();
        let slow_cut = slow_cut.clone();
        move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                for conn in &mut slow {
                    if conn.write_all(b"{").is_err() {
                        slow_cut.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            slow
        }
    });
    // Garbage: 1 GB of it, reconnecting whenever the daemon cuts us off.
    let garbage = std::thread::spawn({
        let socket = daemon.socket.clone();
        let stop = stop.clone();
        move || {
            let mut block = vec![b'#'; 1 << 20];
            for (i, byte) in block.iter_mut().enumerate() {
                if i % 4096 == 4095 {
                    *byte = b'\n';
                }
            }
            let mut sent = 0u64;
            let mut cuts = 0;
            'outer: while sent < 1 << 30 && !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let mut conn = UnixStream::connect(&socket).unwrap();
                loop {
                    if conn.write_all(&block).is_err() {
                        cuts += 1;
                        continue 'outer;
                    }
                    sent += block.len() as u64;
                    if sent >= 1 << 30 {
                        break 'outer;
                    }
                }
            }
            (sent, cuts)
        }
    });
    let mut worst = Duration::ZERO;
    for round in 0..50 {
        let started = std::time::Instant::now();
        let reply = daemon.request("status", json!({}));
        worst = worst.max(started.elapsed());
        assert_eq!(reply["ok"], true, "round {round}: {reply}");
    }
    // stop and start still work with everyone connected.
    assert!(daemon.ctl(&["stop", "web"]).status.success());
    assert!(daemon.ctl(&["start", "web"]).status.success());
    eprintln!("status under the crowd: worst of 50 took {worst:?}");
    assert!(
        worst < Duration::from_secs(2),
        "status stalled for {worst:?}"
    );
    // Slow loris clients are told and cut once LINE_TIMEOUT (10 s) passes.
    let mut probe = Connection::open(&daemon.socket);
    probe.send_raw(b"{\"id\":1,");
    let reply = probe.read_reply();
    assert_eq!(reply["error"]["kind"], "timeout", "{reply}");
    // The slow ones began before the probe: cut by now, or very soon.
    wait_until("the slow clients cut off", crate::support::DEADLINE, || {
        (slow_cut.load(std::sync::atomic::Ordering::Relaxed) > 0).then_some(())
    });
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (sent, cuts) = garbage.join().unwrap();
    let slow = loris.join().unwrap();
    assert!(
        cuts > 0,
        "the garbage client was never cut off ({sent} bytes sent)"
    );
    let rss = crate::support::rss_bytes(daemon.pid());
    eprintln!("daemon RSS with the crowd connected: {} KiB", rss / 1024);
    assert!(rss < 96 << 20, "daemon RSS {rss} bytes with 1100 clients");
    // The idle ones are still connected (idle is allowed, for 600 s).
    let mut first = idle.into_iter().next().unwrap();
    first
        .write_all(b"{\"id\":9,\"cmd\":\"version\"}\n")
        .unwrap();
    let mut reply = [0u8; 256];
    let n = first.read(&mut reply).unwrap();
    assert!(String::from_utf8_lossy(&reply[..n]).contains("\"id\":9"));
    drop(slow);
}

/// Past the connection limit (half the open-file limit here), and out of
/// descriptors, a client is answered `busy` at once and closed; once
/// others leave, clients are served again.
#[test]
fn past_the_limit_clients_are_told_busy_not_left_hanging() {
    let daemon = Daemon::builder()
        .nofile_limit(64)
        .body(
            r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 4
start_secs = "0"
"#,
        )
        .start();
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    let mut held = Vec::new();
    let busy = loop {
        assert!(held.len() < 64, "never told busy");
        let conn = UnixStream::connect(&daemon.socket).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        (&conn)
            .write_all(b"{\"id\":1,\"cmd\":\"version\"}\n")
            .unwrap();
        let mut reply = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&conn), &mut reply);
        if reply.contains("\"busy\"") {
            break reply;
        }
        assert!(reply.contains("\"ok\":true"), "{reply:?}");
        // Served: keep it open, idle.
        held.push(conn);
    };
    assert!(busy.contains("try again"), "{busy}");
    drop(held);
    let reply = wait_for_served(&daemon);
    assert_eq!(reply["ok"], true);
}

fn wait_for_served(daemon: &Daemon) -> serde_json::Value {
    crate::support::wait_until("a client served again", crate::support::DEADLINE, || {
        let mut conn = UnixStream::connect(&daemon.socket).ok()?;
        conn.write_all(b"{\"id\":2,\"cmd\":\"status\"}\n").ok()?;
        let mut reply = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(conn), &mut reply);
        serde_json::from_str::<serde_json::Value>(&reply)
            .ok()
            .filter(|r| r["ok"] == true)
    })
}
