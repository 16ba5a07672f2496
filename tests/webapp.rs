//! examples/webapp run as it is (issue 19, test plan A6, G38, H40b):
//! Redis, a Celery worker, four gunicorn workers of a Flask app on the
//! daemon's socket, nginx in front, all real programs.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::{
    Daemon, free_port, http_get, stderr, system_program, venv_program, wait_until,
};
use crate::web::{finish_load, start_load_for};

/// How long the slow parts (a Celery restart while Redis is down) may take.
const SLOW: Duration = Duration::from_secs(90);

/// The programs the example needs, or None (SKIPPED locally, a failure
/// in CI).
fn programs() -> Option<(PathBuf, PathBuf)> {
    let celery = venv_program("celery")?;
    system_program("redis-server", "redis-server")?;
    system_program("nginx", "nginx")?;
    let wrk = system_program("wrk", "wrk")?;
    Some((celery, wrk))
}

/// The example's files copied into `dir`, as a user would have them.
fn copy_example(dir: &Path) {
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/webapp");
    for entry in std::fs::read_dir(&example).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_file() {
            std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
        }
    }
    std::fs::create_dir_all(dir.join("state")).unwrap();
}

/// Where in the daemon's log `needle` first appears.
fn at(log: &str, needle: &str) -> usize {
    log.find(needle)
        .unwrap_or_else(|| panic!("{needle:?} not in the daemon's log:\n{log}"))
}

#[test]
fn the_example_stack_runs_end_to_end() {
    let Some((celery, wrk)) = programs() else {
        return;
    };
    let venv = celery.parent().unwrap().parent().unwrap().to_path_buf();
    let (http, web, redis, metrics) = (free_port(), free_port(), free_port(), free_port());
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    copy_example(&dir);
    let path = format!(
        "{}:/usr/sbin:/sbin",
        std::env::var("PATH").unwrap_or_default()
    );
    supervisord_form_reads(&dir, &venv, &path);
    let mut daemon = builder
        .env("WEBAPP_HTTP_PORT", &http.to_string())
        .env("WEBAPP_WEB_PORT", &web.to_string())
        .env("WEBAPP_REDIS_PORT", &redis.to_string())
        .env("WEBAPP_METRICS_PORT", &metrics.to_string())
        .env("WEBAPP_VENV", venv.to_str().unwrap())
        .env("PATH", &path)
        .socket_at(&dir.join("state/ringmaster.sock"))
        .launch(dir.join("ringmaster.toml"));

    // Everything up, in dependency order (the daemon's log has every
    // transition in the order it happened).
    wait_until("nginx running", SLOW, || {
        (daemon.process("nginx:1")["state"] == "RUNNING").then_some(())
    });
    let log = daemon.daemon_log();
    let redis_up = at(&log, "STARTING -> RUNNING process=redis:1");
    assert!(
        redis_up < at(&log, "STOPPED -> STARTING process=celery:1"),
        "{log}"
    );
    let mut last_web = 0;
    for wid in 1..=4 {
        assert!(
            redis_up
                < at(
                    &log,
                    &format!("running the before_start hook process=web:{wid}")
                )
                .min(at(&log, &format!("STOPPED -> STARTING process=web:{wid}"))),
            "{log}"
        );
        last_web = last_web.max(at(&log, &format!("STARTING -> RUNNING process=web:{wid}")));
    }
    assert!(
        last_web < at(&log, "STOPPED -> STARTING process=nginx:1"),
        "{log}"
    );
    // Every worker passes its health check, on its own health socket.
    for wid in 1..=4 {
        let name = format!("web:{wid}");
        let checked = wait_until("a health check of each worker", SLOW, || {
            let web = daemon.process(&name);
            (web["health"]["checks"].as_u64() >= Some(1)).then_some(web)
        });
        assert_eq!(checked["health"]["failures"], 0, "{checked}");
    }
    let migrations = daemon.read("state/logs/web-1.out.log");
    assert!(
        migrations.contains("[hook before_start] schema at version 2"),
        "{migrations}"
    );

    // A request through nginx, gunicorn, Redis and Celery (which nginx
    // does not wait for: it may still be starting).
    wait_until("a task answered through nginx", SLOW, || {
        http_get(http, "/add?x=2&y=3").filter(|a| a.contains("\"result\":5"))
    });
    // The app's counters, merged across its workers by ringmaster, and
    // ringmaster's own figures.
    let merged = http_get(metrics, "/metrics/web").unwrap_or_default();
    assert!(
        merged.contains("webapp_requests_total{endpoint=\"add_numbers\",status=\"200\"}"),
        "{merged}"
    );
    let own = http_get(metrics, "/metrics").unwrap_or_default();
    assert!(
        own.contains("ringmaster_process_up{watcher=\"nginx\",process=\"nginx:1\",wid=\"1\"} 1"),
        "{own}"
    );
    assert!(http_get(metrics, "/health").is_some_and(|a| a.starts_with("HTTP/1.0 200")));

    redis_outage(&daemon, http);
    rolling_restart_under_load(&daemon, &wrk, http);

    // Shutdown: nginx first, Redis last (Celery before it too; the
    // helper reads the log the daemon left).
    daemon.shut_down_in_order(SLOW, &["nginx:1", "web:1", "redis:1"]);
    let log = daemon.daemon_log();
    let shutdown = &log[at(&log, "SIGTERM: shutting down")..];
    let stopping = |name: &str| at(shutdown, &format!("RUNNING -> STOPPING process={name}"));
    assert!(stopping("celery:1") < stopping("redis:1"), "{log}");
}

