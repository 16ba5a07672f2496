//! The sockets the daemon binds for its workers (`[sockets.NAME]`): bound
//! once, with the daemon's privileges, before any child runs, and kept open
//! for the daemon's life, so that a worker that dies or is replaced never
//! closes the listening socket and no connection is refused meanwhile.
//! Each spawn gets duplicates; the daemon never accepts on them.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::Path;

use nix::sys::socket::{
    AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6, SockaddrStorage, bind,
    getsockname, listen, setsockopt, socket, sockopt,
};
use nix::unistd::{Gid, Uid};
use ringmaster_config::{SocketAddress, SocketConfig};
use ringmaster_safefs::Dir;

/// Mode of a unix socket's file when the configuration does not say:
/// its owner and group may connect (Circus's default umask, 0117).
pub const DEFAULT_UNIX_MODE: u32 = 0o660;

/// Why a socket could not be bound.
#[derive(Debug, thiserror::Error)]
#[error("socket '{name}': cannot {what} {address}: {source}")]
pub struct BindError {
    /// The socket's name.
    pub name: String,
    /// Its address as configured.
    pub address: String,
    /// The step that failed ("bind", "listen on", ...).
    pub what: &'static str,
    /// The system's reason.
    pub source: std::io::Error,
}

/// One bound socket.
#[derive(Debug)]
pub(crate) struct Listener {
    /// As configured.
    pub config: SocketConfig,
    /// The listening (or, for UDP, bound) socket, close-on-exec.
    pub fd: OwnedFd,
    /// Where it is bound: with port 0, the port the kernel chose.
    pub local: String,
    /// A unix socket's file, removed with the socket.
    file: Option<UnixFile>,
}

/// A unix socket's file: its directory and name, and the inode bound, so
/// that only our own file is ever removed.
#[derive(Debug)]
struct UnixFile {
    dir: Dir,
    name: OsString,
    inode: (u64, u64),
}

impl Drop for Listener {
    fn drop(&mut self) {
        if let Some(file) = &self.file
            && let Ok(Some(stat)) = file.dir.stat(&file.name)
            && (stat.st_dev, stat.st_ino) == file.inode
        {
            let _ = file.dir.unlink(&file.name);
        }
    }
}

/// The daemon's sockets by name.
#[derive(Debug, Default)]
pub(crate) struct Listeners {
    bound: BTreeMap<String, Listener>,
}

impl Listeners {
    /// Binds every socket of the configuration; the first failure is the
    /// error (what was bound is closed again).
    pub fn bind_all(sockets: &[SocketConfig]) -> Result<Self, BindError> {
        let mut listeners = Self::default();
        for config in sockets {
            let listener = Listener::bind(config)?;
            listeners.bound.insert(config.name.clone(), listener);
        }
        Ok(listeners)
    }

    /// The socket called `name`.
    pub fn get(&self, name: &str) -> Option<&Listener> {
        self.bound.get(name)
    }

    /// Every socket, by name.
    pub fn iter(&self) -> impl Iterator<Item = &Listener> {
        self.bound.values()
    }

    /// Adopts `listener` under its name; the one it replaces is closed.
    pub fn insert(&mut self, listener: Listener) {
        self.bound.insert(listener.config.name.clone(), listener);
    }

    /// The socket called `name`, to change.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Listener> {
        self.bound.get_mut(name)
    }

    /// Closes the socket called `name`.
    pub fn remove(&mut self, name: &str) {
        self.bound.remove(name);
    }
}

