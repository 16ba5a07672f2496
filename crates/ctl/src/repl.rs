//! The interactive session: `ringmasterctl` with no command.
//!
//! Each line is parsed like the one-shot command line and runs through the
//! same code, over a fresh connection, so a daemon that restarted between
//! two lines is simply there again (the session says so). Ctrl-C clears
//! the line being typed, or ends a `tail -f`/`events` follow and returns
//! to the prompt; Ctrl-D, `quit` or `exit` leave.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{CommandFactory, Parser};
use ringmaster_protocol::{Request, Response, signals};
use rustyline::completion::{Completer, Pair};
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{Config, Context, Editor, Helper};

use crate::client::Client;
use crate::commands::{Command, execute, exit_code};
use crate::out::{errln, outln};

/// The prompt.
const PROMPT: &str = "ringmaster> ";
/// Lines kept in the history file.
const HISTORY_LINES: usize = 1000;
/// What the session understands besides the commands.
const SESSION_WORDS: &[&str] = &["help", "quit", "exit"];

/// One line typed at the prompt.
#[derive(Debug, Parser)]
#[command(
    name = "ringmaster>",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_version_flag = true
)]
struct Line {
    /// Print the daemon's result objects as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Runs the session until the user leaves; returns the exit code.
pub(crate) fn run(path: &Path, json: bool) -> u8 {
    let stop = Arc::new(AtomicBool::new(false));
    // Ctrl-C while a command runs (the terminal is not in raw mode then)
    // sets the flag instead of ending the session.
    let _ = signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop));
    let mut reachable = banner(path);
    let config = Config::builder()
        .max_history_size(HISTORY_LINES)
        .map(|b| b.auto_add_history(true).history_ignore_space(true).build())
        .unwrap_or_default();
    let mut editor: Editor<Names, DefaultHistory> = match Editor::with_config(config) {
        Ok(editor) => editor,
        Err(err) => {
            errln!("ringmasterctl: cannot start the interactive session: {err}");
            return exit_code::USAGE;
        }
    };
    editor.set_helper(Some(Names {
        path: path.to_path_buf(),
    }));
    let history = history_file();
    if let Some(file) = &history {
        // A first session has no file yet.
        let _ = editor.load_history(file);
    }
    loop {
        stop.store(false, Ordering::Relaxed);
        let line = match editor.readline(PROMPT) {
            Ok(line) => line,
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break,
            Err(err) => {
                errln!("ringmasterctl: {err}");
                break;
            }
        };
        let Some(words) = shlex::split(&line) else {
            errln!("unbalanced quotes");
            continue;
        };
        match words.first().map(String::as_str) {
            None => continue,
            Some("quit" | "exit") => break,
            Some("help" | "?") => {
                help(words.get(1).map(String::as_str));
                continue;
            }
            Some(word) => {
                if let Some(message) = crate::commands::foreign_command(word) {
                    outln!("{message}");
                    continue;
                }
            }
        }
        let parsed = match Line::try_parse_from(crate::commands::supervisorctl_tail(&words)) {
            Ok(parsed) => parsed,
            Err(err) => {
                usage_error(&err, &words[0]);
                continue;
            }
        };
        if !reachable && Client::connect(path).is_ok() {
            outln!("(reconnected to ringmasterd at {})", path.display());
            reachable = true;
        }
        let code = execute(path, &parsed.command, json || parsed.json, Some(&stop));
        if code == exit_code::UNREACHABLE {
            reachable = false;
        }
    }
    if let Some(file) = &history
        && let Err(err) = save_history(&mut editor, file)
    {
        errln!(
            "ringmasterctl: cannot save the history to {}: {err}",
            file.display()
        );
    }
    exit_code::OK
}

/// A line clap refused: an unknown command gets did-you-mean and a
/// pointer at `help`; a usage error (or `CMD --help`) is clap's text,
/// with the usage line as typed at the prompt (no program name).
fn usage_error(err: &clap::Error, word: &str) {
    if err.kind() == clap::error::ErrorKind::InvalidSubcommand {
        let command = Line::command();
        let names: Vec<&str> = command
            .get_subcommands()
            .flat_map(|sub| std::iter::once(sub.get_name()).chain(sub.get_visible_aliases()))
            .collect();
        let hint = ringmaster_protocol::did_you_mean(word, names.iter().copied())
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        outln!("no command '{word}'{hint}; type help for the list");
        return;
    }
    let text = err.render().to_string().replace("ringmaster> ", "");
    if err.use_stderr() {
        errln!("{}", text.trim_end());
    } else {
        outln!("{}", text.trim_end());
    }
}

