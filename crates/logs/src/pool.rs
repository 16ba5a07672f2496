//! The writers: a fixed, small set of threads that take batches of bytes
//! from every stream and write them to their log files, as many streams
//! per wake-up as have something waiting.
//!
//! Theory of operation: the reader (see `reader.rs`) appends what it reads
//! to a stream's [`Shared`] buffer and queues the stream here, once, until
//! a writer has written it; the writers pop streams in turn, write, and
//! queue the stream again at the back if more arrived meanwhile. One
//! stream is only ever in one writer's hands, so its bytes stay in order.
//!
//! A disk that stops answering (a frozen filesystem, a dead NFS server)
//! blocks the writer inside write(2) or open(2), and nothing can take it
//! back. So the reader, while work is outstanding, looks at how long each
//! writer has been busy: one busy for [`STALL`] is counted stuck, the
//! device it writes to is marked stalled, and a relief writer is started
//! so that [`WRITERS`] are always free to work. Streams whose file is on a
//! stalled device are set aside (parked) instead of being handed to a
//! writer that would only get stuck too; their buffers fill, the reader
//! stops reading their pipes, and their processes block on write, as a
//! disk-bound program does. When the stuck write returns, its device is
//! unmarked, the parked streams go back in the queue, and the thread that
//! was stuck exits if a relief has taken its place: in steady state there
//! are [`WRITERS`] threads, whatever the number of streams.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::reader::{Command, Inbox};
use crate::writer::Writer;
use crate::{CHUNK, PumpReport, THREAD_STACK};

/// Writer threads in steady state: two, so that one slow (not stuck)
/// write does not hold up every other stream's until [`STALL`].
pub(crate) const WRITERS: usize = 2;
/// A write or open that has not returned after this long is stuck.
pub(crate) const STALL: Duration = Duration::from_millis(200);
/// Streams queued at once beyond which a second writer is woken.
const LONG_QUEUE: usize = 64;
/// What a stream reads at a time at first, and at least: a quiet process
/// holds two buffers of this much (and an idle one none).
pub(crate) const FIRST_WINDOW: usize = 4 * 1024;
/// Small batches in a row after which a stream's window halves: a fast
/// stream's batches vary with how quickly its file takes them, and must
/// not make its window shrink and grow again and again.
const QUIET_BATCHES: u32 = 64;

/// Locks a mutex whose holder may have panicked: the data is still
/// consistent (every critical section here is a few assignments).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Bytes read from a pipe and not yet written. The vector is kept
/// initialised up to its length, so reading into it needs no `unsafe`
/// and zeroes memory only when the buffer grows.
#[derive(Debug, Default)]
pub(crate) struct Buffer {
    bytes: Vec<u8>,
    filled: usize,
}

impl Buffer {
    /// The bytes read so far.
    pub(crate) fn data(&self) -> &[u8] {
        &self.bytes[..self.filled]
    }

    /// How many bytes are waiting.
    pub(crate) fn len(&self) -> usize {
        self.filled
    }

    /// Whether nothing is waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.filled == 0
    }

    /// Room for the next read of `want` bytes.
    pub(crate) fn room(&mut self, want: usize) -> &mut [u8] {
        let end = self.filled + want;
        if self.bytes.len() < end {
            self.bytes.resize(end, 0);
        }
        &mut self.bytes[self.filled..end]
    }

    /// Counts `read` more bytes as filled (after a read into [`room`]).
    pub(crate) fn commit(&mut self, read: usize) {
        self.filled = (self.filled + read).min(self.bytes.len());
    }

    /// Appends `data`.
    #[cfg(test)]
    fn extend(&mut self, data: &[u8]) {
        self.room(data.len()).copy_from_slice(data);
        self.commit(data.len());
    }
}

/// How much a stream reads at a time: it doubles while reads fill it (a
/// fast writer), up to [`CHUNK`], and halves after a run of small
/// batches (the process went quiet).
#[derive(Debug)]
pub(crate) struct Window {
    size: usize,
    /// Batches in a row that used less than a quarter of the window.
    small: u32,
}

impl Default for Window {
    fn default() -> Self {
        Self {
            size: FIRST_WINDOW,
            small: 0,
        }
    }
}

impl Window {
    /// How much the next read may take, with `filled` bytes waiting.
    pub(crate) fn want(&self, filled: usize) -> usize {
        self.size.min(CHUNK.saturating_sub(filled))
    }

    /// A read of `read` bytes out of `want`: a full one means more waits.
    pub(crate) fn after_read(&mut self, read: usize, want: usize) -> bool {
        let full = read >= want;
        if full {
            self.size = (self.size * 2).min(CHUNK);
            self.small = 0;
        }
        full
    }

