//! The half of a stream that touches the disk: opening, writing, rotating
//! and reopening its log file, and echoing to the daemon's stdout. A
//! [`Writer`] is only ever used on the blocking pool, one batch at a time,
//! so a disk that is slow or stops answering holds up its own stream and
//! nothing else.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::{Echo, LogNotice, PumpReport, Sink, SinkSpec};

/// First wait before writing again to a log file that failed; doubles.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between attempts on a failing log file.
const MAX_RETRY: Duration = Duration::from_secs(30);

/// How long echoed output may wait for room on the daemon's stdout while
/// it is being read (a slow terminal slows the child); a stdout that stays
/// stuck longer is given up on, and the lines dropped and counted.
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// A log file that cannot be opened or written: when to try again.
#[derive(Debug)]
struct Failing {
    retry_at: Instant,
    delay: Duration,
    lost: u64,
}

/// The owner's counts of a stream's bytes, kept across its runs.
#[derive(Debug, Default, Clone)]
pub struct Counts {
    /// Bytes that could not be written.
    pub lost: Arc<AtomicU64>,
    /// Bytes read from the stream.
    pub received: Arc<AtomicU64>,
}

/// One stream's file and echo, with its health.
#[derive(Debug)]
pub(crate) struct Writer {
    owner: usize,
    label: String,
    /// The file to write; `None` for a `"null"` stream that is only echoed.
    spec: Option<SinkSpec>,
    /// The open file; opened on first use (off the engine's thread).
    sink: Option<Sink>,
    echo: Option<Echo>,
    failing: Option<Failing>,
    notices: mpsc::UnboundedSender<LogNotice>,
    /// The owner's counts, across runs.
    counts: Counts,
    /// What happened to the bytes so far.
    pub report: PumpReport,
}

impl Writer {
    pub(crate) fn new(
        owner: usize,
        label: String,
        spec: Option<SinkSpec>,
        echo: Option<Echo>,
        counts: Counts,
        notices: mpsc::UnboundedSender<LogNotice>,
    ) -> Self {
        Self {
            owner,
            label,
            spec,
            sink: None,
            echo,
            failing: None,
            notices,
            counts,
            report: PumpReport::default(),
        }
    }

    /// Opens the file now, so it exists as soon as the process runs.
    pub(crate) fn open(&mut self) {
        if self.spec.is_some() && self.sink.is_none() {
            self.write(&[]);
        }
    }

    /// Reopens the file by name (after an external rotation).
    pub(crate) fn reopen(&mut self) {
        let Some(sink) = self.sink.as_mut() else {
            // Never opened (or failing): the next write opens it.
            return;
        };
        if let Err(err) = sink.reopen() {
            // The old file stays in use; a failing write will report.
            tracing::error!(stream = self.label, "cannot reopen log file: {err}");
        }
    }

    /// Empties the file (it is opened first if it never was).
    pub(crate) fn clear(&mut self) {
        if self.sink.is_none() {
            self.write(&[]);
        }
        if let Some(sink) = self.sink.as_mut()
            && let Err(err) = sink.clear()
        {
            tracing::error!(stream = self.label, "cannot clear log file: {err}");
        }
    }

    /// Echoes `data` and writes it to the file, counting what could not be
    /// written. An empty `data` only (re)tries opening the file.
    pub(crate) fn write(&mut self, data: &[u8]) {
        self.counts
            .received
            .fetch_add(data.len() as u64, Ordering::Relaxed);
        if let Some(echo) = self.echo.as_mut() {
            // The daemon's stdout going away must not cost the log file.
            crate::console::stdout().write_waiting(&echo.feed(data), ECHO_WAIT);
        }
        let Some(spec) = self.spec.as_ref() else {
            self.report.written += data.len() as u64;
            return;
        };
        // A failing file is retried with backoff, not on every chunk; the
        // bytes in between cannot be written and are counted.
        let mut retry = self.sink.is_none();
        if let Some(failing) = self.failing.as_mut() {
            if Instant::now() < failing.retry_at {
                failing.lost += data.len() as u64;
                self.count_lost(data.len());
                return;
            }
            retry = true;
        }
        let written = if retry {
            match Sink::open(spec.clone()) {
                Ok(sink) => self.sink.insert(sink).write(data),
                Err(err) => Err(std::io::Error::other(err.to_string())),
            }
        } else if let Some(sink) = self.sink.as_mut() {
            sink.write(data)
        } else {
            Ok(())
        };
        match written {
            Ok(()) => self.wrote(data.len()),
            Err(err) => self.failed(data.len(), &err),
        }
    }

    fn wrote(&mut self, len: usize) {
        self.report.written += len as u64;
        if let Some(failing) = self.failing.take() {
            tracing::warn!(
                stream = self.label,
                lost = failing.lost,
                "log file writable again; {} bytes of output were lost meanwhile",
                failing.lost
            );
            self.notify(None, failing.lost);
        }
    }

    fn failed(&mut self, len: usize, err: &std::io::Error) {
        self.count_lost(len);
        let len = len as u64;
        let now = Instant::now();
        if let Some(failing) = self.failing.as_mut() {
            failing.lost += len;
            failing.delay = (failing.delay * 2).min(MAX_RETRY);
            failing.retry_at = now + failing.delay;
            return;
        }
        let path = self.spec.as_ref().map(|s| s.path.display().to_string());
        // An open error already names the file.
        let problem = match path {
            Some(path) if !err.to_string().contains(&path) => format!("cannot write {path}: {err}"),
            _ => err.to_string(),
        };
        tracing::error!(
            stream = self.label,
            "{problem}; output is being lost and counted, retrying"
        );
        self.failing = Some(Failing {
            retry_at: now + FIRST_RETRY,
            delay: FIRST_RETRY,
            lost: len,
        });
        self.notify(Some(problem), len);
    }

    fn count_lost(&mut self, len: usize) {
        self.report.lost += len as u64;
        self.counts.lost.fetch_add(len as u64, Ordering::Relaxed);
    }

    fn notify(&self, problem: Option<String>, lost: u64) {
        let _ = self.notices.send(LogNotice {
            owner: self.owner,
            label: self.label.clone(),
            problem,
            lost,
        });
    }

    /// The device the open log file is on, and whether it is a regular
    /// file; `None` while none is open.
    pub(crate) fn device(&self) -> Option<(u64, bool)> {
        self.sink
            .as_ref()
            .map(|sink| (sink.device(), sink.is_regular()))
    }

    /// Writes the echo's last line that never got its newline.
    pub(crate) fn finish(&mut self) {
        if let Some(echo) = self.echo.as_mut() {
            crate::console::stdout().write_waiting(&echo.finish(), ECHO_WAIT);
        }
    }
}
