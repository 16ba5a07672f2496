//! The whole stack (spec §5b, test plan A, G38): one-shot jobs, start
//! order by `depends_on`, and stopping in the reverse order.

use crate::support::Daemon;

/// A migration as a one-shot job: it runs once, however short its run, and
/// ends EXITED as a success that `status` counts as fine; a one-shot that
/// fails is retried under the BACKOFF rules and ends FATAL.
#[test]
fn a_one_shot_job_runs_once_and_counts_as_done() {
    let daemon = Daemon::start(
        r#"
[watchers.migrate]
cmd = "sh -c 'echo migrated >> @DIR@/runs'"
restart = "never"

[watchers.broken]
cmd = "sh -c 'echo tried >> @DIR@/tries; exit 2'"
restart = "never"
start_retries = 1
backoff_max = "50ms"
"#,
    );
    let done = daemon.wait_state("migrate:1", "EXITED");
    assert_eq!(done["completed"], true, "{done}");
    assert_eq!(done["reason"], "completed (exit status 0)", "{done}");
    assert_eq!(done["restarts"], 0, "{done}");
    // EXITED with no restart coming: nothing runs it again.
    assert_eq!(daemon.read("runs"), "migrated\n");

    let fatal = daemon.wait_state("broken:1", "FATAL");
    assert_eq!(fatal["completed"], false, "{fatal}");
    assert_eq!(daemon.read("tries"), "tried\ntried\n");

    let only_the_job = daemon.ctl(&["status", "migrate"]);
    assert_eq!(only_the_job.status.code(), Some(0), "{only_the_job:?}");
    let text = String::from_utf8_lossy(&only_the_job.stdout);
    assert!(
        text.contains("EXITED") && text.contains("completed (exit status 0)"),
        "{text}"
    );
    let with_the_failure = daemon.ctl(&["status"]);
    assert_eq!(
        with_the_failure.status.code(),
        Some(3),
        "{with_the_failure:?}"
    );
}

/// Test plan G38 with real processes: a database that takes its time, a
/// migration that needs it, an app that needs the migration done, a proxy
/// in front. Each step checks its predecessor's work and would fail for
/// good (no retries) if it ran too early; shutdown goes the other way.
#[test]
fn a_stack_starts_in_dependency_order_and_stops_in_reverse() {
    let mut daemon = Daemon::start(
        r#"
[watchers.proxy]
cmd = "@TESTKIT@ sleep"
depends_on = ["app"]
start_secs = "0"
priority = 1

[watchers.app]
cmd = "sh -c 'test -e @DIR@/migrations && exec @TESTKIT@ sleep'"
depends_on = ["db", "migrate"]
start_retries = 0
start_secs = "200ms"

[watchers.migrate]
cmd = "sh -c 'test -e @DIR@/db-up && echo migrated >> @DIR@/migrations'"
depends_on = ["db"]
restart = "never"
start_retries = 0

[watchers.db]
cmd = "sh -c 'sleep 0.5; touch @DIR@/db-up; exec @TESTKIT@ sleep'"
ready = { cmd = "test -e @DIR@/db-up", interval = "50ms" }
priority = 999
"#,
    );
    let proxy = daemon.wait_state("proxy:1", "RUNNING");
    assert_eq!(daemon.process("db:1")["state"], "RUNNING");
    assert_eq!(daemon.process("app:1")["state"], "RUNNING");
    assert_eq!(daemon.process("migrate:1")["completed"], true);
    assert_eq!(daemon.read("migrations"), "migrated\n");
    assert_eq!(proxy["restarts"], 0, "{proxy}");

    daemon.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(daemon.wait_exit(crate::support::DEADLINE), Some(0));
    let log = daemon.daemon_log();
    let stopping = |name: &str| {
        log.find(&format!("RUNNING -> STOPPING process={name}"))
            .unwrap_or_else(|| panic!("{name} was not stopped:\n{log}"))
    };
    assert!(stopping("proxy:1") < stopping("app:1"), "{log}");
    assert!(stopping("app:1") < stopping("db:1"), "{log}");
}

/// `start` of the top of a stopped stack starts what it needs first, and a
/// dependency that fails leaves it STOPPED with the reason.
#[test]
fn start_pulls_in_dependencies_and_a_failed_one_blocks() {
    let daemon = Daemon::start(
        r#"
[watchers.db]
cmd = "@TESTKIT@ sleep"
autostart = false
start_secs = "0"

[watchers.web]
cmd = "@TESTKIT@ sleep"
autostart = false
depends_on = ["db"]
start_secs = "0"

[watchers.broken]
cmd = "sh -c 'exit 7'"
autostart = false
start_retries = 0

[watchers.needs_broken]
cmd = "@TESTKIT@ sleep"
autostart = false
depends_on = ["broken"]
"#,
    );
    let started = daemon.ctl(&["start", "web"]);
    assert_eq!(started.status.code(), Some(0), "{started:?}");
    assert_eq!(daemon.process("db:1")["state"], "RUNNING");

    let refused = daemon.ctl(&["start", "needs_broken"]);
    assert_eq!(refused.status.code(), Some(1), "{refused:?}");
    let text = String::from_utf8_lossy(&refused.stdout).into_owned()
        + &String::from_utf8_lossy(&refused.stderr);
    assert!(
        text.contains("not started: dependency 'broken' failed"),
        "{text}"
    );
    let blocked = daemon.process("needs_broken:1");
    assert_eq!(blocked["state"], "STOPPED", "{blocked}");
    assert!(
        blocked["reason"]
            .as_str()
            .unwrap()
            .contains("broken:1: FATAL, exited too quickly (exit status 7)"),
        "{blocked}"
    );
}
