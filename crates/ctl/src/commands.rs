//! The commands of `ringmasterctl`: their arguments, the request each
//! sends, running one against the daemon, and the exit code its typed
//! answer implies (spec §8). Used by the command line and the interactive
//! session alike.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use clap::Subcommand;
use ringmaster_protocol::{
    ErrorBody, MaintailArgs, NamesArgs, ProcessState, Request, Response, RestartArgs, ScaleArgs,
    SignalArgs, StatsArgs, TailArgs,
};

use crate::client::{Client, CtlError};
use crate::format;
use crate::out::{errln, out, outln};

/// Exit codes of `ringmasterctl` (spec §8).
pub mod exit_code {
    /// Success.
    pub const OK: u8 = 0;
    /// The daemon refused (not found, bad state, a process failed).
    pub const REFUSED: u8 = 1;
    /// Usage error.
    pub const USAGE: u8 = 2;
    /// `status`: a listed process is not RUNNING.
    pub const NOT_RUNNING: u8 = 3;
    /// The daemon cannot be reached.
    pub const UNREACHABLE: u8 = 4;
}

/// The commands of `ringmasterctl`.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// One line per process: name, state, pid, uptime or reason; exit 3 if any is not RUNNING.
    Status {
        /// Watchers (web), processes (web:2) or all; default all.
        names: Vec<String>,
    },
    /// Start processes and wait until they run or fail.
    Start {
        /// Watchers (web), processes (web:2) or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop processes and wait until they are gone.
    Stop {
        /// Watchers (web), processes (web:2) or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Stop then start processes, waiting until they run again.
    Restart {
        /// Replace the processes one slot at a time, each next one once the last new one is ready.
        #[arg(long)]
        rolling: bool,
        /// With --rolling: how many slots may be down at once.
        #[arg(long, value_name = "N", requires = "rolling", value_parser = clap::value_parser!(u32).range(1..))]
        max_unavailable: Option<u32>,
        /// Watchers (web), processes (web:2) or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Send a signal (HUP, SIGHUP or 1) to processes.
    Signal {
        /// Signal name or number.
        signal: String,
        /// Watchers (web), processes (web:2) or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// The daemon's pid, or the named processes' pids.
    Pid {
        /// Watchers or processes; none for the daemon.
        names: Vec<String>,
    },
    /// Print the last output of a process or watcher; -f follows it.
    Tail {
        /// Keep printing new output until interrupted.
        #[arg(short = 'f', long)]
        follow: bool,
        /// How many lines from the end.
        #[arg(short = 'n', long, value_name = "LINES", default_value_t = 10)]
        lines: usize,
        /// A watcher (web: all its processes, lines prefixed) or a process (web:2).
        name: String,
        /// Which stream.
        #[arg(value_parser = ["stdout", "stderr"], default_value = "stdout")]
        stream: String,
    },
    /// The daemon's own recent log (its last 64 KiB), as supervisorctl's maintail.
    Maintail {
        /// How many lines from the end.
        #[arg(short = 'n', long, value_name = "LINES", default_value_t = 20)]
        lines: usize,
    },
    /// Empty the log files of processes (rotated backups stay), as supervisorctl's clear.
    Clear {
        /// Watchers (web), processes (web:2) or all.
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Add processes to a watcher (lowest free slots first) and wait until they run.
    Incr {
        /// The watcher.
        name: String,
        /// How many (default 1).
        count: Option<u32>,
    },
    /// Stop a watcher's highest slots and wait until they are gone.
    Decr {
        /// The watcher.
        name: String,
        /// How many (default 1).
        count: Option<u32>,
    },
    /// CPU, memory, open files and threads of processes, measured over 0.25 s.
    Stats {
        /// Also sum each process with all its descendants.
        #[arg(long)]
        tree: bool,
        /// Watchers (web), processes (web:2) or all; default all.
        names: Vec<String>,
    },
    /// Read the configuration file again and show what reload would change.
    Reread,
    /// Read the configuration file again and apply the difference (like SIGHUP; supervisorctl's update).
    #[command(visible_alias = "update")]
    Reload,
    /// Reopen every log file (after logrotate moved them), like SIGUSR2.
    Reopen,
    /// Print every state change as it happens, until interrupted.
    Events,
    /// Stop every process and exit the daemon (circusctl's quit).
    #[command(visible_alias = "quit")]
    Shutdown,
    /// The watchers and how many processes each has (supervisorctl's avail, circusctl's list).
    #[command(visible_alias = "list")]
    Avail,
    /// How many processes a watcher has now (circusctl's numprocesses).
    Numprocesses {
        /// The watcher.
        name: String,
    },
    /// Client and daemon versions.
    Version,
    /// The sockets the daemon bound for its workers, and who gets them (circusctl's listsockets).
    #[command(visible_alias = "listsockets")]
    Sockets,
}

impl Command {
    /// The names a command that acts on processes was given, if any.
    fn names(&self) -> Option<&[String]> {
        let (Self::Status { names }
        | Self::Start { names }
        | Self::Stop { names }
        | Self::Restart { names, .. }
        | Self::Signal { names, .. }) = self
        else {
            return None;
        };
        (!names.is_empty()).then_some(names.as_slice())
    }

    /// Whether this is a `tail` of a whole watcher (its lines are then
    /// prefixed with their process's name).
    pub(crate) fn tails_a_watcher(&self) -> bool {
        matches!(self, Self::Tail { name, .. } if !name.contains(':'))
    }

    /// The protocol request for this command.
    pub fn request(&self) -> Request {
        let names = |names: &[String]| NamesArgs {
            names: names.to_vec(),
        };
        match self {
            Self::Status { names: n } => Request::Status(names(n)),
            Self::Start { names: n } => Request::Start(names(n)),
            Self::Stop { names: n } => Request::Stop(names(n)),
            Self::Restart {
                rolling,
                max_unavailable,
                names,
            } => Request::Restart(RestartArgs {
                names: names.clone(),
                rolling: *rolling,
                max_unavailable: *max_unavailable,
            }),
            Self::Signal { signal, names } => Request::Signal(SignalArgs {
                signal: signal.clone(),
                names: names.clone(),
            }),
            Self::Pid { names: n } => Request::Pid(names(n)),
            Self::Tail {
                follow,
                lines,
                name,
                stream,
            } => Request::Tail(TailArgs {
                name: name.clone(),
                stream: Some(stream.clone()),
                lines: Some(*lines),
                follow: *follow,
            }),
            Self::Incr { name, count } => Request::Incr(ScaleArgs {
                name: name.clone(),
                count: *count,
            }),
            Self::Decr { name, count } => Request::Decr(ScaleArgs {
                name: name.clone(),
                count: *count,
            }),
            Self::Stats { tree, names } => Request::Stats(StatsArgs {
                names: names.clone(),
                tree: *tree,
            }),
            Self::Reread => Request::Reread,
            Self::Reload => Request::Reload,
            Self::Reopen => Request::Reopen,
            Self::Events => Request::Events,
            Self::Shutdown => Request::Shutdown,
            Self::Avail => Request::Status(NamesArgs::default()),
            Self::Maintail { lines } => Request::Maintail(MaintailArgs {
                lines: Some(*lines),
            }),
            Self::Clear { names: n } => Request::Clear(names(n)),
            Self::Numprocesses { name } => Request::Status(names(std::slice::from_ref(name))),
            Self::Version => Request::Version,
            Self::Sockets => Request::Sockets,
        }
    }
}

/// Runs one command against the daemon at `path`, prints its result and
/// returns the exit code. A follow (`tail -f`, `events`) ends when `stop`
/// is set.
pub(crate) fn execute(path: &Path, command: &Command, json: bool, stop: Option<&AtomicBool>) -> u8 {
    if matches!(command, Command::Version) && !json {
        outln!("ringmasterctl {}", env!("CARGO_PKG_VERSION"));
    }
    if matches!(command, Command::Events) || matches!(command, Command::Tail { follow: true, .. }) {
        return follow(path, command, json, stop);
    }
    let answer = match command {
        Command::Restart {
            rolling: true,
            names,
            ..
        } if !json => with_progress(path, names, || {
            Client::connect(path).and_then(|mut client| client.ask(&command.request()))
        }),
        _ => Client::connect(path).and_then(|mut client| client.ask(&command.request())),
    };
    match answer {
        Ok(Ok(Response::Status(status))) if !json && matches!(command, Command::Avail) => {
            out!("{}", format::avail(&status.processes));
            exit_code::OK
        }
        Ok(Ok(Response::Status(status))) if matches!(command, Command::Numprocesses { .. }) => {
            outln!("{}", status.processes.len());
            exit_code::OK
        }
        Ok(answer) => render(command, answer, json),
        Err(err) => {
            errln!("ringmasterctl: {err}");
            match err {
                CtlError::Config(_) => exit_code::USAGE,
                _ => exit_code::UNREACHABLE,
            }
        }
    }
}

/// Runs `ask` (a rolling restart) while printing, as they happen, the
/// state changes of the processes `names` covers, from a second
/// connection's `events`: each step of the roll as it is taken.
fn with_progress<T>(path: &Path, names: &[String], ask: impl FnOnce() -> T) -> T {
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let watching = Client::connect(path).ok().map(|mut client| {
        let stop = std::sync::Arc::clone(&stop);
        let names: Vec<String> = names.to_vec();
        std::thread::spawn(move || {
            let _ = client.stream(&Request::Events, Some(&stop), |line| {
                if let Some(event) = &line.event {
                    let watched = names.iter().any(|n| {
                        n == "all" || *n == event.process.watcher || *n == event.process.to_string()
                    });
                    if watched {
                        out!("{}", format::stream_line(line));
                        let _ = std::io::Write::flush(&mut std::io::stdout());
                    }
                }
                true
            });
        })
    });
    let answer = ask();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    if let Some(thread) = watching {
        let _ = thread.join();
    }
    answer
}

/// `events` and `tail -f`: prints each streamed line until the daemon goes
/// away, or the user interrupts.
fn follow(path: &Path, command: &Command, json: bool, stop: Option<&AtomicBool>) -> u8 {
    let mut printer = format::TailPrinter::new(command.tails_a_watcher());
    let result = Client::connect(path).and_then(|mut client| {
        client.stream(&command.request(), stop, |line| {
            if json {
                outln!("{}", serde_json::to_string(line).unwrap_or_default());
            } else if let Some(output) = &line.output {
                out!("{}", printer.render(output));
            } else {
                out!("{}", format::stream_line(line));
            }
            let _ = std::io::Write::flush(&mut std::io::stdout());
            true
        })
    });
    match result {
        Ok(()) => exit_code::OK,
        Err(err) => {
            errln!("ringmasterctl: {err}");
            match err {
                CtlError::Protocol { .. } => exit_code::REFUSED,
                _ => exit_code::UNREACHABLE,
            }
        }
    }
}

/// Commands of supervisorctl and circusctl that ringmasterctl does not
/// have, with what to do instead (never a did-you-mean to something else).
const FOREIGN: &[(&str, &str)] = &[
    (
        "add",
        "ringmaster reads watchers from the configuration file: add it there and run `reload`",
    ),
    (
        "remove",
        "ringmaster reads watchers from the configuration file: remove it there and run `reload`",
    ),
    (
        "rm",
        "ringmaster reads watchers from the configuration file: remove it there and run `reload`",
    ),
    (
        "fg",
        "ringmasterctl has no fg: `tail -f NAME` follows a process's output",
    ),
    (
        "open",
        "ringmasterctl talks to one daemon's Unix socket: give it with -s SOCKET",
    ),
    (
        "get",
        "settings come from the configuration file: `status NAME` shows a process",
    ),
    (
        "set",
        "settings come from the configuration file: change it and run `reload`",
    ),
    (
        "options",
        "settings come from the configuration file: `ringmasterd --check FILE` shows them",
    ),
    (
        "globaloptions",
        "settings come from the configuration file: `ringmasterd --check FILE` shows them",
    ),
    (
        "reloadconfig",
        "`reload` reads the configuration again and applies the difference",
    ),
    ("dstats", "`stats` shows CPU, memory and files of processes"),
    ("listen", "`events` streams every state change"),
    ("numwatchers", "`avail` lists the watchers"),
    (
        "ipython",
        "ringmasterctl without a command starts its interactive session",
    ),
];

/// What to say to someone who typed `word` where a command goes, when it
/// is another tool's command; `None` for anything else (ours, or a typo
/// for the usual did-you-mean).
pub(crate) fn foreign_command(word: &str) -> Option<String> {
    FOREIGN
        .iter()
        .find(|(name, _)| *name == word)
        .map(|(name, what)| format!("`{name}`: {what}"))
}

/// `tail -100 NAME` and `maintail -100` (supervisorctl's way) as
/// `tail -n 100 NAME`.
pub(crate) fn supervisorctl_tail<S: AsRef<std::ffi::OsStr>>(
    words: &[S],
) -> Vec<std::ffi::OsString> {
    let mut out: Vec<std::ffi::OsString> = Vec::with_capacity(words.len() + 1);
    let mut in_tail = false;
    for word in words {
        let word = word.as_ref();
        let text = word.to_str().unwrap_or_default();
        in_tail |= text == "tail" || text == "maintail";
        match text.strip_prefix('-') {
            Some(digits)
                if in_tail && !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) =>
            {
                out.push("-n".into());
                out.push(digits.into());
            }
            _ => out.push(word.to_owned()),
        }
    }
    out
}

/// Prints an answer and returns the exit code it implies.
fn render(command: &Command, answer: Result<Response, ErrorBody>, json: bool) -> u8 {
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            if json {
                outln!("{}", serde_json::to_string(&error).unwrap_or_default());
            } else {
                errln!(
                    "ringmasterctl: {} [{}]",
                    error.message,
                    kind_name(error.kind)
                );
            }
            return exit_code::REFUSED;
        }
    };
    if !json && let Some(names) = command.names().filter(|_| nothing_named(&response)) {
        // A watcher decr took to 0 processes (or a group of such): say so
        // rather than print nothing.
        outln!(
            "no processes: {} {} none now (`incr WATCHER` adds some)",
            names.join(", "),
            if names.len() == 1 { "has" } else { "have" }
        );
        return exit_code::OK;
    }
    if json {
        // As a JSON value, so the keys come as the socket sends them.
        let value = serde_json::to_value(&response).unwrap_or_default();
        outln!("{value}");
    } else {
        out!("{}", format::response(&response, command.tails_a_watcher()));
    }
    answered(&response)
}

/// Whether an answer about processes lists none.
fn nothing_named(response: &Response) -> bool {
    match response {
        Response::Status(status) => status.processes.is_empty(),
        other => other.actions().is_some_and(|a| a.processes.is_empty()),
    }
}

/// The exit code of a successful answer: `status` with a process neither
/// RUNNING nor a completed one-shot job is 3, a command that acted on
/// processes is 1 if any failed.
fn answered(response: &Response) -> u8 {
    if let Response::Status(status) = response {
        let all_running = status
            .processes
            .iter()
            .all(|p| p.state == ProcessState::Running || p.completed);
        return if all_running {
            exit_code::OK
        } else {
            exit_code::NOT_RUNNING
        };
    }
    match response.actions() {
        Some(actions) if !actions.processes.iter().all(|p| p.ok) => exit_code::REFUSED,
        _ => exit_code::OK,
    }
}

fn kind_name(kind: ringmaster_protocol::ErrorKind) -> String {
    serde_json::to_value(kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_else(|| "internal".to_owned())
}
