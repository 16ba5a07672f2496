//! The control socket: binding it safely, checking who connects, and
//! moving request lines between clients and the engine.
//!
//! Each connection is its own task. It reads one line at a time (at most
//! [`MAX_LINE_BYTES`]; longer lines are discarded up to their newline and
//! answered with an error), forwards the parsed request to the engine with
//! a oneshot for the reply, and writes the reply back. A client that sends
//! slowly, never reads, or vanishes only ever holds up its own task.

use std::ffi::OsStr;
use std::io::ErrorKind;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::unistd::{Gid, Group, Uid, User};
use ringmaster_config::DaemonConfig;
use ringmaster_logs::{Chunk, Tap};
use ringmaster_protocol::{
    ErrorKind as Kind, Event, MAX_LINE_BYTES, Output, ProcessName, Reply, Request, StreamLine,
    TailArgs, TailResult,
};
use ringmaster_safefs::{Dir, SafeError};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::EngineError;
use crate::refusal::Refusal;

/// Most connections served at once (or half the daemon's open-file limit,
/// if that is lower): a client past it is answered `busy` and closed.
const MAX_CONNECTIONS: usize = 4096;
/// A connection with no request in flight and no stream open is closed
/// after this long (followers of `events` and `tail -f` never are).
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);
/// Once a request line has begun, the whole of it must arrive within this.
const LINE_TIMEOUT: Duration = Duration::from_secs(10);
/// Replies a client may leave unread before it is cut off.
const REPLY_QUEUE: usize = 64;
/// A client that does not take a reply within this time is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Read buffer per connection; longer lines are gathered in a growing one.
const READ_BUFFER: usize = 16 * 1024;

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
}

/// One stream to tail.
#[derive(Debug)]
pub(crate) struct TapTarget {
    pub name: ProcessName,
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

/// Decides which peers may use the socket (spec §7).
#[derive(Debug, Clone)]
pub(crate) struct Authorizer {
    daemon_uid: Uid,
    group: Option<Gid>,
}

impl Authorizer {
    fn allows(&self, uid: u32, gid: u32) -> bool {
        if uid == 0 || uid == self.daemon_uid.as_raw() {
            return true;
        }
        let Some(group) = self.group else {
            return false;
        };
        if gid == group.as_raw() {
            return true;
        }
        // Supplementary membership, resolved from the peer's passwd entry.
        let Ok(Some(user)) = User::from_uid(Uid::from_raw(uid)) else {
            return false;
        };
        let Ok(name) = std::ffi::CString::new(user.name) else {
            return false;
        };
        nix::unistd::getgrouplist(&name, user.gid).is_ok_and(|groups| groups.contains(&group))
    }
}

/// The start-up error for a socket at `path` that cannot be set up safely.
fn socket_error(path: &Path) -> impl Fn(SafeError) -> EngineError + Copy + '_ {
    move |source| EngineError::Socket {
        path: path.to_path_buf(),
        source: std::io::Error::other(source.to_string()),
    }
}

/// Checks whether a daemon answers at `path`: `Ok(true)` if one does,
/// `Ok(false)` if the path is absent or a stale socket.
pub fn probe_socket(path: &Path) -> Result<bool, EngineError> {
    let socket_err = socket_error(path);
    let (dir, name) = ringmaster_safefs::split(path).ok_or_else(|| EngineError::NotASocket {
        path: path.to_path_buf(),
    })?;
    let dir = match Dir::open(dir, false) {
        Ok(dir) => dir,
        Err(err) if err.is_not_found() => return Ok(false),
        Err(err) => return Err(socket_err(err)),
    };
    probe_in(&dir, name, path)
}

