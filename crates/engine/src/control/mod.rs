//! The control socket: binding it safely, checking who connects, and
//! moving request lines between clients and the engine.
//!
//! By concern: [`socket`] binds and secures the socket file, [`peer`]
//! checks who connects, [`framing`] reads request lines, [`requests`]
//! routes each request (to the engine, or served here), [`streams`]
//! serves `events` and `tail -f`; this file accepts connections and runs
//! each one.
//!
//! Each connection is its own task. It reads one line at a time (at most
//! [`MAX_LINE_BYTES`]; longer lines are discarded up to their newline and
//! answered with an error), forwards the parsed request to the engine with
//! a oneshot for the reply, and writes the reply back. A client that sends
//! slowly, never reads, or vanishes only ever holds up its own task.

mod framing;
mod peer;
mod requests;
mod socket;
mod streams;
mod supervisor;

use std::sync::Arc;
use std::time::Duration;

use ringmaster_logs::Tap;
use ringmaster_protocol::{ErrorKind as Kind, Event, ProcessName, Reply, Request};
use serde_json::Value;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::refusal::Refusal;
pub(crate) use peer::Authorizer;
pub use socket::probe_socket;
pub(crate) use socket::{SocketFile, bind};
pub(crate) use supervisor::start_tcp as serve_xmlrpc_tcp;

/// Most connections served at once (or half the daemon's open-file limit,
/// if that is lower): a client past it is answered `busy` and closed.
const MAX_CONNECTIONS: usize = 4096;
/// A connection with no request in flight and no stream open is closed
/// after this long (followers of `events` and `tail -f` never are).
pub(super) const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Once a request line has begun, the whole of it must arrive within this.
pub(super) const LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies a client may leave unread before it is cut off.
pub(super) const REPLY_QUEUE: usize = 64;
/// A client that does not take a reply within this time is dropped.
pub(super) const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer per connection; longer lines are gathered in a growing one.
pub(super) const READ_BUFFER: usize = 16 * 1024;

/// What a control connection asks the engine.
#[derive(Debug)]
pub(crate) enum Input {
    /// A request answered with one reply.
    Request(Incoming),
    /// The tail buffers of a watcher's or process's stream, for `tail`.
    Taps {
        name: String,
        stderr: bool,
        reply: oneshot::Sender<Result<Vec<TapTarget>, Refusal>>,
    },
    /// The figures of `/metrics`, `/health` and `/targets` (asked by the
    /// HTTP listener, which talks to the engine as a connection does).
    Metrics {
        reply: oneshot::Sender<ringmaster_metrics::Snapshot>,
    },
}

/// One stream to tail.
#[derive(Debug)]
pub(crate) struct TapTarget {
    pub name: ProcessName,
    /// Its alias, the name people read.
    pub alias: Option<String>,
    pub stream: &'static str,
    pub tap: Arc<Tap>,
}

/// A request from a connection, with where to send the reply.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub id: Value,
    pub request: Request,
    pub reply: oneshot::Sender<Reply>,
}

/// Accepts connections until `token` is cancelled, then waits (briefly)
/// for connections to write their last replies. Accepting never waits for
/// a connection to end: past the limit, or out of descriptors, a client
/// is told `busy` at once and closed, so a crowd of idle or slow clients
/// can never lock out `ringmasterctl stop`.
pub(crate) async fn serve(
    listener: UnixListener,
    authorizer: Authorizer,
    engine: mpsc::Sender<Input>,
    events: broadcast::Sender<Arc<Event>>,
    token: CancellationToken,
) {
    let authorizer = Arc::new(authorizer);
    let limit = connection_limit();
    let mut connections = JoinSet::new();
    // Kept open so that, out of descriptors, one can be freed to accept
    // and answer a client instead of leaving it hanging in the backlog.
    let mut reserve = spare_descriptor();
    let mut accept_backoff = Duration::from_millis(10);
    let mut out_of_fds = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = token.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) if connections.len() >= limit => {
                refuse(
                    stream,
                    &format!("the daemon serves {limit} connections already; try again"),
                );
            }
            Ok((stream, _)) => {
                accept_backoff = Duration::from_millis(10);
                if std::mem::take(&mut out_of_fds) {
                    tracing::info!("control socket: accepting connections again");
                }
                let authorizer = authorizer.clone();
                let engine = engine.clone();
                let events = events.clone();
                let token = token.clone();
                connections.spawn(async move {
                    connection(stream, &authorizer, &engine, &events, &token).await;
                });
            }
            Err(err) if is_out_of_descriptors(&err) => {
                if !std::mem::replace(&mut out_of_fds, true) {
                    tracing::warn!(
                        connections = connections.len(),
                        "control socket: out of file descriptors ({err}); answering new clients busy"
                    );
                }
                drop(reserve.take());
                if let Ok(Ok((stream, _))) =
                    tokio::time::timeout(Duration::from_millis(10), listener.accept()).await
                {
                    refuse(stream, "the daemon is out of file descriptors; try again");
                }
                reserve = spare_descriptor();
                tokio::time::sleep(accept_backoff).await;
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
            }
            Err(err) => {
                tracing::warn!("accept failed on the control socket: {err}");
                tokio::time::sleep(accept_backoff).await;
                accept_backoff = (accept_backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    connections.abort_all();
}

/// [`MAX_CONNECTIONS`], or half the open-file limit when that is lower
/// (the rest is for children's pipes and log files).
fn connection_limit() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    MAX_CONNECTIONS
        .min(usize::try_from(soft / 2).unwrap_or(MAX_CONNECTIONS))
        .max(1)
}

