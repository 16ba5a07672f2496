//! Log capture: every byte a child writes to its stdout/stderr pipe is moved
//! to its sink, in order.
//!
//! Theory of operation: the [`LogHub`] owns its own tokio runtime, so that
//! log work never runs on (or stalls) the engine's thread. Each pipe gets
//! a [`Pump`] task on the hub's one worker thread: it reads up to 1 MiB at
//! a time into a buffer, feeds the tail buffer ([`Tap`]) at once, and hands
//! the buffer to its stream's writer, which opens, writes, rotates and
//! reopens the file (and echoes) on the blocking pool while the pump fills
//! a second buffer. So a disk that is slow, or stops answering, holds up
//! only the streams written to it: never the reading of other pipes, nor
//! the engine. The hand-off costs one thread wake-up per batch, and a
//! batch grows to whatever arrived while the previous one was written.
//! A child that writes faster than the disk fills both buffers, then its
//! pipe, and is slowed (backpressure); nothing is dropped. When the engine
//! has reaped the process it calls [`Pump::finish`]: the pump drains
//! whatever is left in the pipe, then closes it even if a grandchild still
//! holds the write end, so a stopped process never keeps a reader alive.
//! A [`LogHub::reopen`] makes every pump reopen its file by name (after an
//! external rotation); size rotation and timestamps live in [`Sink`].

pub mod console;
mod echo;
mod sink;
mod tap;
mod timestamp;
mod writer;

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use tokio::sync::{mpsc, oneshot, watch};

pub use echo::Echo;
pub use sink::{LOG_FILE_MODE, Sink, SinkSpec};
pub use tap::{Chunk, TAIL_BYTES, Tap};
pub use timestamp::rfc3339;
use writer::Writer;

/// Most bytes a pump holds before handing them to its writer (one of its
/// two buffers); a fast writer's reads come close to this (its pipe is
/// asked for 1 MiB). 256 KiB measured the same throughput within noise.
const CHUNK: usize = 1 << 20;
/// What a pump reads at a time at first, and at least: a quiet process
/// costs this, not [`CHUNK`].
const FIRST_WINDOW: usize = 16 * 1024;
/// Most threads writing logs at once (each holding one stream's batch).
const MAX_WRITER_THREADS: usize = 4096;
/// How long an idle writer thread waits for more work before exiting.
const WRITER_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// Stack of the log threads: writes need little (the default is 2 MiB).
const THREAD_STACK: usize = 256 * 1024;

/// A change in a log file's health, sent to whoever started the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNotice {
    /// The owner given at [`LogHub::attach`] (the engine's process id).
    pub owner: usize,
    /// The stream (`web:1 stdout`).
    pub label: String,
    /// The error while failing; `None` once writes succeed again.
    pub problem: Option<String>,
    /// With `problem` gone: bytes lost while the file was failing.
    pub lost: u64,
}

/// One stream to pump: where its bytes go and who to tell about problems.
#[derive(Debug)]
pub struct Stream {
    /// Passed back in [`LogNotice`]s.
    pub owner: usize,
    /// Names the stream in the daemon's log (`web:1 stdout`).
    pub label: String,
    /// The log file; none for a `"null"` stream that is only echoed.
    pub sink: Option<SinkSpec>,
    /// The tail buffer.
    pub tap: Arc<Tap>,
    /// Lines copied to the daemon's stdout.
    pub echo: Option<Echo>,
    /// Bytes that could not be written to the file, added to as they are
    /// lost: the one count `status` shows, kept by the owner across runs.
    pub lost: Arc<AtomicU64>,
}

/// Errors creating the hub or opening a sink.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log thread or its runtime could not start.
    #[error("cannot start the log thread: {0}")]
    Start(std::io::Error),
    /// A log file or its directory could not be opened or created, or
    /// what is there must not be written (a planted symlink, FIFO, hard
    /// link, or someone else's file; see ringmaster-safefs).
    #[error("cannot open log file {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: ringmaster_safefs::SafeError,
    },
}

/// What a pump did, reported when it ends.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PumpReport {
    /// Bytes written to the sink.
    pub written: u64,
    /// Bytes that could not be written (sink errors), counted, never hidden.
    pub lost: u64,
}

/// The engine's handle on one pipe's pump.
#[derive(Debug)]
pub struct Pump {
    finish: Option<oneshot::Sender<()>>,
    done: oneshot::Receiver<PumpReport>,
    has_file: bool,
    /// Bumped to have the pump empty its log file.
    clear: watch::Sender<u64>,
}

