//! The HTTP listener of `[daemon] metrics`: `/metrics`, `/health` and
//! `/targets`, for Prometheus and load balancers.
//!
//! Theory of operation: hyper serves HTTP/1.1 on the configured address,
//! each connection its own task, at most [`MAX_CONNECTIONS`] at once (a
//! client past that is closed at once), each request's head due within
//! [`HEADER_TIMEOUT`] (an idle kept-alive connection too). A request asks
//! the engine for a [`Snapshot`] through the channel control connections
//! use, so the engine spends one short turn copying figures; reading /proc
//! for CPU, memory and descriptors and rendering the text happen here, on
//! the blocking pool. Nothing runs while nobody asks: no timer is armed
//! without a connection, so an unscraped daemon never wakes up. None of
//! these paths needs a login: they show figures, never change anything.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::header::{ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ringmaster_metrics::Snapshot;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::control::Input;

/// Connections served at once; Prometheus holds one per target.
const MAX_CONNECTIONS: usize = 64;
/// A request's head must arrive within this (also the longest a
/// kept-alive connection may sit idle).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest an answer may take, engine and /proc included.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes buffered per connection: enough for any sane request head.
const MAX_BUFFER: usize = 16 * 1024;
/// How long to wait before accepting again after accept failed (out of
/// descriptors, above all).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

type Answer = Response<Full<Bytes>>;

/// Most distinct problems with multiprocess files remembered, so that
/// each is logged once rather than at every scrape.
const MAX_REMEMBERED: usize = 1024;

/// What every connection shares.
#[derive(Clone)]
struct Shared {
    engine: mpsc::Sender<Input>,
    /// Problems with multiprocess files already logged.
    reported: Arc<Mutex<HashSet<String>>>,
}

impl Shared {
    /// Logs `problem` of `watcher`'s files, unless it was logged before.
    fn report(&self, watcher: &str, problem: &str) {
        let mut reported = self.reported.lock().unwrap_or_else(PoisonError::into_inner);
        if reported.len() < MAX_REMEMBERED && reported.insert(format!("{watcher}: {problem}")) {
            tracing::warn!(watcher, "prometheus_multiproc: skipped {problem}");
        }
    }
}

/// Serves `listener` until `token` is cancelled.
pub(crate) fn start(
    listener: std::net::TcpListener,
    engine: mpsc::Sender<Input>,
    token: CancellationToken,
) {
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    match listener
        .set_nonblocking(true)
        .and_then(|()| TcpListener::from_std(listener))
    {
        Ok(listener) => {
            tracing::info!(%address, "serving /metrics, /health and /targets");
            tokio::spawn(serve(listener, engine, token));
        }
        Err(err) => tracing::error!(%address, "cannot serve metrics: {err}"),
    }
}

async fn serve(listener: TcpListener, engine: mpsc::Sender<Input>, token: CancellationToken) {
    let shared = Shared {
        engine,
        reported: Arc::default(),
    };
    accept_loop(listener, MAX_CONNECTIONS, token, "metrics", move |stream| {
        connection(stream, shared.clone())
    })
    .await;
}

