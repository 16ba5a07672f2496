//! `ready = { notify = true }`: the socket processes tell they are ready
//! on, as sd_notify(3) tells systemd (`READY=1`).
//!
//! One datagram socket for the whole daemon, in the abstract namespace
//! (so a worker running as another user can reach it without a file to
//! own), given to each process of such a watcher as `NOTIFY_SOCKET`. Any
//! local process can send to it, so a message counts only by who the
//! kernel says sent it (`SO_PASSCRED`): the sender's pid and its
//! ancestors are handed to the engine, which takes the message as the
//! readiness of the first of them that is a STARTING process waiting for
//! a notification (gunicorn's arbiter is the process itself; a program
//! that forks first notifies from a child). Anything else is ignored.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, ControlMessageOwned, MsgFlags, SockFlag, SockType, UnixAddr, bind, recvmsg,
    setsockopt, socket, sockopt,
};
use nix::unistd::Pid;
use tokio::io::Interest;
use tokio::net::UnixDatagram;
use tokio::sync::mpsc;

/// Ancestors looked at above the sender: deeper trees than this are
/// not a supervised program's.
const MAX_DEPTH: usize = 32;
/// Largest notification read; sd_notify messages are a few lines.
const MESSAGE_BYTES: usize = 4096;

/// The bound socket; its task runs for the daemon's life.
#[derive(Debug)]
pub(crate) struct NotifyReady {
    address: String,
}

impl NotifyReady {
    /// Binds `@ringmaster-notify-PID` and reads it on a task of its own,
    /// sending the engine each `READY=1` sender with its ancestors.
    pub fn bind(ready: mpsc::UnboundedSender<Vec<Pid>>) -> std::io::Result<Self> {
        let name = format!("ringmaster-notify-{}", std::process::id());
        let fd = socket(
            AddressFamily::Unix,
            SockType::Datagram,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
            None,
        )?;
        bind(fd.as_raw_fd(), &UnixAddr::new_abstract(name.as_bytes())?)?;
        setsockopt(&fd, sockopt::PassCred, &true)?;
        let socket = UnixDatagram::from_std(std::os::unix::net::UnixDatagram::from(fd))?;
        tokio::spawn(read_notifications(socket, ready));
        Ok(Self {
            address: format!("@{name}"),
        })
    }

    /// What `NOTIFY_SOCKET` says (`@` for the abstract namespace, as
    /// sd_notify reads it).
    pub fn address(&self) -> &str {
        &self.address
    }
}

async fn read_notifications(socket: UnixDatagram, ready: mpsc::UnboundedSender<Vec<Pid>>) {
    let mut buffer = vec![0u8; MESSAGE_BYTES];
    loop {
        if socket.readable().await.is_err() {
            return;
        }
        let received = socket.try_io(Interest::READABLE, || {
            receive(&socket, &mut buffer).map_err(std::io::Error::from)
        });
        match received {
            Ok(Some((pid, len))) => {
                let text = String::from_utf8_lossy(&buffer[..len]);
                if text.lines().any(|line| line.trim() == "READY=1")
                    && ready.send(lineage(pid)).is_err()
                {
                    return;
                }
            }
            // A message without credentials: no one to credit.
            Ok(None) => {}
            Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(err) => tracing::warn!("notify socket: {err}"),
        }
    }
}

/// One datagram: its sender's pid (from the kernel) and its length.
fn receive(socket: &UnixDatagram, buffer: &mut [u8]) -> nix::Result<Option<(Pid, usize)>> {
    let mut control = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
    let mut iov = [IoSliceMut::new(buffer)];
    let message = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut control),
        MsgFlags::MSG_DONTWAIT,
    )?;
    let len = message.bytes;
    let sender = message.cmsgs()?.find_map(|cmsg| match cmsg {
        ControlMessageOwned::ScmCredentials(creds) => Some(Pid::from_raw(creds.pid())),
        _ => None,
    });
    Ok(sender.map(|pid| (pid, len)))
}

/// `pid`, its parent, its grandparent ... up to init, from /proc.
fn lineage(pid: Pid) -> Vec<Pid> {
    let mut chain = vec![pid];
    let mut current = pid;
    while chain.len() < MAX_DEPTH {
        match parent_of(current) {
            Some(parent) if parent.as_raw() > 1 => {
                chain.push(parent);
                current = parent;
            }
            _ => break,
        }
    }
    chain
}

/// The parent's pid, from `/proc/PID/stat` (field 4, after the command
/// in parentheses, which may itself hold spaces and parentheses).
fn parent_of(pid: Pid) -> Option<Pid> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
        .map(Pid::from_raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lineage_climbs_from_a_process_to_its_ancestors() {
        let me = nix::unistd::getpid();
        let chain = lineage(me);
        assert_eq!(chain[0], me);
        if nix::unistd::getppid().as_raw() > 1 {
            assert_eq!(chain[1], nix::unistd::getppid());
        }
    }

    #[tokio::test]
    async fn a_ready_message_names_its_sender_from_the_kernel() {
        use std::os::linux::net::SocketAddrExt;
        let (tx, mut rx) = mpsc::unbounded_channel();
        let notify = NotifyReady::bind(tx).unwrap();
        let name = notify.address().trim_start_matches('@').to_owned();
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let client = std::os::unix::net::UnixDatagram::unbound().unwrap();
        client.send_to_addr(b"STATUS=loading", &addr).unwrap();
        client.send_to_addr(b"STATUS=up\nREADY=1\n", &addr).unwrap();
        let chain = rx.recv().await.unwrap();
        assert_eq!(chain[0], nix::unistd::getpid());
        assert!(rx.try_recv().is_err(), "only READY=1 counts");
    }
}