fn is_out_of_descriptors(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(code) if code == nix::libc::EMFILE || code == nix::libc::ENFILE)
}

fn spare_descriptor() -> Option<std::fs::File> {
    std::fs::File::open("/dev/null").ok()
}

/// Tells a client it cannot be served now and closes the connection,
/// without waiting for it (the short line fits any socket buffer).
fn refuse(stream: UnixStream, message: &str) {
    let line = Reply::failure(Value::Null, Kind::Busy, message).to_line();
    if let Ok(stream) = stream.into_std() {
        let _ = std::io::Write::write(&mut &stream, line.as_bytes());
    }
}

async fn connection(
    stream: UnixStream,
    authorizer: &Authorizer,
    engine: &mpsc::Sender<Input>,
    events: &broadcast::Sender<Arc<Event>>,
    token: &CancellationToken,
) {
    let cred = stream.peer_cred();
    if matches!(&cred, Ok(cred) if authorizer.allows(cred.uid(), cred.gid()))
        && speaks_http(&stream).await
    {
        return supervisor::serve(stream, engine.clone()).await;
    }
    let (read, mut write) = stream.into_split();
    match cred {
        Ok(cred) if authorizer.allows(cred.uid(), cred.gid()) => {}
        Ok(cred) => {
            tracing::warn!(
                uid = cred.uid(),
                pid = cred.pid(),
                "refused a control connection"
            );
            let reply = Reply::failure(
                Value::Null,
                Kind::PermissionDenied,
                format!(
                    "uid {} may not use this socket (allowed: root, the daemon's user, and members of socket_group)",
                    cred.uid()
                ),
            );
            let _ =
                tokio::time::timeout(WRITE_TIMEOUT, write.write_all(reply.to_line().as_bytes()))
                    .await;
            return;
        }
        Err(err) => {
            tracing::warn!("cannot read peer credentials: {err}; refusing connection");
            return;
        }
    }
    let mut reader = BufReader::with_capacity(READ_BUFFER, read);
    let (replies, queue) = mpsc::channel::<String>(REPLY_QUEUE);
    // Requests are read and answered in order while earlier replies are
    // still being written; a client that reads none of them is cut off
    // once REPLY_QUEUE are waiting.
    let requests = requests::serve_requests(&mut reader, replies, engine, events, token);
    let writer = write_replies(&mut write, queue);
    tokio::pin!(writer);
    tokio::select! {
        ended = requests => {
            // Done: the writer finishes what is queued. Cut off: the
            // socket closes now, so the client's writes fail at once.
            if ended == Ended::Done {
                writer.await;
            }
        }
        // The client stopped taking replies (or left): nothing to serve.
        () = &mut writer => {}
    }
}

/// Whether the client speaks HTTP (supervisord's XML-RPC, `POST /RPC2`)
/// rather than NDJSON, whose lines begin with `{`: its first byte, read
/// without taking it, is an upper-case letter. A client that sends
/// nothing within [`LINE_TIMEOUT`] is taken for an NDJSON one.
async fn speaks_http(stream: &UnixStream) -> bool {
    use std::os::fd::AsRawFd;
    let peek = stream.async_io(tokio::io::Interest::READABLE, || {
        let mut first = [0u8; 1];
        match nix::sys::socket::recv(
            stream.as_raw_fd(),
            &mut first,
            nix::sys::socket::MsgFlags::MSG_PEEK | nix::sys::socket::MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(0) => Ok(None),
            Ok(_) => Ok(Some(first[0])),
            Err(errno) => Err(std::io::Error::from(errno)),
        }
    });
    matches!(
        tokio::time::timeout(LINE_TIMEOUT, peek).await,
        Ok(Ok(Some(first))) if first.is_ascii_uppercase()
    )
}

/// How a connection's request loop ended.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Ended {
    /// The client closed, a stream ended, or the daemon is stopping: the
    /// replies queued so far are still written.
    Done,
    /// The client is cut off (too slow, idle, or not reading its replies).
    Cut,
}

/// Writes queued lines until the queue closes, or the client stops taking
/// them.
async fn write_replies<W: AsyncWriteExt + Unpin>(write: &mut W, mut queue: mpsc::Receiver<String>) {
    while let Some(line) = queue.recv().await {
        let written = tokio::time::timeout(WRITE_TIMEOUT, write.write_all(line.as_bytes())).await;
        if !matches!(written, Ok(Ok(()))) {
            return;
        }
    }
}
