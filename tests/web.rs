//! The deploy our users run (issue 18, test plan H40c): gunicorn + Flask
//! workers behind a socket the daemon holds, under continuous HTTP load
//! from wrk, a release symlink flipped from v1 to v2 and the workers
//! rolled: no request may fail (refused, reset, timed out or non-2xx),
//! and every answer after the roll comes from v2.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{
    DEADLINE, Daemon, free_port, http_get, stderr, system_program, venv_program, wait_until,
};

/// How long wrk runs: the roll must be over well before.
const LOAD: Duration = Duration::from_secs(10);

/// `releases/v1` and `releases/v2` of a Flask app that answers its
/// release's name, and `current -> releases/v1`.
fn releases(dir: &Path) -> PathBuf {
    for release in ["v1", "v2"] {
        let home = dir.join("releases").join(release);
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("app.py"),
            format!(
                "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route('/')\n\
                 def index():\n    return '{release}\\n'\n"
            ),
        )
        .unwrap();
    }
    let current = dir.join("current");
    std::os::unix::fs::symlink("releases/v1", &current).unwrap();
    current
}

/// Points `current` at `releases/v2`, atomically (a rename over it).
fn flip_to_v2(dir: &Path) {
    let next = dir.join("current.next");
    std::os::unix::fs::symlink("releases/v2", &next).unwrap();
    std::fs::rename(&next, dir.join("current")).unwrap();
}

/// What wrk reported: requests, and every kind of failure it counts.
#[derive(Debug, Default)]
pub(crate) struct Load {
    pub requests: u64,
    /// connect, read, write, timeout.
    socket_errors: [u64; 4],
    non_2xx: u64,
    pub text: String,
}

impl Load {
    pub fn failed(&self) -> u64 {
        self.socket_errors.iter().sum::<u64>() + self.non_2xx
    }
}

fn parse_wrk(text: &str) -> Load {
    let mut load = Load {
        text: text.to_owned(),
        ..Load::default()
    };
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line
            .split(" requests in ")
            .next()
            .filter(|_| line.contains(" requests in "))
        {
            load.requests = rest.trim().parse().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            let numbers: Vec<u64> = rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse().ok())
                .collect();
            for (slot, n) in load.socket_errors.iter_mut().zip(numbers) {
                *slot = n;
            }
        }
        if let Some(rest) = line.strip_prefix("Non-2xx or 3xx responses:") {
            load.non_2xx = rest.trim().parse().unwrap_or(0);
        }
    }
    load
}

/// wrk with 16 connections for [`LOAD`] against `port`.
fn start_load(wrk: &Path, port: u16) -> std::process::Child {
    start_load_for(wrk, port, LOAD)
}