/// The supervisord.conf beside it, for comparison, is a file ringmasterd
/// runs too (with the virtualenv where ./run makes it).
fn supervisord_form_reads(dir: &Path, venv: &Path, path: &str) {
    std::os::unix::fs::symlink(venv, dir.join(".venv")).unwrap();
    let checked = std::process::Command::new(crate::support::ringmasterd())
        .arg("--check")
        .arg(dir.join("supervisord.conf"))
        .env("PATH", path)
        .output()
        .unwrap();
    assert_eq!(
        checked.status.code(),
        Some(0),
        "{}{}",
        crate::support::stdout(&checked),
        stderr(&checked)
    );
}

/// Redis goes away: Celery's health check fails and it is restarted; once
/// Redis is back, Celery is ready again and tasks run.
fn redis_outage(daemon: &Daemon, http: u16) {
    let stopped = daemon.ctl(&["stop", "redis"]);
    assert_eq!(stopped.status.code(), Some(0), "{}", stderr(&stopped));
    wait_until("celery restarted by its health check", SLOW, || {
        let celery = daemon.process("celery:1");
        (celery["health"]["restarts"].as_u64() >= Some(1)).then_some(())
    });
    let started = daemon.ctl(&["start", "redis"]);
    assert_eq!(started.status.code(), Some(0), "{}", stderr(&started));
    let celery = wait_until("celery running again", SLOW, || {
        let celery = daemon.process("celery:1");
        (celery["state"] == "RUNNING").then_some(celery)
    });
    assert!(
        celery["health"]["last_failure"]
            .as_str()
            .is_some_and(|why| why.starts_with("check command")),
        "{celery}"
    );
    let answer = wait_until("a task through Redis again", SLOW, || {
        http_get(http, "/add?x=20&y=22").filter(|a| a.contains("\"result\":42"))
    });
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

/// `restart --rolling web` under wrk's load through nginx: no request
/// fails, and the workers are new.
fn rolling_restart_under_load(daemon: &Daemon, wrk: &Path, http: u16) {
    let before: Vec<i64> = (1..=4)
        .map(|wid| {
            daemon.process(&format!("web:{wid}"))["pid"]
                .as_i64()
                .unwrap()
        })
        .collect();
    let load = start_load_for(wrk, http, Duration::from_secs(20));
    wait_until("the load answered", SLOW, || {
        http_get(http, "/").filter(|a| a.starts_with("HTTP/1.1 200"))
    });
    let began = Instant::now();
    let rolled = daemon.ctl(&["restart", "--rolling", "web"]);
    let took = began.elapsed();
    let text = String::from_utf8_lossy(&rolled.stdout).into_owned();
    assert_eq!(rolled.status.code(), Some(0), "{text}{}", stderr(&rolled));
    let load = finish_load(load);
    assert!(took < Duration::from_secs(19), "the roll took {took:?}");
    assert!(load.requests > 100, "{}", load.text);
    assert_eq!(load.failed(), 0, "failed during the roll:\n{}", load.text);
    for (wid, old) in (1..=4).zip(before) {
        let now = daemon.process(&format!("web:{wid}"));
        assert_ne!(now["pid"].as_i64(), Some(old), "{now}");
        // Replaced by the roll, never by a failed health check.
        assert_eq!(now["health"]["restarts"], 0, "{now}");
    }
}
