//! The reader: one thread that reads every child's pipe with epoll, feeds
//! the tail buffers, and hands what it read to the writers.
//!
//! Theory of operation: a web worker writes an access-log line at a time,
//! so most wake-ups carry one short line. Waking once per line — and
//! waking a writer thread per line, and being woken back — costs more
//! than reading and writing the line, and so does a read(2) and a
//! write(2) per line. So after a light round (only small reads) the
//! reader lets the pipes fill for [`COALESCE`] before it waits again:
//! the next round takes many processes' lines in one wake-up, several
//! lines of a busy process in one read, and hands them to a writer at
//! once, which writes them in one write(2). A round with a heavy read (a
//! fast writer) does not wait, so throughput is what the pipe and the
//! disk allow; a command (a reaped process to drain, a full stream with
//! room again) ends the wait early. The price: a quiet process's line
//! reaches its file (and `tail -f`) up to [`COALESCE`] later, and a
//! `timestamps = true` stamp is the time of that write.
//!
//! The reader never writes to a file, so a disk that stops answering
//! cannot stall it (see `pool.rs`). A stream whose buffer is full (its
//! file is slower than its process) is taken out of the epoll set until a
//! writer has taken the buffer: the child then blocks on its own pipe.

use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::THREAD_STACK;
use crate::pool::{Pool, STALL, Shared};
use crate::tap::Tap;
use crate::watch::LineWatch;

/// How long the reader lets the pipes fill after a light round. With 100
/// processes writing a line every 10 ms the daemon spent about 7 µs per
/// line at 1 ms, 6 at 5 ms and 3.8 at 20 ms (two lines of a process then
/// share a read and a write); 20 ms is still below what a person watching
/// a log notices.
pub(crate) const COALESCE: Duration = Duration::from_millis(20);
/// A read this large means a busy stream: the round after it does not
/// sleep, so a steady writer of more than a pipeful per [`COALESCE`]
/// never waits on its pipe for the beat.
const HEAVY_READ: usize = crate::pool::FIRST_WINDOW;
/// The epoll token of the inbox's eventfd; streams count from 1.
const WAKE: u64 = 0;
/// Events taken per epoll_wait.
const EVENTS: usize = 256;

/// What the reader is told besides its pipes' bytes.
#[derive(Debug)]
pub(crate) enum Command {
    /// A new pipe to read.
    Attach {
        /// The read end, non-blocking.
        pipe: OwnedFd,
        /// Its tail buffer.
        tap: Arc<Tap>,
        /// Its state, shared with the writers.
        shared: Arc<Shared>,
        /// Names the stream in the daemon's log.
        label: String,
        /// A readiness check on its lines.
        watch: Option<LineWatch>,
    },
    /// The process was reaped: read what is left, then close.
    Finish(u64),
    /// A writer took a full stream's buffer: read it again.
    Resume(u64),
    /// Every stream reopens its file by name.
    ReopenAll,
    /// The hub is gone.
    Shutdown,
}

/// The reader's mailbox: commands, and an eventfd that wakes it.
#[derive(Debug)]
pub(crate) struct Inbox {
    commands: Mutex<Vec<Command>>,
    wake: EventFd,
}

impl Inbox {
    /// An empty inbox.
    pub(crate) fn new() -> std::io::Result<Self> {
        let wake = EventFd::from_flags(EfdFlags::EFD_CLOEXEC | EfdFlags::EFD_NONBLOCK)?;
        Ok(Self {
            commands: Mutex::new(Vec::new()),
            wake,
        })
    }

    /// Sends a command; wakes the reader if it had none waiting.
    pub(crate) fn send(&self, command: Command) {
        let mut commands = crate::pool::lock(&self.commands);
        let first = commands.is_empty();
        commands.push(command);
        drop(commands);
        if first {
            // Only fails if the counter would overflow: it is woken anyway.
            let _ = self.wake.write(1);
        }
    }

    /// The commands waiting. The eventfd is read first: a command sent
    /// after this call's take wakes the reader again.
    fn take(&self) -> Vec<Command> {
        let _ = self.wake.read();
        std::mem::take(&mut *crate::pool::lock(&self.commands))
    }
}

