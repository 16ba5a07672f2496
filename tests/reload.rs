//! `reread`, `reload` and SIGHUP: the file read again, only what changed
//! touched (test plan item 37).

use nix::sys::signal::Signal;

use crate::support::{Daemon, stderr, stdout};

const BEFORE: &str = r#"
[watchers.keep]
cmd = "@TESTKIT@ sleep"
start_secs = "0"

[watchers.scale]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"

[watchers.gone]
cmd = "@TESTKIT@ sleep"
start_secs = "0"

[watchers.change]
cmd = "@TESTKIT@ print-env"
env = { COLOUR = "red" }
start_secs = "0"

[watchers.argv]
cmd = "sleep 1000"
start_secs = "0"
"#;

fn pid(daemon: &Daemon, name: &str) -> i64 {
    daemon.process(name)["pid"].as_i64().unwrap()
}

/// Rewrites the running daemon's configuration file.
fn edit(daemon: &Daemon, change: impl Fn(String) -> String) {
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    let changed = change(text.clone());
    assert_ne!(changed, text, "the edit changed nothing");
    std::fs::write(&daemon.config, changed).unwrap();
}

#[test]
fn reload_applies_only_the_difference() {
    let daemon = Daemon::start(BEFORE);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    daemon.wait_file("logs/change-1.out.log", "COLOUR=red");
    let before: Vec<i64> = ["keep:1", "scale:1", "scale:2", "change:1", "argv:1"]
        .iter()
        .map(|n| pid(&daemon, n))
        .collect();

    edit(&daemon, |text| {
        let text = text.replace("numprocesses = 2", "numprocesses = 3");
        let text = text.replace("COLOUR = \"red\"", "COLOUR = \"blue\"");
        let text = text.replace("sleep 1000\"\nstart_secs", "sleep 2000\"\nstart_secs");
        let gone = text.find("[watchers.gone]").unwrap();
        let change = text.find("[watchers.change]").unwrap();
        let text = format!("{}{}", &text[..gone], &text[change..]);
        text + "\n[watchers.new]\ncmd = \"sleep 1000\"\nstart_secs = \"0\"\n"
    });
    let reread = daemon.ctl(&["reread"]);
    assert!(reread.status.success(), "{}", stderr(&reread));
    assert_eq!(
        stdout(&reread),
        "added:     new\nchanged:   change, argv\nscaled:    scale 2 -> 3\nremoved:   gone\n\
         unchanged: keep\n  \
         gone:1    stop (was RUNNING)\n  \
         scale:3   start (was STOPPED)\n  \
         change:1  restart (was RUNNING)\n  \
         argv:1    restart (was RUNNING)\n  \
         new:1     start (was STOPPED)\n\
         not applied (run reload)\n"
    );
    assert_eq!(
        daemon.names(),
        [
            "keep:1", "scale:1", "scale:2", "gone:1", "change:1", "argv:1"
        ]
    );

    let reload = daemon.ctl(&["reload"]);
    assert!(reload.status.success(), "{}", stderr(&reload));
    assert!(
        stdout(&reload).ends_with("applied\n"),
        "{}",
        stdout(&reload)
    );
    daemon.wait_all("everything running again", |p| p["state"] == "RUNNING");
    assert_eq!(
        daemon.names(),
        [
            "keep:1", "scale:1", "scale:2", "scale:3", "change:1", "argv:1", "new:1"
        ]
    );
    // Unchanged and scaled processes keep their pids; the changed one was
    // restarted with its new environment.
    assert_eq!(pid(&daemon, "keep:1"), before[0]);
    assert_eq!(pid(&daemon, "scale:1"), before[1]);
    assert_eq!(pid(&daemon, "scale:2"), before[2]);
    assert_ne!(pid(&daemon, "change:1"), before[3]);
    assert_ne!(pid(&daemon, "argv:1"), before[4]);
    let argv = std::fs::read(format!("/proc/{}/cmdline", pid(&daemon, "argv:1"))).unwrap();
    assert_eq!(argv, b"sleep\x002000\x00");
    daemon.wait_file("logs/change-1.out.log", "COLOUR=blue");
    assert_eq!(daemon.ctl(&["status", "gone"]).status.code(), Some(1));

    // A reload with nothing new says so and touches nothing.
    let again = daemon.ctl(&["reload"]);
    assert!(
        stdout(&again).ends_with("no changes to apply\n"),
        "{}",
        stdout(&again)
    );
    assert_eq!(pid(&daemon, "keep:1"), before[0]);

    // A watcher added back takes its old slot.
    edit(&daemon, |text| {
        text + "\n[watchers.gone]\ncmd = \"sleep 1000\"\nstart_secs = \"0\"\n"
    });
    assert!(daemon.ctl(&["reload"]).status.success());
    daemon.wait_for("gone back", |p| {
        p["name"] == "gone:1" && p["state"] == "RUNNING"
    });
}