impl Listener {
    /// Binds `config`'s address.
    pub fn bind(config: &SocketConfig) -> Result<Self, BindError> {
        let fail = |what: &'static str| {
            move |source: std::io::Error| BindError {
                name: config.name.clone(),
                address: config.address.to_string(),
                what,
                source,
            }
        };
        let (fd, file) = match &config.address {
            SocketAddress::Tcp(addr) => (
                bind_inet(config, *addr, SockType::Stream).map_err(|(w, e)| fail(w)(e))?,
                None,
            ),
            SocketAddress::Udp(addr) => (
                bind_inet(config, *addr, SockType::Datagram).map_err(|(w, e)| fail(w)(e))?,
                None,
            ),
            SocketAddress::Unix(path) => {
                let (fd, file) = bind_unix(config, path).map_err(|(w, e)| fail(w)(e))?;
                (fd, Some(file))
            }
        };
        let local = match &config.address {
            SocketAddress::Unix(_) => config.address.to_string(),
            SocketAddress::Tcp(_) => format!("tcp://{}", local_address(&fd)),
            SocketAddress::Udp(_) => format!("udp://{}", local_address(&fd)),
        };
        Ok(Self {
            config: config.clone(),
            fd,
            local,
            file,
        })
    }
}

impl Listener {
    /// Whether [`Self::update`] can apply `new`: not a change of
    /// SO_REUSEPORT, which only means something before bind.
    pub fn can_update(&self, new: &SocketConfig) -> Result<(), BindError> {
        if new.reuseport == self.config.reuseport {
            return Ok(());
        }
        Err(BindError {
            name: new.name.clone(),
            address: new.address.to_string(),
            what: "change reuseport of",
            source: std::io::Error::other(
                "SO_REUSEPORT is set before bind: give the socket a new address, or restart the daemon",
            ),
        })
    }

    /// Applies `new`, a change of this socket's options at the same
    /// address, to the socket itself: its processes keep it, so they need
    /// not be restarted. The backlog is set again by listen(2); a unix
    /// socket's file gets its owner, group and mode again. SO_REUSEPORT
    /// only means something before bind: changing it is refused.
    pub fn update(&mut self, new: &SocketConfig) -> Result<(), BindError> {
        self.can_update(new)?;
        let fail = |what: &'static str, source: std::io::Error| BindError {
            name: new.name.clone(),
            address: new.address.to_string(),
            what,
            source,
        };
        if new.backlog != self.config.backlog && !matches!(new.address, SocketAddress::Udp(_)) {
            listen_on(&self.fd, new.backlog).map_err(|(what, e)| fail(what, e))?;
        }
        if let Some(file) = &self.file {
            let owner = resolve_owner(new).map_err(|(what, e)| fail(what, e))?;
            let path = file.dir.fd_path(&file.name).map_err(|e| {
                fail(
                    "set the owner and mode of",
                    std::io::Error::other(e.to_string()),
                )
            })?;
            let ours = matches!(file.dir.stat(&file.name), Ok(Some(st)) if (st.st_dev, st.st_ino) == file.inode);
            if !ours {
                return Err(fail(
                    "set the owner and mode of",
                    std::io::Error::other("the socket's file was replaced"),
                ));
            }
            let chown = |e| fail("set the owner of", e);
            std::os::unix::fs::lchown(&path, owner.0.map(Uid::as_raw), owner.1.map(Gid::as_raw))
                .map_err(chown)?;
            let mode = new.mode.unwrap_or(DEFAULT_UNIX_MODE);
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(mode))
                .map_err(|e| fail("set the mode of", e))?;
        }
        self.config = new.clone();
        Ok(())
    }
}