/// [`probe_socket`] for `name` in an opened directory.
fn probe_in(dir: &Dir, name: &OsStr, path: &Path) -> Result<bool, EngineError> {
    let socket_err = socket_error(path);
    match dir.stat(name).map_err(socket_err)? {
        None => Ok(false),
        Some(stat) if stat.st_mode & nix::libc::S_IFMT != nix::libc::S_IFSOCK => {
            Err(EngineError::NotASocket {
                path: path.to_path_buf(),
            })
        }
        Some(_) => Ok(std::os::unix::net::UnixStream::connect(
            dir.fd_path(name).map_err(socket_err)?,
        )
        .is_ok()),
    }
}

/// The control socket's file, removed when the daemon exits (through its
/// directory's descriptor, like every other operation on it).
#[derive(Debug)]
pub(crate) struct SocketFile {
    dir: Dir,
    name: std::ffi::OsString,
}

impl SocketFile {
    /// Removes the socket file.
    pub fn remove(&self) {
        let _ = self.dir.unlink(&self.name);
    }
}

/// Binds the control socket with the configured mode and group. A live
/// daemon on the same path is an error; a stale socket file is replaced.
/// Every step goes through the socket directory's descriptor, reached by
/// a checked walk (ringmaster-safefs), so a directory other users can
/// write cannot redirect the unlink, the bind, the chown or the chmod.
pub(crate) fn bind(
    daemon: &DaemonConfig,
) -> Result<(UnixListener, Authorizer, SocketFile), EngineError> {
    let path = &daemon.socket;
    let socket_err = socket_error(path);
    let group = match &daemon.socket_group {
        None => None,
        Some(name) => Some(
            Group::from_name(name)
                .ok()
                .flatten()
                .ok_or_else(|| EngineError::NoSocketGroup(name.clone()))?
                .gid,
        ),
    };
    let (dir, name) = ringmaster_safefs::split(path)
        .ok_or_else(|| EngineError::NotASocket { path: path.clone() })?;
    let dir = open_parent(dir).map_err(socket_err)?;
    if probe_in(&dir, name, path)? {
        return Err(EngineError::AlreadyRunning { path: path.clone() });
    }
    match dir.unlink(name) {
        Ok(()) => tracing::info!(socket = %path.display(), "removed a stale control socket"),
        Err(err) if err.is_not_found() => {}
        Err(err) => return Err(socket_err(err)),
    }
    // Bound under a temporary name, given its group and mode, then renamed
    // into place: nobody can connect before it is set up as configured,
    // and a daemon started at the same moment on the same path is refused
    // rather than replaced (the rename does not replace).
    let mut staging = std::ffi::OsString::from(format!(".{}.", std::process::id()));
    staging.push(name);
    let _ = dir.unlink(&staging);
    let listener =
        UnixListener::bind(dir.fd_path(&staging).map_err(socket_err)?).map_err(|source| {
            EngineError::Socket {
                path: path.clone(),
                source,
            }
        })?;
    let placed = dir
        .secure_socket(&staging, group, daemon.socket_mode)
        .and_then(|()| dir.rename_no_replace(&staging, name));
    if let Err(err) = placed {
        let _ = dir.unlink(&staging);
        return Err(socket_err(err));
    }
    Ok((
        listener,
        Authorizer {
            daemon_uid: Uid::effective(),
            group,
        },
        SocketFile {
            dir,
            name: name.to_os_string(),
        },
    ))
}

/// Opens the socket's directory, creating it if needed. The per-user
/// fallback directory under /tmp must be ours and private, or we refuse it.
fn open_parent(dir: &Path) -> Result<Dir, SafeError> {
    let fallback = PathBuf::from(format!("/tmp/ringmaster-{}", Uid::effective()));
    if dir != fallback {
        return Dir::open(dir, true);
    }
    match std::fs::create_dir(dir) {
        Ok(()) => std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| SafeError::Io {
                path: dir.to_path_buf(),
                source,
            },
        )?,
        Err(err) if err.kind() == ErrorKind::AlreadyExists => {}
        Err(source) => {
            return Err(SafeError::Io {
                path: dir.to_path_buf(),
                source,
            });
        }
    }
    let opened = Dir::open(dir, false)?;
    // Walked without following a planted symlink; now it must be ours alone.
    if opened.writers().is_some() || !opened.is_private() {
        return Err(SafeError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::new(
                ErrorKind::PermissionDenied,
                "is not a private directory owned by us",
            ),
        });
    }
    Ok(opened)
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
    let requests = serve_requests(&mut reader, replies, engine, events, token);
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

