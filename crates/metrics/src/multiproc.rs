//! `/metrics/WATCHER`: the metrics the workers of a watcher with
//! `prometheus_multiproc = true` wrote with the Python client, merged as
//! the client's own `MultiProcessCollector` merges them and written as
//! its `generate_latest` writes them.
//!
//! Theory of operation: in multiprocess mode each worker of a Python app
//! keeps its metrics in files of its own in one directory: `counter_PID.db`,
//! `histogram_PID.db`, `summary_PID.db` and `gauge_MODE_PID.db` (the
//! client's `mmap_dict.py`). A file starts with the bytes used (a 4-byte
//! int, then 4 of padding), then entries: a 4-byte key length, the key
//! (UTF-8 JSON `[metric, sample, {labels}, help]`) padded to 8 bytes, and
//! two doubles, the value and a timestamp. [`merge_dir`] reads every file
//! (without following links, at most [`MAX_FILE_BYTES`] each), then does
//! what `multiprocess.py` does: counters, summaries and histograms summed
//! across pids (histogram buckets made cumulative, `_count` from them);
//! gauges by their mode: `all`/`liveall` one series per pid (a `pid`
//! label), `sum`/`livesum` summed, `min`/`max` and their live forms the
//! least or greatest, `mostrecent`/`livemostrecent` the latest written. A
//! `live*` gauge file of a pid that is no longer alive is left out, as
//! the client's `mark_process_dead` would have removed it. A file that is
//! truncated, corrupt or not a regular file is reported and skipped.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Read;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

/// The largest file read (the client's files start at 64 KiB and double).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

/// The merged exposition, and what could not be read.
#[derive(Debug, Default)]
pub struct Merged {
    /// Prometheus text format, as the client's `generate_latest` writes it.
    pub text: String,
    /// One line per file skipped, naming it and why.
    pub problems: Vec<String>,
}

/// A label set: (name, value) pairs.
type Labels = Vec<(String, String)>;
/// A sample's identity: its name and labels.
type Slot = (String, Labels);

/// A metric being merged: its type, help and gauge mode as the client
/// records them (the first file to name it sets type and help; the mode
/// is the last file's), and its samples in the order first seen.
#[derive(Debug)]
struct Metric {
    name: String,
    kind: String,
    help: String,
    mode: String,
    samples: Vec<RawSample>,
}

/// One entry of one file.
#[derive(Debug)]
struct RawSample {
    name: String,
    /// Sorted by name.
    labels: Labels,
    value: f64,
    timestamp: f64,
}

/// A key's parts: metric, sample name, sorted labels, help.
type Key = (String, String, Labels, String);

/// The metrics read so far, in the order first seen.
#[derive(Default)]
struct Reading {
    metrics: Vec<Metric>,
    index: HashMap<String, usize>,
    /// Keys already parsed (every worker's file repeats them).
    keys: HashMap<String, Key>,
}

/// Reads and merges every `*.db` file of `dir`.
pub fn merge_dir(dir: &Path) -> Merged {
    let mut merged = Merged::default();
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) => {
            merged
                .problems
                .push(format!("cannot read {}: {err}", dir.display()));
            return merged;
        }
    };
    let mut reading = Reading::default();
    for entry in entries.flatten() {
        let file_name = entry.file_name().to_string_lossy().into_owned();
        if let Err(why) = reading.add_file(&entry.path(), &file_name) {
            merged.problems.push(format!("{file_name}: {why}"));
        }
    }
    for metric in &reading.metrics {
        let samples = accumulate(metric);
        write_metric(&mut merged.text, metric, &samples);
    }
    merged
}

impl Reading {
    /// Adds the entries of one file (none when it is not a `.db` file).
    fn add_file(&mut self, path: &Path, file_name: &str) -> Result<(), String> {
        let Some(stem) = file_name.strip_suffix(".db") else {
            return Ok(());
        };
        let parts: Vec<&str> = stem.split('_').collect();
        let kind = parts[0];
        let (mode, pid) = if kind == "gauge" {
            (parts.get(1).copied().unwrap_or(""), parts.get(2).copied())
        } else {
            ("", parts.get(1).copied())
        };
        let pid = match pid {
            Some(pid) if matches!(kind, "counter" | "gauge" | "histogram" | "summary") => pid,
            _ => return Err("not a metrics file of the Python client".into()),
        };
        if mode.starts_with("live") && !alive(pid) {
            return Ok(());
        }
        for (key, value, timestamp) in read_file(path)? {
            let (metric_name, name, mut labels, help) = self.parse(key)?;
            let at = *self.index.entry(metric_name.clone()).or_insert_with(|| {
                self.metrics.push(Metric {
                    name: metric_name,
                    kind: kind.to_owned(),
                    help,
                    mode: String::new(),
                    samples: Vec::new(),
                });
                self.metrics.len() - 1
            });
            let metric = &mut self.metrics[at];
            if kind == "gauge" {
                mode.clone_into(&mut metric.mode);
                labels.push(("pid".to_owned(), pid.to_owned()));
            }
            metric.samples.push(RawSample {
                name,
                labels,
                value,
                timestamp,
            });
        }
        Ok(())
    }