/// wrk with 16 connections for `duration` against `port`.
pub(crate) fn start_load_for(wrk: &Path, port: u16, duration: Duration) -> std::process::Child {
    Command::new(wrk)
        .args(["-t", "2", "-c", "16", "--timeout", "5s", "-d"])
        .arg(format!("{}s", duration.as_secs()))
        .arg(format!("http://127.0.0.1:{port}/"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

pub(crate) fn finish_load(child: std::process::Child) -> Load {
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "wrk failed: {}", stderr(&output));
    parse_wrk(&String::from_utf8_lossy(&output.stdout))
}

/// The tools, or None (SKIPPED locally, a failure in CI).
fn tools() -> Option<(PathBuf, PathBuf)> {
    let gunicorn = venv_program("gunicorn")?;
    let wrk = system_program("wrk", "wrk")?;
    Some((gunicorn, wrk))
}

/// Four single-worker gunicorns on one socket, ready when the arbiter
/// notifies; `socket` is the configuration of the socket and `watcher`'s
/// lines go in the watcher table.
fn web_watcher(gunicorn: &Path, dir: &Path) -> String {
    format!(
        "cmd = \"{} --workers 1 --chdir {}/current --graceful-timeout 10 app:app\"\n\
         numprocesses = 4\nready = {{ notify = true, timeout = \"20s\" }}\nstop_timeout = \"15s\"\n",
        gunicorn.display(),
        dir.display()
    )
}

/// Rolls `web` while wrk runs; the load, and how long the roll took.
fn roll_under_load(daemon: &Daemon, wrk: &Path, port: u16, dir: &Path) -> (Load, Duration) {
    let load = start_load(wrk, port);
    std::thread::sleep(Duration::from_millis(500));
    flip_to_v2(dir);
    let began = Instant::now();
    let rolled = daemon.ctl(&["restart", "--rolling", "web"]);
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&rolled.stdout).into_owned();
    assert_eq!(rolled.status.code(), Some(0), "{text}{}", stderr(&rolled));
    assert_eq!(text.matches("replaced (pid ").count(), 4, "{text}");
    let load = finish_load(load);
    assert!(
        took + Duration::from_secs(1) < LOAD,
        "the roll took {took:?}: longer than the load ran"
    );
    (load, took)
}

/// The daemon of the native form: `[sockets.web]` on a free port and the
/// four gunicorns, serving v1; with its port and directory.
fn native_stack(gunicorn: &Path) -> (Daemon, u16, PathBuf) {
    let port = free_port();
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    releases(&dir);
    let daemon = builder
        .body(&format!(
            "[sockets.web]\naddress = \"tcp://127.0.0.1:{port}\"\n\n[watchers.web]\nsockets = [\"web\"]\n{}",
            web_watcher(gunicorn, &dir)
        ))
        .start();
    serving_v1(&daemon, port);
    (daemon, port, dir)
}

/// Waits until every worker runs and v1 answers.
fn serving_v1(daemon: &Daemon, port: u16) {
    daemon.wait_all("four workers running", |p| p["state"] == "RUNNING");
    wait_until("v1 answering", DEADLINE, || {
        http_get(port, "/").filter(|a| a.ends_with("v1\n"))
    });
}

/// Flips to v2 and rolls under load: no request failed, and every answer
/// afterwards comes from v2.
fn roll_loses_nothing(daemon: &Daemon, wrk: &Path, port: u16, dir: &Path) {
    let (load, _) = roll_under_load(daemon, wrk, port, dir);
    assert!(load.requests > 100, "{}", load.text);
    assert_eq!(
        load.failed(),
        0,
        "failed requests during the roll:\n{}",
        load.text
    );
    assert_all_v2(port);
}

fn assert_all_v2(port: u16) {
    for _ in 0..40 {
        let answer = http_get(port, "/").unwrap_or_default();
        assert!(answer.ends_with("\r\n\r\nv2\n"), "{answer}");
    }
}

#[test]
fn a_release_is_rolled_under_load_with_no_request_lost() {
    let Some((gunicorn, wrk)) = tools() else {
        return;
    };
    let (daemon, port, dir) = native_stack(&gunicorn);
    roll_loses_nothing(&daemon, &wrk, port, &dir);
}

#[test]
fn the_same_from_a_circus_ini_socket() {
    let Some((gunicorn, wrk)) = tools() else {
        return;
    };
    let port = free_port();
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    releases(&dir);
    let text = format!(
        "[watcher:web]\ncmd = {} --workers 1 --chdir {}/current --bind fd://$(circus.sockets.web) app:app\n\
         use_sockets = True\nnumprocesses = 4\ncopy_env = True\ngraceful_timeout = 15\n\n\
         [socket:web]\nhost = 127.0.0.1\nport = {port}\n",
        gunicorn.display(),
        dir.display()
    );
    let daemon = builder.launch_circus(&text);
    serving_v1(&daemon, port);
    roll_loses_nothing(&daemon, &wrk, port, &dir);
}

#[test]
fn a_worker_killed_under_load_refuses_no_connection() {
    let Some((gunicorn, wrk)) = tools() else {
        return;
    };
    let (daemon, port, _dir) = native_stack(&gunicorn);
    let load = start_load(&wrk, port);
    std::thread::sleep(Duration::from_secs(1));
    let victim = daemon.process("web:2")["pid"].as_i64().unwrap() as i32;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::SIGKILL,
    )
    .unwrap();
    daemon.wait_for("web:2 replaced", |p| {
        p["name"] == "web:2"
            && p["state"] == "RUNNING"
            && p["pid"].as_i64() != Some(i64::from(victim))
    });
    let load = finish_load(load);
    assert!(load.requests > 100, "{}", load.text);
    // A request the killed process was serving dies with it; nobody is refused.
    assert_eq!(
        load.socket_errors[0], 0,
        "connections refused:\n{}",
        load.text
    );
    assert!(load.failed() <= 2, "{}", load.text);
}
