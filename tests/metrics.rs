//! The HTTP listener of `[daemon] metrics`: `/metrics`, `/health` and
//! `/targets`, read as Prometheus and a load balancer read them.

use std::io::{Read, Write};
use std::time::Duration;

use crate::support::{DEADLINE, Daemon, free_port, system_program, wait_until};

/// One HTTP/1.1 request to 127.0.0.1:`port` (closing the connection):
/// the status code, the headers (lower-cased names) and the body.
fn request(port: u16, method: &str, path: &str, headers: &[&str]) -> (u16, String, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n");
    for header in headers {
        head.push_str(header);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn get(port: u16, path: &str) -> (u16, String) {
    let (status, _, body) = request(port, "GET", path, &[]);
    (status, body)
}

/// The value of the sample `series` (name and labels, as written) in
/// the exposition `text`.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

fn labels(process: &str) -> String {
    let (watcher, wid) = process.split_once(':').unwrap();
    format!(r#"watcher="{watcher}",process="{process}",wid="{wid}""#)
}

#[test]
fn metrics_health_and_targets_are_served_over_http() {
    let port = free_port();
    let worker_port = free_port();
    let daemon = Daemon::builder()
        .daemon(&format!("metrics = \"127.0.0.1:{port}\""))
        .body(&format!(
            r#"
[watchers.web]
cmd = "@TESTKIT@ print-env"
numprocesses = 2
metrics_port = {worker_port}
env = {{ PORT = "$(metrics_port)" }}
start_secs = "0"

[watchers.batch]
cmd = "@TESTKIT@ sleep"
autostart = false
"#
        ))
        .start();
    daemon.wait_state("web:1", "RUNNING");
    daemon.wait_state("web:2", "RUNNING");
    // Each worker got its own port through $(metrics_port).
    let env = daemon.wait_file("logs/web-2.out.log", "\nend");
    assert!(
        env.lines()
            .any(|l| l == format!("env PORT={}", worker_port + 1)),
        "{env}"
    );

    assert_eq!(get(port, "/health"), (200, "ok\n".to_owned()));

    let (status, targets) = get(port, "/targets");
    assert_eq!(status, 200);
    let targets: serde_json::Value = serde_json::from_str(&targets).unwrap();
    assert_eq!(
        targets,
        serde_json::json!([
            {"targets": [format!("127.0.0.1:{worker_port}")],
             "labels": {"watcher": "web", "wid": "1", "process": "web:1"}},
            {"targets": [format!("127.0.0.1:{}", worker_port + 1)],
             "labels": {"watcher": "web", "wid": "2", "process": "web:2"}},
        ])
    );

    // The bytes counted are the bytes the log file got.
    let log = daemon.wait_file("logs/web-1.out.log", "\nend");
    let web1 = labels("web:1");
    let text = wait_until("log bytes counted", DEADLINE, || {
        let (_, text) = get(port, "/metrics");
        (sample(
            &text,
            &format!(r#"ringmaster_process_log_bytes_total{{{web1},stream="stdout"}}"#),
        ) == Some(log.len() as f64))
        .then_some(text)
    });
    assert_figures(&text);
    let pid = daemon.process("web:1")["pid"].as_i64().unwrap();

    // A crash shows as a restart and the exit code it ended with.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let text = wait_until("the restart counted", DEADLINE, || {
        let (_, text) = get(port, "/metrics");
        (sample(
            &text,
            &format!("ringmaster_process_restarts_total{{{web1}}}"),
        ) == Some(1.0))
        .then_some(text)
    });
    assert_eq!(
        sample(
            &text,
            &format!("ringmaster_process_last_exit_code{{{web1}}}")
        ),
        Some(137.0)
    );

    // A process of an autostart watcher that is down fails /health.
    assert!(daemon.ctl(&["stop", "web:2"]).status.success());
    let (status, body) = get(port, "/health");
    assert_eq!(status, 503);
    assert_eq!(body, "web:2 STOPPED (stopped (killed by SIGTERM))\n");
}

/// The figures of the first test's processes, watchers and daemon.
fn assert_figures(text: &str) {
    let web1 = labels("web:1");
    assert_eq!(
        sample(text, &format!("ringmaster_process_up{{{web1}}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(
            text,
            &format!(r#"ringmaster_process_state{{{web1},state="RUNNING"}}"#)
        ),
        Some(1.0)
    );
    let batch = labels("batch:1");
    assert_eq!(
        sample(text, &format!("ringmaster_process_up{{{batch}}}")),
        Some(0.0)
    );
    let rss = sample(
        text,
        &format!("ringmaster_process_resident_memory_bytes{{{web1}}}"),
    );
    assert!(rss.unwrap() > 0.0, "{text}");
    assert!(sample(text, &format!("ringmaster_process_open_fds{{{web1}}}")).unwrap() >= 3.0);
    assert!(
        sample(
            text,
            &format!("ringmaster_process_cpu_seconds_total{{{web1}}}")
        )
        .is_some()
    );
    assert_eq!(
        sample(
            text,
            r#"ringmaster_watcher_desired_processes{watcher="web"}"#
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(
            text,
            r#"ringmaster_watcher_running_processes{watcher="batch"}"#
        ),
        Some(0.0)
    );
    assert!(sample(text, "ringmaster_daemon_resident_memory_bytes").unwrap() > 0.0);
    assert!(sample(text, "ringmaster_daemon_uptime_seconds").is_some());
}

#[test]
fn metrics_pass_promtool_and_speak_both_formats() {
    let port = free_port();
    let daemon = Daemon::builder()
        .daemon(&format!("metrics = \"127.0.0.1:{port}\""))
        .body(
            r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
numprocesses = 3
start_secs = "0"
"#,
        )
        .start();
    daemon.wait_state("web:3", "RUNNING");

    // curl and promtool get the Prometheus text format ...
    let (status, head, text) = request(port, "GET", "/metrics", &[]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    assert!(text.contains("# TYPE ringmaster_process_restarts_total counter"));
    assert!(!text.contains("# EOF"));
    if let Some(promtool) = system_program("promtool", "prometheus") {
        let (status, said) = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .output_with_input(text.as_bytes());
        assert!(status.success(), "promtool: {said}\n{text}");
    }
    // ... Prometheus, which asks for it, OpenMetrics.
    let accept =
        "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let (status, head, text) = request(port, "GET", "/metrics", &[accept]);
    assert_eq!(status, 200);
    assert!(
        head.contains("content-type: application/openmetrics-text"),
        "{head}"
    );
    assert!(text.ends_with("# EOF\n"));
    assert!(text.contains("# TYPE ringmaster_process_restarts counter"));

    // HEAD answers as GET without the body; anything else is refused.
    let (status, _, body) = request(port, "HEAD", "/health", &[]);
    assert_eq!((status, body.as_str()), (200, ""));
    let (status, head, _) = request(port, "POST", "/metrics", &[]);
    assert_eq!(status, 405);
    assert!(head.contains("allow: get, head"), "{head}");
    assert_eq!(get(port, "/nope").0, 404);
    // A client that sends garbage gets an error, and the daemon serves on.
    let mut raw = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    raw.write_all(b"\x00\x01garbage\r\n\r\n").unwrap();
    let mut answer = Vec::new();
    raw.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = raw.read_to_end(&mut answer);
    assert_eq!(get(port, "/health").0, 200);
}

/// Writes `input` to the command's stdin and waits: (status, stderr and
/// stdout).
trait OutputWithInput {
    fn output_with_input(&mut self, input: &[u8]) -> (std::process::ExitStatus, String);
}

impl OutputWithInput for std::process::Command {
    fn output_with_input(&mut self, input: &[u8]) -> (std::process::ExitStatus, String) {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        let output = child.wait_with_output().unwrap();
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stderr),
            String::from_utf8_lossy(&output.stdout)
        );
        (output.status, said)
    }
}

#[test]
fn nothing_listens_on_the_network_without_metrics() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
    );
    daemon.wait_state("web:1", "RUNNING");
    let listening = crate::support::tcp_listeners(daemon.pid());
    assert!(listening.is_empty(), "the daemon listens on {listening:?}");
}

#[test]
fn a_metrics_address_in_use_stops_the_start_naming_it() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ringmaster.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nsocket = \"rm.sock\"\nmetrics = \"127.0.0.1:{port}\"\n\n\
             [watchers.web]\ncmd = \"sleep 100\"\n"
        ),
    )
    .unwrap();
    let output = std::process::Command::new(crate::support::ringmasterd())
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        err.contains(&format!("cannot listen for metrics on 127.0.0.1:{port}"))
            && err.contains("ringmaster.toml:3")
            && err.contains("in use"),
        "{err}"
    );
    assert!(
        !dir.path().join("rm.sock").exists(),
        "the control socket was left behind"
    );
}