type Step<T> = Result<T, (&'static str, std::io::Error)>;

fn step<T>(what: &'static str, result: nix::Result<T>) -> Step<T> {
    result.map_err(|errno| (what, std::io::Error::from(errno)))
}

/// A TCP or UDP socket bound to `addr` (and listening, for TCP).
fn bind_inet(config: &SocketConfig, addr: std::net::SocketAddr, kind: SockType) -> Step<OwnedFd> {
    let family = if addr.is_ipv4() {
        AddressFamily::Inet
    } else {
        AddressFamily::Inet6
    };
    let fd = step(
        "create a socket for",
        socket(family, kind, SockFlag::SOCK_CLOEXEC, None),
    )?;
    // A restarted daemon rebinds while old connections linger in TIME_WAIT.
    step(
        "set SO_REUSEADDR on",
        setsockopt(&fd, sockopt::ReuseAddr, &true),
    )?;
    if config.reuseport {
        step(
            "set SO_REUSEPORT on",
            setsockopt(&fd, sockopt::ReusePort, &true),
        )?;
    }
    let bound = match addr {
        std::net::SocketAddr::V4(v4) => bind(fd.as_raw_fd(), &SockaddrIn::from(v4)),
        std::net::SocketAddr::V6(v6) => bind(fd.as_raw_fd(), &SockaddrIn6::from(v6)),
    };
    step("bind", bound)?;
    if kind == SockType::Stream {
        listen_on(&fd, config.backlog)?;
    }
    Ok(fd)
}

fn listen_on(fd: &OwnedFd, backlog: u32) -> Step<()> {
    let backlog =
        Backlog::new(i32::try_from(backlog).unwrap_or(i32::MAX)).unwrap_or(Backlog::MAXCONN);
    step("listen on", listen(fd, backlog))
}

/// A unix stream socket at `path`, bound as the control socket is: under
/// a temporary name in the directory opened by a checked walk, given its
/// owner, group and mode, then renamed into place, so nobody connects
/// before it is set up. A stale file (a socket nobody answers on) is
/// replaced; a live socket or any other file is an error.
fn bind_unix(config: &SocketConfig, path: &Path) -> Step<(OwnedFd, UnixFile)> {
    let safe = |what: &'static str| {
        move |err: ringmaster_safefs::SafeError| (what, std::io::Error::other(err.to_string()))
    };
    let (dir, name) =
        ringmaster_safefs::split(path).ok_or(("bind", std::io::Error::other("not a file path")))?;
    let owner = resolve_owner(config)?;
    let dir = Dir::open(dir, true).map_err(safe("open the directory of"))?;
    replace_stale(&dir, name)?;
    let mut staging = OsString::from(format!(".{}.", std::process::id()));
    staging.push(name);
    let _ = dir.unlink(&staging);
    let fd = step(
        "create a socket for",
        socket(
            AddressFamily::Unix,
            SockType::Stream,
            SockFlag::SOCK_CLOEXEC,
            None,
        ),
    )?;
    let target = dir.fd_path(&staging).map_err(safe("bind"))?;
    let address = step("bind", nix::sys::socket::UnixAddr::new(&target))?;
    step("bind", bind(fd.as_raw_fd(), &address))?;
    let placed = (|| {
        listen_on(&fd, config.backlog)?;
        let mode = config.mode.unwrap_or(DEFAULT_UNIX_MODE);
        dir.secure_socket(&staging, owner.0, owner.1, mode)
            .map_err(safe("set the owner and mode of"))?;
        let stat = dir
            .stat(&staging)
            .map_err(safe("bind"))?
            .ok_or(("bind", std::io::Error::other("the socket file vanished")))?;
        dir.rename_no_replace(&staging, name)
            .map_err(safe("put in place"))?;
        Ok((stat.st_dev, stat.st_ino))
    })();
    match placed {
        Ok(inode) => Ok((
            fd,
            UnixFile {
                dir,
                name: name.to_os_string(),
                inode,
            },
        )),
        Err(err) => {
            let _ = dir.unlink(&staging);
            Err(err)
        }
    }
}

/// Removes `name` if it is a socket nobody answers on.
fn replace_stale(dir: &Dir, name: &std::ffi::OsStr) -> Step<()> {
    let safe = |err: ringmaster_safefs::SafeError| ("bind", std::io::Error::other(err.to_string()));
    let Some(stat) = dir.stat(name).map_err(safe)? else {
        return Ok(());
    };
    if stat.st_mode & nix::libc::S_IFMT != nix::libc::S_IFSOCK {
        return Err((
            "bind",
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "the path exists and is not a socket; refusing to replace it",
            ),
        ));
    }
    let path = dir.fd_path(name).map_err(safe)?;
    if std::os::unix::net::UnixStream::connect(&path).is_ok() {
        return Err((
            "bind",
            std::io::Error::new(
                std::io::ErrorKind::AddrInUse,
                "another process listens on it",
            ),
        ));
    }
    dir.unlink(name).map_err(safe)?;
    tracing::info!(socket = %path.display(), "replaced a stale socket file");
    Ok(())
}

