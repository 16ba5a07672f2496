//! Connecting to the daemon and exchanging lines.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};

use ringmaster_protocol::{Reply, Request, SOCKET_ENV, StreamLine, default_socket_path};

/// Why the client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The socket could not be reached.
    #[error("cannot reach ringmasterd at {}: {source} ({hint})", path.display())]
    Connect {
        /// The socket path tried.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
        /// What to check.
        hint: &'static str,
    },
    /// The connection broke during the exchange.
    #[error("connection to ringmasterd at {} failed: {source}", path.display())]
    Io {
        /// The socket path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The daemon closed the connection or sent something unreadable.
    #[error("bad answer from ringmasterd at {}: {message}", path.display())]
    Protocol {
        /// The socket path.
        path: PathBuf,
        /// What was wrong.
        message: String,
    },
    /// The configuration given with -c could not be read.
    #[error("cannot read the configuration to find the socket: {0}")]
    Config(String),
}

/// Finds the socket: `-s`, else the config given with `-c`, else
/// `$RINGMASTER_SOCKET`, else the default path.
pub fn socket_path(explicit: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, CtlError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(config) = config {
        return ringmaster_config::load(config, None)
            .map(|c| c.daemon.socket)
            .map_err(|e| CtlError::Config(e.to_string()));
    }
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    Ok(default_socket_path())
}

/// A connection to the daemon.
#[derive(Debug)]
pub struct Client {
    path: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    next_id: u64,
}

impl Client {
    /// Connects to the socket at `path`.
    pub fn connect(path: &Path) -> Result<Self, CtlError> {
        let stream = UnixStream::connect(path).map_err(|source| {
            let hint = match source.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
                    "is the daemon running? point at its socket with -s SOCKET, -c CONFIG or $RINGMASTER_SOCKET"
                }
                std::io::ErrorKind::PermissionDenied => {
                    "the socket allows root, the daemon's user and members of socket_group"
                }
                _ => "check the socket path and the daemon",
            };
            CtlError::Connect {
                path: path.to_path_buf(),
                source,
                hint,
            }
        })?;
        let writer = stream.try_clone().map_err(|source| CtlError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
            next_id: 1,
        })
    }

    /// The socket this client is connected to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Sends `request` and waits for its reply.
    pub fn call(&mut self, request: &Request) -> Result<Reply, CtlError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = request.to_line(id);
        line.push('\n');
        // Read even if the write failed: a daemon that refuses a peer
        // writes its reason and closes before reading the request.
        let written = self.writer.write_all(line.as_bytes());
        let mut answer = String::new();
        let read = self.reader.read_line(&mut answer);
        match (written, read) {
            (_, Ok(n)) if n > 0 => {}
            (Err(source), _) | (Ok(()), Err(source)) => {
                return Err(CtlError::Io {
                    path: self.path.clone(),
                    source,
                });
            }
            (Ok(()), Ok(_)) => {
                return Err(CtlError::Protocol {
                    path: self.path.clone(),
                    message: "the daemon closed the connection".into(),
                });
            }
        }
        serde_json::from_str(&answer).map_err(|err| CtlError::Protocol {
            path: self.path.clone(),
            message: format!("{err}: {}", answer.trim_end()),
        })
    }

    /// Sends a streaming request and calls `each` for every line until the
    /// daemon closes the stream (or `each` returns false).
    pub fn stream(
        &mut self,
        request: &Request,
        mut each: impl FnMut(&StreamLine) -> bool,
    ) -> Result<(), CtlError> {
        let id = self.next_id;
        self.next_id += 1;
        let mut line = request.to_line(id);
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(|source| CtlError::Io {
                path: self.path.clone(),
                source,
            })?;
        let mut text = String::new();
        loop {
            text.clear();
            let read = self
                .reader
                .read_line(&mut text)
                .map_err(|source| CtlError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if read == 0 {
                return Ok(());
            }
            // A refusal or an error comes as an ordinary reply.
            if let Ok(reply) = serde_json::from_str::<Reply>(&text)
                && let Some(error) = reply.error
            {
                return Err(CtlError::Protocol {
                    path: self.path.clone(),
                    message: error.message,
                });
            }
            let parsed: StreamLine =
                serde_json::from_str(&text).map_err(|err| CtlError::Protocol {
                    path: self.path.clone(),
                    message: format!("{err}: {}", text.trim_end()),
                })?;
            if !each(&parsed) {
                return Ok(());
            }
        }
    }
}
