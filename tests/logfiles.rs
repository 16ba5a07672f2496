//! Log files: rotation by size, timestamps, reopen after an external
//! rotation (SIGUSR2, `ringmasterctl reopen`, and the real logrotate in
//! both its modes).

use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::process::Command;

use nix::sys::signal::Signal;

use serde_json::Value;

use crate::support::{DEADLINE, Daemon, LoopDisk, stdout, wait_until};

/// The numbers of "line N" lines, in file order.
fn numbers(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("line "))
        .map(|n| n.trim().parse().unwrap())
        .collect()
}

/// A child that writes "line 1", "line 2", ... every 20 ms.
const TICKER: &str = r#"
[watchers.ticker]
cmd = "i=0; while :; do i=$$((i+1)); echo \"line $i\"; sleep 0.02; done"
shell = true
start_secs = "0"
stdout = { file = "@DIR@/ticker.log" }
"#;

/// The number of threads of process `pid`.
fn daemon_threads(pid: i32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task")).map_or(0, Iterator::count)
}

fn wait_lines(daemon: &Daemon, file: &str, count: usize) {
    wait_until(&format!("{count} lines in {file}"), DEADLINE, || {
        (numbers(&daemon.read(file)).len() >= count).then_some(())
    });
}

/// Stops the ticker and checks that `files`, read in order, hold one
/// unbroken run of line numbers from 1: nothing lost, nothing twice.
fn assert_contiguous(daemon: &Daemon, files: &[&str]) {
    assert!(daemon.ctl(&["stop", "ticker"]).status.success());
    let all: Vec<u64> = files
        .iter()
        .flat_map(|f| numbers(&daemon.read(f)))
        .collect();
    let expected: Vec<u64> = (1..=all.len() as u64).collect();
    assert_eq!(all, expected, "lines across {files:?}");
}

#[test]
fn rotation_by_size_keeps_whole_lines_in_order() {
    let daemon = Daemon::start(
        r#"
[watchers.writer]
cmd = "@TESTKIT@ lines 3000"
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/out.log", max_size = "10KB", backups = 4 }
"#,
    );
    daemon.wait_state("writer:1", "EXITED");
    // 300000 bytes in files of at most 10240 bytes: the last five files
    // (current + 4 backups) are a contiguous, whole-line tail.
    let files = [
        "out.log.4",
        "out.log.3",
        "out.log.2",
        "out.log.1",
        "out.log",
    ];
    wait_until("the last line", DEADLINE, || {
        daemon.read("out.log").contains("0000002999 ").then_some(())
    });
    let mut next: Option<u64> = None;
    for file in files {
        let text = daemon.read(file);
        assert!(
            !text.is_empty() && text.len() <= 10 * 1024,
            "{file}: {} bytes",
            text.len()
        );
        assert!(text.ends_with('\n'), "{file} ends mid-line");
        for line in text.lines() {
            let n: u64 = line[..10].parse().unwrap();
            assert_eq!(line.len(), 99, "{file}: {line}");
            if let Some(want) = next {
                assert_eq!(n, want, "{file}: a line lost or doubled");
            }
            next = Some(n + 1);
        }
    }
    assert_eq!(next, Some(3000));
    assert!(!daemon.path("out.log.5").exists());
}

#[test]
fn timestamps_prefix_every_line() {
    let daemon = Daemon::start(
        r#"
[watchers.stamped]
cmd = "echo first; printf 'second\nno newline'"
shell = true
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/stamped.log", timestamps = true }
"#,
    );
    let text = daemon.wait_file("stamped.log", "no newline");
    let lines: Vec<&str> = text.split('\n').collect();
    assert_eq!(lines.len(), 3, "{text:?}");
    for (line, want) in lines.iter().zip(["first", "second", "no newline"]) {
        let (stamp, rest) = line.split_once(' ').unwrap();
        assert_eq!(rest, want);
        assert_eq!(stamp.len(), 27, "{stamp}");
        assert!(
            stamp.starts_with("20") && stamp.ends_with('Z') && stamp.as_bytes()[10] == b'T',
            "{stamp}"
        );
    }
}

