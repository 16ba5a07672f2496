//! Checks that poll a process from outside: readiness (`ready = { tcp }`,
//! `{ http }`) while it is STARTING, health (`health = { tcp | http }`)
//! while it is RUNNING. Each runs as a task of its own, off the engine's,
//! and reports to the engine as an input; the lifecycle decides what a
//! result means. A `{ cmd }` check's command is a child of the engine's
//! (it owns every child); here are only its pauses between runs and a
//! health command's deadline. A check ends when its process leaves the
//! state it is checked in (the engine cancels it). With no check
//! configured no task exists, so an idle daemon still never wakes up;
//! with health checks it wakes once per check.

use std::collections::HashMap;
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use nix::unistd::Pid;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

use crate::process::ProcId;

/// Longest one readiness try may take: a server that accepts but never
/// answers fails this try, and the next one comes after the interval.
const TRY_LIMIT: Duration = Duration::from_secs(2);

/// The process a check is about: slot `id`, process `pid`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The slot.
    pub id: ProcId,
    /// The process checked (a result for an earlier one means nothing).
    pub pid: Pid,
}

/// Which check a `cmd` run is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// `ready`: exit 0 makes a STARTING process RUNNING.
    Ready,
    /// `health`: exit 0 within the timeout is healthy.
    Health,
}

/// What the checks tell the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckEvent {
    /// A readiness check passed.
    Passed(Checked),
    /// A health check ran: passed, or why not.
    Health(Checked, Result<(), String>),
    /// Time to run a `cmd` check's command again for this process.
    RunAgain(Checked, Purpose),
    /// The health or hook command `probe` did not finish in time.
    TooSlow { probe: Pid },
}

/// What a polled check tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A TCP connection to `HOST:PORT` is accepted.
    Tcp(String),
    /// `GET URL` answers 2xx.
    Http(String),
}

/// The polled checks under way, one per slot at most (readiness and
/// health never overlap: one is for STARTING, the other for RUNNING), and
/// the deadlines of health commands.
#[derive(Debug)]
pub(crate) struct Checks {
    running: HashMap<ProcId, AbortHandle>,
    deadlines: HashMap<Pid, AbortHandle>,
    events: mpsc::UnboundedSender<CheckEvent>,
}

