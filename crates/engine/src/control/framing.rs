//! Request lines: read one at a time, at most [`MAX_LINE_BYTES`] kept in
//! memory (a longer line is skipped to its newline and reported), with a
//! deadline for the first byte (idle) and for the rest (slow).

use ringmaster_protocol::MAX_LINE_BYTES;
use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio_util::sync::CancellationToken;

use super::{IDLE_TIMEOUT, LINE_TIMEOUT, READ_BUFFER};

/// What ended a wait for the next request line.
pub(super) enum Next {
    /// A line, or the read error.
    Line(std::io::Result<Line>),
    /// No request began within the idle timeout.
    Idle,
    /// A request began but did not end within the line timeout.
    Slow,
    /// The daemon is stopping.
    Cancelled,
}

/// Reads the next request line: the first byte within [`IDLE_TIMEOUT`],
/// the rest within [`LINE_TIMEOUT`].
pub(super) async fn read_request<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    line: &mut Vec<u8>,
    token: &CancellationToken,
) -> Next {
    // fill_buf is cancel-safe: what it read stays in the buffer.
    let first = tokio::select! {
        first = tokio::time::timeout(IDLE_TIMEOUT, reader.fill_buf()) => first,
        () = token.cancelled() => return Next::Cancelled,
    };
    match first {
        Err(_) => return Next::Idle,
        Ok(Err(err)) => return Next::Line(Err(err)),
        Ok(Ok(_)) => {}
    }
    tokio::select! {
        next = tokio::time::timeout(LINE_TIMEOUT, next_line(reader, line)) => {
            next.map_or(Next::Slow, Next::Line)
        }
        () = token.cancelled() => Next::Cancelled,
    }
}

/// The result of reading one line.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Line {
    /// A whole line is in the buffer (newline removed).
    Complete,
    /// The line was longer than the limit and was skipped.
    TooLong,
    /// The client closed the connection.
    Eof,
}

/// Reads one newline-terminated line into `buf`, keeping at most
/// [`MAX_LINE_BYTES`] in memory.
pub(super) async fn next_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    buf: &mut Vec<u8>,
) -> std::io::Result<Line> {
    buf.clear();
    // One big request must not pin a megabyte per idle connection.
    buf.shrink_to(READ_BUFFER);
    let mut too_long = false;
    loop {
        let available = reader.fill_buf().await?;
        if available.is_empty() {
            return Ok(if too_long {
                Line::TooLong
            } else if buf.is_empty() {
                Line::Eof
            } else {
                Line::Complete
            });
        }
        let (chunk, used, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..i], i + 1, true),
            None => (available, available.len(), false),
        };
        if !too_long {
            if buf.len() + chunk.len() > MAX_LINE_BYTES {
                too_long = true;
                buf.clear();
                buf.shrink_to(READ_BUFFER);
            } else {
                buf.extend_from_slice(chunk);
            }
        }
        reader.consume(used);
        if done {
            return Ok(if too_long {
                Line::TooLong
            } else {
                Line::Complete
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::io::{AsyncWriteExt, BufReader};

    use super::*;

    /// Every line of `input`, as `next_line` reads them.
    async fn lines(input: &[u8]) -> Vec<(Line, String)> {
        let mut reader = BufReader::with_capacity(64, input);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        loop {
            let line = next_line(&mut reader, &mut buf).await.unwrap();
            if line == Line::Eof {
                return out;
            }
            out.push((line, String::from_utf8_lossy(&buf).into_owned()));
        }
    }

    #[tokio::test]
    async fn lines_end_at_newlines_and_the_last_may_lack_one() {
        let got = lines(b"{\"cmd\":\"status\"}\n\n{\"cmd\":\"version\"}").await;
        assert_eq!(
            got,
            [
                (Line::Complete, "{\"cmd\":\"status\"}".to_owned()),
                (Line::Complete, String::new()),
                (Line::Complete, "{\"cmd\":\"version\"}".to_owned()),
            ]
        );
    }

    #[tokio::test]
    async fn a_line_past_the_limit_is_skipped_to_its_newline_and_the_next_is_read() {
        let mut input = vec![b'x'; MAX_LINE_BYTES + 1];
        input.extend_from_slice(b"\nnext\n");
        let got = lines(&input).await;
        assert_eq!(
            got,
            [
                (Line::TooLong, String::new()),
                (Line::Complete, "next".to_owned())
            ]
        );
        // A line of exactly the limit is fine.
        let mut exact = vec![b'y'; MAX_LINE_BYTES];
        exact.push(b'\n');
        assert_eq!(lines(&exact).await[0].0, Line::Complete);
    }

    #[tokio::test]
    async fn a_huge_line_is_never_held_in_memory_whole() {
        let huge = vec![b'z'; 8 * MAX_LINE_BYTES];
        let mut reader = BufReader::with_capacity(4096, &huge[..]);
        let mut buf = Vec::new();
        let line = next_line(&mut reader, &mut buf).await.unwrap();
        assert_eq!(line, Line::TooLong);
        assert!(
            buf.capacity() <= MAX_LINE_BYTES + 4096,
            "{}",
            buf.capacity()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_sends_nothing_is_idle_after_the_idle_timeout() {
        let (_client, server) = tokio::io::duplex(64);
        let mut reader = BufReader::new(server);
        let started = tokio::time::Instant::now();
        let next = read_request(&mut reader, &mut Vec::new(), &CancellationToken::new()).await;
        assert!(matches!(next, Next::Idle));
        assert_eq!(started.elapsed(), IDLE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_begun_must_end_within_the_line_timeout() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"{\"cmd\":").await.unwrap();
        let mut reader = BufReader::new(server);
        let started = tokio::time::Instant::now();
        let next = read_request(&mut reader, &mut Vec::new(), &CancellationToken::new()).await;
        assert!(matches!(next, Next::Slow));
        assert_eq!(started.elapsed(), LINE_TIMEOUT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stopping_daemon_ends_the_wait_at_once() {
        let (_client, server) = tokio::io::duplex(64);
        let mut reader = BufReader::new(server);
        let token = CancellationToken::new();
        let cancel = token.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            cancel.cancel();
        });
        let next = read_request(&mut reader, &mut Vec::new(), &token).await;
        assert!(matches!(next, Next::Cancelled));
    }

    #[tokio::test]
    async fn a_line_read_whole_is_returned() {
        let (mut client, server) = tokio::io::duplex(64);
        client.write_all(b"{\"cmd\":\"pid\"}\n").await.unwrap();
        let mut reader = BufReader::new(server);
        let mut line = Vec::new();
        let next = read_request(&mut reader, &mut line, &CancellationToken::new()).await;
        assert!(matches!(next, Next::Line(Ok(Line::Complete))));
        assert_eq!(line, b"{\"cmd\":\"pid\"}");
    }
}
