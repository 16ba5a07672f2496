//! Readiness checks that poll a process from outside (`ready = { tcp }`,
//! `{ http }`): each runs as a task of its own, off the engine's, and
//! reports a pass as an input of the engine; the lifecycle's timer decides
//! when it is too late. A `{ cmd }` check's command is a child of the
//! engine's (it owns every child); here is only its pause between tries. A check ends when it passes or when its process
//! leaves STARTING (the engine cancels it). With no check configured no
//! task exists, so an idle daemon still never wakes up.

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

/// Longest one try may take: a server that accepts but never answers
/// fails this try, and the next one comes after the interval.
const TRY_LIMIT: Duration = Duration::from_secs(2);

/// A check of process `pid` (in slot `id`) passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Passed {
    /// The slot.
    pub id: ProcId,
    /// The process that passed.
    pub pid: Pid,
}

/// What the checks tell the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CheckEvent {
    /// A check passed.
    Passed(Passed),
    /// Time to run a `cmd` check's command again for this process.
    RunAgain(Passed),
}

/// What a polled check tries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Probe {
    /// A TCP connection to `HOST:PORT` is accepted.
    Tcp(String),
    /// `GET URL` answers 2xx.
    Http(String),
}

/// The polled checks under way, one per STARTING slot at most.
#[derive(Debug)]
pub(crate) struct Checks {
    running: HashMap<ProcId, AbortHandle>,
    passed: mpsc::UnboundedSender<CheckEvent>,
}

impl Checks {
    /// No check yet, and where passes will be reported.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<CheckEvent>) {
        let (passed, reports) = mpsc::unbounded_channel();
        (
            Self {
                running: HashMap::new(),
                passed,
            },
            reports,
        )
    }

    /// Where a check that is not polled (a log line, a notification)
    /// reports its pass.
    pub fn reporter(&self) -> mpsc::UnboundedSender<CheckEvent> {
        self.passed.clone()
    }

    /// Polls `probe` for process `pid` of slot `id` every `interval`
    /// until it passes; a check already running for the slot is replaced.
    pub fn start(&mut self, id: ProcId, pid: Pid, probe: Probe, interval: Duration) {
        self.cancel(id);
        let passed = self.passed.clone();
        let task = tokio::spawn(async move {
            loop {
                if tries(&probe).await {
                    let _ = passed.send(CheckEvent::Passed(Passed { id, pid }));
                    return;
                }
                tokio::time::sleep(interval).await;
            }
        });
        self.running.insert(id, task.abort_handle());
    }

    /// Asks for the `cmd` check of process `pid` of slot `id` to run again
    /// after `interval` (unless the check is cancelled meanwhile).
    pub fn again_after(&mut self, id: ProcId, pid: Pid, interval: Duration) {
        self.cancel(id);
        let events = self.passed.clone();
        let task = tokio::spawn(async move {
            tokio::time::sleep(interval).await;
            let _ = events.send(CheckEvent::RunAgain(Passed { id, pid }));
        });
        self.running.insert(id, task.abort_handle());
    }

    /// Ends the check of slot `id`, if one runs.
    pub fn cancel(&mut self, id: ProcId) {
        if let Some(task) = self.running.remove(&id) {
            task.abort();
        }
    }
}

/// One try of `probe`, within [`TRY_LIMIT`].
async fn tries(probe: &Probe) -> bool {
    let attempt = async {
        match probe {
            Probe::Tcp(address) => TcpStream::connect(address.as_str()).await.is_ok(),
            Probe::Http(url) => http_status(url)
                .await
                .is_ok_and(|s| (200..300).contains(&s)),
        }
    };
    tokio::time::timeout(TRY_LIMIT, attempt)
        .await
        .unwrap_or(false)
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
        assert!(!tries(&Probe::Http(url.clone())).await, "503 is not ready");
        assert!(tries(&Probe::Http(url)).await, "200 is");
        server.await.unwrap();
        assert!(!tries(&Probe::Tcp(address.to_string())).await, "closed now");
    }
}