/// How a connection's request loop ended.
#[derive(Debug, PartialEq, Eq)]
enum Ended {
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

/// What ended a wait for the next request line.
enum Next {
    Line(std::io::Result<Line>),
    Idle,
    Slow,
    Cancelled,
}

/// Reads the next request line: the first byte within [`IDLE_TIMEOUT`],
/// the rest within [`LINE_TIMEOUT`].
async fn read_request<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    token: &CancellationToken,
) -> Next {
    // fill_buf is cancel-safe: what it read stays in the buffer.
    let first = tokio::select! {
        first = tokio::time::timeout(IDLE_TIMEOUT, reader.fill_buf()) => first,
        () = token.cancelled() => return Next::Cancelled,
    };
    match first {
        Err(_) => return Next::Idle,
        Ok(Err(err)) => return Next::Line(Err(err)),
        Ok(Ok(_)) => {}
    }
    tokio::select! {
        next = tokio::time::timeout(LINE_TIMEOUT, next_line(reader, line)) => {
            next.map_or(Next::Slow, Next::Line)
        }
        () = token.cancelled() => Next::Cancelled,
    }
}

/// The request loop of one connection: each reply goes to `replies`.
/// Streams (`events`, `tail -f`) take the connection over until it closes.
async fn serve_requests<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    replies: mpsc::Sender<String>,
    engine: &mpsc::Sender<Input>,
    events: &broadcast::Sender<Arc<Event>>,
    token: &CancellationToken,
) -> Ended {
    let mut line = Vec::new();
    loop {
        let reply = match read_request(reader, &mut line, token).await {
            Next::Cancelled | Next::Line(Err(_) | Ok(Line::Eof)) => return Ended::Done,
            Next::Idle => {
                let secs = IDLE_TIMEOUT.as_secs();
                let reply = Reply::failure(
                    Value::Null,
                    Kind::Timeout,
                    format!("no request for {secs}s; closing the connection"),
                );
                // Said if there is room; the connection closes either way.
                let _ = replies.try_send(reply.to_line());
                return Ended::Done;
            }
            Next::Slow => {
                let secs = LINE_TIMEOUT.as_secs();
                let reply = Reply::failure(
                    Value::Null,
                    Kind::Timeout,
                    format!("request line not completed within {secs}s; closing the connection"),
                );
                let _ = replies.try_send(reply.to_line());
                return Ended::Done;
            }
            Next::Line(Ok(Line::TooLong)) => Reply::failure(
                Value::Null,
                Kind::LineTooLong,
                format!("request line longer than {MAX_LINE_BYTES} bytes; discarded"),
            ),
            Next::Line(Ok(Line::Complete)) => {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let (id, parsed) = Request::parse_line(&line);
                match parsed {
                    Err(err) => Reply::failure(id, err.kind, err.message),
                    Ok(Request::Events) => {
                        // The connection becomes a stream until either side closes.
                        stream_events(id, events.subscribe(), reader, &replies, token).await;
                        return Ended::Done;
                    }
                    Ok(Request::Tail(args)) => match taps(engine, &args).await {
                        Err(refusal) => refusal.reply(id),
                        Ok(targets) if args.follow => {
                            stream_tail(id, targets, args.lines, reader, &replies, token).await;
                            return Ended::Done;
                        }
                        Ok(targets) => Reply::success(
                            id,
                            &TailResult {
                                processes: targets
                                    .iter()
                                    .map(|t| output(t, &t.tap.snapshot(args.lines).0, 0))
                                    .collect(),
                            },
                        ),
                    },
                    Ok(Request::Stats(args)) => stats(engine, id, args).await,
                    Ok(request) => ask_engine(engine, id, request).await,
                }
            }
        };
        if replies.try_send(reply.to_line()).is_err() {
            // Full: the client reads none of its replies. Closed: the
            // writer gave up on it.
            tracing::debug!("control client not reading its replies; closing the connection");
            return Ended::Cut;
        }
        // One request per turn: a client pouring in lines (garbage, or a
        // script in a loop) must not keep the thread from the engine and
        // from new connections, whose readiness the runtime only looks at
        // between turns.
        tokio::task::yield_now().await;
    }
}