/// The uid and gid a unix socket's file is given.
fn resolve_owner(config: &SocketConfig) -> Step<(Option<Uid>, Option<Gid>)> {
    let missing = |what: String| {
        (
            "set the owner of",
            std::io::Error::new(std::io::ErrorKind::NotFound, what),
        )
    };
    let owner = match config.owner.as_deref() {
        None => None,
        Some(name) => Some(match name.parse::<u32>() {
            Ok(uid) => Uid::from_raw(uid),
            Err(_) => {
                nix::unistd::User::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| missing(format!("no such user '{name}'")))?
                    .uid
            }
        }),
    };
    let group = match config.group.as_deref() {
        None => None,
        Some(name) => Some(match name.parse::<u32>() {
            Ok(gid) => Gid::from_raw(gid),
            Err(_) => {
                nix::unistd::Group::from_name(name)
                    .ok()
                    .flatten()
                    .ok_or_else(|| missing(format!("no such group '{name}'")))?
                    .gid
            }
        }),
    };
    Ok((owner, group))
}

/// `HOST:PORT` the socket is bound to.
fn local_address(fd: &OwnedFd) -> String {
    match getsockname::<SockaddrStorage>(fd.as_fd().as_raw_fd()) {
        Ok(addr) => {
            if let Some(v4) = addr.as_sockaddr_in() {
                std::net::SocketAddrV4::from(*v4).to_string()
            } else if let Some(v6) = addr.as_sockaddr_in6() {
                std::net::SocketAddrV6::from(*v6).to_string()
            } else {
                "?".into()
            }
        }
        Err(_) => "?".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringmaster_config::Location;

    fn socket_at(address: SocketAddress) -> SocketConfig {
        SocketConfig::new("web", address, Location::file(Path::new("t.toml")))
    }

    #[test]
    fn a_tcp_socket_listens_before_any_worker_runs() {
        let listener = Listener::bind(&socket_at(SocketAddress::Tcp(
            "127.0.0.1:0".parse().unwrap(),
        )))
        .unwrap();
        let port = listener.local.rsplit(':').next().unwrap();
        assert_ne!(port, "0");
        // Connections queue in the backlog though nobody accepts yet.
        std::net::TcpStream::connect(listener.local.trim_start_matches("tcp://")).unwrap();
    }

    #[test]
    fn a_port_in_use_names_the_socket_the_address_and_the_reason() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = taken.local_addr().unwrap();
        let err = Listener::bind(&socket_at(SocketAddress::Tcp(addr))).unwrap_err();
        let text = err.to_string();
        assert!(
            text.starts_with(&format!("socket 'web': cannot bind tcp://{addr}: ")),
            "{text}"
        );
        assert!(text.contains("in use"), "{text}");
    }

    #[test]
    fn a_stale_unix_socket_is_replaced_and_a_live_one_or_a_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("web.sock");
        // Stale: bound, then its listener closed.
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        let listener = Listener::bind(&socket_at(SocketAddress::Unix(path.clone()))).unwrap();
        std::os::unix::net::UnixStream::connect(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions();
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
            DEFAULT_UNIX_MODE
        );
        // Live: ours answers, so a second bind is refused.
        let err = Listener::bind(&socket_at(SocketAddress::Unix(path.clone()))).unwrap_err();
        assert!(
            err.to_string().contains("another process listens on it"),
            "{err}"
        );
        drop(listener);
        assert!(!path.exists(), "the socket file is removed with the socket");
        std::fs::write(&path, "data").unwrap();
        let err = Listener::bind(&socket_at(SocketAddress::Unix(path.clone()))).unwrap_err();
        assert!(err.to_string().contains("not a socket"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "data");
    }
}
