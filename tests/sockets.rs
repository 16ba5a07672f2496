//! Sockets the daemon binds and passes to its workers (spec §5b, test plan
//! H40): what a worker receives, that a dying worker never closes the
//! listening socket, privileged ports for unprivileged workers, bind
//! errors, and reload adding, rebinding and removing sockets.

use std::io::Read;
use std::net::TcpStream;
use std::os::unix::fs::MetadataExt;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{DEADLINE, Daemon, report, require_root, ringmasterd, stderr, wait_until};

/// Where the daemon bound socket `name` (`tcp://127.0.0.1:40123`).
fn bound(daemon: &Daemon, name: &str) -> String {
    let reply = daemon.request("sockets", json!(null));
    let sockets = reply["result"]["sockets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    sockets
        .iter()
        .find(|s| s["name"] == name)
        .and_then(|s| s["bound"].as_str())
        .unwrap_or_else(|| panic!("no socket {name}: {reply}"))
        .to_owned()
}

/// `HOST:PORT` of a bound TCP socket.
fn tcp_address(daemon: &Daemon, name: &str) -> String {
    bound(daemon, name).trim_start_matches("tcp://").to_owned()
}

/// One request to a `serve` worker: its answer, or the error.
fn ask(address: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect(address)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
}

#[test]
fn declared_sockets_arrive_as_fds_3_and_on_in_order_with_the_systemd_variables() {
    let daemon = Daemon::builder()
        .body(
            r#"
[sockets.web]
address = "tcp://127.0.0.1:0"
[sockets.stats]
address = "udp://127.0.0.1:0"
[sockets.admin]
address = "unix://@DIR@/admin.sock"

[watchers.got]
cmd = "@TESTKIT@ sockets"
sockets = ["web", "stats", "admin"]

[watchers.named]
cmd = "@TESTKIT@ sockets --admin-fd $(sockets.admin)"
sockets = ["web", "stats", "admin"]
env = { WEB_FD = "$(sockets.web)" }

[watchers.plain]
cmd = "@TESTKIT@ sockets"
"#,
        )
        .start();
    let got = report(&daemon.wait_file("logs/got-1.out.log", "end"));
    let web = tcp_address(&daemon, "web");
    let stats = bound(&daemon, "stats");
    assert_eq!(got["listen_fds"], "3");
    assert_eq!(got["listen_fdnames"], "web:stats:admin");
    assert_eq!(got["listen_pid_is_self"], "true");
    assert_eq!(
        got["fd3"],
        format!("stream inet {web} inheritable listening")
    );
    assert_eq!(
        got["fd4"],
        format!(
            "dgram inet {} inheritable bound",
            stats.trim_start_matches("udp://")
        )
    );
    assert!(got["fd5"].starts_with("stream unix "), "{got:?}");
    assert!(got["fd5"].ends_with(" inheritable listening"), "{got:?}");
    assert_eq!(got["fds"], "0,1,2,3,4,5", "nothing else is inherited");

    // The placeholders are the child's descriptor numbers; a command that
    // names its sockets so is not told again by LISTEN_FDS (gunicorn
    // would take the socket twice).
    let named = report(&daemon.wait_file("logs/named-1.out.log", "end"));
    assert_eq!(named["listen_fds"], "-");
    assert_eq!(named["fd3"], got["fd3"]);
    assert_eq!(named["fds"], "0,1,2,3,4,5");
    let pid = daemon.process("named:1")["pid"].as_i64().unwrap();
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(cmdline.ends_with(b"--admin-fd\x005\x00"), "{cmdline:?}");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(environ.split(|b| *b == 0).any(|v| v == b"WEB_FD=3"));

    // A watcher that is passed nothing gets nothing, not even the variables.
    let plain = report(&daemon.wait_file("logs/plain-1.out.log", "end"));
    assert_eq!(plain["listen_fds"], "-");
    assert_eq!(plain["listen_pid_is_self"], "false");
    assert_eq!(plain["fds"], "0,1,2");

    // The unix socket answers, with the default mode, and goes with the daemon.
    let admin = daemon.path("admin.sock");
    std::os::unix::net::UnixStream::connect(&admin).unwrap();
    assert_eq!(std::fs::metadata(&admin).unwrap().mode() & 0o777, 0o660);
    let listed = daemon.ctl(&["sockets"]);
    let text = String::from_utf8_lossy(&listed.stdout);
    assert!(
        text.contains(&format!("web    tcp://{web}  got, named")),
        "{text}"
    );
    drop(daemon);
    assert!(!admin.exists(), "the unix socket's file is removed at exit");
}

#[test]
fn a_worker_killed_under_load_never_closes_the_listening_socket() {
    let daemon = Daemon::start(
        r#"
[sockets.web]
address = "tcp://127.0.0.1:0"
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
numprocesses = 2
start_secs = "0s"
"#,
    );
    daemon.wait_all("both workers running", |p| p["state"] == "RUNNING");
    let address = tcp_address(&daemon, "web");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
    let load = {
        let (address, stop, count) = (address.clone(), stop.clone(), answered.clone());
        std::thread::spawn(move || {
            let (mut refused, mut other) = (0u32, Vec::new());
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                match ask(&address) {
                    Ok(answer) if answer.starts_with("web:") => {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(answer) => other.push(format!("answer {answer:?}")),
                    Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => refused += 1,
                    // A request the killed worker had accepted dies with it.
                    Err(err) => other.push(err.to_string()),
                }
            }
            (refused, other)
        })
    };
    let answers = || answered.load(std::sync::atomic::Ordering::Relaxed);
    for round in 0..5 {
        // Each kill lands while requests flow: one more answered first.
        let before = answers();
        wait_until("a request answered", DEADLINE, || {
            (answers() > before).then_some(())
        });
        let victim = format!("web:{}", 1 + round % 2);
        let pid = daemon.process(&victim)["pid"].as_i64().unwrap();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::SIGKILL,
        )
        .unwrap();
        daemon.wait_for("the worker replaced", |p| {
            p["name"] == victim && p["state"] == "RUNNING" && p["pid"].as_i64() != Some(pid)
        });
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (refused, other) = load.join().unwrap();
    assert_eq!(refused, 0, "connections refused while workers died");
    assert!(other.len() <= 5, "more failures than kills: {other:?}");
}

#[test]
fn a_worker_running_as_nobody_serves_a_privileged_port_the_daemon_bound() {
    require_root!();
    // A free port below 1024, on loopback.
    let port = (700..1000)
        .find(|p| std::net::TcpListener::bind(("127.0.0.1", *p)).is_ok())
        .expect("a free privileged port");
    let daemon = Daemon::start(&format!(
        r#"
[sockets.web]
address = "tcp://127.0.0.1:{port}"
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
user = "nobody"
"#
    ));
    let process = daemon.wait_state("web:1", "RUNNING");
    let answer = wait_until("an answer", DEADLINE, || {
        ask(&format!("127.0.0.1:{port}")).ok()
    });
    assert!(answer.starts_with("web:1 pid="), "{answer}");
    let pid = process["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap().uid;
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == nobody.to_string()),
        "{uid_line}"
    );
}