#[test]
fn sigusr2_and_ctl_reopen_follow_a_rename() {
    let daemon = Daemon::start(TICKER);
    wait_lines(&daemon, "ticker.log", 3);
    std::fs::rename(daemon.path("ticker.log"), daemon.path("ticker.log.1")).unwrap();
    daemon.signal(Signal::SIGUSR2);
    wait_lines(&daemon, "ticker.log", 3);

    std::fs::rename(daemon.path("ticker.log"), daemon.path("ticker.log.2")).unwrap();
    let output = daemon.ctl(&["reopen"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(crate::support::stdout(&output), "reopened 2 log files\n");
    wait_lines(&daemon, "ticker.log", 3);
    assert_contiguous(&daemon, &["ticker.log.1", "ticker.log.2", "ticker.log"]);
}

fn logrotate() -> Option<&'static str> {
    if std::path::Path::new("/usr/sbin/logrotate").exists() {
        return Some("/usr/sbin/logrotate");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "logrotate is missing in CI (.ci/run installs it)"
    );
    eprintln!("SKIPPED: logrotate is not installed (apt-get install logrotate)");
    None
}

fn run_logrotate(daemon: &Daemon, stanza: &str) {
    let Some(logrotate) = logrotate() else { return };
    let conf = daemon.path("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n    rotate 3\n    nocompress\n    missingok\n{stanza}}}\n",
            daemon.path("ticker.log").display()
        ),
    )
    .unwrap();
    let output = Command::new(logrotate)
        .arg("--force")
        .arg("--state")
        .arg(daemon.path("logrotate.state"))
        .arg(&conf)
        .output()
        .unwrap();
    assert!(output.status.success(), "logrotate failed: {output:?}");
}

/// logrotate's default mode: rename, create a new file, and signal the
/// daemon in postrotate; the next byte goes to the new file.
#[test]
fn real_logrotate_create_mode_with_postrotate_signal() {
    let daemon = Daemon::start(TICKER);
    if logrotate().is_none() {
        return;
    }
    wait_lines(&daemon, "ticker.log", 3);
    run_logrotate(
        &daemon,
        &format!(
            "    create 0640\n    postrotate\n        kill -USR2 {}\n    endscript\n",
            daemon.pid()
        ),
    );
    wait_lines(&daemon, "ticker.log", 3);
    assert_contiguous(&daemon, &["ticker.log.1", "ticker.log"]);
}

/// copytruncate: logrotate copies the file and truncates it in place; we
/// append, so writing resumes at the start with no sparse gap of zeros.
/// (Lines written between the copy and the truncation are lost: that is
/// copytruncate's own window, documented in docs/logging.md.)
#[test]
fn real_logrotate_copytruncate() {
    let daemon = Daemon::start(TICKER);
    if logrotate().is_none() {
        return;
    }
    wait_lines(&daemon, "ticker.log", 3);
    run_logrotate(&daemon, "    copytruncate\n");
    wait_lines(&daemon, "ticker.log", 3);
    let fresh = std::fs::read(daemon.path("ticker.log")).unwrap();
    assert!(
        !fresh.contains(&0),
        "sparse gap of NUL bytes after copytruncate"
    );
    assert!(daemon.ctl(&["stop", "ticker"]).status.success());
    let old = numbers(&daemon.read("ticker.log.1"));
    let new = numbers(&daemon.read("ticker.log"));
    assert_eq!(old, (1..=old.len() as u64).collect::<Vec<_>>());
    let first = new[0];
    assert!(first > *old.last().unwrap(), "{first} after {old:?}");
    assert_eq!(new, (first..first + new.len() as u64).collect::<Vec<_>>());
}

