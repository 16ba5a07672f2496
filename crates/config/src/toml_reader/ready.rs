//! A watcher's `ready = { tcp | http | cmd | notify | log, timeout,
//! interval }` and `health = { tcp | http | cmd, interval, timeout,
//! failures }`: one check each, read the same way.

use std::time::Duration;

use toml::Spanned;
use toml::de::DeValue;

use super::{Reader, WatcherKeys};
use crate::readiness::{
    DEFAULT_HEALTH_FAILURES, DEFAULT_HEALTH_INTERVAL, DEFAULT_HEALTH_TIMEOUT,
    DEFAULT_READY_INTERVAL, DEFAULT_READY_TIMEOUT, Health, Readiness, ReadyCheck,
};
use crate::template::Context;

const READY_KINDS: &[&str] = &["tcp", "http", "cmd", "notify", "log"];
const HEALTH_KINDS: &[&str] = &["tcp", "http", "cmd"];

/// A check table as written: its one check and the options given.
struct CheckTable {
    check: ReadyCheck,
    timeout: Option<Duration>,
    interval: Option<Duration>,
    failures: Option<u32>,
}

/// Reads `ready`, if the watcher has one.
pub(super) fn read_ready(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    ctx: &Context<'_>,
) -> Option<Readiness> {
    let table = read_check_table(reader, w, "ready", READY_KINDS, ctx)?;
    Some(Readiness {
        check: table.check,
        timeout: table.timeout.unwrap_or(DEFAULT_READY_TIMEOUT),
        interval: table.interval.unwrap_or(DEFAULT_READY_INTERVAL),
    })
}

/// Reads `health`, if the watcher has one.
pub(super) fn read_health(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    ctx: &Context<'_>,
) -> Option<Health> {
    let table = read_check_table(reader, w, "health", HEALTH_KINDS, ctx)?;
    Some(Health {
        check: table.check,
        interval: table.interval.unwrap_or(DEFAULT_HEALTH_INTERVAL),
        timeout: table.timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT),
        failures: table.failures.unwrap_or(DEFAULT_HEALTH_FAILURES),
    })
}

/// Reads the table `name` (`ready` or `health`): exactly one check of
/// `kinds`, and its options (`failures` for health only).
fn read_check_table(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    name: &str,
    kinds: &[&str],
    ctx: &Context<'_>,
) -> Option<CheckTable> {
    let value = w.get(name)?;
    let key = w.key(name);
    let table = reader.table(w.src, &key, value)?;
    let errors_before = reader.errors.len();
    let options: &[&str] = if name == "health" {
        &["interval", "timeout", "failures"]
    } else {
        &["timeout", "interval"]
    };
    let mut checks: Vec<(&str, ReadyCheck)> = Vec::new();
    let mut read = CheckTable {
        check: ReadyCheck::Notify,
        timeout: None,
        interval: None,
        failures: None,
    };
    for (item_key, item) in table {
        let item_name = item_key.get_ref().as_ref();
        let k = format!("{key}.{item_name}");
        if options.contains(&item_name) {
            read_option(reader, w, &k, item_name, item, &mut read);
        } else if kinds.contains(&item_name) {
            if let Some(check) = read_check(reader, w, &k, item_name, item, ctx) {
                checks.push((item_name, check));
            }
        } else {
            let known: Vec<&str> = kinds.iter().chain(options).copied().collect();
            reader.unknown_key(
                w.src,
                item_key.span().start,
                &format!("{key}."),
                item_name,
                &known,
                &[],
            );
        }
    }
    if reader.errors.len() > errors_before {
        return None;
    }
    match checks.len() {
        1 => checks.pop().map(|(_, check)| CheckTable { check, ..read }),
        0 => {
            let (last, first) = kinds.split_last().unwrap_or((&"", &[]));
            reader.invalid(
                w.src,
                value.span().start,
                &key,
                format!("names no check: give one of {} or {last}", first.join(", ")),
            );
            None
        }
        _ => {
            let names: Vec<&str> = checks.iter().map(|(n, _)| *n).collect();
            reader.invalid(
                w.src,
                value.span().start,
                &key,
                format!(
                    "gives {} checks ({}): give exactly one",
                    names.len(),
                    names.join(", ")
                ),
            );
            None
        }
    }
}

/// One of `timeout`, `interval` (more than 0) or `failures` (1 or more).
fn read_option(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    key: &str,
    name: &str,
    item: &Spanned<DeValue<'_>>,
    read: &mut CheckTable,
) {
    if name == "failures" {
        read.failures = reader
            .integer_in(w.src, key, item, 1, i64::from(u32::MAX))
            .map(|n| n as u32);
        return;
    }
    let Some(d) = reader.duration(w.src, key, item) else {
        return;
    };
    if d.is_zero() {
        reader.invalid(w.src, item.span().start, key, "must be more than 0");
    } else if name == "timeout" {
        read.timeout = Some(d);
    } else {
        read.interval = Some(d);
    }
}

fn read_check(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    key: &str,
    kind: &str,
    value: &Spanned<DeValue<'_>>,
    ctx: &Context<'_>,
) -> Option<ReadyCheck> {
    if kind == "notify" {
        if reader.boolean(w.src, key, value)? {
            return Some(ReadyCheck::Notify);
        }
        reader.invalid(
            w.src,
            value.span().start,
            key,
            "only `notify = true` means something: remove `ready` for no check",
        );
        return None;
    }
    if kind == "cmd" {
        return super::read_cmd(reader, w.src, key, value, false, ctx).map(ReadyCheck::Cmd);
    }
    let text = reader.string(w.src, key, value)?;
    match kind {
        "log" => match crate::readiness::log_pattern(text) {
            Ok(_) => Some(ReadyCheck::Log(text.to_owned())),
            Err(err) => {
                let first = err
                    .to_string()
                    .lines()
                    .last()
                    .unwrap_or("")
                    .trim()
                    .to_owned();
                reader.invalid(
                    w.src,
                    value.span().start,
                    key,
                    format!("not a regular expression: {first}"),
                );
                None
            }
        },
        "tcp" => {
            let template = reader.expand(w.src, key, value, text, ctx)?;
            let shown = template.render(1);
            if shown.contains("://")
                || !shown
                    .rsplit_once(':')
                    .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok())
            {
                reader.invalid(
                    w.src,
                    value.span().start,
                    key,
                    format!("'{text}' is not HOST:PORT"),
                );
                return None;
            }
            Some(ReadyCheck::Tcp(template))
        }
        _ => {
            let template = reader.expand(w.src, key, value, text, ctx)?;
            let shown = template.render(1);
            if shown.starts_with("https://") {
                reader.invalid(
                    w.src,
                    value.span().start,
                    key,
                    "https is not checked (no TLS client): check the plain http port",
                );
                return None;
            }
            if !shown.starts_with("http://") || shown.len() <= "http://".len() {
                reader.invalid(
                    w.src,
                    value.span().start,
                    key,
                    format!("'{text}' is not an http:// URL"),
                );
                return None;
            }
            Some(ReadyCheck::Http(template))
        }
    }
}