    /// `written` was written: a small batch counts towards shrinking, and
    /// the buffer is emptied and given back down to the window.
    fn after_write(&mut self, written: &mut Buffer) {
        if written.filled < self.size / 4 {
            self.small += 1;
            if self.small >= QUIET_BATCHES {
                self.size = (self.size / 2).max(FIRST_WINDOW);
                self.small = 0;
            }
        } else {
            self.small = 0;
        }
        written.filled = 0;
        // Only well past the window: a buffer in use is not reallocated
        // batch after batch.
        if written.bytes.len() > 2 * self.size {
            written.bytes.truncate(self.size);
            written.bytes.shrink_to_fit();
        }
    }
}

/// What the writer must do besides writing bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Chores {
    /// Open the file now (a new stream), so it exists as the process runs.
    pub open: bool,
    /// Reopen the file by name (after an external rotation).
    pub reopen: bool,
    /// Empty the file.
    pub clear: bool,
}

impl Chores {
    fn any(self) -> bool {
        self.open || self.reopen || self.clear
    }
}

/// A stream's state, shared by the reader, the writers and the engine's
/// [`crate::Pump`].
#[derive(Debug)]
pub(crate) struct Shared {
    /// The reader's name for the stream.
    pub token: u64,
    /// Where a stuck write of this stream stalls others too (see
    /// [`stall_key`]); 0 until its file is open. Read by the writers
    /// without taking the stream's lock.
    stall_key: AtomicU64,
    state: Mutex<State>,
}

/// The part of a stream that changes hands.
#[derive(Debug)]
pub(crate) struct State {
    /// Read and waiting for a writer.
    pub buffer: Buffer,
    /// The buffer last written, emptied, for the reader to fill next.
    spare: Buffer,
    /// The file and echo; `None` while a writer holds them.
    writer: Option<Writer>,
    /// Chores for the next round.
    pub chores: Chores,
    /// The pool holds the stream (queued, or in a writer's hands).
    queued: bool,
    /// The reader is done with the pipe: write what is left, report.
    pub closed: bool,
    /// The reader stopped reading (the buffer is full) and wants to hear
    /// once a writer has taken it.
    pub wants_room: bool,
    /// How much the reader reads at a time.
    pub window: Window,
    /// Where the final report goes.
    done: Option<oneshot::Sender<PumpReport>>,
}

impl Shared {
    /// A new stream with its writer; its file is opened on the first round.
    pub(crate) fn new(token: u64, writer: Writer, done: oneshot::Sender<PumpReport>) -> Arc<Self> {
        Arc::new(Self {
            token,
            stall_key: AtomicU64::new(0),
            state: Mutex::new(State {
                buffer: Buffer::default(),
                spare: Buffer::default(),
                writer: Some(writer),
                chores: Chores {
                    open: true,
                    ..Chores::default()
                },
                queued: false,
                closed: false,
                wants_room: false,
                window: Window::default(),
                done: Some(done),
            }),
        })
    }

    /// The stream's state, locked.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lock(&self.state)
    }
}

impl State {
    /// Marks the stream as handed to the pool; true when the caller must
    /// queue it (it was not already).
    pub(crate) fn take_for_queue(&mut self) -> bool {
        !std::mem::replace(&mut self.queued, true)
    }
}

/// A writer thread's current round.
#[derive(Debug)]
struct Busy {
    since: Instant,
    stall_key: u64,
    stuck: bool,
}

/// The queue and the writers' bookkeeping.
#[derive(Debug, Default)]
struct Work {
    ready: VecDeque<Arc<Shared>>,
    /// Streams set aside because their device is stalled.
    parked: Vec<Arc<Shared>>,
    /// Stall keys (devices, or single files) with writes stuck in them,
    /// and how many.
    stalled: HashMap<u64, usize>,
    /// Per writer slot: what it is doing, if anything.
    busy: Vec<Option<Busy>>,
    /// Slots of writers that have exited.
    free_slots: Vec<usize>,
    /// Writers waiting for work.
    idle: usize,
    /// Writers that are not stuck.
    healthy: usize,
    closing: bool,
}

/// The writer threads and their queue.
#[derive(Debug)]
pub(crate) struct Pool {
    work: Mutex<Work>,
    wake: Condvar,
    /// To tell the reader a full stream has room again.
    reader: Arc<Inbox>,
}