impl Checks {
    /// No check yet, and where results will be reported.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<CheckEvent>) {
        let (events, reports) = mpsc::unbounded_channel();
        (
            Self {
                running: HashMap::new(),
                deadlines: HashMap::new(),
                events,
            },
            reports,
        )
    }

    /// Where a check that is not polled (a log line, a notification)
    /// reports its pass.
    pub fn reporter(&self) -> mpsc::UnboundedSender<CheckEvent> {
        self.events.clone()
    }

    /// Polls `probe` for process `pid` of slot `id` every `interval`
    /// until it passes; a check already running for the slot is replaced.
    pub fn start(&mut self, id: ProcId, pid: Pid, probe: Probe, interval: Duration) {
        let events = self.events.clone();
        self.run(id, async move {
            loop {
                if attempt(&probe, TRY_LIMIT).await.is_ok() {
                    let _ = events.send(CheckEvent::Passed(Checked { id, pid }));
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
    }

    /// Tries `probe` for process `pid` of slot `id` every `interval`
    /// (the first one `interval` from now), each within `timeout`,
    /// reporting every result, until cancelled.
    pub fn start_health(
        &mut self,
        id: ProcId,
        pid: Pid,
        probe: Probe,
        interval: Duration,
        timeout: Duration,
    ) {
        let events = self.events.clone();
        self.run(id, async move {
            loop {
                tokio::time::sleep(interval).await;
                let outcome = attempt(&probe, timeout).await;
                if events
                    .send(CheckEvent::Health(Checked { id, pid }, outcome))
                    .is_err()
                {
                    return;
                }
            }
        });
    }

    /// Asks for the `cmd` check (`purpose`) of process `pid` of slot `id`
    /// to run again after `interval` (unless the check is cancelled
    /// meanwhile).
    pub fn again_after(&mut self, id: ProcId, pid: Pid, interval: Duration, purpose: Purpose) {
        let events = self.events.clone();
        self.run(id, async move {
            tokio::time::sleep(interval).await;
            let _ = events.send(CheckEvent::RunAgain(Checked { id, pid }, purpose));
        });
    }

    /// Reports the health or hook command `probe` too slow after `timeout`,
    /// unless [`Self::finished`] says it ended first.
    pub fn deadline(&mut self, probe: Pid, timeout: Duration) {
        let events = self.events.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(timeout).await;
            let _ = events.send(CheckEvent::TooSlow { probe });
        });
        if let Some(old) = self.deadlines.insert(probe, task.abort_handle()) {
            old.abort();
        }
    }

    /// The command `probe` ended: its deadline, if any, is off.
    pub fn finished(&mut self, probe: Pid) {
        if let Some(task) = self.deadlines.remove(&probe) {
            task.abort();
        }
    }

    /// Ends the check of slot `id`, if one runs.
    pub fn cancel(&mut self, id: ProcId) {
        if let Some(task) = self.running.remove(&id) {
            task.abort();
        }
    }

    /// Runs `check` as slot `id`'s one check, replacing any other.
    fn run(&mut self, id: ProcId, check: impl Future<Output = ()> + Send + 'static) {
        self.cancel(id);
        let task = tokio::spawn(check);
        self.running.insert(id, task.abort_handle());
    }
}

/// One try of `probe` within `limit`: passed, or why not.
async fn attempt(probe: &Probe, limit: Duration) -> Result<(), String> {
    let attempt = async {
        match probe {
            Probe::Tcp(address) => TcpStream::connect(address.as_str())
                .await
                .map(drop)
                .map_err(|e| format!("tcp {address}: {e}")),
            Probe::Http(url) => match http_status(url).await {
                Ok(status) if (200..300).contains(&status) => Ok(()),
                Ok(status) => Err(format!("GET {url} answered {status}")),
                Err(e) => Err(format!("GET {url}: {e}")),
            },
        }
    };
    let what = match probe {
        Probe::Tcp(address) => format!("tcp {address}"),
        Probe::Http(url) => format!("GET {url}"),
    };
    tokio::time::timeout(limit, attempt)
        .await
        .unwrap_or_else(|_| {
            Err(format!(
                "{what}: no answer within {}",
                crate::lifecycle::humanize(limit)
            ))
        })
}

/// The status `GET url` answers with.
pub(crate) async fn http_status(url: &str) -> Result<u16, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad URL {url}: {e}"))?;
    let host = uri.host().ok_or_else(|| format!("no host in {url}"))?;
    let port = uri.port_u16().unwrap_or(80);
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let stream = TcpStream::connect((bare, port))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    // Drives the connection until the answer is in (the sender's drop
    // ends it).
    let driver = tokio::spawn(connection);
    let authority = uri
        .authority()
        .map_or(host, hyper::http::uri::Authority::as_str);
    let request = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, authority)
        .header(hyper::header::USER_AGENT, "ringmaster-ready")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let answer = sender.send_request(request).await;
    drop(sender);
    driver.abort();
    answer
        .map(|r| r.status().as_u16())
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_http_check_reads_the_status_of_a_real_server() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for status in ["503 Service Unavailable", "200 OK"] {
                let (mut conn, _) = listener.accept().await.unwrap();
                let mut request = [0u8; 1024];
                let read = conn.read(&mut request).await.unwrap();
                assert!(request[..read].starts_with(b"GET /health HTTP/1.1\r\n"));
                let answer = format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n");
                conn.write_all(answer.as_bytes()).await.unwrap();
            }
        });
        let url = format!("http://{address}/health");
        let first = attempt(&Probe::Http(url.clone()), TRY_LIMIT).await;
        assert_eq!(first, Err(format!("GET {url} answered 503")), "503 fails");
        assert_eq!(
            attempt(&Probe::Http(url), TRY_LIMIT).await,
            Ok(()),
            "200 passes"
        );
        server.await.unwrap();
        let closed = attempt(&Probe::Tcp(address.to_string()), TRY_LIMIT).await;
        assert!(closed.is_err_and(|e| e.contains("refused")), "closed now");
    }
}