/// One pipe, as the reader sees it.
struct Side {
    pipe: OwnedFd,
    tap: Arc<Tap>,
    shared: Arc<Shared>,
    label: String,
    /// A readiness check on its lines, until one matches.
    watch: Option<LineWatch>,
    /// Told to finish: read until the pipe is empty, then close.
    draining: bool,
    /// Out of the epoll set until a writer makes room.
    paused: bool,
}

/// What one read did.
enum Read {
    /// Filled the window: more is probably waiting.
    Full,
    /// Some bytes: how many.
    Some(usize),
    /// Nothing there now.
    Empty,
    /// No room until a writer takes the buffer.
    NoRoom,
    /// End of file or an error: the stream is done.
    Closed,
}

/// The reader thread's state.
pub(crate) struct Reader {
    epoll: Epoll,
    inbox: Arc<Inbox>,
    pool: Arc<Pool>,
    sides: HashMap<u64, Side>,
    /// Streams to hand to the writers at the end of this round.
    to_queue: Vec<Arc<Shared>>,
}

impl Reader {
    /// Starts the reader thread.
    pub(crate) fn start(inbox: Arc<Inbox>, pool: Arc<Pool>) -> std::io::Result<()> {
        let epoll = Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?;
        epoll.add(
            inbox.wake.as_fd(),
            EpollEvent::new(EpollFlags::EPOLLIN, WAKE),
        )?;
        let reader = Self {
            epoll,
            inbox,
            pool,
            sides: HashMap::new(),
            to_queue: Vec::new(),
        };
        std::thread::Builder::new()
            .name("ringmaster-logs".into())
            .stack_size(THREAD_STACK)
            .spawn(move || reader.run())?;
        Ok(())
    }

    fn run(mut self) {
        let mut events = vec![EpollEvent::empty(); EVENTS];
        // While writes are outstanding, look at them every half STALL so a
        // stuck writer is noticed; otherwise wait for input only (an idle
        // daemon does not wake).
        let mut outstanding = false;
        loop {
            let timeout = if outstanding {
                EpollTimeout::try_from(STALL / 2).unwrap_or(EpollTimeout::MAX)
            } else {
                EpollTimeout::NONE
            };
            let ready = match self.epoll.wait(&mut events, timeout) {
                Ok(ready) => ready,
                Err(Errno::EINTR) => 0,
                Err(err) => {
                    tracing::error!("log reader: epoll_wait failed: {err}");
                    std::thread::sleep(COALESCE);
                    0
                }
            };
            let mut pipes = 0;
            let mut heavy = false;
            for event in &events[..ready] {
                if event.data() == WAKE {
                    if !self.run_commands() {
                        self.pool.close();
                        return;
                    }
                } else {
                    pipes += 1;
                    heavy |= self.readable(event.data());
                }
            }
            if !self.to_queue.is_empty() {
                self.pool.submit(self.to_queue.drain(..));
            }
            outstanding = self.pool.check_stalls();
            if pipes > 0 && !heavy {
                self.coalesce();
            }
        }
    }

    /// Lets the pipes fill for up to [`COALESCE`], waking early for a
    /// command: a reaped process's drain, or a full stream's room, should
    /// not wait for the beat.
    fn coalesce(&self) {
        let mut wake = [PollFd::new(self.inbox.wake.as_fd(), PollFlags::POLLIN)];
        let timeout = PollTimeout::try_from(COALESCE).unwrap_or(PollTimeout::MAX);
        // Woken early or interrupted, the next round starts at once.
        let _ = poll(&mut wake, timeout);
    }

    /// Carries out the commands waiting; false on shutdown.
    fn run_commands(&mut self) -> bool {
        for command in self.inbox.take() {
            match command {
                Command::Attach {
                    pipe,
                    tap,
                    shared,
                    label,
                    watch,
                } => self.attach(pipe, tap, shared, label, watch),
                Command::Finish(token) => {
                    if let Some(side) = self.sides.get_mut(&token) {
                        side.draining = true;
                        if !side.paused {
                            self.drain(token);
                        }
                    }
                }
                Command::Resume(token) => self.resume(token),
                Command::ReopenAll => {
                    for side in self.sides.values() {
                        let mut state = side.shared.lock();
                        state.chores.reopen = true;
                        if state.take_for_queue() {
                            self.to_queue.push(Arc::clone(&side.shared));
                        }
                    }
                }
                Command::Shutdown => return false,
            }
        }
        true
    }