impl Pool {
    /// Starts [`WRITERS`] threads.
    pub(crate) fn start(reader: Arc<Inbox>) -> std::io::Result<Arc<Self>> {
        let pool = Arc::new(Self {
            work: Mutex::new(Work::default()),
            wake: Condvar::new(),
            reader,
        });
        for _ in 0..WRITERS {
            let mut work = lock(&pool.work);
            pool.spawn_writer(&mut work)?;
        }
        Ok(pool)
    }

    fn spawn_writer(self: &Arc<Self>, work: &mut Work) -> std::io::Result<()> {
        let slot = work.free_slots.pop().unwrap_or_else(|| {
            work.busy.push(None);
            work.busy.len() - 1
        });
        let pool = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("ringmaster-log-writer".into())
            .stack_size(THREAD_STACK)
            .spawn(move || pool.run_writer(slot));
        match spawned {
            Ok(_) => {
                work.healthy += 1;
                Ok(())
            }
            Err(err) => {
                work.free_slots.push(slot);
                Err(err)
            }
        }
    }

    /// Queues streams for writing (each already marked queued), waking
    /// one idle writer: it works through the whole queue, so a round of
    /// many streams costs one wake-up. A second is woken only for a long
    /// queue, or if the first is busy already.
    pub(crate) fn submit(&self, streams: impl IntoIterator<Item = Arc<Shared>>) {
        let mut work = lock(&self.work);
        work.ready.extend(streams);
        // A stuck writer will not get to the queue.
        let busy = work.busy.iter().flatten().filter(|b| !b.stuck).count();
        let wanted = if work.ready.len() > LONG_QUEUE {
            WRITERS
        } else {
            1
        };
        for _ in 0..wanted.saturating_sub(busy).min(work.idle) {
            self.wake.notify_one();
        }
    }

    /// Looks for stuck writers and starts relief for them; returns whether
    /// work is outstanding (so the caller should look again soon).
    pub(crate) fn check_stalls(self: &Arc<Self>) -> bool {
        let mut work = lock(&self.work);
        let now = Instant::now();
        let mut newly_stuck = Vec::new();
        for busy in work.busy.iter_mut().flatten() {
            if !busy.stuck && now.duration_since(busy.since) >= STALL {
                busy.stuck = true;
                newly_stuck.push(busy.stall_key);
            }
        }
        for key in newly_stuck {
            work.healthy -= 1;
            if key != 0 {
                *work.stalled.entry(key).or_default() += 1;
            }
            tracing::warn!(
                "a log write has not returned for {} ms: logs in the same place wait, the rest go on",
                STALL.as_millis()
            );
        }
        while work.healthy < WRITERS && !work.closing {
            if let Err(err) = self.spawn_writer(&mut work) {
                tracing::error!("cannot start a log writer thread: {err}");
                break;
            }
        }
        !work.ready.is_empty() || work.busy.iter().any(Option::is_some)
    }

    /// Has every writer exit once it is idle.
    pub(crate) fn close(&self) {
        lock(&self.work).closing = true;
        self.wake.notify_all();
    }

    /// One writer thread: pop a stream, write it, again.
    fn run_writer(self: Arc<Self>, slot: usize) {
        while let Some(stream) = self.next_stream(slot) {
            let more = serve(&stream, &self.reader);
            if !self.finish_round(slot, stream, more) {
                return;
            }
        }
    }

    /// Waits for a stream this writer may write; `None` when closing.
    fn next_stream(&self, slot: usize) -> Option<Arc<Shared>> {
        let mut work = lock(&self.work);
        loop {
            if work.closing {
                return None;
            }
            let Some(stream) = work.ready.pop_front() else {
                work.idle += 1;
                work = self.wake.wait(work).unwrap_or_else(PoisonError::into_inner);
                work.idle -= 1;
                continue;
            };
            let stall_key = stream.stall_key.load(Ordering::Relaxed);
            if stall_key != 0 && work.stalled.contains_key(&stall_key) {
                work.parked.push(stream);
                continue;
            }
            work.busy[slot] = Some(Busy {
                since: Instant::now(),
                stall_key,
                stuck: false,
            });
            return Some(stream);
        }
    }

