//! Restart policies and Supervisor's STARTING/BACKOFF/FATAL rules
//! (test plan group A).

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::support::Daemon;

/// Test plan A1: a child killed by any default-terminating signal is
/// restarted, the restart counter grows, and the exit records the signal.
#[test]
fn restart_always_after_each_terminating_signal() {
    let daemon = Daemon::start(
        r#"
[watchers.victim]
cmd = "sleep 1000"
start_secs = "0"
rlimits = { core = 0 }
"#,
    );
    let signals = [
        Signal::SIGABRT,
        Signal::SIGBUS,
        Signal::SIGFPE,
        Signal::SIGHUP,
        Signal::SIGILL,
        Signal::SIGINT,
        Signal::SIGKILL,
        Signal::SIGPIPE,
        Signal::SIGIO,
        Signal::SIGPROF,
        Signal::SIGQUIT,
        Signal::SIGSEGV,
        Signal::SIGSYS,
        Signal::SIGTERM,
        Signal::SIGTRAP,
        Signal::SIGUSR1,
        Signal::SIGUSR2,
        Signal::SIGVTALRM,
        Signal::SIGXCPU,
        Signal::SIGXFSZ,
    ];
    let mut entry = daemon.wait_state("victim:1", "RUNNING");
    for (round, signal) in signals.iter().enumerate() {
        let pid = entry["pid"].as_i64().unwrap() as i32;
        kill(Pid::from_raw(pid), *signal).unwrap();
        entry = daemon.wait_for(&format!("a new pid after {signal}"), |p| {
            p["state"] == "RUNNING" && p["pid"].as_i64().is_some_and(|new| new as i32 != pid)
        });
        assert_eq!(entry["restarts"], round as u64 + 1, "{entry}");
        let expected = signal.as_str().trim_start_matches("SIG");
        let recorded = entry["last_exit"]["signal"].as_str().unwrap();
        // SIGIO and SIGPOLL are the same number; the daemon says POLL.
        assert!(
            recorded == expected || (expected == "IO" && recorded == "POLL"),
            "{signal}: {entry}"
        );
    }
}

