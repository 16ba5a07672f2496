//! `tail` and `tail -f` from the in-memory buffer of each stream.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::{Connection, Daemon, ringmasterctl, stdout};

#[test]
fn tail_prints_the_last_lines_of_a_process_or_a_watcher() {
    let daemon = Daemon::start(
        r#"
[watchers.talker]
cmd = "for i in 1 2 3 4 5; do echo \"out $i from $RINGMASTER_WID\"; echo \"err $i\" >&2; done"
shell = true
numprocesses = 2
restart = "never"
start_secs = "0"

[watchers.merged]
cmd = "echo one; echo two >&2"
shell = true
restart = "never"
start_secs = "0"
stderr = "stdout"
"#,
    );
    daemon.wait_file("logs/talker-2.err.log", "err 5");
    daemon.wait_file("logs/merged-1.out.log", "two");
    let one = daemon.ctl(&["tail", "-n", "2", "talker:1"]);
    assert_eq!(stdout(&one), "out 4 from 1\nout 5 from 1\n", "{one:?}");
    let err = daemon.ctl(&["tail", "-n", "1", "talker:2", "stderr"]);
    assert_eq!(stdout(&err), "err 5\n");
    let both = daemon.ctl(&["tail", "-n", "1", "talker"]);
    assert_eq!(
        stdout(&both),
        "talker:1 | out 5 from 1\ntalker:2 | out 5 from 2\n"
    );
    let merged = daemon.ctl(&["tail", "merged:1", "stderr"]);
    assert_eq!(
        stdout(&merged),
        "one\ntwo\n",
        "merged stderr is read from stdout's buffer"
    );
    let missing = daemon.ctl(&["tail", "nope"]);
    assert_eq!(missing.status.code(), Some(1));

    // The buffer outlives the process: after a restart the old lines are
    // still there, followed by the new ones.
    assert!(daemon.ctl(&["start", "talker:1"]).status.success());
    daemon.wait_file("logs/talker-1.out.log", "out 5 from 1\nout 1 from 1\n");
    let after = daemon.ctl(&["tail", "-n", "6", "talker:1"]);
    assert_eq!(
        stdout(&after).lines().collect::<Vec<_>>(),
        [
            "out 5 from 1",
            "out 1 from 1",
            "out 2 from 1",
            "out 3 from 1",
            "out 4 from 1",
            "out 5 from 1"
        ]
    );
}

#[test]
fn tail_f_follows_live_output() {
    let daemon = Daemon::start(
        r#"
[watchers.ticker]
cmd = "i=0; while :; do i=$$((i+1)); echo \"tick $i\"; sleep 0.02; done"
shell = true
start_secs = "0"
"#,
    );
    daemon.wait_file("logs/ticker-1.out.log", "tick 2\n");
    let mut follower = Command::new(ringmasterctl())
        .arg("-s")
        .arg(&daemon.socket)
        .args(["tail", "-f", "-n", "1", "ticker"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follower.stdout.take().unwrap()).lines();
    let first: u64 = lines
        .next()
        .unwrap()
        .unwrap()
        .strip_prefix("ticker:1 | tick ")
        .unwrap()
        .parse()
        .unwrap();
    // Ten more, in order, without a gap or a repeat.
    for expected in first + 1..first + 11 {
        let line = lines.next().unwrap().unwrap();
        assert_eq!(line, format!("ticker:1 | tick {expected}"));
    }
    follower.kill().unwrap();
    follower.wait().unwrap();
    // The daemon is unaffected by the follower going away.
    assert_eq!(daemon.process("ticker:1")["state"], "RUNNING");
}

/// A follower that does not read never slows the writer; when it reads
/// again it is told how many bytes it missed.
#[test]
fn a_slow_follower_never_blocks_the_child() {
    let daemon = Daemon::start(
        r#"
[watchers.writer]
cmd = "echo hello; trap 'exec @TESTKIT@ lines 300000' USR1; while :; do sleep 0.01; done"
shell = true
restart = "never"
start_secs = "0"
"#,
    );
    daemon.wait_file("logs/writer-1.out.log", "hello");
    let mut follower = Connection::open(&daemon.socket);
    let request = json!({"id": 9, "cmd": "tail", "args": {"name": "writer:1", "follow": true}});
    follower.send_raw(format!("{request}\n").as_bytes());
    // The first line is the kept tail: from here on the follow is live.
    assert_eq!(follower.read_reply()["output"]["data"], "hello\n");
    // 30 MB at full speed while this client reads nothing.
    assert!(daemon.ctl(&["signal", "USR1", "writer"]).status.success());
    daemon.wait_state("writer:1", "EXITED");
    let log = daemon.path("logs/writer-1.out.log");
    crate::support::wait_until("30 MB in the file", crate::support::DEADLINE, || {
        (std::fs::metadata(&log).map_or(0, |m| m.len()) == 6 + 30_000_000).then_some(())
    });
    let mut skipped = 0;
    while skipped == 0 {
        let Some(line) = follower.try_read_line(Duration::from_secs(5)) else {
            panic!("the stream ended without saying what was skipped");
        };
        skipped = line["output"]["skipped_bytes"].as_u64().unwrap_or(0);
    }
    assert!(skipped > 0);
}

/// `ringmasterctl tail -f` that falls behind says what it skipped on a
/// line of its own, even when the gap fell in the middle of a line.
#[test]
fn the_ctl_says_what_it_skipped_on_a_line_of_its_own() {
    use std::io::BufRead;
    let daemon = Daemon::start(
        r#"
[watchers.writer]
cmd = "echo hello; trap 'yes 0123456789abcdef01 | head -c 30000000; exit 0' USR1; while :; do sleep 0.01; done"
shell = true
restart = "never"
start_secs = "0"
"#,
    );
    daemon.wait_file("logs/writer-1.out.log", "hello");
    let mut follower = std::process::Command::new(crate::support::ringmasterctl())
        .args([
            "-s",
            daemon.socket.to_str().unwrap(),
            "tail",
            "-f",
            "writer:1",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(follower.stdout.take().unwrap()).lines();
    // The kept tail first: the follow is live.
    assert_eq!(lines.next().unwrap().unwrap(), "hello");
    // 30 MB (in blocks that end mid-line) while nobody reads the ctl's
    // output: it falls behind.
    assert!(daemon.ctl(&["signal", "USR1", "writer"]).status.success());
    daemon.wait_state("writer:1", "EXITED");
    let marker = lines
        .map_while(Result::ok)
        .find(|line| line.contains("skipped"))
        .expect("a skipped marker");
    assert!(
        marker.starts_with("[writer:1: ... skipped ")
            && marker.ends_with(" bytes: this reader was too slow]"),
        "{marker:?}"
    );
    follower.kill().unwrap();
    follower.wait().unwrap();
}