/// Resolves when a streaming client closes its end; anything it sends
/// meanwhile is read and ignored. Cancel-safe: `fill_buf` keeps its data.
async fn closed<R: AsyncBufRead + Unpin>(reader: &mut R) {
    loop {
        match reader.fill_buf().await {
            Ok([]) | Err(_) => return,
            Ok(bytes) => {
                let used = bytes.len();
                reader.consume(used);
            }
        }
    }
}

/// Sends every event to the client until it disconnects or the daemon
/// stops. A client that reads too slowly never holds up the engine: the
/// broadcast drops what it has not taken, and the client is told how much.
async fn stream_events<R: AsyncBufRead + Unpin>(
    id: Value,
    mut events: broadcast::Receiver<Arc<Event>>,
    reader: &mut R,
    out: &mpsc::Sender<String>,
    token: &CancellationToken,
) {
    loop {
        let line = tokio::select! {
            received = events.recv() => match received {
                Ok(event) => StreamLine { id: id.clone(), event: Some((*event).clone()), skipped: None, output: None },
                Err(broadcast::error::RecvError::Lagged(skipped)) => {
                    StreamLine { id: id.clone(), event: None, skipped: Some(skipped), output: None }
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            () = closed(reader) => break,
            () = token.cancelled() => break,
        };
        let mut text = serde_json::to_string(&line).unwrap_or_default();
        text.push('\n');
        if !send_streamed(out, text, reader).await {
            break;
        }
    }
}

/// Queues one line of a stream, waiting for room (the broadcast behind
/// it drops what a slow client cannot take, and says so); false when the
/// client is gone.
async fn send_streamed<R: AsyncBufRead + Unpin>(
    out: &mpsc::Sender<String>,
    line: String,
    reader: &mut R,
) -> bool {
    tokio::select! {
        sent = out.send(line) => sent.is_ok(),
        () = closed(reader) => false,
    }
}

async fn taps(engine: &mpsc::Sender<Input>, args: &TailArgs) -> Result<Vec<TapTarget>, Refusal> {
    let (reply, answer) = oneshot::channel();
    let gone = || Refusal::Gone;
    let input = Input::Taps {
        name: args.name.clone(),
        stderr: args.stream.as_deref() == Some("stderr"),
        reply,
    };
    engine.send(input).await.map_err(|_| gone())?;
    answer.await.map_err(|_| gone())?
}

fn output(target: &TapTarget, data: &[u8], skipped_bytes: u64) -> Output {
    Output {
        name: target.name.clone(),
        stream: target.stream.to_owned(),
        data: String::from_utf8_lossy(data).into_owned(),
        skipped_bytes,
    }
}

/// `tail -f`: the kept tail, then every new chunk, until either side
/// closes. Each stream is forwarded by its own small task into one bounded
/// channel; when this client is slow the forwarders wait, their broadcast
/// receivers fall behind and drop chunks, and the next chunk tells the
/// client how many bytes it missed. The process is never slowed.
async fn stream_tail<R: AsyncBufRead + Unpin>(
    id: Value,
    targets: Vec<TapTarget>,
    lines: Option<usize>,
    reader: &mut R,
    out: &mpsc::Sender<String>,
    token: &CancellationToken,
) {
    let (tx, mut rx) = mpsc::channel::<(usize, Chunk)>(64);
    let mut forwarders = JoinSet::new();
    let mut next_offsets = Vec::with_capacity(targets.len());
    let mut first = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        // Subscribe before the snapshot, so nothing falls between them.
        let mut live = target.tap.follow();
        let (data, end) = target.tap.snapshot(lines);
        next_offsets.push(end);
        if !data.is_empty() {
            first.push(output(target, &data, 0));
        }
        let tx = tx.clone();
        forwarders.spawn(async move {
            loop {
                match live.recv().await {
                    Ok(chunk) => {
                        if tx.send((index, chunk)).await.is_err() {
                            break;
                        }
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break,
                }
            }
        });
    }
    drop(tx);
    let line = |out: Output| {
        let mut text = serde_json::to_string(&StreamLine {
            id: id.clone(),
            event: None,
            skipped: None,
            output: Some(out),
        })
        .unwrap_or_default();
        text.push('\n');
        text
    };
    for piece in first {
        if !send_streamed(out, line(piece), reader).await {
            forwarders.abort_all();
            return;
        }
    }
    loop {
        let (index, chunk) = tokio::select! {
            next = rx.recv() => match next {
                Some(next) => next,
                None => break,
            },
            () = closed(reader) => break,
            () = token.cancelled() => break,
        };
        let expected = next_offsets[index];
        let end = chunk.offset + chunk.data.len() as u64;
        if end <= expected {
            continue; // already sent with the snapshot
        }
        let skip_in_chunk = expected.saturating_sub(chunk.offset) as usize;
        let skipped = chunk.offset.saturating_sub(expected);
        next_offsets[index] = end;
        let piece = output(&targets[index], &chunk.data[skip_in_chunk..], skipped);
        if !send_streamed(out, line(piece), reader).await {
            break;
        }
    }
    forwarders.abort_all();
}

async fn ask_engine(engine: &mpsc::Sender<Input>, id: Value, request: Request) -> Reply {
    let (reply, answer) = oneshot::channel();
    let gone = |id| {
        Reply::failure(
            id,
            Kind::ShuttingDown,
            "the daemon stopped before answering",
        )
    };
    if engine
        .send(Input::Request(Incoming {
            id: id.clone(),
            request,
            reply,
        }))
        .await
        .is_err()
    {
        return gone(id);
    }
    answer.await.unwrap_or_else(|_| gone(id))
}

/// `stats`: the engine names the processes (as for `status`), then this
/// connection reads /proc on the blocking pool, so that neither the engine
/// nor other clients wait for the sampling window.
async fn stats(
    engine: &mpsc::Sender<Input>,
    id: Value,
    args: ringmaster_protocol::StatsArgs,
) -> Reply {
    let status = ask_engine(
        engine,
        id.clone(),
        Request::Status(ringmaster_protocol::NamesArgs { names: args.names }),
    )
    .await;
    if !status.ok {
        return status;
    }
    let processes = status
        .result
        .and_then(|r| serde_json::from_value::<ringmaster_protocol::StatusResult>(r).ok())
        .map(|s| s.processes)
        .unwrap_or_default();
    let tree = args.tree;
    match tokio::task::spawn_blocking(move || crate::stats::measure(&processes, tree)).await {
        Ok(result) => Reply::success(id, &result),
        Err(err) => Reply::failure(id, Kind::Internal, format!("stats failed: {err}")),
    }
}

/// The result of reading one line.
#[derive(Debug, PartialEq, Eq)]
enum Line {
    /// A whole line is in the buffer (newline removed).
    Complete,
    /// The line was longer than the limit and was skipped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads one newline-terminated line into `buf`, keeping at most
/// [`MAX_LINE_BYTES`] in memory.
async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    // One big request must not pin a megabyte per idle connection.
    buf.shrink_to(READ_BUFFER);
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
                buf.shrink_to(READ_BUFFER);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}
