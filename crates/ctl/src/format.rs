//! Human-readable rendering of replies.

use std::fmt::Write;

use ringmaster_protocol::{
    ActionResult, Output, PidResult, ProcessInfo, ProcessState, ReloadResult, Response,
    StatsResult, StreamLine, plural, shown_name,
};

/// Renders a successful answer as text (newline-terminated);
/// `prefix_tail`: a tail of a whole watcher, its lines prefixed.
pub(crate) fn response(response: &Response, prefix_tail: bool) -> String {
    match response {
        Response::Status(s) => status(&s.processes),
        Response::Start(a)
        | Response::Stop(a)
        | Response::Restart(a)
        | Response::Signal(a)
        | Response::Incr(a)
        | Response::Decr(a)
        | Response::Clear(a) => actions(a),
        Response::Pid(p) => pids(p),
        Response::Stats(s) => stats(s),
        Response::Maintail(m) => m.log.clone(),
        Response::Tail(t) => {
            let mut printer = TailPrinter::new(prefix_tail);
            t.processes.iter().map(|o| printer.render(o)).collect()
        }
        Response::Reread(r) | Response::Reload(r) => reload(r),
        Response::Reopen(r) => format!("reopened {}\n", plural(r.files, "log file", "log files")),
        Response::Shutdown(s) => format!(
            "shut down ({} stopped)\n",
            plural(s.stopped, "process", "processes")
        ),
        Response::Version(v) => format!("ringmasterd {} (protocol {})\n", v.version, v.protocol),
        Response::Sockets(s) => sockets(s),
    }
}

/// One line per socket: name, where it is bound, who gets it.
fn sockets(result: &ringmaster_protocol::SocketsResult) -> String {
    if result.sockets.is_empty() {
        return "no sockets\n".into();
    }
    let width = result
        .sockets
        .iter()
        .map(|s| s.name.len())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for socket in &result.sockets {
        let watchers = if socket.watchers.is_empty() {
            "(no watcher)".to_owned()
        } else {
            socket.watchers.join(", ")
        };
        let _ = writeln!(out, "{:width$}  {}  {watchers}", socket.name, socket.bound);
    }
    out
}

/// Renders tail output, prefixing each line with its process name when a
/// whole watcher is tailed, across chunks that split lines.
pub(crate) struct TailPrinter {
    prefixed: bool,
    at_line_start: std::collections::HashMap<String, bool>,
}

impl TailPrinter {
    /// A printer; `prefixed` when a whole watcher is tailed.
    pub(crate) fn new(prefixed: bool) -> Self {
        Self {
            prefixed,
            at_line_start: std::collections::HashMap::new(),
        }
    }

    pub(crate) fn render(&mut self, output: &Output) -> String {
        let mut out = String::new();
        let name = shown_name(&output.name, output.alias.as_deref());
        let start = self.at_line_start.entry(name.clone()).or_insert(true);
        if output.skipped_bytes > 0 {
            // On a line of its own, even when the gap fell mid-line.
            if !*start {
                out.push('\n');
            }
            let _ = writeln!(
                out,
                "[{name}: ... skipped {} bytes: this reader was too slow]",
                output.skipped_bytes
            );
            *start = true;
        }
        for piece in output.data.split_inclusive('\n') {
            if *start && self.prefixed {
                let _ = write!(out, "{name} | ");
            }
            out.push_str(piece);
            *start = piece.ends_with('\n');
        }
        out
    }
}

/// One event as a line: time, process, transition, pid, exit, reason.
pub(crate) fn stream_line(line: &StreamLine) -> String {
    if let Some(skipped) = line.skipped {
        return format!("... {skipped} events skipped (this client read too slowly)\n");
    }
    let Some(event) = &line.event else {
        return String::new();
    };
    let mut out = format!(
        "{}  {}  {} -> {}",
        event.time,
        shown_name(&event.process, event.alias.as_deref()),
        event.from,
        event.to
    );
    if let Some(pid) = event.pid {
        let _ = write!(out, "  pid {pid}");
    }
    if let Some(exit) = &event.exit {
        let _ = write!(out, "  ({})", exit.description);
    }
    if let Some(reason) = &event.reason {
        let _ = write!(out, "  {reason}");
    }
    out.push('\n');
    out
}

