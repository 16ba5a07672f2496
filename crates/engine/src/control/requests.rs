//! Routing one connection's requests: parsed, then sent to the engine
//! (which owns every process) or served here (`events`, `tail`, `stats`),
//! each reply queued in order.

use std::sync::Arc;

use ringmaster_protocol::{
    Command, ErrorKind as Kind, Event, MAX_LINE_BYTES, MaintailResult, Reply, ReplyError, Request,
    Response, TailResult,
};
use serde_json::Value;
use tokio::io::AsyncBufRead;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::framing::{Line, Next, read_request};
use super::streams::{output, stream_events, stream_tail, taps};
use super::{Ended, IDLE_TIMEOUT, Incoming, Input, LINE_TIMEOUT};
use crate::refusal::Refusal;

/// The request loop of one connection: each reply goes to `replies`.
/// Streams (`events`, `tail -f`) take the connection over until it closes.
pub(super) async fn serve_requests<R: AsyncBufRead + Unpin>(
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
                        Ok(targets) => Reply::answer(
                            id,
                            &Response::Tail(TailResult {
                                processes: targets
                                    .iter()
                                    .map(|t| output(t, &t.tap.snapshot(args.lines).0, 0))
                                    .collect(),
                            }),
                        ),
                    },
                    Ok(Request::Stats(args)) => stats(engine, id, args).await,
                    // The daemon's log is kept by its console writer, not
                    // the engine.
                    Ok(Request::Maintail(args)) => {
                        let log = ringmaster_logs::console::stderr().recent(args.lines);
                        let log = String::from_utf8_lossy(&log).into_owned();
                        Reply::answer(id, &Response::Maintail(MaintailResult { log }))
                    }
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

/// Sends `request` to the engine and waits for its reply.
pub(super) async fn ask_engine(engine: &mpsc::Sender<Input>, id: Value, request: Request) -> Reply {
    let (reply, answer) = oneshot::channel();
    let gone = |id| Refusal::Gone.reply(id);
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
pub(super) async fn stats(
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
    let processes = match status.into_response(Command::Status) {
        Ok(Response::Status(status)) => status.processes,
        Ok(_) => Vec::new(),
        Err(ReplyError::Refused(error)) => return Reply::failure(id, error.kind, error.message),
        Err(ReplyError::Malformed(why)) => return Reply::failure(id, Kind::Internal, why),
    };
    let tree = args.tree;
    match tokio::task::spawn_blocking(move || crate::stats::measure(&processes, tree)).await {
        Ok(result) => Reply::answer(id, &Response::Stats(result)),
        Err(err) => Reply::failure(id, Kind::Internal, format!("stats failed: {err}")),
    }
}