/// The multiprocess directory of watcher `watcher` of `daemon`.
fn multiproc_dir(daemon: &Daemon, watcher: &str) -> std::path::PathBuf {
    daemon.path(&format!("rm.sock.prometheus/{watcher}"))
}

#[test]
fn the_multiproc_directory_is_fresh_private_and_swept_of_dead_live_gauges() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let builder = Daemon::builder();
    // What a previous run left: gone once the watcher starts.
    let stale = builder.path().join("rm.sock.prometheus/web");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::write(stale.join("counter_1.db"), b"old").unwrap();
    let port = free_port();
    let daemon = builder
        .daemon(&format!("metrics = \"127.0.0.1:{port}\""))
        .body(
            r#"
[watchers.web]
cmd = "@TESTKIT@ print-env"
numprocesses = 2
user = "nobody"
prometheus_multiproc = true
start_secs = "0"
"#,
        )
        .start();
    daemon.wait_state("web:1", "RUNNING");
    daemon.wait_state("web:2", "RUNNING");
    let dir = multiproc_dir(&daemon, "web");
    assert!(
        !dir.join("counter_1.db").exists(),
        "the old directory was kept"
    );
    let meta = std::fs::metadata(&dir).unwrap();
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(meta.uid(), nobody.uid.as_raw());
    assert_eq!(meta.permissions().mode() & 0o777, 0o700);
    let env = daemon.wait_file("logs/web-1.out.log", "\nend");
    for var in ["PROMETHEUS_MULTIPROC_DIR", "prometheus_multiproc_dir"] {
        assert!(
            env.lines()
                .any(|l| l == format!("env {var}={}", dir.display())),
            "no {var} in\n{env}"
        );
    }

    // Files as the workers would write them: web:1's, and a live gauge
    // of a process that lives on (this test).
    let pid = daemon.process("web:1")["pid"].as_i64().unwrap();
    let dead_gauge = dir.join(format!("gauge_livesum_{pid}.db"));
    let live_gauge = dir.join(format!("gauge_livesum_{}.db", std::process::id()));
    let counter = dir.join(format!("counter_{pid}.db"));
    for file in [&dead_gauge, &live_gauge] {
        std::fs::write(file, [0u8; 8]).unwrap();
    }
    std::fs::write(&counter, b"garbage!").unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    wait_until("the dead worker's live gauge removed", DEADLINE, || {
        (!dead_gauge.exists()).then_some(())
    });
    daemon.wait_for("web:1 replaced", |p| {
        p["name"] == "web:1" && p["state"] == "RUNNING" && p["pid"].as_i64() != Some(pid)
    });
    // A worker replaced while the others run keeps the directory: its
    // counters still count.
    assert!(counter.exists() && live_gauge.exists());
    // /metrics/web reads it; a bad file is reported and skipped.
    let (status, body) = get(port, "/metrics/web");
    assert_eq!((status, body.as_str()), (200, ""));
    // The daemon's log is written by a thread of its own: wait for it.
    wait_until("the bad file reported", DEADLINE, || {
        daemon
            .daemon_log()
            .contains("prometheus_multiproc: skipped counter_")
            .then_some(())
    });
    assert_eq!(get(port, "/metrics/nope").0, 404);

    // Stopped and started again, the watcher starts afresh.
    assert!(daemon.ctl(&["stop", "web"]).status.success());
    assert!(daemon.ctl(&["start", "web"]).status.success());
    daemon.wait_state("web:2", "RUNNING");
    assert!(!counter.exists(), "a new start kept the old counters");
}