/// Test plan A2: fails once, then runs; start_retries 0 means FATAL at the
/// first quick failure, 1 means one retry, which succeeds.
#[test]
fn start_retries_decide_fatal_or_running() {
    let daemon = Daemon::start(
        r#"
[watchers.strict]
cmd = "@TESTKIT@ fail-once @DIR@/strict.marker"
start_secs = "300ms"
start_retries = 0
backoff_max = "50ms"

[watchers.lenient]
cmd = "@TESTKIT@ fail-once @DIR@/lenient.marker"
start_secs = "300ms"
start_retries = 1
backoff_max = "50ms"
"#,
    );
    let fatal = daemon.wait_state("strict:1", "FATAL");
    assert!(
        fatal["reason"]
            .as_str()
            .unwrap()
            .contains("exited too quickly (exit status 1)"),
        "{fatal}"
    );
    assert!(fatal["pid"].is_null());
    let running = daemon.wait_state("lenient:1", "RUNNING");
    assert_eq!(
        running["restarts"], 0,
        "quick-failure retries are not restarts"
    );

    // A FATAL process is left alone until started by hand; then it runs
    // (the marker exists now).
    let output = daemon.ctl(&["start", "strict"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(daemon.process("strict:1")["state"], "RUNNING");
}

/// Test plan A3: a crash loop backs off with non-decreasing delays capped
/// by backoff_max, then goes FATAL; the attempts are exactly 1 + retries.
#[test]
fn crash_loop_backs_off_then_gives_up() {
    let daemon = Daemon::start(
        r#"
[watchers.crashy]
cmd = "date +%s%N >> @DIR@/starts; exit 3"
shell = true
start_secs = "1s"
start_retries = 4
backoff_max = "300ms"
"#,
    );
    let fatal = daemon.wait_state("crashy:1", "FATAL");
    assert!(
        fatal["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 5 attempts"),
        "{fatal}"
    );
    let starts: Vec<u128> = daemon
        .read("starts")
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect();
    assert_eq!(starts.len(), 5, "one attempt plus four retries");
    let gaps: Vec<f64> = starts
        .windows(2)
        .map(|w| (w[1] - w[0]) as f64 / 1e6)
        .collect();
    // Delays are 100ms, 200ms, then capped at 300ms; each gap is the delay
    // plus a spawn, so allow scheduling slack above but not below.
    for (gap, delay) in gaps.iter().zip([100.0, 200.0, 300.0, 300.0]) {
        assert!(
            *gap >= delay - 5.0,
            "gap {gap}ms shorter than backoff {delay}ms: {gaps:?}"
        );
        assert!(
            *gap < delay + 1000.0,
            "gap {gap}ms far above backoff {delay}ms: {gaps:?}"
        );
    }
}

/// Test plan A3: a process that lives longer than start_secs is restarted
/// indefinitely, even with start_retries = 0.
#[test]
fn long_lived_process_restarts_forever() {
    let daemon = Daemon::start(
        r#"
[watchers.flaky]
cmd = "@TESTKIT@ exit 1 250"
start_secs = "100ms"
start_retries = 0
"#,
    );
    let entry = daemon.wait_for("three restarts", |p| {
        p["restarts"].as_u64().unwrap_or(0) >= 3
    });
    assert_ne!(entry["state"], "FATAL");
    assert_eq!(entry["last_exit"]["code"], 1);
}

/// Test plan A4: on-failure restarts only on codes outside exit_codes (and
/// on signals); never restarts nothing.
#[test]
fn restart_policies_and_exit_codes() {
    let daemon = Daemon::start(
        r#"
[watchers.clean]
cmd = "@TESTKIT@ exit 0 200"
start_secs = "50ms"
restart = "on-failure"

[watchers.expected]
cmd = "@TESTKIT@ exit 3 200"
start_secs = "50ms"
restart = "on-failure"
exit_codes = [0, 3]

[watchers.failing]
cmd = "@TESTKIT@ exit 3 200"
start_secs = "50ms"
restart = "on-failure"

[watchers.once]
cmd = "@TESTKIT@ exit 4 200"
start_secs = "50ms"
restart = "never"
"#,
    );
    let clean = daemon.wait_state("clean:1", "EXITED");
    assert_eq!(clean["last_exit"]["code"], 0);
    assert_eq!(clean["restarts"], 0);
    let expected = daemon.wait_state("expected:1", "EXITED");
    assert_eq!(expected["last_exit"]["code"], 3);
    let once = daemon.wait_state("once:1", "EXITED");
    assert_eq!(once["last_exit"]["code"], 4);
    assert_eq!(once["reason"], "exit status 4");
    daemon.wait_for("failing restarted twice", |p| {
        p["name"] == "failing:1" && p["restarts"].as_u64().unwrap_or(0) >= 2
    });
    // The exited ones stayed exited while failing:1 restarted twice.
    for name in ["clean:1", "expected:1", "once:1"] {
        let entry = daemon.process(name);
        assert_eq!(entry["state"], "EXITED", "{entry}");
        assert_eq!(entry["restarts"], 0, "{entry}");
    }
}

/// Test plan A5: `stop` during BACKOFF or STARTING never respawns.
#[test]
fn stop_during_backoff_or_starting_never_respawns() {
    let daemon = Daemon::start(
        r#"
[watchers.crashy]
cmd = "echo start >> @DIR@/crashy.starts; exit 1"
shell = true
start_secs = "1s"
start_retries = "infinite"
backoff_max = "200ms"

[watchers.slow]
cmd = "@TESTKIT@ sleep"
start_secs = "30s"
"#,
    );
    daemon.wait_state("crashy:1", "BACKOFF");
    daemon.wait_state("slow:1", "STARTING");
    let output = daemon.ctl(&["stop", "crashy", "slow"]);
    assert!(output.status.success(), "{output:?}");
    let starts = daemon.read("crashy.starts").lines().count();
    // Longer than the backoff cap and the stop: a respawn would show.
    std::thread::sleep(Duration::from_millis(600));
    for name in ["crashy:1", "slow:1"] {
        let entry = daemon.process(name);
        assert_eq!(entry["state"], "STOPPED", "{entry}");
        assert!(entry["pid"].is_null());
    }
    assert_eq!(daemon.read("crashy.starts").lines().count(), starts);
}

/// Spawn failures are states with reasons, never crashes: a missing
/// command, a non-executable file and a bad working_dir.
#[test]
fn spawn_errors_are_reported_in_status() {
    let builder = Daemon::builder().body(
        r#"
[watchers.missing]
cmd = "no-such-command-ringmaster"
start_retries = 0

[watchers.noexec]
cmd = "@DIR@/not-executable"
start_retries = 0

[watchers.nodir]
cmd = "@TESTKIT@ sleep"
working_dir = "@DIR@/no/such/dir"
start_retries = 0

[watchers.fine]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
    );
    std::fs::write(builder.path().join("not-executable"), "#!/bin/sh\n").unwrap();
    let daemon = builder.start();
    let missing = daemon.wait_state("missing:1", "FATAL");
    assert!(
        missing["reason"]
            .as_str()
            .unwrap()
            .contains("command not found: 'no-such-command-ringmaster'"),
        "{missing}"
    );
    let noexec = daemon.wait_state("noexec:1", "FATAL");
    let reason = noexec["reason"].as_str().unwrap();
    assert!(
        reason.contains("cannot execute") && reason.contains("permission denied"),
        "{noexec}"
    );
    let nodir = daemon.wait_state("nodir:1", "FATAL");
    assert!(
        nodir["reason"]
            .as_str()
            .unwrap()
            .contains("cannot change to working_dir"),
        "{nodir}"
    );
    daemon.wait_state("fine:1", "RUNNING");
}