#[test]
fn a_socket_that_cannot_be_bound_stops_the_start_naming_it_the_address_and_the_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = taken.local_addr().unwrap();
    let builder = Daemon::builder().body(&format!(
        r#"
[sockets.web]
address = "tcp://{address}"
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
"#
    ));
    let config = builder.write_config();
    let started = Instant::now();
    let output = Command::new(ringmasterd()).arg(&config).output().unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let message = stderr(&output);
    assert!(
        message.contains(&format!(
            "socket 'web': cannot bind tcp://{address}: Address already in use"
        )),
        "{message}"
    );
    assert!(started.elapsed() < DEADLINE);
    assert!(
        !builder.path().join("rm.sock").exists(),
        "no control socket left behind"
    );
}

#[test]
fn a_supervisord_style_socket_on_stdin_is_served() {
    let daemon = Daemon::start(
        r#"
[sockets.fcgi]
address = "tcp://127.0.0.1:0"
[watchers.fcgi]
cmd = "@TESTKIT@ serve stdin"
stdin_socket = "fcgi"
"#,
    );
    daemon.wait_state("fcgi:1", "RUNNING");
    let address = tcp_address(&daemon, "fcgi");
    let answer = wait_until("an answer", DEADLINE, || ask(&address).ok());
    assert!(answer.starts_with("fcgi:1 pid="), "{answer}");
}

