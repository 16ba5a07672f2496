//! What `tail` reads: the last 64 KiB of a stream, kept in memory across
//! restarts of its process, and a live feed for followers.
//!
//! A tap is written by its pump on the log thread and read by the engine
//! (snapshots) and by control connections (follow), so the ring sits behind
//! a mutex: one uncontended lock per chunk read from the pipe. Followers get
//! chunks through a broadcast channel: a follower that falls behind loses
//! chunks (and is told how many bytes) instead of slowing the pump.

use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::broadcast;

/// Bytes of each stream kept for `tail`.
pub const TAIL_BYTES: usize = 64 * 1024;
/// Chunks buffered per follower before it starts skipping.
const FOLLOW_BUFFER: usize = 256;
/// Largest chunk sent to followers: with [`FOLLOW_BUFFER`], at most 4 MiB
/// of a stream is held for its slowest follower.
const FEED_PIECE: usize = 16 * 1024;

/// A piece of a stream, with its position in everything the stream carried.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Bytes the stream carried before this chunk.
    pub offset: u64,
    /// The bytes.
    pub data: Arc<[u8]>,
}

#[derive(Debug, Default)]
struct Ring {
    /// At most TAIL_BYTES, oldest first.
    bytes: std::collections::VecDeque<u8>,
    /// Everything ever written.
    total: u64,
    /// The live feed, created by the first follower (a broadcast channel
    /// allocates all its slots up front: idle processes should not pay).
    live: Option<broadcast::Sender<Chunk>>,
}

/// The tail buffer and live feed of one stream of one process slot.
#[derive(Debug, Default)]
pub struct Tap {
    ring: Mutex<Ring>,
}

impl Tap {
    /// A new, empty tap, shareable between the pump and readers.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Records bytes the process wrote.
    pub fn push(&self, data: &[u8]) {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let offset = ring.total;
        ring.total += data.len() as u64;
        let keep = data.len().min(TAIL_BYTES);
        let overflow = (ring.bytes.len() + keep).saturating_sub(TAIL_BYTES);
        ring.bytes.drain(..overflow);
        ring.bytes.extend(&data[data.len() - keep..]);
        if let Some(live) = &ring.live {
            if live.receiver_count() == 0 {
                ring.live = None;
            } else {
                // Never blocks: a follower that lags loses chunks. Pieces
                // are bounded so a lagging follower pins a bounded amount
                // of memory (FOLLOW_BUFFER * FEED_PIECE), whatever the
                // size of the reads from the pipe.
                let mut piece_offset = offset;
                for piece in data.chunks(FEED_PIECE) {
                    let _ = live.send(Chunk {
                        offset: piece_offset,
                        data: Arc::from(piece),
                    });
                    piece_offset += piece.len() as u64;
                }
            }
        }
    }

    /// The last `lines` lines kept (all that is kept when `None`), and the
    /// stream offset just after them.
    pub fn snapshot(&self, lines: Option<usize>) -> (Vec<u8>, u64) {
        let ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        let bytes: Vec<u8> = ring.bytes.iter().copied().collect();
        let total = ring.total;
        drop(ring);
        let Some(lines) = lines else {
            return (bytes, total);
        };
        // Count newlines from the end; a trailing partial line counts as one.
        let mut seen = 0;
        let body_end = if bytes.ends_with(b"\n") {
            bytes.len() - 1
        } else {
            bytes.len()
        };
        let mut start = 0;
        for (i, byte) in bytes[..body_end].iter().enumerate().rev() {
            if *byte == b'\n' {
                seen += 1;
                if seen == lines {
                    start = i + 1;
                    break;
                }
            }
        }
        if lines == 0 {
            start = bytes.len();
        }
        (bytes[start..].to_vec(), total)
    }

    /// A live feed of what comes next.
    pub fn follow(&self) -> broadcast::Receiver<Chunk> {
        let mut ring = self.ring.lock().unwrap_or_else(PoisonError::into_inner);
        ring.live
            .get_or_insert_with(|| broadcast::Sender::new(FOLLOW_BUFFER))
            .subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_64k_and_counts_everything() {
        let tap = Tap::new();
        for i in 0..2000u32 {
            tap.push(
                format!("line {i:05} with some padding to make it longer than short\n").as_bytes(),
            );
        }
        let (all, total) = tap.snapshot(None);
        assert_eq!(all.len(), TAIL_BYTES);
        assert_eq!(total, 2000 * 58);
        let (last, _) = tap.snapshot(Some(2));
        assert_eq!(
            String::from_utf8(last).unwrap(),
            "line 01998 with some padding to make it longer than short\nline 01999 with some padding to make it longer than short\n"
        );
    }

    #[test]
    fn a_partial_last_line_counts_as_a_line() {
        let tap = Tap::new();
        tap.push(b"a\nb\nc");
        assert_eq!(tap.snapshot(Some(2)).0, b"b\nc");
        assert_eq!(tap.snapshot(Some(10)).0, b"a\nb\nc");
        assert_eq!(tap.snapshot(Some(0)).0, b"");
    }

    #[test]
    fn followers_see_offsets_and_can_tell_what_they_missed() {
        let tap = Tap::new();
        tap.push(b"before\n");
        let mut follower = tap.follow();
        tap.push(b"after\n");
        let chunk = follower.try_recv().unwrap();
        assert_eq!(chunk.offset, 7);
        assert_eq!(&*chunk.data, b"after\n");
        // A big read reaches followers in bounded pieces, offsets running on.
        tap.push(&vec![b'x'; FEED_PIECE * 2 + 1]);
        let sizes: Vec<(u64, usize)> = (0..3)
            .map(|_| follower.try_recv().unwrap())
            .map(|c| (c.offset, c.data.len()))
            .collect();
        let piece = FEED_PIECE as u64;
        assert_eq!(
            sizes,
            [
                (13, FEED_PIECE),
                (13 + piece, FEED_PIECE),
                (13 + 2 * piece, 1)
            ]
        );
    }
}