    fn attach(
        &mut self,
        pipe: OwnedFd,
        tap: Arc<Tap>,
        shared: Arc<Shared>,
        label: String,
        watch: Option<LineWatch>,
    ) {
        let token = shared.token;
        let event = EpollEvent::new(EpollFlags::EPOLLIN, token);
        let watched = self.epoll.add(pipe.as_fd(), event);
        self.sides.insert(
            token,
            Side {
                pipe,
                tap,
                shared,
                label,
                watch,
                draining: false,
                paused: false,
            },
        );
        if let Err(err) = watched {
            let label = &self.sides[&token].label;
            tracing::error!(stream = label, "cannot watch pipe: {err}");
            self.close(token);
        }
    }

    /// The pipe of `token` is readable; true after a heavy read (one
    /// that filled its window or took [`HEAVY_READ`] bytes or more).
    fn readable(&mut self, token: u64) -> bool {
        match self.sides.get(&token) {
            Some(side) if !side.paused => {}
            // A stale event for a paused or closed stream.
            _ => return false,
        }
        match self.read_once(token) {
            Read::Full => true,
            Read::Some(read) => read >= HEAVY_READ,
            Read::Empty => false,
            Read::NoRoom => {
                self.pause(token);
                false
            }
            Read::Closed => {
                self.close(token);
                false
            }
        }
    }

    /// One read into the stream's buffer, up to its window.
    fn read_once(&mut self, token: u64) -> Read {
        let Some(side) = self.sides.get_mut(&token) else {
            return Read::Closed;
        };
        let mut state = side.shared.lock();
        let want = state.window.want(state.buffer.len());
        if want == 0 {
            state.wants_room = true;
            return Read::NoRoom;
        }
        let room = state.buffer.room(want);
        let read = match nix::unistd::read(&side.pipe, room) {
            Ok(0) => return Read::Closed,
            Ok(read) => {
                side.tap.push(&room[..read]);
                if let Some(watch) = side.watch.as_mut()
                    && watch.feed(&room[..read])
                {
                    side.watch = None;
                }
                read
            }
            Err(Errno::EAGAIN) => return Read::Empty,
            Err(Errno::EINTR) => return Read::Some(0),
            Err(err) => {
                tracing::warn!(stream = side.label, "pipe read failed: {err}");
                return Read::Closed;
            }
        };
        state.buffer.commit(read);
        let full = state.window.after_read(read, want);
        if state.take_for_queue() {
            self.to_queue.push(Arc::clone(&side.shared));
        }
        if full { Read::Full } else { Read::Some(read) }
    }

    /// Reads what is in the pipe now, then closes it, even if a
    /// grandchild still holds the write end: a reaped process never keeps
    /// its reader alive.
    fn drain(&mut self, token: u64) {
        loop {
            match self.read_once(token) {
                Read::Full | Read::Some(_) => {}
                Read::Empty | Read::Closed => return self.close(token),
                Read::NoRoom => return self.pause(token),
            }
        }
    }

    fn pause(&mut self, token: u64) {
        if let Some(side) = self.sides.get_mut(&token)
            && !side.paused
        {
            side.paused = true;
            let _ = self.epoll.delete(side.pipe.as_fd());
        }
    }

    fn resume(&mut self, token: u64) {
        let Some(side) = self.sides.get_mut(&token) else {
            return;
        };
        if !side.paused {
            return;
        }
        side.paused = false;
        if side.draining {
            return self.drain(token);
        }
        let event = EpollEvent::new(EpollFlags::EPOLLIN, token);
        if let Err(err) = self.epoll.add(side.pipe.as_fd(), event) {
            tracing::error!(stream = side.label, "cannot watch pipe: {err}");
            self.close(token);
        }
    }

    /// Done with the pipe: the writers write what is left and report.
    fn close(&mut self, token: u64) {
        let Some(side) = self.sides.remove(&token) else {
            return;
        };
        if !side.paused {
            let _ = self.epoll.delete(side.pipe.as_fd());
        }
        let mut state = side.shared.lock();
        state.closed = true;
        if state.take_for_queue() {
            self.to_queue.push(Arc::clone(&side.shared));
        }
    }
}