    /// A key's parts, parsed once per distinct key.
    fn parse(&mut self, key: String) -> Result<Key, String> {
        if let Some(parsed) = self.keys.get(&key) {
            return Ok(parsed.clone());
        }
        let parsed = parse_key(&key).ok_or("a key is not [metric, name, labels, help]")?;
        self.keys.insert(key, parsed.clone());
        Ok(parsed)
    }
}

/// Whether process `pid` (as written in a file name) exists.
fn alive(pid: &str) -> bool {
    pid.parse::<i32>()
        .ok()
        .filter(|&pid| pid > 0)
        .is_some_and(|pid| {
            !matches!(
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None),
                Err(nix::errno::Errno::ESRCH)
            )
        })
}

/// The entries of one file: (key, value, timestamp).
fn read_file(path: &Path) -> Result<Vec<(String, f64, f64)>, String> {
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc_flags())
        .open(path)
        .map_err(|err| format!("cannot open: {err}"))?;
    let meta = file.metadata().map_err(|err| err.to_string())?;
    if !meta.file_type().is_file() {
        return Err("not a regular file".into());
    }
    if meta.size() > MAX_FILE_BYTES {
        return Err(format!("{} bytes, more than {MAX_FILE_BYTES}", meta.size()));
    }
    let mut data = Vec::new();
    file.read_to_end(&mut data)
        .map_err(|err| format!("cannot read: {err}"))?;
    parse_entries(&data)
}

/// O_NOFOLLOW and O_NONBLOCK: a link planted in the directory is not
/// followed, and a FIFO does not hang the reader.
fn libc_flags() -> i32 {
    nix::fcntl::OFlag::O_NOFOLLOW.bits() | nix::fcntl::OFlag::O_NONBLOCK.bits()
}

fn int_at(data: &[u8], pos: usize) -> Option<i32> {
    Some(i32::from_ne_bytes(data.get(pos..pos + 4)?.try_into().ok()?))
}

fn double_at(data: &[u8], pos: usize) -> Option<f64> {
    Some(f64::from_ne_bytes(data.get(pos..pos + 8)?.try_into().ok()?))
}

/// The entries of a file's bytes, as `mmap_dict._read_all_values` reads
/// them.
fn parse_entries(data: &[u8]) -> Result<Vec<(String, f64, f64)>, String> {
    let truncated = || "truncated or corrupt".to_owned();
    let used = usize::try_from(int_at(data, 0).ok_or_else(truncated)?).map_err(|_| truncated())?;
    if used > data.len() {
        return Err(truncated());
    }
    let mut entries = Vec::new();
    let mut pos = 8;
    while pos < used {
        let len =
            usize::try_from(int_at(data, pos).ok_or_else(truncated)?).map_err(|_| truncated())?;
        if len + pos > used {
            return Err(truncated());
        }
        pos += 4;
        let key = data.get(pos..pos + len).ok_or_else(truncated)?;
        let key = std::str::from_utf8(key).map_err(|_| "a key is not UTF-8".to_owned())?;
        pos += len + (8 - (len + 4) % 8);
        let value = double_at(data, pos).ok_or_else(truncated)?;
        let timestamp = double_at(data, pos + 8).ok_or_else(truncated)?;
        entries.push((key.to_owned(), value, timestamp));
        pos += 16;
    }
    Ok(entries)
}

/// `[metric, name, {labels}, help]`, labels sorted by name.
fn parse_key(key: &str) -> Option<Key> {
    let value: serde_json::Value = serde_json::from_str(key).ok()?;
    let [metric, name, labels, help] = value.as_array()?.as_slice() else {
        return None;
    };
    let mut labels: Vec<(String, String)> = labels
        .as_object()?
        .iter()
        .map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect::<Option<_>>()?;
    labels.sort();
    Some((
        metric.as_str()?.to_owned(),
        name.as_str()?.to_owned(),
        labels,
        help.as_str()?.to_owned(),
    ))
}

