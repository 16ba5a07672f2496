//! The `events` stream: every state change, as it happens.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Connection, Daemon, ringmasterctl};

/// Reads stream lines until one satisfies `last`; returns the events.
fn events_until(conn: &mut Connection, last: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut events = Vec::new();
    loop {
        let line = conn.read_reply();
        assert_eq!(line["id"], 7, "{line}");
        let event = line["event"].clone();
        if event["process"] != "crashy:1" {
            continue;
        }
        let done = last(&event);
        events.push(event);
        if done {
            return events;
        }
    }
}

#[test]
fn every_transition_of_a_crash_loop_is_streamed() {
    let daemon = Daemon::start(
        r#"
[watchers.probe]
cmd = "@TESTKIT@ sleep"
start_secs = "0"

[watchers.crashy]
cmd = "exit 3"
shell = true
autostart = false
start_secs = "1s"
start_retries = 2
backoff_max = "50ms"
"#,
    );
    let mut stream = Connection::open(&daemon.socket);
    stream.send_raw(b"{\"id\":7,\"cmd\":\"events\"}\n");
    // The stream is live once it shows the probe's restart.
    loop {
        assert!(daemon.ctl(&["restart", "probe"]).status.success());
        if stream.try_read_line(Duration::from_millis(200)).is_some() {
            break;
        }
    }
    let started = std::thread::spawn({
        let socket = daemon.socket.clone();
        move || Connection::open(&socket).call("start", json!({"names": ["crashy"]}))
    });
    let events = events_until(&mut stream, |e| e["to"] == "FATAL");
    let transitions: Vec<(String, String)> = events
        .iter()
        .map(|e| {
            (
                e["from"].as_str().unwrap().to_owned(),
                e["to"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("STOPPED", "STARTING"),
        ("STARTING", "BACKOFF"),
        ("BACKOFF", "STARTING"),
        ("STARTING", "BACKOFF"),
        ("BACKOFF", "STARTING"),
        ("STARTING", "FATAL"),
    ];
    let expected: Vec<(String, String)> = expected
        .iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect();
    assert_eq!(transitions, expected);
    for event in &events {
        assert_eq!(event["process"], "crashy:1");
        assert!(event["time"].as_str().unwrap().ends_with('Z'));
        assert!(event["pid"].as_i64().is_some(), "{event}");
    }
    for exit in events.iter().filter(|e| e["from"] == "STARTING") {
        assert_eq!(exit["exit"]["code"], 3, "{exit}");
        assert!(
            exit["reason"]
                .as_str()
                .unwrap()
                .contains("exited too quickly"),
            "{exit}"
        );
    }
    let reply = started.join().unwrap();
    assert_eq!(reply["result"]["processes"][0]["ok"], false);
}

#[test]
fn ringmasterctl_events_prints_text_and_json() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
autostart = false
start_secs = "0"
"#,
    );
    for json in [false, true] {
        let mut args = vec!["-s".to_owned(), daemon.socket.display().to_string()];
        if json {
            args.push("--json".to_owned());
        }
        args.push("events".to_owned());
        let mut follower = Command::new(ringmasterctl())
            .args(&args)
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let output = follower.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(output).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Until the follower is subscribed, restart: each round makes events.
        let first = loop {
            assert!(daemon.ctl(&["restart", "web"]).status.success());
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
                break line;
            }
        };
        if json {
            let value: Value = serde_json::from_str(&first).unwrap();
            assert_eq!(value["event"]["process"], "web:1", "{first}");
        } else {
            assert!(
                first.contains("  web:1  ") && first.contains(" -> "),
                "{first}"
            );
        }
        follower.kill().unwrap();
        follower.wait().unwrap();
    }
}

#[test]
fn a_client_that_does_not_read_gets_a_skipped_marker_and_blocks_nobody() {
    let daemon = Daemon::start(
        r#"
[watchers.churn]
cmd = "exit 0"
shell = true
start_secs = "0"
restart = "always"
"#,
    );
    let mut lazy = Connection::open(&daemon.socket);
    lazy.send_raw(b"{\"id\":7,\"cmd\":\"events\"}\n");
    // The churn makes two events per restart; wait until far more than the
    // buffer (4096) and the socket hold has happened, serving status all along.
    crate::support::wait_until("6000 restarts", Duration::from_secs(60), || {
        let entry = daemon.process("churn:1");
        (entry["restarts"].as_u64().unwrap_or(0) > 6_000).then_some(())
    });
    assert!(daemon.ctl(&["stop", "churn"]).status.success());
    let skipped = loop {
        let line = lazy.read_reply();
        if let Some(n) = line["skipped"].as_u64() {
            break n;
        }
    };
    assert!(skipped > 0);
}
