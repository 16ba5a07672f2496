//! Log capture: every byte a child writes to its stdout/stderr pipe is moved
//! to its sink, in order.
//!
//! Theory of operation: the [`LogHub`] owns its own tokio runtime (one
//! worker thread), so that file writes never run on (or stall) the
//! engine's thread. Writes to a log that is not a regular file (a FIFO, a
//! device), which may block for good, run under `block_in_place`, so such
//! a log holds up only its own pump; regular files are written inline. Each pipe gets a [`Pump`] task that waits for
//! the pipe to be readable, reads up to 1 MiB and writes it to the sink
//! with plain blocking writes. A child that writes faster than the disk is
//! slowed by the full pipe (backpressure); nothing is dropped. When the
//! engine has reaped the process it calls [`Pump::finish`]: the pump drains
//! whatever is left in the pipe, then closes it even if a grandchild still
//! holds the write end, so a stopped process never keeps a reader alive.
//! A [`LogHub::reopen`] makes every pump reopen its file by name (after an
//! external rotation); size rotation and timestamps live in [`Sink`].

mod echo;
mod sink;
mod tap;
mod timestamp;

use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

pub use echo::Echo;
pub use sink::{LOG_FILE_MODE, Sink, SinkSpec};
pub use tap::{Chunk, TAIL_BYTES, Tap};
pub use timestamp::rfc3339;

/// Most bytes taken from a pipe at once (its capacity is raised to this).
const CHUNK: usize = 1 << 20;
/// First wait before writing again to a log file that failed; doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between attempts on a failing log file.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// A change in a log file's health, sent to whoever started the hub.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogNotice {
    /// The owner given at [`LogHub::attach`] (the engine's process id).
    pub owner: usize,
    /// The stream (`web:1 stdout`).
    pub label: String,
    /// The error while failing; `None` once writes succeed again.
    pub problem: Option<String>,
    /// Bytes lost since the file started failing.
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
    pub sink: Option<Sink>,
    /// The tail buffer.
    pub tap: Arc<Tap>,
    /// Lines copied to the daemon's stdout.
    pub echo: Option<Echo>,
}

/// Errors creating the hub or opening a sink.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The log thread or its runtime could not start.
    #[error("cannot start the log thread: {0}")]
    Start(std::io::Error),
    /// A log file or its directory could not be opened or created.
    #[error("cannot open log file {}: {source}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
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
}