/// Says who is talking to whom, and how the processes are; false when the
/// daemon cannot be reached.
fn banner(path: &Path) -> bool {
    let client_version = env!("CARGO_PKG_VERSION");
    let status = Client::connect(path).and_then(|mut client| {
        let version = client.ask(&Request::Version)?;
        let status = client.ask(&Request::Status(ringmaster_protocol::NamesArgs::default()))?;
        Ok((version, status))
    });
    match status {
        Ok((version, status)) => {
            let daemon = match version {
                Ok(Response::Version(v)) => v.version,
                _ => "?".to_owned(),
            };
            outln!(
                "ringmasterctl {client_version}, ringmasterd {daemon} at {}",
                path.display()
            );
            let processes = match status {
                Ok(Response::Status(s)) => s.processes,
                _ => Vec::new(),
            };
            let mut counts: Vec<(&str, usize)> = Vec::new();
            for process in &processes {
                let state = process.state.as_str();
                match counts.iter_mut().find(|(s, _)| *s == state) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((state, 1)),
                }
            }
            let summary: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            let count = ringmaster_protocol::plural(processes.len(), "process", "processes");
            outln!("{count}: {}", summary.join(", "));
            outln!("Type help for the commands, quit to leave.");
            true
        }
        Err(err) => {
            outln!("ringmasterctl {client_version}");
            outln!("ringmasterctl: {err}");
            outln!("Commands will try again. Type help for the commands, quit to leave.");
            false
        }
    }
}

/// `help` lists the commands; `help COMMAND` shows its usage.
fn help(topic: Option<&str>) {
    let mut command = Line::command();
    if let Some(topic) = topic {
        match command.find_subcommand_mut(topic) {
            Some(sub) => {
                let _ = sub.print_long_help();
            }
            None => outln!("no command '{topic}'; type help for the list"),
        }
        return;
    }
    outln!("Commands (help COMMAND for its options):");
    for sub in command.get_subcommands() {
        let about = sub.get_about().map(ToString::to_string).unwrap_or_default();
        outln!("  {:<10} {about}", sub.get_name());
    }
    outln!("  {:<10} this list, or a command's usage", "help");
    outln!("  {:<10} leave (or Ctrl-D)", "quit");
    outln!("Names: a watcher (web), a process (web:2), a group, NAME:* or all.");
    outln!("Ctrl-C stops a tail -f or events follow and returns here.");
}

/// `$HOME/.ringmasterctl_history`, when there is a home.
fn history_file() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|home| PathBuf::from(home).join(".ringmasterctl_history"))
}

/// Saves the history, readable by its owner only (it may hold names).
fn save_history(editor: &mut Editor<Names, DefaultHistory>, file: &Path) -> std::io::Result<()> {
    editor.save_history(file).map_err(std::io::Error::other)?;
    std::fs::set_permissions(file, std::os::unix::fs::PermissionsExt::from_mode(0o600))
}

/// Completes command names, then names the daemon knows (fetched on each
/// Tab), signal names for `signal`, streams for `tail`.
struct Names {
    path: PathBuf,
}

impl Names {
    /// Every name a command accepts right now: `all`, watchers, groups,
    /// processes and their aliases.
    fn live(&self) -> Vec<String> {
        let status = Client::connect(&self.path)
            .and_then(|mut c| c.ask(&Request::Status(ringmaster_protocol::NamesArgs::default())));
        let processes = match status {
            Ok(Ok(Response::Status(s))) => s.processes,
            _ => Vec::new(),
        };
        let mut names = vec!["all".to_owned()];
        for process in processes {
            let mut add = |name: String| {
                if !names.contains(&name) {
                    names.push(name);
                }
            };
            add(process.name.watcher.clone());
            add(process.name.to_string());
            if let Some(alias) = process.alias {
                if let Some((group, _)) = alias.split_once(':') {
                    add(group.to_owned());
                }
                add(alias);
            }
        }
        names
    }
}

impl Completer for Names {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        let start = before.rfind(char::is_whitespace).map_or(0, |i| i + 1);
        let word = &before[start..];
        let previous: Vec<&str> = before[..start].split_whitespace().collect();
        let commands = || {
            Line::command()
                .get_subcommands()
                .map(|c| c.get_name().to_owned())
                .chain(SESSION_WORDS.iter().map(|w| (*w).to_owned()))
                .collect::<Vec<_>>()
        };
        let candidates: Vec<String> = match previous.as_slice() {
            [] | ["help" | "?"] => commands(),
            ["signal"] => signals::all_names().map(str::to_owned).collect(),
            ["tail", rest @ ..] if rest.iter().any(|w| !w.starts_with('-')) => {
                vec!["stdout".into(), "stderr".into()]
            }
            _ => self.live(),
        };
        let pairs = candidates
            .into_iter()
            .filter(|c| c.starts_with(word))
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        Ok((start, pairs))
    }
}

impl Hinter for Names {
    type Hint = String;
}

impl Highlighter for Names {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        Cow::Borrowed(line)
    }
}

impl Validator for Names {}

impl Helper for Names {}