impl Pump {
    /// Whether this pump writes a log file (an echo-only stream has none).
    pub fn has_file(&self) -> bool {
        self.has_file
    }

    /// Has the pump empty its log file (supervisorctl's `clear`): the
    /// file is truncated through the descriptor it writes, so the next
    /// byte goes at its start; rotated backups stay.
    pub fn clear(&self) {
        self.clear.send_modify(|generation| *generation += 1);
    }

    /// Tells the pump its process has been reaped: drain and close.
    pub fn finish(&mut self) {
        if let Some(tx) = self.finish.take() {
            let _ = tx.send(());
        }
    }

    /// Waits until the pump has written everything and closed its pipe.
    pub async fn wait(mut self) -> PumpReport {
        self.finish();
        self.done.await.unwrap_or_default()
    }
}

/// The log thread and its runtime.
#[derive(Debug)]
pub struct LogHub {
    handle: tokio::runtime::Handle,
    runtime: Option<tokio::runtime::Runtime>,
    reopen: watch::Sender<u64>,
    notices: mpsc::UnboundedSender<LogNotice>,
}

impl LogHub {
    /// Starts the log thread; log file problems and recoveries are sent to
    /// `notices`.
    pub fn start(notices: mpsc::UnboundedSender<LogNotice>) -> Result<Self, LogError> {
        // One worker thread reads every pipe; disk writes run on the
        // blocking pool, one thread per log being written at that moment.
        // A log stuck on a dead disk keeps its thread, so the pool may grow
        // well past tokio's default of 512 before other logs would wait.
        // Writer threads linger a minute so a chatty process does not
        // create one per line; an idle daemon keeps none busy.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .max_blocking_threads(MAX_WRITER_THREADS)
            .thread_keep_alive(WRITER_KEEP_ALIVE)
            .thread_stack_size(THREAD_STACK)
            .thread_name("ringmaster-logs")
            .enable_io()
            .build()
            .map_err(LogError::Start)?;
        Ok(Self {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
            reopen: watch::Sender::new(0),
            notices,
        })
    }