/// `avail`: one line per watcher, with its processes and how many run.
pub(crate) fn avail(processes: &[ProcessInfo]) -> String {
    let mut watchers: Vec<(&str, usize, usize)> = Vec::new();
    for process in processes {
        let running = usize::from(process.state == ProcessState::Running);
        match watchers
            .iter_mut()
            .find(|(w, _, _)| *w == process.name.watcher)
        {
            Some((_, count, up)) => {
                *count += 1;
                *up += running;
            }
            None => watchers.push((&process.name.watcher, 1, running)),
        }
    }
    let width = watchers.iter().map(|(w, _, _)| w.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (watcher, count, up) in watchers {
        let _ = writeln!(
            out,
            "{watcher:width$}  in use  {}, {up} running",
            plural(count, "process", "processes")
        );
    }
    out
}

/// One aligned line per process, named as the configuration names it
/// (`site:web_00` under supervisord's naming, else `web:1`).
pub(crate) fn status(processes: &[ProcessInfo]) -> String {
    let names: Vec<String> = processes
        .iter()
        .map(|p| shown_name(&p.name, p.alias.as_deref()))
        .collect();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let notes: Vec<String> = processes.iter().map(health_note).collect();
    let state_width = processes
        .iter()
        .zip(&notes)
        .map(|(p, note)| p.state.as_str().len() + note.len())
        .max()
        .unwrap_or(0)
        .max(8);
    let colour = colour_wanted();
    let mut out = String::new();
    for ((process, name), note) in processes.iter().zip(&names).zip(&notes) {
        let detail = match (process.pid, process.uptime_secs) {
            (Some(pid), Some(uptime)) => format!("pid {pid}, uptime {}", uptime_text(uptime)),
            (Some(pid), None) => format!("pid {pid}"),
            _ => process.reason.clone().unwrap_or_default(),
        };
        let detail = match (&process.log_error, process.log_lost_bytes) {
            (Some(error), lost) => format!("{detail}  [log error: {error}; {lost} bytes lost]"),
            (None, 0) => detail,
            (None, lost) => format!("{detail}  [{lost} bytes of output lost to log errors]"),
        };
        let state = state_cell(process.state, note, state_width, colour);
        let _ = writeln!(out, "{name:width$}  {state}  {detail}");
    }
    out
}

/// One line per kind of change, then what waits for a restart.
fn reload(result: &ReloadResult) -> String {
    let mut out = String::new();
    let scaled: Vec<String> = result
        .scaled
        .iter()
        .map(|s| format!("{} {} -> {}", s.name, s.from, s.to))
        .collect();
    let lines = [
        ("added", result.added.clone()),
        ("changed", result.changed.clone()),
        ("scaled", scaled),
        ("removed", result.removed.clone()),
        ("sockets added", result.sockets_added.clone()),
        ("sockets changed", result.sockets_changed.clone()),
        ("sockets removed", result.sockets_removed.clone()),
        ("unchanged", result.unchanged.clone()),
    ];
    let nothing = lines[..7].iter().all(|(_, names)| names.is_empty());
    for (label, names) in lines {
        if !names.is_empty() {
            let _ = writeln!(out, "{:<10} {}", format!("{label}:"), names.join(", "));
        }
    }
    let width = result
        .processes
        .iter()
        .map(|p| p.name.to_string().len())
        .max()
        .unwrap_or(0);
    for process in &result.processes {
        let _ = writeln!(
            out,
            "  {:width$}  {} (was {})",
            process.name.to_string(),
            process.action.as_str(),
            process.from
        );
    }
    if !result.not_applied.is_empty() {
        let _ = writeln!(
            out,
            "not applied until the daemon restarts: {}",
            result.not_applied.join(", ")
        );
    }
    if nothing {
        out.push_str("no changes to apply\n");
    } else if result.applied {
        out.push_str("applied\n");
    } else {
        out.push_str("not applied (run reload)\n");
    }
    out
}

/// Whether state names are coloured: only on a terminal, and not when
/// `NO_COLOR` is set (no-color.org).
fn colour_wanted() -> bool {
    use std::io::IsTerminal;
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// ` (unhealthy 2/3)` for a RUNNING process whose health checks are
/// failing, else nothing.
fn health_note(process: &ProcessInfo) -> String {
    match &process.health {
        Some(health) if health.failures > 0 && process.state == ProcessState::Running => {
            format!(" (unhealthy {}/{})", health.failures, health.threshold)
        }
        _ => String::new(),
    }
}

/// A state and its `note` padded to `width`, coloured when asked: green
/// running, yellow on the way or unhealthy, red failing.
fn state_cell(state: ProcessState, note: &str, width: usize, colour: bool) -> String {
    let word = state.as_str();
    let padded = format!("{:<width$}", format!("{word}{note}"));
    let code = match state {
        ProcessState::Running if !note.is_empty() => "33",
        ProcessState::Running => "32",
        ProcessState::Starting | ProcessState::Stopping => "33",
        ProcessState::Backoff | ProcessState::Fatal => "31",
        ProcessState::Stopped | ProcessState::Exited => return padded,
    };
    if colour {
        // Colour the word only, so the padding stays plain.
        format!("\x1b[{code}m{word}\x1b[0m{}", &padded[word.len()..])
    } else {
        padded
    }
}

/// A table: name, state, pid, CPU, memory, files, threads, restarts,
/// uptime, and with `--tree` the whole tree's count, CPU and memory.
fn stats(result: &StatsResult) -> String {
    let tree = result.processes.iter().any(|p| p.tree.is_some());
    let mut rows: Vec<Vec<String>> = vec![
        [
            "NAME", "STATE", "PID", "CPU%", "RSS", "FDS", "THREADS", "RESTARTS", "UPTIME",
        ]
        .iter()
        .map(|h| (*h).to_owned())
        .collect(),
    ];
    if tree {
        rows[0].extend(["TREE", "TREE CPU%", "TREE RSS"].map(str::to_owned));
    }
    let dash = || "-".to_owned();
    for p in &result.processes {
        let mut row = vec![
            shown_name(&p.name, p.alias.as_deref()),
            p.state.as_str().to_owned(),
            p.pid.map_or_else(dash, |v| v.to_string()),
            p.cpu_percent.map_or_else(dash, |v| format!("{v:.1}")),
            p.rss_bytes.map_or_else(dash, size),
            p.fds.map_or_else(dash, |v| v.to_string()),
            p.threads.map_or_else(dash, |v| v.to_string()),
            p.restarts.to_string(),
            p.uptime_secs.map_or_else(dash, uptime_text),
        ];
        if tree {
            match &p.tree {
                Some(t) => row.extend([
                    t.processes.to_string(),
                    format!("{:.1}", t.cpu_percent),
                    size(t.rss_bytes),
                ]),
                None => row.extend([dash(), dash(), dash()]),
            }
        }
        rows.push(row);
    }
    let widths: Vec<usize> = (0..rows[0].len())
        .map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:width$}"))
            .collect();
        let _ = writeln!(out, "{}", cells.join("  ").trim_end());
    }
    out
}