#[test]
fn a_unix_socket_gets_its_owner_group_and_mode_before_anyone_connects() {
    require_root!();
    let daemon = Daemon::start(
        r#"
[sockets.app]
address = "unix://@DIR@/app.sock"
owner = "nobody"
group = "nogroup"
mode = "0640"
[watchers.app]
cmd = "@TESTKIT@ sleep"
sockets = ["app"]
"#,
    );
    let meta = std::fs::metadata(daemon.path("app.sock")).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.gid(), nogroup.gid.as_raw());
    assert_eq!(meta.mode() & 0o777, 0o640);
}

/// The `sockets` reply's names.
fn socket_names(daemon: &Daemon) -> Vec<Value> {
    let reply = daemon.request("sockets", json!(null));
    let sockets = reply["result"]["sockets"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    sockets.iter().map(|s| s["name"].clone()).collect()
}

/// The configuration body of the reload test: socket `web` at `web`, and
/// `second` (another socket table).
fn reload_body(web: &str, second: &str) -> String {
    format!(
        r#"
[sockets.web]
address = "{web}"
{second}
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
start_secs = "0s"
[watchers.keep]
cmd = "@TESTKIT@ sleep"
start_secs = "0s"
"#
    )
}

#[test]
fn reload_binds_new_sockets_rebinds_changed_ones_and_closes_removed_ones() {
    let before = reload_body(
        "tcp://127.0.0.1:0",
        "[sockets.old]\naddress = \"unix://@DIR@/old.sock\"",
    );
    let builder = Daemon::builder().body(&before);
    let config = builder.write_config();
    let dir = builder.path().display().to_string();
    let daemon = builder.launch(config.clone());
    let first = daemon.wait_state("web:1", "RUNNING")["pid"].clone();
    let keep = daemon.wait_state("keep:1", "RUNNING")["pid"].clone();
    let old_address = tcp_address(&daemon, "web");
    assert!(daemon.path("old.sock").exists());

    // A free port for the new address of `web`.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let after = reload_body(
        &format!("tcp://127.0.0.1:{port}"),
        "[sockets.extra]\naddress = \"udp://127.0.0.1:0\"",
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let before = before
        .replace("@TESTKIT@", crate::support::testkit())
        .replace("@DIR@", &dir);
    assert!(text.contains(&before));
    let after = after.replace("@TESTKIT@", crate::support::testkit());
    std::fs::write(&config, text.replace(&before, &after)).unwrap();
    let reloaded = daemon.request("reload", json!(null));
    assert_eq!(reloaded["ok"], true, "{reloaded}");
    let result = &reloaded["result"];
    assert_eq!(result["sockets_added"], json!(["extra"]));
    assert_eq!(result["sockets_changed"], json!(["web"]));
    assert_eq!(result["sockets_removed"], json!(["old"]));
    assert_eq!(
        result["changed"],
        json!(["web"]),
        "its worker needs the new socket"
    );

    let second = daemon.wait_for("web restarted", |p| {
        p["name"] == "web:1" && p["state"] == "RUNNING" && p["pid"] != first
    });
    assert_ne!(second["pid"], first);
    assert_eq!(daemon.process("keep:1")["pid"], keep, "untouched");
    let new_address = format!("127.0.0.1:{port}");
    let answer = wait_until("an answer on the new port", DEADLINE, || {
        ask(&new_address).ok()
    });
    assert!(answer.starts_with("web:1 pid="), "{answer}");
    assert_eq!(
        ask(&old_address).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused),
        "the old port is closed"
    );
    assert!(
        !daemon.path("old.sock").exists(),
        "the removed socket's file is gone"
    );
    assert_eq!(socket_names(&daemon), vec![json!("extra"), json!("web")]);
}

#[test]
fn a_reload_whose_socket_cannot_be_bound_changes_nothing() {
    let builder = Daemon::builder().body(
        r#"
[sockets.web]
address = "tcp://127.0.0.1:0"
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
start_secs = "0s"
"#,
    );
    let config = builder.write_config();
    let daemon = builder.launch(config.clone());
    let pid = daemon.wait_state("web:1", "RUNNING")["pid"].clone();
    let address = tcp_address(&daemon, "web");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap();
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("tcp://127.0.0.1:0", &format!("tcp://{busy}"));
    std::fs::write(&config, text).unwrap();
    let reloaded = daemon.request("reload", json!(null));
    assert_eq!(reloaded["ok"], false, "{reloaded}");
    let message = reloaded["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "not reloaded, nothing changed: socket 'web': cannot bind tcp://{busy}"
        )),
        "{message}"
    );
    assert_eq!(daemon.process("web:1")["pid"], pid);
    assert_eq!(tcp_address(&daemon, "web"), address);
    assert!(ask(&address).unwrap().starts_with("web:1"));
}

