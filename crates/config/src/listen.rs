//! Listening sockets the daemon binds and hands to its workers
//! (`[sockets.NAME]`, Circus `[socket:NAME]`, supervisord's
//! `[fcgi-program:NAME] socket=`): the model, and the address syntax every
//! dialect shares.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use crate::error::Location;

/// What `backlog` is when a socket does not say: gunicorn's and Circus's
/// default (the kernel caps it at `net.core.somaxconn`).
pub const DEFAULT_BACKLOG: u32 = 2048;

/// One socket the daemon binds at start-up and keeps open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketConfig {
    /// The socket's name (`web`).
    pub name: String,
    /// Where it listens.
    pub address: SocketAddress,
    /// listen(2)'s backlog (stream sockets).
    pub backlog: u32,
    /// SO_REUSEPORT, so that other programs may bind the same port too.
    pub reuseport: bool,
    /// Mode of a unix socket's file (after bind, before any child runs).
    pub mode: Option<u32>,
    /// Owner of a unix socket's file (name or uid).
    pub owner: Option<String>,
    /// Group of a unix socket's file (name or gid).
    pub group: Option<String>,
    /// Where the socket was defined, for diagnostics.
    pub location: Location,
}

impl SocketConfig {
    /// A socket at `address` with every option at its default.
    pub fn new(name: impl Into<String>, address: SocketAddress, location: Location) -> Self {
        Self {
            name: name.into(),
            address,
            backlog: DEFAULT_BACKLOG,
            reuseport: false,
            mode: None,
            owner: None,
            group: None,
            location,
        }
    }

    /// Whether binding it again is needed to apply `other` (a reload):
    /// any difference but where it was written.
    pub fn differs_from(&self, other: &SocketConfig) -> bool {
        let mut other = other.clone();
        other.location = self.location.clone();
        *self != other
    }
}

/// Where a socket listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketAddress {
    /// A TCP port (`tcp://127.0.0.1:8000`, `tcp://[::1]:8000`).
    Tcp(SocketAddr),
    /// A UDP port (`udp://127.0.0.1:8125`).
    Udp(SocketAddr),
    /// A unix stream socket (`unix:///run/app/web.sock`).
    Unix(PathBuf),
}

impl SocketAddress {
    /// Reads `tcp://HOST:PORT`, `udp://HOST:PORT` or `unix:///PATH`; a
    /// relative unix path is taken from `here`. HOST is an IPv4 address,
    /// an IPv6 one in brackets, or a name resolved now (`localhost`).
    pub fn parse(text: &str, here: &Path) -> Result<Self, String> {
        let Some((scheme, rest)) = text.split_once("://") else {
            return Err(format!(
                "'{text}' is not an address: write tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH"
            ));
        };
        match scheme {
            "tcp" => host_port(rest).map(Self::Tcp),
            "udp" => host_port(rest).map(Self::Udp),
            "unix" => {
                if rest.is_empty() {
                    return Err("unix:// needs a path: unix:///run/app/web.sock".into());
                }
                let path = Path::new(rest);
                Ok(Self::Unix(if path.is_absolute() {
                    path.to_path_buf()
                } else {
                    here.join(path)
                }))
            }
            other => Err(format!(
                "unknown scheme '{other}://' (expected tcp://, udp:// or unix://)"
            )),
        }
    }

    /// Whether it is a unix socket's path.
    pub fn is_unix(&self) -> bool {
        matches!(self, Self::Unix(_))
    }
}

impl std::fmt::Display for SocketAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(addr) => write!(f, "tcp://{addr}"),
            Self::Udp(addr) => write!(f, "udp://{addr}"),
            Self::Unix(path) => write!(f, "unix://{}", path.display()),
        }
    }
}

/// `HOST:PORT`, `[V6]:PORT`, or a name and a port.
fn host_port(text: &str) -> Result<SocketAddr, String> {
    if let Ok(addr) = text.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = text.rsplit_once(':') else {
        return Err(format!("'{text}' has no port: write HOST:PORT"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("'{port}' is not a port number (0-65535)"))?;
    if host.is_empty() || host == "*" {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port));
    }
    if host.contains(['[', ']']) || host.parse::<IpAddr>().is_ok() {
        return Err(format!(
            "'{text}' is not an address (an IPv6 address goes in brackets: [::1]:8000)"
        ));
    }
    // A name: its IPv4 address first, as most clients try it first.
    let found: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot resolve '{host}': {err}"))?
        .collect();
    found
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| found.first())
        .copied()
        .ok_or_else(|| format!("'{host}' has no address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SocketAddress, String> {
        SocketAddress::parse(text, Path::new("/etc/rm"))
    }

    #[test]
    fn reads_every_form_of_address() {
        assert_eq!(
            parse("tcp://127.0.0.1:8000"),
            Ok(SocketAddress::Tcp("127.0.0.1:8000".parse().unwrap()))
        );
        assert_eq!(
            parse("tcp://[::1]:80"),
            Ok(SocketAddress::Tcp("[::1]:80".parse().unwrap()))
        );
        assert_eq!(
            parse("udp://127.0.0.1:8125"),
            Ok(SocketAddress::Udp("127.0.0.1:8125".parse().unwrap()))
        );
        assert_eq!(
            parse("tcp://:8000"),
            Ok(SocketAddress::Tcp("0.0.0.0:8000".parse().unwrap()))
        );
        assert_eq!(
            parse("tcp://localhost:8000"),
            Ok(SocketAddress::Tcp("127.0.0.1:8000".parse().unwrap()))
        );
        assert_eq!(
            parse("unix:///run/web.sock"),
            Ok(SocketAddress::Unix("/run/web.sock".into()))
        );
        assert_eq!(
            parse("unix://web.sock"),
            Ok(SocketAddress::Unix("/etc/rm/web.sock".into()))
        );
    }

    #[test]
    fn says_what_is_wrong_with_an_address() {
        assert!(
            parse("127.0.0.1:8000")
                .unwrap_err()
                .contains("tcp://HOST:PORT")
        );
        assert!(parse("http://x:80").unwrap_err().contains("unknown scheme"));
        assert!(parse("tcp://127.0.0.1").unwrap_err().contains("no port"));
        assert!(
            parse("tcp://127.0.0.1:99999")
                .unwrap_err()
                .contains("port number")
        );
        assert!(parse("tcp://::1:80").unwrap_err().contains("brackets"));
        assert!(parse("unix://").unwrap_err().contains("needs a path"));
    }
}