/// The fixture app under gunicorn: NUMPROCESSES gunicorns of WORKERS
/// workers each on one daemon-held socket, `prometheus_multiproc` on,
/// `extra` more watcher keys; the daemon, its metrics port and the app's.
fn gunicorn_stack(
    gunicorn: &std::path::Path,
    shape: (u32, u32),
    extra: &str,
) -> (Daemon, u16, u16) {
    let (numprocesses, workers) = shape;
    let (port, web) = (free_port(), free_port());
    let daemon = Daemon::builder()
        .daemon(&format!("metrics = \"127.0.0.1:{port}\""))
        .body(&format!(
            r#"
[sockets.web]
address = "tcp://127.0.0.1:{web}"

[watchers.web]
cmd = "{} --workers {workers} --chdir {} app:app"
sockets = ["web"]
numprocesses = {numprocesses}
prometheus_multiproc = true
ready = {{ notify = true, timeout = "30s" }}
{extra}
"#,
            gunicorn.display(),
            fixtures().display()
        ))
        .start();
    daemon.wait_all("every gunicorn running", |p| p["state"] == "RUNNING");
    (daemon, port, web)
}

/// tests/fixtures/prometheus: the instrumented app and the comparison.
fn fixtures() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/prometheus")
}

#[test]
fn merged_metrics_of_gunicorn_workers_match_the_python_clients_own() {
    let (Some(gunicorn), Some(python)) = (
        crate::support::venv_program("gunicorn"),
        crate::support::venv_program("python"),
    ) else {
        return;
    };
    let (daemon, port, web) = gunicorn_stack(&gunicorn, (2, 2), "");
    // Requests spread over the four workers, each its own connection.
    let sent = 40;
    let mut pids = std::collections::BTreeSet::new();
    for n in 0..sent {
        let answer = wait_until("an answer", DEADLINE, || {
            crate::support::http_get(web, &format!("/hit/{n}"))
        });
        assert!(
            answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
            "{answer}"
        );
        pids.extend(
            answer
                .lines()
                .filter_map(|l| l.strip_prefix("pid="))
                .map(str::to_owned),
        );
    }
    let (_, text) = get(port, "/metrics/web");
    assert_eq!(
        sample(&text, r#"app_requests_total{path="/hit"}"#),
        Some(f64::from(sent)),
        "served by {pids:?}:\n{text}"
    );
    let dir = multiproc_dir(&daemon, "web");
    let compared = std::process::Command::new(python)
        .arg(fixtures().join("compare.py"))
        .arg(&dir)
        .arg(format!("http://127.0.0.1:{port}/metrics/web"))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&compared.stdout),
        String::from_utf8_lossy(&compared.stderr)
    );
    assert!(compared.status.success(), "{said}");
    eprintln!("{said}");
    if let Some(promtool) = system_program("promtool", "prometheus") {
        let (status, said) = std::process::Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .output_with_input(text.as_bytes());
        assert!(status.success(), "promtool: {said}\n{text}");
    }
}