/// Merged samples, grouped by label set in the order first seen; each a
/// (sample name, labels, value).
type Samples = Vec<(String, Labels, f64)>;

/// How a sample already seen takes a new value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Combine {
    /// Added (the client's sums start at 0.0).
    Sum,
    /// The smaller kept.
    Min,
    /// The greater kept.
    Max,
    /// The new one kept.
    Replace,
}

impl Combine {
    fn first(self, value: f64) -> f64 {
        if self == Self::Sum {
            0.0 + value
        } else {
            value
        }
    }

    /// As the client compares: a NaN never replaces a min or max.
    fn next(self, old: f64, value: f64) -> f64 {
        match self {
            Self::Sum => old + value,
            Self::Min if value < old => value,
            Self::Max if value > old => value,
            Self::Min | Self::Max => old,
            Self::Replace => value,
        }
    }
}

/// One metric's samples merged across pids (`_accumulate_metrics`).
fn accumulate(metric: &Metric) -> Samples {
    let mut groups = Groups::default();
    let mut latest: HashMap<(Labels, String), f64> = HashMap::new();
    let mut buckets: Vec<(Labels, Vec<(f64, f64)>)> = Vec::new();
    let mut bucket_index: HashMap<Labels, usize> = HashMap::new();
    let mode = metric.mode.strip_prefix("live").unwrap_or(&metric.mode);
    for sample in &metric.samples {
        let mut labels = sample.labels.clone();
        let (name, value) = (sample.name.clone(), sample.value);
        if metric.kind == "gauge" {
            if matches!(mode, "min" | "max" | "sum" | "mostrecent") {
                labels.retain(|(k, _)| k != "pid");
            }
            let combine = match mode {
                "min" => Combine::Min,
                "max" => Combine::Max,
                "sum" => Combine::Sum,
                "mostrecent" => {
                    let seen = latest.entry((labels.clone(), name.clone())).or_insert(0.0);
                    if *seen >= sample.timestamp {
                        continue;
                    }
                    *seen = sample.timestamp;
                    Combine::Replace
                }
                _ => Combine::Replace,
            };
            groups.merge(&labels, (name, labels.clone()), value, combine);
        } else if metric.kind == "histogram"
            && let Some(at) = labels.iter().position(|(k, _)| k == "le")
        {
            let (_, le) = labels.remove(at);
            let Ok(bound) = le.trim().parse::<f64>() else {
                continue;
            };
            let at = *bucket_index.entry(labels.clone()).or_insert_with(|| {
                buckets.push((labels, Vec::new()));
                buckets.len() - 1
            });
            // Few buckets per label set: a search is cheaper than a map.
            let group = &mut buckets[at].1;
            match group.iter_mut().find(|(b, _)| b.total_cmp(&bound).is_eq()) {
                Some((_, total)) => *total += value,
                None => group.push((bound, 0.0 + value)),
            }
        } else {
            groups.merge(&labels, (name, labels.clone()), value, Combine::Sum);
        }
    }
    for (labels, mut values) in buckets {
        values.sort_by(|a, b| a.0.total_cmp(&b.0));
        let mut total = 0.0;
        for (bound, value) in values {
            total += value;
            let mut with_le = labels.clone();
            with_le.push(("le".to_owned(), go_float(bound)));
            let bucket = (format!("{}_bucket", metric.name), with_le);
            groups.merge(&labels, bucket, total, Combine::Replace);
        }
        let count = (format!("{}_count", metric.name), labels.clone());
        groups.merge(&labels, count, total, Combine::Replace);
    }
    groups.into_samples()
}

/// Samples keyed by (name, labels), grouped by a label set, each in the
/// order first seen (the client's nested dicts), with indexes to find
/// them: a metric of thousands of series is merged in linear time.
#[derive(Default)]
struct Groups {
    sets: Vec<(Labels, Vec<(Slot, f64)>)>,
    by_labels: HashMap<Labels, usize>,
    /// (group, slot) to the sample's place in its group.
    by_slot: HashMap<(usize, Slot), usize>,
}

impl Groups {
    /// Gives the sample `slot` of group `labels` the value `value`, as
    /// `combine` says.
    fn merge(&mut self, labels: &[(String, String)], slot: Slot, value: f64, combine: Combine) {
        let group = if let Some(&group) = self.by_labels.get(labels) {
            group
        } else {
            self.sets.push((labels.to_vec(), Vec::new()));
            self.by_labels.insert(labels.to_vec(), self.sets.len() - 1);
            self.sets.len() - 1
        };
        let samples = &mut self.sets[group].1;
        let key = (group, slot);
        if let Some(&at) = self.by_slot.get(&key) {
            samples[at].1 = combine.next(samples[at].1, value);
        } else {
            samples.push((key.1.clone(), combine.first(value)));
            self.by_slot.insert(key, samples.len() - 1);
        }
    }

