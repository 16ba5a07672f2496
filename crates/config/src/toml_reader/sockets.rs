//! `[sockets.NAME]` tables, and the checks that tie watchers' `sockets`
//! to them.

use std::collections::HashMap;
use std::path::Path;

use toml::Spanned;
use toml::de::DeValue;

use super::{Reader, Source, WatcherKeys};
use crate::error::ConfigError;
use crate::listen::{SocketAddress, SocketConfig};
use crate::model::WatcherConfig;

const SOCKET_KEYS: &[&str] = &["address", "backlog", "reuseport", "mode", "owner", "group"];

/// Reads the `[sockets]` table of one file.
pub(super) fn read_sockets(
    reader: &mut Reader,
    src: &Source<'_>,
    value: &Spanned<DeValue<'_>>,
) -> Vec<SocketConfig> {
    let Some(table) = reader.table(src, "sockets", value) else {
        return Vec::new();
    };
    table
        .iter()
        .filter_map(|(name, value)| read_socket(reader, src, name, value))
        .collect()
}

fn read_socket(
    reader: &mut Reader,
    src: &Source<'_>,
    name_key: &Spanned<std::borrow::Cow<'_, str>>,
    value: &Spanned<DeValue<'_>>,
) -> Option<SocketConfig> {
    let name = name_key.get_ref().as_ref();
    let path = format!("sockets.{name}");
    let location = src.location(name_key.span().start);
    if !super::valid_watcher_name(name) {
        reader.invalid(
            src,
            name_key.span().start,
            &path,
            "socket names use letters, digits, '_', '-' and '.'",
        );
    }
    let table = reader.table(src, &path, value)?;
    let errors_before = reader.errors.len();
    let mut address = None;
    let mut socket = SocketConfig::new(name, SocketAddress::Unix("/".into()), location.clone());
    let mut unix_only = Vec::new();
    for (key, value) in table {
        let key_name = key.get_ref().as_ref();
        let k = format!("{path}.{key_name}");
        match key_name {
            "address" => {
                // $(env.VAR) and $(here), as in the daemon's own paths.
                let daemon_env = |var: &str| std::env::var(var).ok();
                let ctx = crate::template::Context {
                    name: "",
                    here: &src.here,
                    env: &daemon_env,
                    sockets: &[],
                    metrics_port: None,
                };
                let text = reader.string(src, &k, value).map(str::to_owned);
                if let Some(text) = text
                    && let Some(expanded) = reader.expand(src, &k, value, &text, &ctx)
                {
                    if expanded.uses_wid() {
                        let why = "$(wid) means nothing here: the daemon binds one socket for every process";
                        reader.invalid(src, value.span().start, &k, why);
                        continue;
                    }
                    match SocketAddress::parse(&expanded.render(0), Path::new(&src.here)) {
                        Ok(parsed) => address = Some(parsed),
                        Err(message) => reader.invalid(src, value.span().start, &k, message),
                    }
                }
            }
            "backlog" => {
                if let Some(n) = reader.integer_in(src, &k, value, 1, i64::from(i32::MAX)) {
                    socket.backlog = n as u32;
                }
            }
            "reuseport" => socket.reuseport = reader.boolean(src, &k, value).unwrap_or(false),
            "mode" => {
                socket.mode = reader.octal(src, &k, value, 0o777);
                unix_only.push((k, value.span().start));
            }
            "owner" | "group" => {
                let text = reader.string(src, &k, value).map(str::to_owned);
                if key_name == "owner" {
                    socket.owner = text;
                } else {
                    socket.group = text;
                }
                unix_only.push((k, value.span().start));
            }
            other => reader.unknown_key(
                src,
                key.span().start,
                &format!("{path}."),
                other,
                SOCKET_KEYS,
                &[],
            ),
        }
    }
    let Some(address) = address else {
        if reader.errors.len() == errors_before {
            reader.invalid(
                src,
                name_key.span().start,
                &format!("{path}.address"),
                "missing: every socket needs an address (tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH)",
            );
        }
        return None;
    };
    socket.address = address;
    if !socket.address.is_unix() {
        for (key, offset) in unix_only {
            reader.invalid(
                src,
                offset,
                &key,
                "only a unix:// socket has a file to set this on",
            );
        }
    }
    if reader.system_checks {
        check_socket_owner(reader, &socket);
    }
    (reader.errors.len() == errors_before).then_some(socket)
}

/// A unix socket's owner and group exist on this machine.
fn check_socket_owner(reader: &mut Reader, socket: &SocketConfig) {
    let mut missing = |key: &str, message: String| {
        reader.errors.push(ConfigError::Invalid {
            location: socket.location.clone(),
            key: format!("sockets.{}.{key}", socket.name),
            message,
        });
    };
    if let Some(owner) = socket.owner.as_deref()
        && owner.parse::<u32>().is_err()
        && !matches!(nix::unistd::User::from_name(owner), Ok(Some(_)))
    {
        missing("owner", format!("no such user '{owner}'"));
    }
    if let Some(group) = socket.group.as_deref()
        && group.parse::<u32>().is_err()
        && !matches!(nix::unistd::Group::from_name(group), Ok(Some(_)))
    {
        missing("group", format!("no such group '{group}'"));
    }
}