impl Pump {
    /// Whether this pump writes a log file (an echo-only stream has none).
    pub fn has_file(&self) -> bool {
        self.has_file
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
        // One worker thread; a write that may block for good (a FIFO, a
        // device) runs under block_in_place, which hands the other pumps to
        // another thread.
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
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

    /// Starts pumping `pipe` (the read end of a child's stream).
    pub fn attach(&self, pipe: OwnedFd, stream: Stream) -> Pump {
        let (finish_tx, finish_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        let reopen = self.reopen.subscribe();
        let notices = self.notices.clone();
        let has_file = stream.sink.is_some();
        self.handle.spawn(async move {
            let label = stream.label.clone();
            let output = Output {
                stream,
                notices,
                failing: None,
            };
            let report = pump(&label, pipe, output, finish_rx, reopen).await;
            let _ = done_tx.send(report);
        });
        Pump {
            finish: Some(finish_tx),
            done: done_rx,
            has_file,
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

async fn pump(
    label: &str,
    pipe: OwnedFd,
    mut out: Output,
    mut finish: oneshot::Receiver<()>,
    mut reopen: watch::Receiver<u64>,
) -> PumpReport {
    let mut report = PumpReport::default();
    let mut buf = vec![0u8; CHUNK];
    let pipe = match tokio::net::unix::pipe::Receiver::from_owned_fd(pipe) {
        Ok(pipe) => pipe,
        Err(err) => {
            tracing::error!(stream = label, "cannot watch pipe: {err}");
            return report;
        }
    };
    let mut draining = false;
    loop {
        if draining {
            // The process is gone: take what is buffered in the pipe, then
            // stop even if a grandchild still holds the write end.
            // A plain read(2): tokio's try_read trusts its readiness cache,
            // which may not know yet that a just-registered pipe has data.
            match nix::unistd::read(&pipe, &mut buf) {
                Ok(0) | Err(nix::errno::Errno::EAGAIN) => break,
                Ok(n) => out.write(label, &buf[..n], &mut report),
                Err(nix::errno::Errno::EINTR) => {}
                Err(err) => {
                    tracing::warn!(stream = label, "pipe read failed: {err}");
                    break;
                }
            }
            continue;
        }
        tokio::select! {
            ready = pipe.readable() => {
                if let Err(err) = ready {
                    tracing::warn!(stream = label, "pipe poll failed: {err}");
                    break;
                }
                match pipe.try_read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => out.write(label, &buf[..n], &mut report),
                    Err(err) if matches!(err.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted) => {}
                    Err(err) => {
                        tracing::warn!(stream = label, "pipe read failed: {err}");
                        break;
                    }
                }
            }
            _ = &mut finish, if !draining => draining = true,
            Ok(()) = reopen.changed() => {
                if let Some(Err(err)) = out.stream.sink.as_mut().map(Sink::reopen) {
                    tracing::error!(stream = label, "cannot reopen log file: {err}");
                }
            }
        }
    }
    out.finish();
    report
}

/// A log file that cannot be written: when to try again.
struct Failing {
    retry_at: Instant,
    delay: Duration,
    lost: u64,
}

/// Where a pump's bytes go: the file, the tail buffer, the daemon's stdout.
struct Output {
    stream: Stream,
    notices: mpsc::UnboundedSender<LogNotice>,
    failing: Option<Failing>,
}

impl Output {
    fn write(&mut self, label: &str, data: &[u8], report: &mut PumpReport) {
        self.stream.tap.push(data);
        if let Some(echo) = self.stream.echo.as_mut() {
            // The daemon's stdout going away must not cost the log file.
            let _ = echo.feed(data, &mut std::io::stdout().lock());
        }
        let Some(sink) = self.stream.sink.as_mut() else {
            report.written += data.len() as u64;
            return;
        };
        // A failing file is retried with backoff, not on every chunk; the
        // bytes in between cannot be written and are counted.
        if let Some(failing) = self.failing.as_mut() {
            if Instant::now() < failing.retry_at {
                failing.lost += data.len() as u64;
                report.lost += data.len() as u64;
                return;
            }
            let _ = sink.reopen();
        }
        // A FIFO or device may block for good: such writes leave the log
        // thread's other pumps to another thread. Regular files are written
        // inline (a thread hand-off per chunk costs more than the write).
        let written = if sink.may_block() {
            tokio::task::block_in_place(|| sink.write(data))
        } else {
            sink.write(data)
        };
        match written {
            Ok(()) => {
                report.written += data.len() as u64;
                if let Some(failing) = self.failing.take() {
                    tracing::warn!(
                        stream = label,
                        file = %sink.path().display(),
                        lost = failing.lost,
                        "log file writable again; {} bytes of output were lost meanwhile",
                        failing.lost
                    );
                    self.notify(None, failing.lost);
                }
            }
            Err(err) => {
                report.lost += data.len() as u64;
                let now = Instant::now();
                if let Some(failing) = self.failing.as_mut() {
                    failing.lost += data.len() as u64;
                    failing.delay = (failing.delay * 2).min(MAX_RETRY);
                    failing.retry_at = now + failing.delay;
                } else {
                    let problem = format!("cannot write {}: {err}", sink.path().display());
                    tracing::error!(
                        stream = label,
                        "{problem}; output is being lost and counted, retrying"
                    );
                    self.failing = Some(Failing {
                        retry_at: now + FIRST_RETRY,
                        delay: FIRST_RETRY,
                        lost: data.len() as u64,
                    });
                    self.notify(Some(problem), data.len() as u64);
                }
            }
        }
    }

    fn notify(&self, problem: Option<String>, lost: u64) {
        let _ = self.notices.send(LogNotice {
            owner: self.stream.owner,
            label: self.stream.label.clone(),
            problem,
            lost,
        });
    }

    fn finish(&mut self) {
        if let Some(echo) = self.stream.echo.as_mut() {
            let _ = echo.finish(&mut std::io::stdout().lock());
        }
    }
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
            sink: Some(Sink::open(SinkSpec::plain(path)).unwrap()),
            tap: Tap::new(),
            echo: None,
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
