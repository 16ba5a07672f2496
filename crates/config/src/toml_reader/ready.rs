//! A watcher's `ready = { tcp | http | notify | log, timeout, interval }`.

use toml::Spanned;
use toml::de::DeValue;

use super::{Reader, WatcherKeys};
use crate::readiness::{DEFAULT_READY_INTERVAL, DEFAULT_READY_TIMEOUT, Readiness, ReadyCheck};
use crate::template::Context;

const KINDS: &[&str] = &["tcp", "http", "cmd", "notify", "log"];
const KINDS_LATER: &[&str] = &[];
const OPTIONS: &[&str] = &["timeout", "interval"];

/// Reads `ready`, if the watcher has one.
pub(super) fn read_ready(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    ctx: &Context<'_>,
) -> Option<Readiness> {
    let value = w.get("ready")?;
    let key = w.key("ready");
    let table = reader.table(w.src, &key, value)?;
    let errors_before = reader.errors.len();
    let mut checks: Vec<(&str, ReadyCheck)> = Vec::new();
    let mut timeout = DEFAULT_READY_TIMEOUT;
    let mut interval = DEFAULT_READY_INTERVAL;
    for (name_key, item) in table {
        let name = name_key.get_ref().as_ref();
        let k = format!("{key}.{name}");
        match name {
            "timeout" | "interval" => {
                if let Some(d) = reader.duration(w.src, &k, item) {
                    if d.is_zero() {
                        reader.invalid(w.src, item.span().start, &k, "must be more than 0");
                    } else if name == "timeout" {
                        timeout = d;
                    } else {
                        interval = d;
                    }
                }
            }
            "tcp" | "http" | "cmd" | "notify" | "log" => {
                if let Some(check) = read_check(reader, w, &k, name, item, ctx) {
                    checks.push((name, check));
                }
            }
            other => {
                let known: Vec<&str> = KINDS.iter().chain(OPTIONS).copied().collect();
                reader.unknown_key(
                    w.src,
                    name_key.span().start,
                    &format!("{key}."),
                    other,
                    &known,
                    KINDS_LATER,
                );
            }
        }
    }
    if reader.errors.len() > errors_before {
        return None;
    }
    match checks.len() {
        1 => checks.pop().map(|(_, check)| Readiness {
            check,
            timeout,
            interval,
        }),
        0 => {
            reader.invalid(
                w.src,
                value.span().start,
                &key,
                "names no check: give one of tcp, http, cmd, notify or log",
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
        "log" => match regex::Regex::new(text) {
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
