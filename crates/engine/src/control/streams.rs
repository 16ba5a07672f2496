//! The streams a connection turns into: `events` (every state change)
//! and `tail -f` (a process's output). A slow client never holds up the
//! engine or the process: broadcasts drop what it does not take, and it is
//! told how much it missed.

use ringmaster_logs::Chunk;
use ringmaster_protocol::{Event, Output, StreamLine, TailArgs};
use serde_json::Value;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use std::sync::Arc;

use super::{Input, TapTarget};
use crate::refusal::Refusal;

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
pub(super) async fn stream_events<R: AsyncBufRead + Unpin>(
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

/// The tail buffers `args` names, from the engine.
pub(super) async fn taps(
    engine: &mpsc::Sender<Input>,
    args: &TailArgs,
) -> Result<Vec<TapTarget>, Refusal> {
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

/// One piece of a stream's output, as the protocol sends it.
pub(super) fn output(target: &TapTarget, data: &[u8], skipped_bytes: u64) -> Output {
    Output {
        name: target.name.clone(),
        alias: target.alias.clone(),
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
pub(super) async fn stream_tail<R: AsyncBufRead + Unpin>(
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
