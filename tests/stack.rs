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
