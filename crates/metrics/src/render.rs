//! `/metrics`: the snapshot as OpenMetrics text, written by the
//! prometheus-client crate. The figures are read at scrape time, so they
//! go through a [`Collector`] of constant values rather than live metric
//! objects.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, MetricEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::{ProcessFigures, Snapshot, Usage};

/// The Content-Type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The Content-Type of what [`to_text_format`] writes.
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether a request's `Accept` header asks for OpenMetrics (Prometheus
/// does); anyone else (curl, promtool) gets the older text format.
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// OpenMetrics text as the Prometheus text format (0.0.4), which
/// prometheus-client does not write: a counter family `x` (samples
/// `x_total`) is named `x_total` there, as the Python and Go clients name
/// it, and there is no `# EOF` or `# UNIT`.
pub fn to_text_format(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // A counter's HELP comes before its TYPE: held until the TYPE says.
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            if let Some(previous) = help.replace(line) {
                push_line(&mut out, previous);
            }
            continue;
        }
        let counter = line
            .strip_prefix("# TYPE ")
            .and_then(|rest| rest.strip_suffix(" counter"));
        let held = help.take();
        if let Some(name) = counter {
            if let Some(text) = held.and_then(|h| h.strip_prefix("# HELP ")?.strip_prefix(name)) {
                push_line(&mut out, &["# HELP ", name, "_total", text].concat());
            }
            push_line(&mut out, &["# TYPE ", name, "_total counter"].concat());
        } else {
            if let Some(held) = held {
                push_line(&mut out, held);
            }
            push_line(&mut out, line);
        }
    }
    out
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

/// The exposition of `snapshot`.
pub fn render(snapshot: Snapshot) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Figures(snapshot)));
    let mut text = String::new();
    // Writing to a String cannot fail, and our collector never does.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

/// The snapshot as a collector.
#[derive(Debug)]
struct Figures(Snapshot);

type Labels<'a> = [(&'static str, &'a str); 3];