/// A Prometheus server started by a test, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts `prometheus` with `config` (YAML) on a free loopback port
    /// and waits until it is ready.
    fn start(program: &std::path::Path, config: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("prometheus.yml");
        std::fs::write(&file, config).unwrap();
        let port = free_port();
        let child = std::process::Command::new(program)
            .arg(format!("--config.file={}", file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("prometheus.log")).unwrap())
            .spawn()
            .unwrap();
        let prometheus = Self {
            child,
            port,
            _dir: dir,
        };
        wait_until("prometheus ready", DEADLINE, || {
            crate::support::http_get(port, "/-/ready").filter(|a| a.contains(" 200 "))
        });
        prometheus
    }

    /// The values of an instant query, by the labels named in `by`.
    fn query(&self, query: &str) -> Vec<(serde_json::Value, f64)> {
        let encoded: String = query
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let (status, body) = get(self.port, &format!("/api/v1/query?query={encoded}"));
        assert_eq!(status, 200, "{body}");
        let reply: serde_json::Value = serde_json::from_str(&body).unwrap();
        reply["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .map(|r| {
                let value = r["value"][1].as_str().and_then(|v| v.parse().ok());
                (r["metric"].clone(), value.unwrap_or(f64::NAN))
            })
            .collect()
    }

    /// Waits until `query` gives the single value `want`.
    fn wait_for(&self, query: &str, want: f64) {
        wait_until(
            &format!("{query} == {want}"),
            Duration::from_secs(60),
            || {
                let got = self.query(query);
                (got.len() == 1 && (got[0].1 - want).abs() < 1e-9).then_some(())
            },
        );
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn prometheus_scrapes_the_daemon_every_worker_and_the_merged_view() {
    let (Some(gunicorn), Some(prometheus)) = (
        crate::support::venv_program("gunicorn"),
        system_program("prometheus", "prometheus"),
    ) else {
        return;
    };
    // Four free ports in a row for the workers' own endpoints.
    let first = (0..50)
        .map(|_| free_port())
        .find(|&p| {
            p < 65000 && (1..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", p + i)).is_ok())
        })
        .unwrap();
    let extra = format!("metrics_port = {first}\nenv = {{ METRICS_PORT = \"$(metrics_port)\" }}");
    let (_daemon, port, web) = gunicorn_stack(&gunicorn, (4, 1), &extra);
    let server = Prometheus::start(
        &prometheus,
        &format!(
            "global: {{scrape_interval: 1s}}\n\
             scrape_configs:\n\
             - job_name: ringmaster\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             - job_name: web-merged\n  metrics_path: /metrics/web\n  static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n\
             - job_name: web-workers\n  http_sd_configs: [{{url: 'http://127.0.0.1:{port}/targets', refresh_interval: 1s}}]\n"
        ),
    );
    let sent = 60;
    for n in 0..sent {
        wait_until("an answer", DEADLINE, || {
            crate::support::http_get(web, &format!("/hit/{n}"))
        });
    }
    server.wait_for(r#"count(up{job="web-workers"} == 1)"#, 4.0);
    server.wait_for(
        r#"sum(ringmaster_process_up{job="ringmaster",watcher="web"})"#,
        4.0,
    );
    server.wait_for(
        r#"sum(app_requests_total{job="web-merged"})"#,
        f64::from(sent),
    );
    server.wait_for(
        r#"sum(app_requests_total{job="web-workers"})"#,
        f64::from(sent),
    );
    // Each worker is its own target, labelled with its slot (a worker
    // the kernel gave no request has no series of the counter yet).
    let workers = server.query(r#"up{job="web-workers"}"#);
    let mut wids: Vec<String> = workers
        .iter()
        .filter_map(|(m, _)| m["wid"].as_str().map(str::to_owned))
        .collect();
    wids.sort();
    assert_eq!(wids, ["1", "2", "3", "4"], "{workers:?}");
}