    /// Books the end of a round; false when this thread should exit (it
    /// was stuck, and a relief has taken its place).
    fn finish_round(&self, slot: usize, stream: Arc<Shared>, more: bool) -> bool {
        let mut work = lock(&self.work);
        let busy = work.busy[slot].take();
        if more {
            work.ready.push_back(stream);
        }
        let Some(Busy {
            stall_key,
            stuck: true,
            ..
        }) = busy
        else {
            return true;
        };
        if let Some(count) = work.stalled.get_mut(&stall_key) {
            *count -= 1;
            if *count == 0 {
                work.stalled.remove(&stall_key);
                let (back, still): (Vec<_>, Vec<_>) = std::mem::take(&mut work.parked)
                    .into_iter()
                    .partition(|s| s.stall_key.load(Ordering::Relaxed) == stall_key);
                work.parked = still;
                work.ready.extend(back);
                self.wake.notify_all();
            }
        }
        tracing::info!("a stuck log write returned");
        if work.healthy >= WRITERS {
            work.free_slots.push(slot);
            return false;
        }
        work.healthy += 1;
        true
    }
}

/// Bit marking a stall key that names one stream, not a device.
const ONE_STREAM: u64 = 1 << 63;

/// What a stuck write of this stream says about others: a regular file
/// stuck means its filesystem is (frozen, or its server gone), so every
/// stream on that device waits aside; a FIFO or a terminal blocks alone.
fn stall_key(writer: &Writer, token: u64) -> u64 {
    match writer.device() {
        None => 0,
        Some((device, true)) => device & !ONE_STREAM,
        Some((_, false)) => ONE_STREAM | token,
    }
}

/// One round for one stream: its chores, then everything buffered; hands
/// the emptied buffer back. Returns whether the stream has more to do
/// (it stays queued), else it is no longer the pool's.
fn serve(shared: &Shared, reader: &Inbox) -> bool {
    let (mut writer, mut batch, chores, closed) = {
        let mut state = shared.lock();
        let Some(writer) = state.writer.take() else {
            // Never: a stream is in one writer's hands at a time.
            return false;
        };
        let spare = std::mem::take(&mut state.spare);
        let batch = std::mem::replace(&mut state.buffer, spare);
        if std::mem::take(&mut state.wants_room) {
            reader.send(Command::Resume(shared.token));
        }
        (
            writer,
            batch,
            std::mem::take(&mut state.chores),
            state.closed,
        )
    };
    if chores.reopen {
        writer.reopen();
    }
    if chores.clear {
        writer.clear();
    }
    if chores.open {
        writer.open();
    }
    if !batch.is_empty() {
        writer.write(batch.data());
    }
    shared
        .stall_key
        .store(stall_key(&writer, shared.token), Ordering::Relaxed);
    let mut state = shared.lock();
    if closed && state.buffer.is_empty() && !state.chores.any() {
        // The reader appends nothing once it has closed: this was the
        // last round. The echo's last line may wait for the terminal, so
        // not under the lock.
        let done = state.done.take();
        drop(state);
        writer.finish();
        if let Some(done) = done {
            let _ = done.send(writer.report.clone());
        }
        return false;
    }
    state.writer = Some(writer);
    let State { window, spare, .. } = &mut *state;
    window.after_write(&mut batch);
    *spare = batch;
    let more = !state.buffer.is_empty() || state.chores.any() || state.closed;
    if !more {
        state.queued = false;
    }
    more
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stream's window grows with a fast stream and gives memory back
    /// only once the stream has been quiet for a while.
    #[test]
    fn the_read_window_follows_the_stream() {
        let mut window = Window::default();
        let mut buffer = Buffer::default();
        for _ in 0..10 {
            let want = window.want(buffer.len());
            window.after_read(want, want);
        }
        assert_eq!(window.size, CHUNK, "full reads grow it");
        buffer.room(CHUNK);
        for _ in 0..QUIET_BATCHES - 1 {
            buffer.extend(b"small");
            window.after_write(&mut buffer);
        }
        assert_eq!(window.size, CHUNK, "a few small batches do not");
        assert_eq!(buffer.bytes.len(), CHUNK, "nor is the buffer given back");
        buffer.extend(b"small");
        window.after_write(&mut buffer);
        assert_eq!(window.size, CHUNK / 2);
        for _ in 0..64 * QUIET_BATCHES {
            buffer.extend(b"x");
            window.after_write(&mut buffer);
        }
        assert_eq!(window.size, FIRST_WINDOW, "never below the first");
        assert!(
            buffer.bytes.capacity() <= 2 * FIRST_WINDOW,
            "{}",
            buffer.bytes.capacity()
        );
        assert!(buffer.is_empty());
    }

    /// A read never asks for more than fits under CHUNK.
    #[test]
    fn a_full_buffer_wants_nothing() {
        let window = Window {
            size: CHUNK,
            small: 0,
        };
        assert_eq!(window.want(CHUNK - 10), 10);
        assert_eq!(window.want(CHUNK), 0);
    }
}