/// The labels of every per-process series.
fn labels_of(process: &ProcessFigures) -> ([(&'static str, &str); 2], String) {
    (
        [
            ("watcher", process.watcher.as_str()),
            ("process", process.name.as_str()),
        ],
        process.wid.to_string(),
    )
}

/// One family of per-process series: `value` gives each process's value,
/// or `None` for a process it does not apply to (no pid, no exit yet).
fn per_process<V>(
    encoder: &mut DescriptorEncoder<'_>,
    processes: &[ProcessFigures],
    (name, help, kind): (&str, &str, MetricType),
    value: impl Fn(&ProcessFigures) -> Option<V>,
    write: impl Fn(&mut MetricEncoder<'_>, V) -> std::fmt::Result,
) -> std::fmt::Result {
    let mut family = encoder.encode_descriptor(name, help, None, kind)?;
    for process in processes {
        let Some(v) = value(process) else { continue };
        let ([watcher, name], wid) = labels_of(process);
        let labels: Labels<'_> = [watcher, name, ("wid", wid.as_str())];
        write(&mut family.encode_family(&labels)?, v)?;
    }
    Ok(())
}

#[allow(clippy::needless_pass_by_value)] // a value, as `per_process` hands it
fn gauge<V: prometheus_client::encoding::EncodeGaugeValue>(
    e: &mut MetricEncoder<'_>,
    v: V,
) -> std::fmt::Result {
    e.encode_gauge(&v)
}

#[allow(clippy::needless_pass_by_value)] // a value, as `per_process` hands it
fn counter<V: prometheus_client::encoding::EncodeCounterValue>(
    e: &mut MetricEncoder<'_>,
    v: V,
) -> std::fmt::Result {
    e.encode_counter::<NoLabelSet, V, f64>(&v, None)
}

impl Collector for Figures {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> std::fmt::Result {
        let processes = &self.0.processes;
        let e = &mut encoder;
        {
            let mut family = e.encode_descriptor(
                "ringmaster_process_state",
                "The process's state (the state label), always 1",
                None,
                MetricType::Gauge,
            )?;
            for process in processes {
                let ([watcher, name], wid) = labels_of(process);
                let labels = [
                    watcher,
                    name,
                    ("wid", wid.as_str()),
                    ("state", process.state.as_str()),
                ];
                family.encode_family(&labels)?.encode_gauge(&1i64)?;
            }
        }
        let kinds = (MetricType::Gauge, MetricType::Counter);
        per_process(
            e,
            processes,
            (
                "ringmaster_process_up",
                "1 when the process is RUNNING, else 0",
                kinds.0,
            ),
            |p| Some(i64::from(p.up())),
            gauge,
        )?;
        per_process(
            e,
            processes,
            (
                "ringmaster_process_restarts",
                "Automatic restarts since the daemon started",
                kinds.1,
            ),
            |p| Some(u64::from(p.restarts)),
            counter,
        )?;
        per_process(
            e,
            processes,
            (
                "ringmaster_process_start_time_seconds",
                "Unix time the current process was spawned",
                kinds.0,
            ),
            |p| p.started_at,
            gauge,
        )?;
        per_process(
            e,
            processes,
            (
                "ringmaster_process_last_exit_code",
                "Exit code of the previous run (128 + N for signal N)",
                kinds.0,
            ),
            |p| p.last_exit_code.map(i64::from),
            gauge,
        )?;
        encode_usage(e, processes)?;
        encode_trees(e, processes)?;
        encode_log_bytes(e, processes)?;
        encode_watchers(e, &self.0)?;
        encode_daemon(e, &self.0)
    }
}

/// CPU, memory and descriptors of each live process.
fn encode_usage(e: &mut DescriptorEncoder<'_>, processes: &[ProcessFigures]) -> std::fmt::Result {
    let usage = |p: &ProcessFigures| p.usage;
    per_process(
        e,
        processes,
        (
            "ringmaster_process_cpu_seconds",
            "User and system CPU time of the process",
            MetricType::Counter,
        ),
        |p| usage(p).map(|u| u.cpu_seconds),
        counter,
    )?;
    per_process(
        e,
        processes,
        (
            "ringmaster_process_resident_memory_bytes",
            "Resident memory of the process",
            MetricType::Gauge,
        ),
        |p| usage(p).map(|u| u.rss_bytes),
        gauge,
    )?;
    per_process(
        e,
        processes,
        (
            "ringmaster_process_open_fds",
            "Open descriptors of the process",
            MetricType::Gauge,
        ),
        |p| usage(p).and_then(|u| u.open_fds),
        gauge,
    )
}

/// What each process's whole tree uses, from its cgroup.
fn encode_trees(e: &mut DescriptorEncoder<'_>, processes: &[ProcessFigures]) -> std::fmt::Result {
    per_process(
        e,
        processes,
        (
            "ringmaster_process_tree_cpu_seconds",
            "CPU time of every process that ran in the process's cgroup",
            MetricType::Counter,
        ),
        |p| p.tree.map(|t| t.cpu_seconds),
        counter,
    )?;
    per_process(
        e,
        processes,
        (
            "ringmaster_process_tree_processes",
            "Processes in the process's cgroup now",
            MetricType::Gauge,
        ),
        |p| p.tree.map(|t| t.processes),
        gauge,
    )?;
    per_process(
        e,
        processes,
        (
            "ringmaster_process_tree_memory_bytes",
            "Memory charged to the process's cgroup (with the memory controller)",
            MetricType::Gauge,
        ),
        |p| p.tree.and_then(|t| t.memory_bytes),
        gauge,
    )
}

/// Output bytes per process and stream.
fn encode_log_bytes(
    e: &mut DescriptorEncoder<'_>,
    processes: &[ProcessFigures],
) -> std::fmt::Result {
    let mut family = e.encode_descriptor(
        "ringmaster_process_log_bytes",
        "Output bytes read from the process, by stream",
        None,
        MetricType::Counter,
    )?;
    for process in processes {
        let ([watcher, name], wid) = labels_of(process);
        for (stream, bytes) in ["stdout", "stderr"].into_iter().zip(process.log_bytes) {
            let labels = [watcher, name, ("wid", wid.as_str()), ("stream", stream)];
            counter(&mut family.encode_family(&labels)?, bytes)?;
        }
    }
    Ok(())
}

/// Desired and running processes per watcher.
fn encode_watchers(e: &mut DescriptorEncoder<'_>, snapshot: &Snapshot) -> std::fmt::Result {
    for (name, help, value) in [
        (
            "ringmaster_watcher_desired_processes",
            "Processes the watcher should have (numprocesses)",
            (|w: &crate::WatcherFigures| w.desired) as fn(&crate::WatcherFigures) -> u32,
        ),
        (
            "ringmaster_watcher_running_processes",
            "Processes of the watcher RUNNING now",
            |w: &crate::WatcherFigures| w.running,
        ),
    ] {
        let mut family = e.encode_descriptor(name, help, None, MetricType::Gauge)?;
        for watcher in &snapshot.watchers {
            let labels = [("watcher", watcher.name.as_str())];
            family
                .encode_family(&labels)?
                .encode_gauge(&value(watcher))?;
        }
    }
    Ok(())
}

/// The daemon's own figures.
fn encode_daemon(e: &mut DescriptorEncoder<'_>, snapshot: &Snapshot) -> std::fmt::Result {
    let daemon = &snapshot.daemon;
    // A gauge, not OpenMetrics' info type: the Prometheus text format
    // (and promtool) know no info.
    e.encode_descriptor(
        "ringmaster_build_info",
        "ringmasterd's version (the version label), always 1",
        None,
        MetricType::Gauge,
    )?
    .encode_family(&[("version", daemon.version.as_str())])?
    .encode_gauge(&1i64)?;
    e.encode_descriptor(
        "ringmaster_daemon_start_time_seconds",
        "Unix time the daemon started",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&daemon.started_at)?;
    e.encode_descriptor(
        "ringmaster_daemon_uptime_seconds",
        "Seconds since the daemon started",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&(daemon.now - daemon.started_at).max(0.0))?;
    let Some(Usage {
        cpu_seconds,
        rss_bytes,
        open_fds,
    }) = daemon.usage
    else {
        return Ok(());
    };
    let mut cpu = e.encode_descriptor(
        "ringmaster_daemon_cpu_seconds",
        "User and system CPU time of the daemon",
        None,
        MetricType::Counter,
    )?;
    counter(&mut cpu, cpu_seconds)?;
    e.encode_descriptor(
        "ringmaster_daemon_resident_memory_bytes",
        "Resident memory of the daemon",
        None,
        MetricType::Gauge,
    )?
    .encode_gauge(&rss_bytes)?;
    if let Some(fds) = open_fds {
        e.encode_descriptor(
            "ringmaster_daemon_open_fds",
            "Open descriptors of the daemon",
            None,
            MetricType::Gauge,
        )?
        .encode_gauge(&fds)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{DaemonFigures, WatcherFigures};

    #[test]
    fn every_family_is_written_with_its_labels() {
        let snapshot = Snapshot {
            daemon: DaemonFigures {
                pid: 1,
                started_at: 100.0,
                now: 160.0,
                version: "0.1.0".into(),
                usage: Some(Usage {
                    cpu_seconds: 0.5,
                    rss_bytes: 4096,
                    open_fds: Some(12),
                }),
            },
            watchers: vec![WatcherFigures {
                name: "web".into(),
                desired: 1,
                running: 1,
                autostart: true,
                metrics_port: None,
                multiproc_dir: None,
            }],
            processes: vec![ProcessFigures {
                watcher: "web".into(),
                name: "web:1".into(),
                wid: 1,
                state: "RUNNING".into(),
                pid: Some(42),
                restarts: 3,
                started_at: Some(150.0),
                last_exit_code: Some(137),
                log_bytes: [10, 0],
                usage: Some(Usage {
                    cpu_seconds: 1.25,
                    rss_bytes: 8192,
                    open_fds: Some(7),
                }),
                ..ProcessFigures::default()
            }],
        };
        let text = render(snapshot);
        let l = r#"watcher="web",process="web:1",wid="1""#;
        for line in [
            format!(r#"ringmaster_process_state{{{l},state="RUNNING"}} 1"#),
            format!("ringmaster_process_up{{{l}}} 1"),
            format!("ringmaster_process_restarts_total{{{l}}} 3"),
            format!("ringmaster_process_start_time_seconds{{{l}}} 150.0"),
            format!("ringmaster_process_last_exit_code{{{l}}} 137"),
            format!("ringmaster_process_cpu_seconds_total{{{l}}} 1.25"),
            format!("ringmaster_process_resident_memory_bytes{{{l}}} 8192"),
            format!("ringmaster_process_open_fds{{{l}}} 7"),
            format!(r#"ringmaster_process_log_bytes_total{{{l},stream="stdout"}} 10"#),
            r#"ringmaster_watcher_running_processes{watcher="web"} 1"#.to_owned(),
            r#"ringmaster_build_info{version="0.1.0"} 1"#.to_owned(),
            "ringmaster_daemon_uptime_seconds 60.0".to_owned(),
            "ringmaster_daemon_open_fds 12".to_owned(),
            "# EOF".to_owned(),
        ] {
            assert!(
                text.lines().any(|x| x == line),
                "no line {line} in:\n{text}"
            );
        }
        let plain = to_text_format(&text);
        for line in [
            "# HELP ringmaster_process_restarts_total Automatic restarts since the daemon started",
            "# TYPE ringmaster_process_restarts_total counter",
            r#"ringmaster_process_restarts_total{watcher="web",process="web:1",wid="1"} 3"#,
            "# TYPE ringmaster_process_up gauge",
        ] {
            assert!(
                plain.lines().any(|x| x == line),
                "no line {line} in:\n{plain}"
            );
        }
        assert!(!plain.contains("# EOF"));
        assert!(!plain.contains("# TYPE ringmaster_process_restarts counter"));
    }
}