/// A log file that cannot be written (here: over the daemon's file-size
/// limit) is reported once, in the daemon's log, `status` and `events`; the
/// child keeps running; lost bytes are counted; writing resumes on its own
/// once there is room again.
#[test]
fn a_full_log_file_is_reported_retried_and_recovered() {
    let daemon = Daemon::builder()
        .fsize_limit(200) // 100 KiB
        .body(
            r#"
[watchers.chatty]
cmd = "i=0; while :; do i=$$((i+1)); printf 'line %d %0900d\n' $i 0; sleep 0.002; done"
shell = true
start_secs = "0"
stdout = { file = "@DIR@/chatty.log" }
"#,
        )
        .start();
    let failing = daemon.wait_for("a log error in status", |p| !p["log_error"].is_null());
    assert!(
        failing["log_error"]
            .as_str()
            .unwrap()
            .contains("File too large"),
        "{failing}"
    );
    assert_eq!(failing["state"], "RUNNING", "the child keeps running");
    let pid = failing["pid"].clone();

    // Make room: the daemon writes again after its retry delay.
    std::fs::OpenOptions::new()
        .write(true)
        .open(daemon.path("chatty.log"))
        .unwrap()
        .set_len(0)
        .unwrap();
    let recovered = daemon.wait_for("the log to recover", |p| {
        p["log_error"].is_null() && p["log_lost_bytes"].as_u64().unwrap_or(0) > 0
    });
    assert_eq!(recovered["pid"], pid, "same process all along");
    wait_until("new lines in the file", DEADLINE, || {
        daemon.read("chatty.log").contains("line ").then_some(())
    });
    // Reported once per episode, not once per lost chunk (the file may
    // have filled up again since).
    let log = daemon.daemon_log();
    let failures = log.matches("output is being lost and counted").count();
    let recoveries = log.matches("log file writable again").count();
    assert!(
        recoveries >= 1 && (failures == recoveries || failures == recoveries + 1),
        "{log}"
    );
}

/// A log file that cannot even be opened (its directory cannot be
/// created) does not stop the process: the problem shows in `status`, and
/// the file is opened once it can be.
#[test]
fn a_log_that_cannot_be_opened_is_reported_and_opened_later() {
    let builder =
        Daemon::builder().body(&TICKER.replace("@DIR@/ticker.log", "@DIR@/blocked/ticker.log"));
    // A regular file where the log's directory should be.
    let blocker = builder.path().join("blocked");
    std::fs::write(&blocker, "not a directory").unwrap();
    let daemon = builder.start();
    let failing = daemon.wait_for("a log error in status", |p| !p["log_error"].is_null());
    let problem = failing["log_error"].as_str().unwrap();
    assert!(
        problem.contains("blocked/ticker.log") && problem.contains("cannot open"),
        "{problem}"
    );
    assert_eq!(failing["state"], "RUNNING", "the process runs all the same");
    std::fs::remove_file(&blocker).unwrap();
    daemon.wait_for("the log to be opened", |p| p["log_error"].is_null());
    wait_lines(&daemon, "blocked/ticker.log", 3);
    assert_eq!(daemon.process("ticker:1")["pid"], failing["pid"]);
}

/// A disk that stops answering (a frozen filesystem: every write to a
/// regular file on it blocks in the kernel) holds up only the output of
/// the processes logging there: other logs keep flowing, the daemon keeps
/// answering and restarting, and once the disk is back nothing is lost.
/// Streams on the frozen disk wait aside instead of each taking a writer
/// thread with it: the daemon's threads stay few.
#[test]
fn a_frozen_disk_holds_up_only_its_own_logs() {
    let builder = Daemon::builder()
        .body(
            r#"
[watchers.frozen]
cmd = "i=0; while :; do i=$$((i+1)); echo \"$$ line $i\"; sleep 0.01; done"
shell = true
start_secs = "0"
stdout = { file = "@DIR@/disk/frozen.log" }

[watchers.crowd]
cmd = "while :; do echo crowd; sleep 0.01; done"
shell = true
numprocesses = 6
start_secs = "0"
stdout = { file = "@DIR@/disk/crowd-$(wid).log" }
"#,
        )
        .body(TICKER);
    let disk = LoopDisk::mount(&builder.path().join("disk"));
    let daemon = builder.start();
    wait_until("output on the disk", DEADLINE, || {
        (daemon.read("disk/frozen.log").lines().count() >= 5).then_some(())
    });
    wait_lines(&daemon, "ticker.log", 5);
    for wid in 1..=6 {
        wait_until("output of the crowd", DEADLINE, || {
            daemon
                .read(&format!("disk/crowd-{wid}.log"))
                .contains("crowd")
                .then_some(())
        });
    }
    let frozen = disk.freeze();
    let before = numbers(&daemon.read("ticker.log")).len();
    wait_lines(&daemon, "ticker.log", before + 20);
    // Seven streams on the frozen disk: one stuck writer and its relief,
    // the other six set aside (not a thread each).
    let threads = daemon_threads(daemon.pid());
    assert!(threads <= 8, "{threads} threads while the disk is frozen");
    // The engine answers and handles processes on either disk, including
    // restarting the one whose log is frozen (its new log cannot even be
    // opened yet).
    assert!(daemon.ctl(&["restart", "frozen"]).status.success());
    assert!(daemon.ctl(&["restart", "ticker"]).status.success());
    assert_eq!(daemon.process("frozen:1")["state"], "RUNNING");
    let restarted = daemon.read("ticker.log").len();
    wait_until("the restarted ticker's lines", DEADLINE, || {
        (daemon.read("ticker.log").len() > restarted + 200).then_some(())
    });
    drop(frozen);
    // Both runs of the frozen process are complete once the disk is back:
    // every line of each pid, from 1, with no gap.
    wait_until("output of two pids after the thaw", DEADLINE, || {
        let text = daemon.read("disk/frozen.log");
        let pids: std::collections::BTreeSet<&str> =
            text.lines().filter_map(|l| l.split(' ').next()).collect();
        (pids.len() == 2).then_some(())
    });
    // The streams set aside are written again.
    for wid in 1..=6 {
        let file = format!("disk/crowd-{wid}.log");
        let thawed = daemon.read(&file).len();
        wait_until("the crowd's logs to move again", DEADLINE, || {
            (daemon.read(&file).len() > thawed).then_some(())
        });
    }
    assert!(daemon.ctl(&["stop", "frozen"]).status.success());
    let text = daemon.read("disk/frozen.log");
    let mut runs = std::collections::BTreeMap::<&str, Vec<u64>>::new();
    for line in text.lines() {
        let (pid, number) = line.split_once(" line ").expect(line);
        runs.entry(pid).or_default().push(number.parse().unwrap());
    }
    assert_eq!(runs.len(), 2, "{text}");
    for (pid, numbers) in runs {
        let expected: Vec<u64> = (1..=numbers.len() as u64).collect();
        assert_eq!(numbers, expected, "lines of pid {pid}");
    }
}

