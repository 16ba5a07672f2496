//! The ringmaster daemon core.
//!
//! Theory of operation: [`run`] sets up the process (subreaper, file limits,
//! close-on-exec), binds the control socket and then hands control to one
//! engine task that owns all supervisor state: every process, the pid map,
//! the timers and the pending requests. Everything else talks to it through
//! channels: control connections send requests with a oneshot for the
//! reply, log pumps run on their own thread, and signals (SIGCHLD above
//! all) are branches of the engine's select loop. Because the engine both
//! spawns and reaps, a pid is always registered before its exit can be
//! seen. There is no polling: the engine sleeps until a signal, a request
//! or a real deadline (start_secs, backoff, stop_timeout) wakes it.

mod checks;
mod control;
mod engine;
mod exits;
mod http;
mod jobs;
mod launch;
mod lifecycle;
mod listeners;
mod notify;
mod notify_ready;
mod os;
mod process;
mod refusal;
mod rolling;
mod sequence;
mod stats;
mod system;
mod table;

use std::path::PathBuf;

use ringmaster_config::Config;

pub use control::probe_socket;

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// Another daemon answers on the socket.
    #[error("another ringmasterd is already running on {}", path.display())]
    AlreadyRunning {
        /// The socket path.
        path: PathBuf,
    },
    /// The socket path exists and is not a socket.
    #[error("{} exists and is not a socket; refusing to replace it", path.display())]
    NotASocket {
        /// The path.
        path: PathBuf,
    },
    /// The socket could not be set up.
    #[error("cannot set up control socket {}: {source}", path.display())]
    Socket {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The socket group does not exist.
    #[error("socket_group '{0}' does not exist")]
    NoSocketGroup(String),
    /// The log thread could not start.
    #[error(transparent)]
    Logs(#[from] ringmaster_logs::LogError),
    /// The thread that watches children's pidfds could not start.
    #[error("cannot start the exit watcher: {0}")]
    ExitWatch(std::io::Error),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    /// A `[sockets.NAME]` could not be bound.
    #[error(transparent)]
    Bind(#[from] listeners::BindError),
    /// `[daemon] xmlrpc` could not be bound.
    #[error("cannot listen for XML-RPC on {address} ({location}): {source}")]
    XmlRpc {
        /// The address as configured.
        address: String,
        /// Where it was configured.
        location: String,
        /// Why.
        source: std::io::Error,
    },
    /// `[daemon] metrics` could not be bound.
    #[error("cannot listen for metrics on {address} ({location}): {source}")]
    Metrics {
        /// The address as configured.
        address: String,
        /// Where it was configured.
        location: String,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs the daemon until a requested shutdown completes. Returns the exit
/// code the process should exit with.
pub async fn run(config: Config) -> Result<i32, EngineError> {
    // While descriptor numbers are low: spawns then copy only a few.
    ringmaster_spawn::reserve_descriptors();
    let system = system::prepare();
    let (listener, authorizer, socket) = control::bind(&config.daemon)?;
    // Before any child runs, with the daemon's privileges; a failure
    // stops the start-up here, naming the socket and the address.
    let listeners = match listeners::Listeners::bind_all(&config.sockets) {
        Ok(listeners) => listeners,
        Err(err) => {
            socket.remove();
            return Err(err.into());
        }
    };
    let metrics = match bind_metrics(&config.daemon) {
        Ok(metrics) => metrics,
        Err(err) => {
            socket.remove();
            return Err(err);
        }
    };
    // Handlers first, so no SIGCHLD from the first spawn can be missed.
    let signals = os::Signals::install()?;
    let xmlrpc = match bind_xmlrpc(&config.daemon) {
        Ok(xmlrpc) => xmlrpc,
        Err(err) => {
            socket.remove();
            return Err(err);
        }
    };
    let trees = process_trees(&config.daemon);
    let engine = engine::Engine::new(config, system, Box::new(os::Kernel))?
        .with_listeners(listeners)
        .with_metrics(metrics)
        .with_xmlrpc(xmlrpc)
        .with_trees(trees);
    engine.run(listener, authorizer, socket, signals).await
}

/// Binds `[daemon] metrics`, when set.
fn bind_metrics(
    daemon: &ringmaster_config::DaemonConfig,
) -> Result<Option<std::net::TcpListener>, EngineError> {
    let Some(metrics) = &daemon.metrics else {
        return Ok(None);
    };
    std::net::TcpListener::bind(metrics.address)
        .map(Some)
        .map_err(|source| EngineError::Metrics {
            address: metrics.text.clone(),
            location: metrics.location.to_string(),
            source,
        })
}

/// Binds `[daemon] xmlrpc`, when set: the listener and its credentials.
fn bind_xmlrpc(
    daemon: &ringmaster_config::DaemonConfig,
) -> Result<Option<(std::net::TcpListener, Option<ringmaster_config::BasicAuth>)>, EngineError> {
    let Some(xmlrpc) = &daemon.xmlrpc else {
        return Ok(None);
    };
    std::net::TcpListener::bind(xmlrpc.address)
        .map(|listener| Some((listener, xmlrpc.auth.clone())))
        .map_err(|source| EngineError::XmlRpc {
            address: xmlrpc.text.clone(),
            location: xmlrpc.location.to_string(),
            source,
        })
}

/// The controllers each process's cgroup gets, where available.
const CONTROLLERS: &[&str] = &["cpu", "memory", "pids"];

/// The daemon's cgroup for its processes, with what a crashed daemon
/// left cleaned up; or none, with the reason logged once.
fn process_trees(daemon: &ringmaster_config::DaemonConfig) -> Option<ringmaster_cgroup::Tree> {
    if !daemon.cgroups {
        tracing::info!("cgroups = false: processes are stopped by process group");
        return None;
    }
    match ringmaster_cgroup::Tree::prepare(daemon.socket.as_os_str(), CONTROLLERS) {
        Ok(tree) => {
            let left = tree.clean_leftovers();
            if left > 0 {
                tracing::warn!(
                    cgroups = left,
                    "ended what a previous daemon left in its cgroups"
                );
            }
            tracing::info!(
                cgroup = %tree.base().display(),
                controllers = %tree.controllers().join(" "),
                "each process runs in a cgroup of its own"
            );
            Some(tree)
        }
        Err(err) => {
            tracing::warn!("cgroups unavailable ({err}): processes are stopped by process group");
            None
        }
    }
}