#[test]
fn a_broken_file_changes_nothing_and_sighup_reloads() {
    let daemon = Daemon::start(BEFORE);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let keep = pid(&daemon, "keep:1");

    edit(&daemon, |text| {
        text.replace("numprocesses = 2", "numprocesses = \"many\"")
    });
    let broken = daemon.ctl(&["reload"]);
    assert_eq!(broken.status.code(), Some(1));
    let message = stderr(&broken);
    let file = daemon.config.display().to_string();
    assert!(
        message.contains(&file) && message.contains("watchers.scale.numprocesses"),
        "{message}"
    );
    assert!(message.contains("nothing changed"), "{message}");
    assert_eq!(pid(&daemon, "keep:1"), keep);
    assert_eq!(
        daemon.names(),
        [
            "keep:1", "scale:1", "scale:2", "gone:1", "change:1", "argv:1"
        ]
    );
    // SIGHUP with the broken file: logged, nothing changed either.
    daemon.signal(Signal::SIGHUP);
    crate::support::wait_until(
        "the SIGHUP error in the log",
        crate::support::DEADLINE,
        || {
            daemon
                .daemon_log()
                .contains("SIGHUP: configuration not reloaded")
                .then_some(())
        },
    );

    edit(&daemon, |text| {
        text.replace("numprocesses = \"many\"", "numprocesses = 1")
    });
    daemon.signal(Signal::SIGHUP);
    crate::support::wait_until("scale down to one", crate::support::DEADLINE, || {
        (daemon.names() == ["keep:1", "scale:1", "gone:1", "change:1", "argv:1"]).then_some(())
    });
    assert_eq!(pid(&daemon, "keep:1"), keep);
}

/// A changed watcher whose process is retrying (BACKOFF) is started again
/// with the new settings, not left stopped.
#[test]
fn a_retrying_process_is_restarted_with_its_fix() {
    let daemon = Daemon::start(
        r#"
[watchers.flaky]
cmd = "@TESTKIT@ exit 1"
start_secs = "1s"
start_retries = 1000
"#,
    );
    daemon.wait_for("flaky retrying", |p| p["state"] == "BACKOFF");
    edit(&daemon, |text| {
        text.replace(" exit 1\"", " sleep\"")
            .replace("start_secs = \"1s\"", "start_secs = \"0\"")
    });
    let reload = daemon.ctl(&["reload"]);
    assert!(
        stdout(&reload).contains("changed:   flaky"),
        "{}",
        stdout(&reload)
    );
    daemon.wait_for("flaky running", |p| p["state"] == "RUNNING");
}

/// Issue 13: a watcher FATAL from a bad command, the command fixed, and
/// `reload` said it restarted it but left it FATAL until a manual start.
/// A changed watcher's FATAL, BACKOFF and EXITED processes start with the
/// new settings (as `supervisorctl update` does), one stopped by hand
/// stays stopped, and the reply says what was done to each.
#[test]
fn reload_starts_a_fixed_fatal_watcher() {
    let daemon = Daemon::start(
        r#"
[watchers.broken]
cmd = "/nonexistent/web --port 1"
numprocesses = 3
start_secs = "0"
start_retries = 0
"#,
    );
    daemon.wait_all("all FATAL", |p| p["state"] == "FATAL");
    // One slot fixed by hand and then stopped: the operator's choice stays.
    edit(&daemon, |text| {
        text.replace(
            "/nonexistent/web --port 1",
            &format!("{} sleep", crate::support::testkit()),
        )
    });
    let reread = stdout(&daemon.ctl(&["reread"]));
    assert!(
        reread.contains("  broken:1  start (was FATAL)\n"),
        "{reread}"
    );
    let reload = daemon.ctl(&["reload"]);
    let text = stdout(&reload);
    assert_eq!(
        text,
        "changed:   broken\n  \
         broken:1  start (was FATAL)\n  \
         broken:2  start (was FATAL)\n  \
         broken:3  start (was FATAL)\n\
         applied\n"
    );
    daemon.wait_all("all running", |p| p["state"] == "RUNNING");

    // Stopped by hand, then another change: broken:2 stays stopped.
    assert!(daemon.ctl(&["stop", "broken:2"]).status.success());
    edit(&daemon, |text| {
        text.replace("--port 1", "--port 2")
            .replace(" sleep\"", " sleep --x\"")
    });
    let json = daemon.request("reload", serde_json::json!({}));
    let actions: Vec<(String, String)> = json["result"]["processes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_owned(),
                a["action"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("broken:1".into(), "restart".into()),
            ("broken:2".into(), "leave".into()),
            ("broken:3".into(), "restart".into())
        ]
    );
    daemon.wait_for("broken:3 restarted", |p| {
        p["name"] == "broken:3" && p["state"] == "RUNNING"
    });
    assert_eq!(daemon.process("broken:2")["state"], "STOPPED");
}

/// Issue 13: a reload that changes a `[daemon]` key said it was "not
/// applied until the daemon restarts" and restarted every process anyway
/// (their default log paths moved with `logs_dir`). Now it does what it
/// says: nothing changes until a restart.
#[test]
fn reload_of_a_daemon_key_restarts_nothing() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 2
start_secs = "0"
"#,
    );
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    let pids = [pid(&daemon, "web:1"), pid(&daemon, "web:2")];
    edit(&daemon, |text| {
        text.replace("/logs\"", "/other-logs\"")
            .replace("[daemon]\n", "[daemon]\nshutdown_timeout = \"7s\"\n")
    });
    let reload = daemon.ctl(&["reload"]);
    assert_eq!(
        stdout(&reload),
        "unchanged: web\n\
         not applied until the daemon restarts: daemon.logs_dir, daemon.shutdown_timeout\n\
         no changes to apply\n"
    );
    assert_eq!([pid(&daemon, "web:1"), pid(&daemon, "web:2")], pids);
    // Logs still go where they went.
    assert!(daemon.ctl(&["restart", "web:1"]).status.success());
    daemon.wait_file("logs/web-1.out.log", "ready pid=");
    assert!(!daemon.path("other-logs").exists());
}