/// A log file that blocks (here a FIFO whose reader never reads, as a very
/// slow disk would) holds up only its own process's output.
#[test]
fn a_stuck_log_file_does_not_hold_up_other_logs() {
    let builder = Daemon::builder()
        .body(
            r#"
[watchers.stuck]
cmd = "@TESTKIT@ lines 100000"
restart = "never"
start_secs = "0"
stdout = { file = "@DIR@/stuck.fifo" }
"#,
        )
        .body(TICKER);
    let fifo = builder.path().join("stuck.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    // A reader that never reads: the FIFO fills up and writes to it block.
    let _reader = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&fifo)
        .unwrap();
    let daemon = builder.start();
    wait_lines(&daemon, "ticker.log", 5);
    let before = numbers(&daemon.read("ticker.log")).len();
    wait_lines(&daemon, "ticker.log", before + 20);
    // 10 MB cannot have gone through a 64 KiB FIFO nobody reads.
    assert_eq!(daemon.process("stuck:1")["state"], "RUNNING");
    assert_eq!(daemon.process("ticker:1")["state"], "RUNNING");
}

/// Issue 13: with a log that cannot be opened, text `status` showed
/// RUNNING and nothing else, and the lost-bytes count in `status`
/// disagreed with the one logged when the process ended (the first chunk
/// was counted twice, the bytes after the last notice never). Now text
/// status says so, and there is one count, the same everywhere.
#[test]
fn log_errors_show_in_text_status_and_the_lost_count_agrees() {
    let builder = Daemon::builder().body(
        r#"
[watchers.writer]
cmd = "@TESTKIT@ spew 100000 hang"
start_secs = "0"
stdout = { file = "@DIR@/blocked/writer.log" }
"#,
    );
    std::fs::write(builder.path().join("blocked"), "not a directory").unwrap();
    let daemon = builder.start();
    // `ready pid=N\n` and the 100,000 bytes: nothing reaches the file.
    let lost_all = |p: &Value| {
        p["log_lost_bytes"]
            .as_u64()
            .is_some_and(|n| n > 100_000 && !p["log_error"].is_null())
    };
    let first = daemon.wait_for("all output counted as lost", lost_all);
    let per_run = first["log_lost_bytes"].as_u64().unwrap();
    let text = stdout(&daemon.ctl(&["status"]));
    assert!(
        text.contains("log error: cannot open") && text.contains(&format!("{per_run} bytes lost")),
        "{text}"
    );
    for run in 1..=2u64 {
        let stopped = daemon.ctl(&["stop", "writer"]);
        assert!(stopped.status.success(), "{stopped:?}");
        let total = run * per_run;
        assert_eq!(daemon.process("writer:1")["log_lost_bytes"], total);
        let logged = format!("({total} since the daemon started, as status says)");
        wait_until("the count logged at the end of the run", DEADLINE, || {
            daemon.daemon_log().contains(&logged).then_some(())
        });
        if run == 1 {
            assert!(daemon.ctl(&["start", "writer"]).status.success());
            daemon.wait_for("the second run's output counted", |p| {
                p["log_lost_bytes"].as_u64() == Some(2 * per_run)
            });
        }
    }
}