    fn into_samples(self) -> Samples {
        self.sets
            .into_iter()
            .flat_map(|(_, samples)| samples)
            .map(|((name, labels), value)| (name, labels, value))
            .collect()
    }
}

/// One metric as `generate_latest` writes it.
fn write_metric(out: &mut String, metric: &Metric, samples: &Samples) {
    let (name, kind) = (&metric.name, &metric.kind);
    let family = if kind == "counter" {
        format!("{name}_total")
    } else {
        name.clone()
    };
    let help = metric.help.replace('\\', r"\\").replace('\n', r"\n");
    let _ = writeln!(out, "# HELP {} {help}", legacy_name(&family));
    let _ = writeln!(out, "# TYPE {} {kind}", legacy_name(&family));
    for (sample, labels, value) in samples {
        out.push_str(&legacy_name(sample));
        if !labels.is_empty() {
            let mut sorted: Vec<&(String, String)> = labels.iter().collect();
            sorted.sort();
            out.push('{');
            for (i, (k, v)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                let v = v
                    .replace('\\', r"\\")
                    .replace('\n', r"\n")
                    .replace('"', "\\\"");
                let _ = write!(out, "{}=\"{v}\"", legacy_name(k));
            }
            out.push('}');
        }
        let _ = writeln!(out, " {}", go_float(*value));
    }
}

