//! Where output goes: files (appended), merged stderr, null (spec §6 basics;
//! rotation and tail come with the log-streams work).

use crate::support::Daemon;

#[test]
fn merged_separate_null_and_appended_outputs() {
    let daemon = Daemon::start(
        r#"
[watchers.merged]
cmd = "echo out1; echo err1 >&2; echo out2; printf 'err2 no newline' >&2"
shell = true
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/merged.log" }
stderr = "stdout"

[watchers.split]
cmd = "echo to-out; echo to-err >&2"
shell = true
restart = "never"
start_secs = "0"

[watchers.silent]
cmd = "echo nobody hears this; echo nor this >&2"
shell = true
restart = "never"
start_secs = "0"
stdout = "null"
stderr = "null"

[watchers.twice]
cmd = "echo run $RINGMASTER_WID"
shell = true
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/twice-$(wid).log" }
"#,
    );
    let merged = daemon.wait_file("merged.log", "err2 no newline");
    assert_eq!(
        merged, "out1\nerr1\nout2\nerr2 no newline",
        "merged in write order, last partial line kept"
    );
    assert_eq!(daemon.wait_file("logs/split-1.out.log", "\n"), "to-out\n");
    assert_eq!(daemon.wait_file("logs/split-1.err.log", "\n"), "to-err\n");
    daemon.wait_state("silent:1", "EXITED");
    assert!(!daemon.path("logs/silent-1.out.log").exists());
    assert!(!daemon.path("logs/silent-1.err.log").exists());

    daemon.wait_file("twice-1.log", "run 1\n");
    daemon.wait_state("twice:1", "EXITED");
    assert!(daemon.ctl(&["start", "twice"]).status.success());
    assert_eq!(
        daemon.wait_file("twice-1.log", "run 1\nrun 1\n"),
        "run 1\nrun 1\n",
        "appended, not truncated"
    );
}

/// Bytes that are not UTF-8 pass through untouched, and a fast writer's
/// lines arrive complete and in order.
#[test]
fn arbitrary_bytes_pass_through_in_order() {
    let daemon = Daemon::start(
        r#"
[watchers.bytes]
cmd = '''printf 'caf\351 \210\377\n'; exec @TESTKIT@ spew 300000 hang'''
shell = true
start_secs = "0"
restart = "never"
"#,
    );
    daemon.wait_state("bytes:1", "RUNNING");
    let log = daemon.path("logs/bytes-1.out.log");
    // 8 bytes from printf, the "ready pid=N" line, then 300000 bytes.
    crate::support::wait_until("all spewed bytes", crate::support::DEADLINE, || {
        let bytes = std::fs::read(&log).ok()?;
        let ready_end = bytes.get(8..)?.iter().position(|&b| b == b'\n')? + 9;
        (bytes.len() - ready_end >= 300_000).then_some(())
    });
    assert!(daemon.ctl(&["signal", "KILL", "bytes"]).status.success());
    let bytes = std::fs::read(&log).unwrap();
    assert!(
        bytes.starts_with(b"caf\xe9 \x88\xff\n"),
        "{:?}",
        &bytes[..16]
    );
    let spewed = &bytes[8..];
    assert!(spewed.starts_with(b"ready pid="));
    let body = &spewed[spewed.iter().position(|&b| b == b'\n').unwrap() + 1..];
    assert_eq!(body.len(), 300_000);
    for (i, line) in body
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        assert!(
            line.starts_with(format!("{i:09} ").as_bytes()),
            "line {i} out of order"
        );
    }
}

/// `echo = true` copies each line to the daemon's stdout, prefixed, the
/// container-log path; with `"null"` it is the only destination.
#[test]
fn echo_copies_lines_to_the_daemon_stdout() {
    let daemon = Daemon::start(
        r#"
[watchers.loud]
cmd = "echo hello; echo oops >&2; printf 'no newline'"
shell = true
restart = "never"
start_secs = "0"
echo = true

[watchers.quiet]
cmd = "echo only echoed"
shell = true
restart = "never"
start_secs = "0"
echo = true
stdout = "null"
stderr = "null"
"#,
    );
    let out = daemon.wait_file("daemon.out", "loud:1 | no newline\n");
    assert!(out.contains("loud:1 | hello\n"), "{out}");
    assert!(out.contains("loud:1 ! oops\n"), "{out}");
    let out = daemon.wait_file("daemon.out", "quiet:1 | only echoed\n");
    assert!(
        !out.contains('\x1b'),
        "no colour when stdout is not a terminal"
    );
    assert_eq!(daemon.read("logs/loud-1.out.log"), "hello\nno newline");
    assert!(!daemon.path("logs/quiet-1.out.log").exists());
}

/// Test plan E26: 100 MB from a fast writer arrive byte for byte.
#[test]
fn a_hundred_megabytes_arrive_byte_exact() {
    let daemon = Daemon::start(
        r#"
[watchers.firehose]
cmd = "@TESTKIT@ lines 1000000"
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/firehose.log" }
"#,
    );
    daemon.wait_state("firehose:1", "EXITED");
    let log = daemon.path("firehose.log");
    crate::support::wait_until("100 MB in the file", crate::support::DEADLINE, || {
        (std::fs::metadata(&log).map_or(0, |m| m.len()) >= 100_000_000).then_some(())
    });
    let got = std::fs::read(&log).unwrap();
    assert_eq!(got.len(), 100_000_000);
    let filler =
        b"ringmaster log throughput line: every byte must arrive, in order, exactly once..........";
    for (n, line) in got.chunks(100).enumerate() {
        let mut expected = format!("{n:010} ").into_bytes();
        expected.extend_from_slice(filler);
        expected.push(b'\n');
        assert!(line == expected.as_slice(), "line {n} differs");
    }
}

/// Test plan E26: what a process writes right before SIGKILL is kept.
#[test]
fn last_words_before_sigkill_are_kept() {
    let daemon = Daemon::start(
        r#"
[watchers.doomed]
cmd = "@TESTKIT@ spew 200000; echo last words; kill -9 $$"
shell = true
restart = "never"
start_secs = "0"
"#,
    );
    let entry = daemon.wait_state("doomed:1", "EXITED");
    assert_eq!(entry["last_exit"]["signal"], "KILL");
    let text = daemon.wait_file("logs/doomed-1.out.log", "last words\n");
    assert!(text.ends_with("last words\n"));
    assert!(text.len() > 200_000);
}