/// Requests sent one after another on a thread until stopped.
struct Load {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    answered: std::sync::Arc<std::sync::atomic::AtomicU32>,
    thread: std::thread::JoinHandle<Vec<String>>,
}

impl Load {
    /// Starts the requests, and returns once one has been answered.
    fn on(address: &str) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicU32::new(0));
        let (address, flag, count) = (address.to_owned(), stop.clone(), answered.clone());
        let thread = std::thread::spawn(move || {
            let mut failed = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match ask(&address) {
                    Ok(answer) if answer.starts_with("web:") => {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                    Ok(answer) => failed.push(format!("answer {answer:?}")),
                    Err(err) => failed.push(err.to_string()),
                }
            }
            failed
        });
        let load = Self {
            stop,
            answered,
            thread,
        };
        wait_until("requests flowing", DEADLINE, || {
            (load.count() > 0).then_some(())
        });
        load
    }

    fn count(&self) -> u32 {
        self.answered.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Requests answered, and what went wrong with the others.
    fn stop(self) -> (u32, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let answered = self.answered.clone();
        let failed = self.thread.join().unwrap();
        (answered.load(std::sync::atomic::Ordering::Relaxed), failed)
    }
}

/// The order of the roll's steps in the daemon's log: `begin web:1`,
/// `ready web:1` ...
fn roll_steps(daemon: &Daemon) -> Vec<String> {
    daemon
        .daemon_log()
        .lines()
        .filter(|l| l.contains("rolling restart: replac"))
        .map(|l| {
            let what = if l.contains("replaced in") {
                "ready"
            } else {
                "begin"
            };
            let process = l
                .split("process=")
                .nth(1)
                .unwrap_or("")
                .split(' ')
                .next()
                .unwrap_or("");
            format!("{what} {process}")
        })
        .collect()
}

const ONE_BY_ONE: [&str; 6] = [
    "begin web:1",
    "ready web:1",
    "begin web:2",
    "ready web:2",
    "begin web:3",
    "ready web:3",
];

/// A watcher of three workers running `cmd` on one daemon-held socket,
/// ready when they print their `ready` line; `extra` adds keys to it.
fn serving(cmd: &str, extra: &str) -> Daemon {
    Daemon::start(&format!(
        r#"
[sockets.web]
address = "tcp://127.0.0.1:0"
[watchers.web]
cmd = "{cmd}"
sockets = ["web"]
numprocesses = 3
ready = {{ log = "^ready pid=" }}
{extra}
"#
    ))
}

/// The pid of each of `web`'s processes.
fn pids(daemon: &Daemon) -> Vec<Value> {
    (1..=3)
        .map(|wid| daemon.process(&format!("web:{wid}"))["pid"].clone())
        .collect()
}

#[test]
fn a_rolling_restart_replaces_every_worker_one_by_one_refusing_no_connection() {
    let daemon = serving("@TESTKIT@ serve", "");
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");
    let before = pids(&daemon);
    let load = Load::on(&tcp_address(&daemon, "web"));
    let rolled = daemon.ctl(&["restart", "--rolling", "web"]);
    let (answered, failed) = load.stop();
    let text = String::from_utf8_lossy(&rolled.stdout);
    assert_eq!(rolled.status.code(), Some(0), "{text}{}", stderr(&rolled));
    assert_eq!(text.matches("replaced (pid ").count(), 3, "{text}");
    assert!(
        failed.is_empty(),
        "failed requests during the roll: {failed:?}"
    );
    assert!(answered > 0);
    let after = pids(&daemon);
    for (old, new) in before.iter().zip(&after) {
        assert_ne!(old, new);
    }
    // One at a time: each slot's replacement began after the previous one
    // was ready (the daemon logs the roll's steps in order).
    assert_eq!(roll_steps(&daemon), ONE_BY_ONE, "{}", daemon.daemon_log());
}

