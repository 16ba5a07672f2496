//! The daemon's own stdout and stderr: its log, and the lines `echo`
//! copies there.
//!
//! Theory of operation: a supervisor must never die or stall because of
//! where its own output goes. A terminal that was closed (EIO, after an ssh
//! drop), a pipe whose reader left (EPIPE, `ringmasterd | head`), a pipe
//! nobody reads (it fills, and write(2) blocks forever) or a full disk are
//! all things the operator did not mean to stop the daemon with. So nobody
//! in the daemon writes to fd 1 or 2 directly: lines are queued here (a
//! copy each, at most [`QUEUE_BYTES`] waiting per stream) and one thread
//! per stream writes them. The daemon's log never waits for room: what
//! does not fit is dropped and counted. Echoed output waits for room a
//! little while the stream is making progress (a slow terminal slows the
//! children, as before), and once a write has stalled for good everything
//! is dropped and counted until it moves again. Failed writes are counted
//! and dropped too; the first line that gets through afterwards on stderr
//! says how much was lost.

use std::collections::VecDeque;
use std::io::Write;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Most bytes waiting to be written per stream.
pub const QUEUE_BYTES: usize = 1 << 20;

/// Which of the daemon's streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fd {
    Stdout,
    Stderr,
}

#[derive(Debug, Default)]
struct Queue {
    lines: VecDeque<Vec<u8>>,
    bytes: usize,
    /// The thread is inside write(2) with lines taken off the queue.
    writing: bool,
    /// A producer gave up waiting for room: drop at once until the
    /// writer gets something through again.
    stalled: bool,
    /// Bytes dropped or failed since the last successful write.
    unreported: u64,
    /// Whether the thread has been started.
    started: bool,
}

/// One of the daemon's output streams (see the module documentation).
#[derive(Debug)]
pub struct Console {
    fd: Fd,
    queue: Mutex<Queue>,
    /// Signalled when lines arrive (for the thread).
    work: Condvar,
    /// Signalled when the thread has written something (room, flush).
    progress: Condvar,
    lost: AtomicU64,
    /// The last 64 KiB written (the daemon's log, for `maintail`), kept
    /// whatever becomes of the stream itself.
    recent: std::sync::Arc<crate::Tap>,
}

/// The daemon's stdout (echoed output).
pub fn stdout() -> &'static Console {
    static CONSOLE: OnceLock<Console> = OnceLock::new();
    CONSOLE.get_or_init(|| Console::new(Fd::Stdout))
}

/// The daemon's stderr (its log).
pub fn stderr() -> &'static Console {
    static CONSOLE: OnceLock<Console> = OnceLock::new();
    CONSOLE.get_or_init(|| Console::new(Fd::Stderr))
}

impl Console {
    fn new(fd: Fd) -> Self {
        Self {
            fd,
            queue: Mutex::new(Queue::default()),
            work: Condvar::new(),
            progress: Condvar::new(),
            lost: AtomicU64::new(0),
            recent: crate::Tap::new(),
        }
    }