/// A metric or label name in the legacy character set: any other
/// character becomes `_` (the client's default escaping).
fn legacy_name(name: &str) -> String {
    name.char_indices()
        .map(|(i, c)| {
            if c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit()) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Python's `repr` of a float: the shortest digits that read back the
/// same, in exponent form when the decimal point would sit more than 16
/// places right of the first digit or more than 3 zeros left of it.
pub fn python_repr(value: f64) -> String {
    if value.is_nan() {
        return "nan".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sign = if value.is_sign_negative() { "-" } else { "" };
    let scientific = format!("{:e}", value.abs());
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let point = exponent + 1;
    if !(-3..=16).contains(&point) {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let sign_e = if exponent < 0 { '-' } else { '+' };
        return format!("{sign}{first}{dot}{rest}e{sign_e}{:02}", exponent.abs());
    }
    if point <= 0 {
        return format!(
            "{sign}0.{}{digits}",
            "0".repeat(point.unsigned_abs() as usize)
        );
    }
    let point = point as usize;
    if point >= digits.len() {
        format!("{sign}{digits}{}.0", "0".repeat(point - digits.len()))
    } else {
        format!("{sign}{}.{}", &digits[..point], &digits[point..])
    }
}

/// The client's `floatToGoString`: `+Inf`, `-Inf`, `NaN`, else Python's
/// repr, switched to an exponent sooner (as Go does) for large values.
pub fn go_float(value: f64) -> String {
    if value.is_nan() {
        return "NaN".into();
    }
    if value.is_infinite() {
        return if value > 0.0 { "+Inf" } else { "-Inf" }.into();
    }
    let repr = python_repr(value);
    match repr.find('.') {
        Some(dot) if value > 0.0 && dot > 6 => {
            let mantissa = format!("{}.{}{}", &repr[..1], &repr[1..dot], &repr[dot + 1..]);
            let mantissa = mantissa.trim_end_matches(['0', '.']);
            format!("{mantissa}e+{:02}", dot - 1)
        }
        _ => repr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_written_as_the_python_client_writes_them() {
        for (value, python) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.005, "0.005"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (2.5e-7, "2.5e-07"),
            (1e15, "1000000000000000.0"),
            (1e16, "1e+16"),
            (123.456, "123.456"),
            (-7.25, "-7.25"),
            (1e100, "1e+100"),
        ] {
            assert_eq!(python_repr(value), python, "{value}");
        }
        for (value, go) in [
            (f64::INFINITY, "+Inf"),
            (f64::NEG_INFINITY, "-Inf"),
            (f64::NAN, "NaN"),
            (1_000_000.0, "1e+06"),
            (1_234_567.0, "1.234567e+06"),
            (999_999.0, "999999.0"),
            (2.5, "2.5"),
            (1e16, "1e+16"),
        ] {
            assert_eq!(go_float(value), go, "{value}");
        }
    }

    /// A file as the client's MmapedDict writes it.
    fn file(entries: &[(&str, f64, f64)]) -> Vec<u8> {
        let mut data = vec![0u8; 8];
        for (key, value, timestamp) in entries {
            let key = key.as_bytes();
            data.extend((key.len() as i32).to_ne_bytes());
            data.extend(key);
            data.extend(std::iter::repeat_n(b' ', 8 - (key.len() + 4) % 8));
            data.extend(value.to_ne_bytes());
            data.extend(timestamp.to_ne_bytes());
        }
        let used = data.len() as i32;
        data[..4].copy_from_slice(&used.to_ne_bytes());
        data.resize(65536, 0);
        data
    }

    fn key(metric: &str, name: &str, labels: &str, help: &str) -> String {
        format!(r#"["{metric}", "{name}", {labels}, "{help}"]"#)
    }

    #[test]
    fn counters_histograms_and_gauges_merge_as_the_client_merges_them() {
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        let write = |name: &str, entries: &[(&str, f64, f64)]| {
            std::fs::write(dir.path().join(name), file(entries)).unwrap();
        };
        let requests = key(
            "requests",
            "requests_total",
            r#"{"path": "/"}"#,
            "Requests.",
        );
        write("counter_1.db", &[(&requests, 2.0, 0.0)]);
        write("counter_2.db", &[(&requests, 3.0, 0.0)]);
        let le = |b: &str| {
            key(
                "latency",
                "latency_bucket",
                &format!(r#"{{"le": "{b}"}}"#),
                "Latency.",
            )
        };
        let sum = key("latency", "latency_sum", "{}", "Latency.");
        write(
            "histogram_1.db",
            &[
                (&le("0.1"), 1.0, 0.0),
                (&le("+Inf"), 0.0, 0.0),
                (&sum, 0.05, 0.0),
            ],
        );
        write(
            "histogram_2.db",
            &[
                (&le("0.1"), 0.0, 0.0),
                (&le("+Inf"), 2.0, 0.0),
                (&sum, 3.0, 0.0),
            ],
        );
        let busy = key("busy", "busy", "{}", "Busy.");
        write(&format!("gauge_livesum_{me}.db"), &[(&busy, 1.0, 0.0)]);
        // A dead pid's live gauge is left out; a pid of 0 never exists.
        write("gauge_livesum_999999999.db", &[(&busy, 5.0, 0.0)]);
        let temp = key("temp", "temp", "{}", "Temp.");
        write("gauge_all_7.db", &[(&temp, 20.0, 0.0)]);
        write(
            "gauge_mostrecent_8.db",
            &[(&key("last", "last", "{}", "Last."), 4.0, 10.0)],
        );
        write(
            "gauge_mostrecent_9.db",
            &[(&key("last", "last", "{}", "Last."), 6.0, 5.0)],
        );
        std::fs::write(dir.path().join("junk.db"), b"not a metrics file").unwrap();
        std::fs::write(dir.path().join("counter_3.db"), [0xff; 6]).unwrap();

        let merged = merge_dir(dir.path());
        let lines: std::collections::BTreeSet<&str> = merged.text.lines().collect();
        for line in [
            "# HELP requests_total Requests.",
            "# TYPE requests_total counter",
            r#"requests_total{path="/"} 5.0"#,
            "# TYPE latency histogram",
            r#"latency_bucket{le="0.1"} 1.0"#,
            r#"latency_bucket{le="+Inf"} 3.0"#,
            "latency_count 3.0",
            "latency_sum 3.05",
            "busy 1.0",
            r#"temp{pid="7"} 20.0"#,
            "last 4.0",
        ] {
            assert!(lines.contains(line), "no {line} in\n{}", merged.text);
        }
        assert_eq!(merged.problems.len(), 2, "{:?}", merged.problems);
        assert!(merged.problems.iter().any(|p| p.starts_with("junk.db")));
        assert!(
            merged
                .problems
                .iter()
                .any(|p| p.starts_with("counter_3.db: truncated"))
        );
    }

    #[test]
    fn a_link_or_a_fifo_is_skipped_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.path().join("counter_1.db")).unwrap();
        nix::unistd::mkfifo(
            &dir.path().join("counter_2.db"),
            nix::sys::stat::Mode::S_IRWXU,
        )
        .unwrap();
        let merged = merge_dir(dir.path());
        assert_eq!(merged.text, "");
        assert_eq!(merged.problems.len(), 2, "{:?}", merged.problems);
    }
}