    /// Starts pumping `pipe` (the read end of a child's stream). The log
    /// file is opened by the pump, off the caller's thread.
    pub fn attach(&self, pipe: OwnedFd, stream: Stream) -> Pump {
        let (finish_tx, finish_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let reopen = self.reopen.subscribe();
        let clear = watch::Sender::new(0);
        let signals = Signals {
            finish: finish_rx,
            reopen,
            clear: clear.subscribe(),
        };
        let has_file = stream.sink.is_some();
        let Stream {
            owner,
            label,
            sink,
            tap,
            echo,
            lost,
        } = stream;
        let writer = Writer::new(owner, label.clone(), sink, echo, lost, self.notices.clone());
        self.handle.spawn(async move {
            let report = pump(&label, pipe, tap, writer, signals).await;
            let _ = done_tx.send(report);
        });
        Pump {
            finish: Some(finish_tx),
            done: done_rx,
            has_file,
            clear,
        }
    }
}

impl LogHub {
    /// Asks every live pump to reopen its file by name, now (SIGUSR2,
    /// `ringmasterctl reopen`).
    pub fn reopen(&self) {
        self.reopen.send_modify(|generation| *generation += 1);
    }
}

impl Drop for LogHub {
    fn drop(&mut self) {
        // Callable from inside the engine's runtime, unlike a plain drop.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// A batch on its way to the disk: the writer and the buffer it writes,
/// both handed back when the blocking write is done.
type Job = tokio::task::JoinHandle<(Writer, Vec<u8>)>;

/// What the pump asks of the writer next, besides bytes.
#[derive(Default, Clone, Copy)]
struct Chores {
    open: bool,
    reopen: bool,
    clear: bool,
}

/// The writer's next round, on the blocking pool: the chores, then the
/// batch; hands both back.
fn write_job(mut writer: Writer, batch: Vec<u8>, todo: Chores) -> Job {
    tokio::task::spawn_blocking(move || {
        if todo.reopen {
            writer.reopen();
        }
        if todo.clear {
            writer.clear();
        }
        if todo.open {
            writer.open();
        }
        if !batch.is_empty() {
            writer.write(&batch);
        }
        (writer, batch)
    })
}

/// What a pump is told besides its pipe's bytes.
struct Signals {
    /// The process was reaped: drain and stop.
    finish: oneshot::Receiver<()>,
    /// Reopen the file by name (every pump at once).
    reopen: watch::Receiver<u64>,
    /// Empty the file (this pump's process only).
    clear: watch::Receiver<u64>,
}

async fn pump(
    label: &str,
    pipe: OwnedFd,
    tap: Arc<Tap>,
    writer: Writer,
    signals: Signals,
) -> PumpReport {
    let Signals {
        mut finish,
        mut reopen,
        mut clear,
    } = signals;
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) {
        Ok(pipe) => pipe,
        Err(err) => {
            tracing::error!(stream = label, "cannot watch pipe: {err}");
            return writer.report;
        }
    };
    // Two buffers: the pump fills one while the writer writes the other.
    // They grow with the stream's rate (up to CHUNK) and shrink back when
    // it slows, so a quiet process holds a few KiB, not megabytes.
    let mut window = Window {
        size: FIRST_WINDOW,
        small: 0,
    };
    let mut fill: Vec<u8> = Vec::new();
    let mut idle = Some((writer, Vec::new()));
    let mut job: Option<Job> = None;
    let mut chores = Chores {
        open: true,
        ..Chores::default()
    };
    let mut draining = false;
    let mut eof = false;
    loop {
        if job.is_none()
            && (!fill.is_empty() || chores.open || chores.reopen || chores.clear)
            && let Some((writer, mut spare)) = idle.take()
        {
            spare.clear();
            let batch = std::mem::replace(&mut fill, spare);
            job = Some(write_job(writer, batch, std::mem::take(&mut chores)));
        }
        if eof && job.is_none() && fill.is_empty() {
            break;
        }
        if draining && !eof && fill.len() < CHUNK {
            // The process is gone: take what is buffered in the pipe, then
            // stop even if a grandchild still holds the write end.
            eof = drain_some(label, &pipe, &mut fill, &tap);
            continue;
        }
        let can_read = !eof && !draining && fill.len() < CHUNK;
        tokio::select! {
            done = wait_job(&mut job) => {
                job = None;
                match done {
                    Ok((writer, mut spare)) => {
                        window.after_write(&mut spare);
                        idle = Some((writer, spare));
                    }
                    Err(err) => {
                        // Not expected (the writer does not panic); the
                        // stream's file is gone with it.
                        tracing::error!(stream = label, "log writer failed: {err}");
                        return PumpReport::default();
                    }
                }
            }
            ready = pipe.readable(), if can_read => {
                if let Err(err) = ready {
                    tracing::warn!(stream = label, "pipe poll failed: {err}");
                    eof = true;
                    continue;
                }
                let start = fill.len();
                let room = window.make_room(&mut fill);
                match pipe.try_read_buf(&mut fill) {
                    Ok(0) => eof = true,
                    Ok(n) => {
                        window.after_read(n, room);
                        tap.push(&fill[start..]);
                    }
                    Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                    Err(err) => {
                        tracing::warn!(stream = label, "pipe read failed: {err}");
                        eof = true;
                    }
                }
            }
            _ = &mut finish, if !draining => draining = true,
            Ok(()) = reopen.changed() => chores.reopen = true,
            Ok(()) = clear.changed() => chores.clear = true,
        }
    }
    let Some((mut writer, _)) = idle else {
        return PumpReport::default();
    };
    if !writer.echoes() {
        return writer.report;
    }
    tokio::task::spawn_blocking(move || {
        writer.finish();
        writer.report
    })
    .await
    .unwrap_or_default()
}

/// How much a pump reads at a time: it doubles while reads fill it (a
/// fast writer), up to [`CHUNK`], and halves after a run of small
/// batches (the process went quiet).
struct Window {
    size: usize,
    /// Batches in a row that used less than a quarter of the window.
    small: u32,
}

/// Small batches in a row after which the window halves: a fast stream's
/// batches vary with how quickly its file takes them, and must not make
/// its window shrink and grow again and again.
const QUIET_BATCHES: u32 = 64;

impl Window {
    /// Makes room in `fill` for the next read; returns how much.
    fn make_room(&self, fill: &mut Vec<u8>) -> usize {
        let want = self.size.min(CHUNK.saturating_sub(fill.len()));
        if fill.capacity() - fill.len() < want {
            fill.reserve_exact(want);
        }
        fill.capacity() - fill.len()
    }

    /// A read of `read` bytes into `room`: a full one means more waits.
    fn after_read(&mut self, read: usize, room: usize) {
        if read >= room {
            self.size = (self.size * 2).min(CHUNK);
            self.small = 0;
        }
    }