#[test]
fn reload_of_a_changed_watcher_with_sockets_rolls_it() {
    let builder = Daemon::builder().body(
        r#"
[sockets.web]
address = "tcp://127.0.0.1:0"
[watchers.web]
cmd = "@TESTKIT@ serve"
sockets = ["web"]
numprocesses = 3
ready = { log = "^ready pid=" }
env = { RELEASE = "v1" }
"#,
    );
    let config = builder.write_config();
    let daemon = builder.launch(config.clone());
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");
    let before = pids(&daemon);
    let load = Load::on(&tcp_address(&daemon, "web"));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("\"v1\"", "\"v2\"");
    std::fs::write(&config, text).unwrap();
    let reloaded = daemon.request("reload", json!(null));
    assert_eq!(reloaded["result"]["changed"], json!(["web"]), "{reloaded}");
    wait_until("the roll", DEADLINE, || {
        (roll_steps(&daemon).len() == 6).then_some(())
    });
    let (answered, failed) = load.stop();
    assert!(
        failed.is_empty(),
        "failed requests during the reload: {failed:?}"
    );
    assert!(answered > 0);
    assert_eq!(roll_steps(&daemon), ONE_BY_ONE);
    for (old, new) in before.iter().zip(pids(&daemon)) {
        assert_ne!(*old, new);
    }
}

#[test]
fn a_roll_stops_at_a_worker_that_fails_and_the_rest_keep_serving() {
    let daemon = serving(
        "test ! -e @DIR@/broken && exec @TESTKIT@ serve",
        "shell = true\nstart_retries = 0",
    );
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");
    let before = pids(&daemon);
    std::fs::write(daemon.path("broken"), "").unwrap();
    let rolled = daemon.ctl(&["restart", "--rolling", "web"]);
    let text = String::from_utf8_lossy(&rolled.stdout);
    assert_eq!(rolled.status.code(), Some(1), "{text}");
    assert!(
        text.contains("web:1") && text.contains("new process failed: exited before it was ready"),
        "{text}"
    );
    assert!(
        text.contains("not replaced: the roll stopped at web:1"),
        "{text}"
    );
    let after = pids(&daemon);
    assert_eq!(after[1..], before[1..], "web:2 and web:3 untouched");
    let address = tcp_address(&daemon, "web");
    assert!(ask(&address).unwrap().starts_with("web:"));
}

#[test]
fn a_socket_changed_at_the_same_address_is_changed_in_place_without_restarts() {
    let before = "[sockets.app]\naddress = \"unix://@DIR@/app.sock\"\nmode = \"0600\"\n\
                  [sockets.web]\naddress = \"tcp://127.0.0.1:0\"\nbacklog = 16\n\
                  [watchers.web]\ncmd = \"@TESTKIT@ serve\"\nsockets = [\"web\", \"app\"]\nstart_secs = \"0s\"\n";
    let builder = Daemon::builder().body(before);
    let config = builder.write_config();
    let daemon = builder.launch(config.clone());
    let pid = daemon.wait_state("web:1", "RUNNING")["pid"].clone();
    let address = tcp_address(&daemon, "web");
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("mode = \"0600\"", "mode = \"0640\"")
        .replace("backlog = 16", "backlog = 64");
    std::fs::write(&config, &text).unwrap();
    let reloaded = daemon.request("reload", json!(null));
    assert_eq!(
        reloaded["result"]["sockets_changed"],
        json!(["app", "web"]),
        "{reloaded}"
    );
    assert_eq!(
        reloaded["result"]["changed"],
        json!([]),
        "its processes keep the socket"
    );
    let meta = std::fs::metadata(daemon.path("app.sock")).unwrap();
    assert_eq!(meta.mode() & 0o777, 0o640);
    assert_eq!(daemon.process("web:1")["pid"], pid);
    assert_eq!(tcp_address(&daemon, "web"), address);
    assert!(ask(&address).unwrap().starts_with("web:1"));

    // SO_REUSEPORT cannot change on a bound socket: refused, nothing changed.
    std::fs::write(
        &config,
        text.replace("backlog = 64", "backlog = 64\nreuseport = true"),
    )
    .unwrap();
    let refused = daemon.request("reload", json!(null));
    assert_eq!(refused["ok"], false, "{refused}");
    let message = refused["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("cannot change reuseport of tcp://127.0.0.1:0"),
        "{message}"
    );
    assert_eq!(daemon.process("web:1")["pid"], pid);
}