    /// The last `lines` lines written (all that is kept when `None`).
    pub fn recent(&self, lines: Option<usize>) -> Vec<u8> {
        self.recent.snapshot(lines).0
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A panic while holding this lock cannot leave the queue
        // inconsistent (every update is one statement); keep going.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Queues `bytes` without ever waiting; dropped (and counted) when
    /// the queue is full.
    pub fn write(&'static self, bytes: &[u8]) {
        self.recent.push(bytes);
        let queue = self.lock();
        self.push(queue, bytes);
    }

    /// Queues `bytes`, waiting up to `wait` for room while the stream is
    /// moving; dropped (and counted) otherwise.
    pub fn write_waiting(&'static self, bytes: &[u8], wait: Duration) {
        let deadline = Instant::now() + wait;
        let mut queue = self.lock();
        while !queue.stalled && queue.bytes + bytes.len() > QUEUE_BYTES && queue.bytes > 0 {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                queue.stalled = true;
                break;
            }
            queue = self
                .progress
                .wait_timeout(queue, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        self.push(queue, bytes);
    }

    fn push(&'static self, mut queue: MutexGuard<'_, Queue>, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        // One line larger than the whole queue still goes when alone.
        if queue.bytes > 0 && queue.bytes + bytes.len() > QUEUE_BYTES {
            queue.unreported += bytes.len() as u64;
            self.lost.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            return;
        }
        queue.bytes += bytes.len();
        queue.lines.push_back(bytes.to_vec());
        if !queue.started {
            queue.started = true;
            let spawned = std::thread::Builder::new()
                .name(format!("ringmaster-{:?}", self.fd).to_lowercase())
                .stack_size(64 * 1024)
                .spawn(move || self.run());
            if spawned.is_err() {
                // No thread, no output: count it rather than block.
                queue.started = false;
                queue.lines.clear();
                self.lost.fetch_add(queue.bytes as u64, Ordering::Relaxed);
                queue.bytes = 0;
                return;
            }
        }
        self.work.notify_one();
    }

    /// Waits until everything queued has been written (or failed), at most
    /// `wait`; true when the queue is empty.
    pub fn flush(&self, wait: Duration) -> bool {
        let deadline = Instant::now() + wait;
        let mut queue = self.lock();
        while queue.bytes > 0 || queue.writing {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            queue = self
                .progress
                .wait_timeout(queue, left)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
        true
    }

    /// Bytes dropped or not written since the daemon started.
    pub fn lost_bytes(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// The writer thread: takes what is queued, writes it, forever.
    fn run(&self) {
        loop {
            let (lines, unreported) = {
                let mut queue = self.lock();
                while queue.lines.is_empty() {
                    queue = self
                        .work
                        .wait(queue)
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                }
                queue.writing = true;
                let lines = std::mem::take(&mut queue.lines);
                queue.bytes = 0;
                (lines, std::mem::take(&mut queue.unreported))
            };
            let mut failed = 0u64;
            let mut notice = (unreported > 0 && self.fd == Fd::Stderr).then(|| {
                format!(
                    "ringmasterd: {unreported} bytes of the daemon's output could not be written \
                     (stderr unwritable or not read); {} in all\n",
                    self.lost_bytes()
                )
            });
            let mut notice_failed = false;
            for line in &lines {
                // The notice is not output of its own: if it fails, the
                // losses stay to be reported, and only lines count as lost.
                if let Some(text) = notice.take() {
                    notice_failed = write_all(self.fd, text.as_bytes()).is_err();
                }
                if write_all(self.fd, line).is_err() {
                    failed += line.len() as u64;
                }
            }
            let mut queue = self.lock();
            queue.writing = false;
            if failed == 0 {
                queue.stalled = false;
            }
            self.lost.fetch_add(failed, Ordering::Relaxed);
            queue.unreported += failed + if notice_failed { unreported } else { 0 };
            self.progress.notify_all();
        }
    }
}

/// write(2) until `bytes` are all written; EINTR is retried, any other
/// error gives up on these bytes.
fn write_all(fd: Fd, mut bytes: &[u8]) -> std::io::Result<()> {
    let write = |bytes: &[u8]| match fd {
        Fd::Stdout => nix::unistd::write(std::io::stdout().as_fd(), bytes),
        Fd::Stderr => nix::unistd::write(std::io::stderr().as_fd(), bytes),
    };
    while !bytes.is_empty() {
        match write(bytes) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(nix::errno::Errno::EINTR) => {}
            Err(err) => return Err(err.into()),
        }
    }
    Ok(())
}

/// A `std::io::Write` for the daemon's log (tracing's writer): each write
/// is queued on [`stderr`] and always succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct StderrWriter;

impl Write for StderrWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        stderr().write(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
