//! Connecting to the daemon and exchanging lines.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use ringmaster_protocol::{
    ErrorBody, Reply, ReplyError, Request, Response, SOCKET_ENV, StreamLine, default_socket_path,
};

/// Why the client could not get an answer.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// The socket could not be reached.
    #[error("cannot reach ringmasterd at {}: {source} ({hint}){}", path.display(), also_tried(path))]
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

/// The system daemon's socket (root's default), which a user whose own
/// default has no daemon tries too.
pub const SYSTEM_SOCKET: &str = "/run/ringmaster.sock";

/// The sockets looked at when none was given and none answered: said
/// with the connection error (set once, by [`socket_path`]).
static LOOKED_AT: std::sync::OnceLock<Vec<(PathBuf, String)>> = std::sync::OnceLock::new();

/// `; also tried ...` for the connection error at `path`, when the
/// default socket was looked for in more than one place.
fn also_tried(path: &Path) -> String {
    let others: Vec<String> = LOOKED_AT
        .get()
        .into_iter()
        .flatten()
        .filter(|(p, _)| p != path)
        .map(|(p, why)| format!("{} ({why})", p.display()))
        .collect();
    if others.is_empty() {
        String::new()
    } else {
        format!("; also tried {}", others.join(", "))
    }
}

/// Finds the socket: `-s`, else the config given with `-c`, else
/// `$RINGMASTER_SOCKET`, else the default path: the user's own, or, when
/// no daemon answers there and the user is not root, the system one
/// (a root daemon's), if it exists.
pub fn socket_path(explicit: Option<&Path>, config: Option<&Path>) -> Result<PathBuf, CtlError> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    if let Some(config) = config {
        // Only the socket setting: after a bad edit, `-c FILE reread` must
        // still reach the daemon, which reports what is wrong with FILE.
        if !config.exists() {
            return Err(CtlError::Config(format!(
                "{}: no such file",
                config.display()
            )));
        }
        return Ok(ringmaster_config::socket_of(config));
    }
    if let Some(path) = std::env::var_os(SOCKET_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    Ok(default_for_this_user())
}

/// The user's default socket, or the system one when only that is there.
fn default_for_this_user() -> PathBuf {
    let own = default_socket_path();
    let system = PathBuf::from(SYSTEM_SOCKET);
    if own == system {
        return own;
    }
    let probe = |path: &Path| match UnixStream::connect(path) {
        Ok(_) => None,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some("no such file".to_owned()),
        Err(err) if err.kind() == std::io::ErrorKind::ConnectionRefused => {
            Some("a stale socket: no daemon answers".to_owned())
        }
        Err(err) => Some(err.to_string()),
    };
    let Some(own_problem) = probe(&own) else {
        return own;
    };
    let system_problem = probe(&system);
    let chosen = if system.exists() {
        system.clone()
    } else {
        own.clone()
    };
    let mut looked_at = vec![(own, own_problem)];
    if let Some(problem) = system_problem {
        looked_at.push((system, problem));
    }
    let _ = LOOKED_AT.set(looked_at);
    chosen
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

    /// Sends `request` and waits for its typed answer: the command's
    /// response, or the daemon's refusal.
    pub fn ask(&mut self, request: &Request) -> Result<Result<Response, ErrorBody>, CtlError> {
        match self.call(request)?.into_response(request.command()) {
            Ok(response) => Ok(Ok(response)),
            Err(ReplyError::Refused(error)) => Ok(Err(error)),
            Err(ReplyError::Malformed(message)) => Err(CtlError::Protocol {
                path: self.path.clone(),
                message,
            }),
        }
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
    /// daemon closes the stream, `each` returns false, or `stop` is set
    /// (checked a few times a second: Ctrl-C in the interactive session).
    pub fn stream(
        &mut self,
        request: &Request,
        stop: Option<&AtomicBool>,
        mut each: impl FnMut(&StreamLine) -> bool,
    ) -> Result<(), CtlError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| CtlError::Io { path, source }
        };
        let id = self.next_id;
        self.next_id += 1;
        let mut line = request.to_line(id);
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        if stop.is_some() {
            self.reader
                .get_ref()
                .set_read_timeout(Some(STOP_POLL))
                .map_err(io(&self.path))?;
        }
        let mut text = String::new();
        loop {
            match self.reader.read_line(&mut text) {
                Ok(0) => return Ok(()),
                Ok(_) if !text.ends_with('\n') => continue,
                Ok(_) => {}
                Err(err)
                    if matches!(
                        err.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    // What was read so far stays in `text` for the next read.
                    if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                        return Ok(());
                    }
                    continue;
                }
                Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(io(&self.path)(source)),
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
            text.clear();
            if !each(&parsed) || stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                return Ok(());
            }
        }
    }
}

/// How often a follow checks whether it was interrupted.
const STOP_POLL: std::time::Duration = std::time::Duration::from_millis(100);