/// Issue 13: a user who owns the log directory replaced `w.log` with a
/// symlink to a root-only file, and the daemon, as root, appended the
/// child's output (chosen by that user) to it. Now a symlink, a FIFO, a
/// hard link or a directory swapped for a symlink where the log belongs
/// is refused: reported as a log error naming the path, the process runs
/// on with its output in the tail buffer, and the root file is untouched.
#[test]
fn a_planted_symlink_fifo_or_hard_link_is_refused() {
    crate::support::require_root!();
    let builder = Daemon::builder().body(
        r#"
[watchers.sym]
cmd = "echo ready pid=$$$$; while :; do echo tick; sleep 0.05; done"
shell = true
start_secs = "0"
stdout = { file = "@DIR@/shared/sym.log" }

[watchers.fifo]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
stdout = { file = "@DIR@/shared/fifo.log" }

[watchers.hard]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
stdout = { file = "@DIR@/shared/hard.log" }

[watchers.swapped]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
stdout = { file = "@DIR@/shared/sub/w.log" }
"#,
    );
    let dir = builder.path().to_path_buf();
    let shared = dir.join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::os::unix::fs::chown(&shared, Some(65534), Some(65534)).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "root only\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink(&secret, shared.join("sym.log")).unwrap();
    nix::unistd::mkfifo(
        &shared.join("fifo.log"),
        nix::sys::stat::Mode::from_bits_truncate(0o666),
    )
    .unwrap();
    // A reader on the FIFO, so that opening it would succeed.
    let _reader = std::fs::File::options()
        .read(true)
        .custom_flags(nix::libc::O_NONBLOCK)
        .open(shared.join("fifo.log"))
        .unwrap();
    let secret_hard = shared.join("secret-too");
    std::fs::write(&secret_hard, "root only\n").unwrap();
    std::fs::set_permissions(&secret_hard, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::hard_link(&secret_hard, shared.join("hard.log")).unwrap();
    let private = dir.join("private");
    std::fs::create_dir(&private).unwrap();
    std::os::unix::fs::symlink(&private, shared.join("sub")).unwrap();

    let daemon = builder.start();
    for (name, problem) in [
        (
            "sym:1",
            "sym.log is a symlink in a directory uid 65534 (its owner) can write",
        ),
        (
            "fifo:1",
            "fifo.log is a FIFO in a directory uid 65534 (its owner) can write",
        ),
        ("hard:1", "hard.log has 2 hard links"),
        (
            "swapped:1",
            "shared/sub is a symlink in a directory uid 65534 (its owner) can write",
        ),
    ] {
        let entry = daemon.wait_for(&format!("{name}'s log error"), |p| {
            p["name"] == name && !p["log_error"].is_null()
        });
        let error = entry["log_error"].as_str().unwrap();
        assert!(error.contains(problem), "{name}: {error}");
        assert_eq!(entry["state"], "RUNNING", "{name} runs on");
        // The output is kept for tail (read a beat after the file failed).
        wait_until(&format!("{name}'s output in tail"), DEADLINE, || {
            stdout(&daemon.ctl(&["tail", name]))
                .contains("ready pid=")
                .then_some(())
        });
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "root only\n");
    assert_eq!(
        std::fs::read_to_string(&secret_hard).unwrap(),
        "root only\n"
    );
    assert_eq!(std::fs::read_dir(&private).unwrap().count(), 0);

    // The symlink removed, the log is opened (a regular file of ours) on
    // the next retry.
    std::fs::remove_file(shared.join("sym.log")).unwrap();
    daemon.wait_for("sym's log opened", |p| {
        p["name"] == "sym:1" && p["log_error"].is_null()
    });
    assert!(
        std::fs::symlink_metadata(shared.join("sym.log"))
            .unwrap()
            .is_file()
    );
    daemon.wait_file("shared/sym.log", "tick\n");
}
