//! Log capture: every byte a child writes to its stdout/stderr pipe is moved
//! to its sink, in order.
//!
//! Theory of operation: the [`LogHub`] runs one reader thread and a small,
//! fixed set of writer threads, none of them the engine's. The reader
//! (`reader.rs`) watches every pipe with epoll, reads into the stream's
//! buffer (4 KiB at first, up to 1 MiB, growing with the stream's rate and
//! shrinking back), feeds the tail buffer ([`Tap`]) at once, and queues the
//! stream for the writers; after a round of small reads it lets the pipes
//! fill for up to 20 ms, so one wake-up takes many processes' lines. The writers
//! (`pool.rs`) open, write, rotate and reopen the files (and echo), many
//! streams per wake-up. A disk that is slow, or stops answering, holds up
//! only the streams written to it: a stuck writer is replaced, and the
//! streams on its device wait aside until it answers. A child that writes
//! faster than its disk fills its buffer, then its pipe, and is slowed
//! (backpressure); nothing is dropped. When the engine has reaped the
//! process it calls [`Pump::finish`]: the reader takes whatever is left in
//! the pipe, then closes it even if a grandchild still holds the write
//! end, so a stopped process never keeps a reader alive. A
//! [`LogHub::reopen`] makes every stream reopen its file by name (after an
//! external rotation); size rotation and timestamps live in [`Sink`].

pub mod console;
mod echo;
mod pool;
mod reader;
mod sink;
mod tap;
mod timestamp;
mod watch;
mod writer;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{mpsc, oneshot};

pub use echo::Echo;
pub use sink::{LOG_FILE_MODE, Sink, SinkSpec};
pub use tap::{Chunk, TAIL_BYTES, Tap};
pub use timestamp::rfc3339;
pub use watch::LineWatch;
use writer::Writer;

/// Most bytes a stream holds before a writer takes them (and again while
/// they are written); a fast writer's reads come close to this (its pipe
/// is asked for 1 MiB). 256 KiB measured the same throughput within noise.
const CHUNK: usize = 1 << 20;
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
    /// Bytes read from the stream, added to as they arrive: the owner's
    /// count across runs (`/metrics`).
    pub received: Arc<AtomicU64>,
    /// A readiness check on the stream's lines, matched as they are read.
    pub watch: Option<LineWatch>,
}

/// Errors creating the hub or opening a sink.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log threads could not start.
    #[error("cannot start the log threads: {0}")]
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

/// The engine's handle on one pipe's stream.
#[derive(Debug)]
pub struct Pump {
    shared: Arc<pool::Shared>,
    inbox: Arc<reader::Inbox>,
    pool: Arc<pool::Pool>,
    done: Option<oneshot::Receiver<PumpReport>>,
    has_file: bool,
    finished: bool,
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
        let mut state = self.shared.lock();
        state.chores.clear = true;
        if state.take_for_queue() {
            drop(state);
            self.pool.submit([Arc::clone(&self.shared)]);
        }
    }

    /// Tells the pump its process has been reaped: drain and close.
    pub fn finish(&mut self) {
        if !std::mem::replace(&mut self.finished, true) {
            self.inbox.send(reader::Command::Finish(self.shared.token));
        }
    }

    /// Waits until the pump has written everything and closed its pipe.
    pub async fn wait(mut self) -> PumpReport {
        self.finish();
        match self.done.take() {
            Some(done) => done.await.unwrap_or_default(),
            None => PumpReport::default(),
        }
    }
}

impl Drop for Pump {
    fn drop(&mut self) {
        // Nobody will say the process is gone: read to the end and close.
        self.finish();
    }
}

/// The log threads.
#[derive(Debug)]
pub struct LogHub {
    inbox: Arc<reader::Inbox>,
    pool: Arc<pool::Pool>,
    next_token: AtomicU64,
    notices: mpsc::UnboundedSender<LogNotice>,
}

impl LogHub {
    /// Starts the log threads; log file problems and recoveries are sent
    /// to `notices`.
    pub fn start(notices: mpsc::UnboundedSender<LogNotice>) -> Result<Self, LogError> {
        let inbox = Arc::new(reader::Inbox::new().map_err(LogError::Start)?);
        let pool = pool::Pool::start(Arc::clone(&inbox)).map_err(LogError::Start)?;
        if let Err(err) = reader::Reader::start(Arc::clone(&inbox), Arc::clone(&pool)) {
            pool.close();
            return Err(LogError::Start(err));
        }
        Ok(Self {
            inbox,
            pool,
            next_token: AtomicU64::new(1),
            notices,
        })
    }

    /// Starts pumping `pipe` (the read end of a child's stream). The log
    /// file is opened by a writer, off the caller's thread.
    pub fn attach(&self, pipe: OwnedFd, stream: Stream) -> Pump {
        let (done_tx, done_rx) = oneshot::channel();
        let has_file = stream.sink.is_some();
        let Stream {
            owner,
            label,
            sink,
            tap,
            echo,
            lost,
            received,
            watch,
        } = stream;
        let nonblocking = set_nonblocking(&pipe);
        let counts = writer::Counts { lost, received };
        let writer = Writer::new(
            owner,
            label.clone(),
            sink,
            echo,
            counts,
            self.notices.clone(),
        );
        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        let shared = pool::Shared::new(token, writer, done_tx);
        if let Err(err) = nonblocking {
            // Never expected (a pipe we just made); a blocking pipe could
            // stall the reader in a drain, so it is not read at all.
            tracing::error!(
                stream = label,
                "cannot make the pipe non-blocking ({err}): its output is not captured"
            );
            shared.lock().closed = true;
        }
        // Queued at once for its open chore: the file exists as the
        // process runs.
        if shared.lock().take_for_queue() {
            self.pool.submit([Arc::clone(&shared)]);
        }
        if nonblocking.is_ok() {
            self.inbox.send(reader::Command::Attach {
                pipe,
                tap,
                shared: Arc::clone(&shared),
                label,
                watch,
            });
        }
        Pump {
            shared,
            inbox: Arc::clone(&self.inbox),
            pool: Arc::clone(&self.pool),
            done: Some(done_rx),
            has_file,
            finished: false,
        }
    }

    /// Asks every live stream to reopen its file by name, now (SIGUSR2,
    /// `ringmasterctl reopen`).
    pub fn reopen(&self) {
        self.inbox.send(reader::Command::ReopenAll);
    }
}

impl Drop for LogHub {
    fn drop(&mut self) {
        // Not joined: a writer may be stuck on a disk that never answers.
        self.inbox.send(reader::Command::Shutdown);
        self.pool.close();
    }
}

fn set_nonblocking(pipe: &OwnedFd) -> nix::Result<()> {
    use nix::fcntl::{FcntlArg, OFlag, fcntl};
    let flags = OFlag::from_bits_retain(fcntl(pipe, FcntlArg::F_GETFL)?);
    fcntl(pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK)).map(drop)
}

#[cfg(test)]
mod tests {

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
            received: Arc::default(),
            watch: None,
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