/// A watcher's `sockets` list: names, each once.
pub(super) fn read_watcher_sockets(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
) -> Vec<String> {
    read_names(reader, w, "sockets", "socket")
}

/// A watcher's list of names (`sockets`, `depends_on`), each given once;
/// `what` is what a name names.
pub(super) fn read_names(
    reader: &mut Reader,
    w: &WatcherKeys<'_, '_, '_>,
    list: &str,
    what: &str,
) -> Vec<String> {
    let Some(value) = w.get(list) else {
        return Vec::new();
    };
    let (src, key) = (w.src, w.key(list));
    let key = key.as_str();
    let DeValue::Array(items) = value.get_ref() else {
        let expected = format!("a list of {what} names");
        reader.type_error(src, key, value, &expected, value.get_ref());
        return Vec::new();
    };
    let mut names: Vec<String> = Vec::new();
    for item in items {
        let Some(name) = reader.string(src, key, item) else {
            continue;
        };
        if names.iter().any(|n| n == name) {
            reader.invalid(
                src,
                item.span().start,
                key,
                format!("{what} '{name}' is listed twice"),
            );
        } else {
            names.push(name.to_owned());
        }
    }
    names
}

/// Every socket a watcher names is defined, and no two sockets share an
/// address (the second bind would fail at start-up).
pub(super) fn check_sockets(
    reader: &mut Reader,
    sockets: &[SocketConfig],
    watchers: &[(WatcherConfig, crate::error::Location)],
) {
    let mut by_name: HashMap<&str, &SocketConfig> = HashMap::new();
    let mut by_address: HashMap<String, &SocketConfig> = HashMap::new();
    for socket in sockets {
        if let Some(first) = by_name.insert(&socket.name, socket) {
            reader.errors.push(ConfigError::Invalid {
                location: socket.location.clone(),
                key: format!("sockets.{}", socket.name),
                message: format!(
                    "duplicate socket '{}' (first defined at {})",
                    socket.name, first.location
                ),
            });
            continue;
        }
        let address = socket.address.to_string();
        let ephemeral = matches!(&socket.address, SocketAddress::Tcp(a) | SocketAddress::Udp(a) if a.port() == 0);
        if !ephemeral
            && !socket.reuseport
            && let Some(first) = by_address.insert(address.clone(), socket)
        {
            reader.errors.push(ConfigError::Invalid {
                location: socket.location.clone(),
                key: format!("sockets.{}.address", socket.name),
                message: format!(
                    "{address} is already socket '{}' (at {})",
                    first.name, first.location
                ),
            });
        }
    }
    for (watcher, _) in watchers {
        warn_if_the_check_is_the_socket(reader, watcher, &by_name);
        let named = watcher.sockets.iter().map(|n| ("sockets", n));
        for (key, name) in named.chain(watcher.stdin_socket.iter().map(|n| ("stdin_socket", n))) {
            if !by_name.contains_key(name.as_str()) {
                let hint = ringmaster_protocol::did_you_mean(name, by_name.keys().copied())
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                reader
                    .errors
                    .push(watcher.invalid(key, format!("no socket '{name}' is defined{hint}")));
            }
        }
    }
}

/// A `tcp` check (`ready` or `health`) on the watcher's own socket always passes:
/// the daemon's socket accepts into its backlog before any worker does.
fn warn_if_the_check_is_the_socket(
    reader: &mut Reader,
    watcher: &WatcherConfig,
    sockets: &HashMap<&str, &SocketConfig>,
) {
    let checks = [
        ("ready", watcher.ready.as_ref().map(|r| &r.check)),
        ("health", watcher.health.as_ref().map(|h| &h.check)),
    ];
    for (key, check) in checks {
        let Some(crate::readiness::ReadyCheck::Tcp(target)) = check else {
            continue;
        };
        let Ok(target) = target.render(1).parse::<std::net::SocketAddr>() else {
            continue;
        };
        let held = watcher
            .sockets
            .iter()
            .filter_map(|n| sockets.get(n.as_str()))
            .any(|s| {
                matches!(&s.address, SocketAddress::Tcp(a)
                if a.port() == target.port() && (a.ip() == target.ip() || a.ip().is_unspecified()))
            });
        if held {
            let instead = if key == "ready" {
                "use notify or log, or a check on a port of the worker's own"
            } else {
                "use a cmd check, or a check on a port of the worker's own"
            };
            reader.warnings.push(crate::error::ConfigWarning {
                location: watcher.location(key),
                key: format!("watchers.{}.{key}", watcher.name),
                message: format!(
                    "always passes: {target} is this watcher's own socket, which the daemon holds (connections wait in its backlog before any worker accepts); {instead}"
                ),
            });
        }
    }
}