/// Bytes as `12.3M`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "K", "M", "G"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// `H:MM:SS`, with days when needed.
fn uptime_text(secs: f64) -> String {
    let total = secs as u64;
    let (days, rest) = (total / 86_400, total % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    if days > 0 {
        format!("{days} days, {h}:{m:02}:{s:02}")
    } else {
        format!("{h}:{m:02}:{s:02}")
    }
}

fn actions(result: &ActionResult) -> String {
    let mut out = String::new();
    for p in &result.processes {
        if p.ok {
            let _ = writeln!(
                out,
                "{}: {}",
                shown_name(&p.name, p.alias.as_deref()),
                p.message
            );
        } else {
            let name = shown_name(&p.name, p.alias.as_deref());
            let _ = writeln!(out, "{name}: ERROR ({})", p.message);
        }
    }
    out
}

fn pids(result: &PidResult) -> String {
    let mut out = String::new();
    if let Some(pid) = result.daemon {
        let _ = writeln!(out, "{pid}");
    }
    for entry in &result.processes {
        let name = shown_name(&entry.name, entry.alias.as_deref());
        match entry.pid {
            Some(pid) => {
                let _ = writeln!(out, "{name} {pid}");
            }
            None => {
                let _ = writeln!(out, "{name} -");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &str, skipped_bytes: u64) -> Output {
        Output {
            name: ringmaster_protocol::ProcessName::new("web", 1),
            alias: None,
            stream: "stdout".into(),
            data: data.into(),
            skipped_bytes,
        }
    }

    /// The skipped marker is a line of its own, even when the gap falls in
    /// the middle of a line, prefixed or not.
    #[test]
    fn the_skipped_marker_never_glues_to_a_line() {
        for prefixed in [false, true] {
            let mut printer = TailPrinter::new(prefixed);
            let mut out = printer.render(&chunk("half a li", 0));
            out.push_str(&printer.render(&chunk("ne\nnext\n", 42)));
            let p = if prefixed { "web:1 | " } else { "" };
            assert_eq!(
                out,
                format!(
                    "{p}half a li\n[web:1: ... skipped 42 bytes: this reader was too slow]\n{p}ne\n{p}next\n"
                )
            );
        }
    }

    #[test]
    fn states_are_coloured_only_when_asked() {
        assert_eq!(state_cell(ProcessState::Running, "", 8, false), "RUNNING ");
        assert_eq!(
            state_cell(ProcessState::Running, "", 8, true),
            "\x1b[32mRUNNING\x1b[0m "
        );
        assert_eq!(
            state_cell(ProcessState::Fatal, "", 8, true),
            "\x1b[31mFATAL\x1b[0m   "
        );
        assert_eq!(state_cell(ProcessState::Stopped, "", 8, true), "STOPPED ");
        assert_eq!(
            state_cell(ProcessState::Running, " (unhealthy 1/3)", 24, true),
            "\x1b[33mRUNNING\x1b[0m (unhealthy 1/3) "
        );
    }

    #[test]
    fn uptime_is_readable() {
        assert_eq!(uptime_text(65.4), "0:01:05");
        assert_eq!(uptime_text(90_061.0), "1 days, 1:01:01");
    }
}