/// Accepts on `listener` until `token` is cancelled, each connection
/// served by its own `serve` task: at most `limit` at once (a client past
/// it is closed at once), and after an accept failure (out of
/// descriptors, above all) a pause before the next. `what` names the
/// listener in the daemon's log. The metrics and XML-RPC listeners.
pub(crate) async fn accept_loop<F, Fut>(
    listener: TcpListener,
    limit: usize,
    token: CancellationToken,
    what: &'static str,
    serve: F,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = token.cancelled() => break,
        };
        while connections.try_join_next().is_some() {}
        match accepted {
            Ok((stream, _)) if connections.len() >= limit => drop(stream),
            Ok((stream, _)) => {
                connections.spawn(serve(stream));
            }
            Err(err) => {
                tracing::warn!("{what} listener: accept failed: {err}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
    connections.abort_all();
}

async fn connection(stream: TcpStream, shared: Shared) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let shared = shared.clone();
        async move { Ok::<_, Infallible>(answer(&shared, &request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(MAX_BUFFER);
    // A client that goes away or sends garbage ends only its connection.
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
}

/// The answer to one request.
async fn answer(shared: &Shared, request: &Request<hyper::body::Incoming>) -> Answer {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = text(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n");
        response
            .headers_mut()
            .insert(ALLOW, hyper::header::HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    let path = request.uri().path();
    let merged = path.strip_prefix("/metrics/").filter(|w| !w.is_empty());
    if !matches!(path, "/metrics" | "/health" | "/targets") && merged.is_none() {
        return text(
            StatusCode::NOT_FOUND,
            "not found: ringmasterd serves /metrics, /metrics/WATCHER, /health and /targets\n",
        );
    }
    let accept = request
        .headers()
        .get(hyper::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let path = path.to_owned();
    let work = async move {
        let snapshot = snapshot(&shared.engine).await?;
        Some(match path.as_str() {
            "/metrics" => metrics(snapshot, accept.as_deref()).await,
            _ if path.starts_with("/metrics/") => {
                workers_metrics(shared, &snapshot, &path["/metrics/".len()..]).await
            }
            "/health" => {
                let (healthy, body) = ringmaster_metrics::health(&snapshot);
                let status = if healthy {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                };
                text(status, &body)
            }
            _ => with_type(
                StatusCode::OK,
                "application/json",
                ringmaster_metrics::targets(&snapshot),
            ),
        })
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, work).await {
        Ok(Some(answer)) => answer,
        Ok(None) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "ringmasterd is shutting down\n",
        ),
        Err(_) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "ringmasterd did not answer in time\n",
        ),
    }
}

/// The engine's figures; `None` once it is gone.
async fn snapshot(engine: &mpsc::Sender<Input>) -> Option<Snapshot> {
    let (reply, answer) = oneshot::channel();
    engine.send(Input::Metrics { reply }).await.ok()?;
    answer.await.ok()
}

/// `/metrics`: /proc is read and the text written on the blocking pool.
async fn metrics(mut snapshot: Snapshot, accept: Option<&str>) -> Answer {
    let openmetrics = ringmaster_metrics::wants_openmetrics(accept);
    let rendered = tokio::task::spawn_blocking(move || {
        ringmaster_metrics::measure(&mut snapshot);
        let text = ringmaster_metrics::render(snapshot);
        if openmetrics {
            text
        } else {
            ringmaster_metrics::to_text_format(&text)
        }
    })
    .await;
    match rendered {
        Ok(body) => {
            let kind = if openmetrics {
                ringmaster_metrics::CONTENT_TYPE
            } else {
                ringmaster_metrics::TEXT_CONTENT_TYPE
            };
            with_type(StatusCode::OK, kind, body)
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot render metrics: {err}\n"),
        ),
    }
}

/// `/metrics/WATCHER`: the merged metrics its Python workers wrote
/// (`prometheus_multiproc`), read on the blocking pool.
async fn workers_metrics(shared: &Shared, snapshot: &Snapshot, watcher: &str) -> Answer {
    let dir = snapshot
        .watchers
        .iter()
        .find(|w| w.name == watcher)
        .and_then(|w| w.multiproc_dir.clone());
    let Some(dir) = dir else {
        return text(
            StatusCode::NOT_FOUND,
            &format!("not found: no watcher '{watcher}' with prometheus_multiproc = true\n"),
        );
    };
    match tokio::task::spawn_blocking(move || ringmaster_metrics::merge_dir(&dir)).await {
        Ok(merged) => {
            for problem in &merged.problems {
                shared.report(watcher, problem);
            }
            with_type(
                StatusCode::OK,
                ringmaster_metrics::TEXT_CONTENT_TYPE,
                merged.text,
            )
        }
        Err(err) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            &format!("cannot merge metrics: {err}\n"),
        ),
    }
}

fn text(status: StatusCode, body: &str) -> Answer {
    with_type(status, "text/plain; charset=utf-8", body.to_owned())
}

fn with_type(status: StatusCode, kind: &'static str, body: String) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, hyper::header::HeaderValue::from_static(kind));
    response
}