    /// A batch was written (`spare` holds it): a small one shrinks the
    /// window, and the buffer is given back down to it.
    fn after_write(&mut self, spare: &mut Vec<u8>) {
        if spare.len() < self.size / 4 {
            self.small += 1;
            if self.small >= QUIET_BATCHES {
                self.size = (self.size / 2).max(FIRST_WINDOW);
                self.small = 0;
            }
        } else {
            self.small = 0;
        }
        spare.clear();
        // Only well past the window: a buffer in use is not reallocated
        // batch after batch.
        if spare.capacity() > 2 * self.size {
            spare.shrink_to(self.size);
        }
    }
}

/// One read of what is left in the pipe of a process that is gone, into
/// `fill`; true when there is nothing more to take.
fn drain_some(label: &str, pipe: &impl AsFd, fill: &mut Vec<u8>, tap: &Tap) -> bool {
    // A plain read(2): tokio's try_read trusts its readiness cache, which
    // may not know yet that a just-registered pipe has data.
    let mut scratch = [0u8; 16 * 1024];
    let room = (CHUNK - fill.len()).min(scratch.len());
    match nix::unistd::read(pipe, &mut scratch[..room]) {
        Ok(0) | Err(nix::errno::Errno::EAGAIN) => true,
        Ok(n) => {
            tap.push(&scratch[..n]);
            fill.extend_from_slice(&scratch[..n]);
            false
        }
        Err(nix::errno::Errno::EINTR) => false,
        Err(err) => {
            tracing::warn!(stream = label, "pipe read failed: {err}");
            true
        }
    }
}

/// Waits for the batch in flight, if any (forever when there is none).
async fn wait_job(job: &mut Option<Job>) -> Result<(Writer, Vec<u8>), tokio::task::JoinError> {
    match job.as_mut() {
        Some(job) => job.await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {

    /// A pump's window grows with a fast stream and gives memory back
    /// only once the stream has been quiet for a while.
    #[test]
    fn the_read_window_follows_the_stream() {
        let mut window = super::Window {
            size: super::FIRST_WINDOW,
            small: 0,
        };
        let mut fill = Vec::new();
        for _ in 0..10 {
            let room = window.make_room(&mut fill);
            window.after_read(room, room);
        }
        assert_eq!(window.size, super::CHUNK, "full reads grow it");
        let mut spare = Vec::with_capacity(super::CHUNK);
        for _ in 0..super::QUIET_BATCHES - 1 {
            spare.extend_from_slice(b"small");
            window.after_write(&mut spare);
        }
        assert_eq!(window.size, super::CHUNK, "a few small batches do not");
        spare.extend_from_slice(b"small");
        window.after_write(&mut spare);
        assert_eq!(window.size, super::CHUNK / 2);
        for _ in 0..64 * super::QUIET_BATCHES {
            spare.extend_from_slice(b"x");
            window.after_write(&mut spare);
        }
        assert_eq!(window.size, super::FIRST_WINDOW, "never below the first");
        assert!(
            spare.capacity() <= 2 * super::FIRST_WINDOW,
            "{}",
            spare.capacity()
        );
    }
    use std::fs::File;
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;
    use std::path::Path;

    use super::*;

    fn stream(path: &Path) -> Stream {
        Stream {
            owner: 0,
            label: "t".into(),
            sink: Some(SinkSpec::plain(path)),
            tap: Tap::new(),
            echo: None,
            lost: Arc::default(),
        }
    }

    #[test]
    fn pumps_everything_then_finishes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out.log");
        let hub = LogHub::start(mpsc::unbounded_channel().0).unwrap();
        let (read, write) = nix::unistd::pipe().unwrap();
        let pump = hub.attach(read, stream(&path));
        let mut writer = File::from(write);
        let payload: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        writer.write_all(&payload).unwrap();
        drop(writer);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let report = runtime.block_on(pump.wait());
        assert_eq!(report.written, payload.len() as u64);
        assert_eq!(std::fs::read(&path).unwrap(), payload);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode & !LOG_FILE_MODE, 0);
    }

    /// Regression: a process that exits at once is reaped (and its pump
    /// told to finish) before the pump has ever polled the pipe; the drain
    /// must still take everything, even while a grandchild holds the pipe.
    #[test]
    fn finish_before_first_poll_loses_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let hub = LogHub::start(mpsc::unbounded_channel().0).unwrap();
        for round in 0..50 {
            let (read, write) = nix::unistd::pipe().unwrap();
            let mut writer = File::from(write);
            writer
                .write_all(format!("round {round}\n").as_bytes())
                .unwrap();
            let mut pump = hub.attach(read, stream(&path));
            pump.finish();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap();
            let report = runtime.block_on(pump.wait());
            assert_eq!(
                report.written,
                format!("round {round}\n").len() as u64,
                "round {round}"
            );
            drop(writer);
        }
    }
}
