//! `ringmasterd`: the ringmaster daemon. Parses arguments, loads the
//! configuration and hands over to the engine.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringmaster_config::{Config, Dialect, LogFormat, LogLevel};

/// How long the daemon's last queued output may take to be written at exit.
const EXIT_FLUSH: std::time::Duration = std::time::Duration::from_secs(2);

/// A process supervisor: the successor to Circus and Supervisor.
#[derive(Debug, Parser)]
#[command(name = "ringmasterd", version, about)]
struct Args {
    /// Configuration file (default: ./ringmaster.toml, then /etc/ringmaster/ringmaster.toml).
    #[arg(value_name = "CONFIG")]
    config: Option<PathBuf>,
    /// Same as CONFIG (supervisord habit).
    #[arg(
        short = 'c',
        long = "config",
        value_name = "PATH",
        conflicts_with = "config"
    )]
    config_flag: Option<PathBuf>,
    /// Parse and validate, print a summary, exit 0 or 1.
    #[arg(long)]
    check: bool,
    /// Print the configuration as native TOML and exit.
    #[arg(long, conflicts_with = "check")]
    convert: bool,
    /// Force the configuration dialect: toml, circus or supervisord
    /// (default: by extension, then by content).
    #[arg(long, value_name = "FORMAT")]
    format: Option<Dialect>,
    /// With --check or at start: every configuration warning is an error.
    #[arg(long)]
    strict: bool,
    /// Log level: error, warn, info, debug or trace (overrides the config).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
    /// Log format: text or json (overrides the config).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

/// Writes to stdout, ignoring a reader that went away (`--check | head`).
macro_rules! say {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` without the panic on a closed stdout.
macro_rules! say_raw {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Writes to stderr, ignoring a stderr that went away.
macro_rules! say_err {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// The configuration looked for in the current directory first.
const LOCAL_CONFIG: &str = "./ringmaster.toml";
/// Then the system's.
const SYSTEM_CONFIG: &str = "/etc/ringmaster/ringmaster.toml";

/// The first default configuration that exists.
fn default_config() -> Option<PathBuf> {
    [LOCAL_CONFIG, SYSTEM_CONFIG]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

fn main() -> ExitCode {
    let args = Args::parse();
    let Some(path) = args.config.or(args.config_flag).or_else(default_config) else {
        say_err!(
            "ringmasterd: no configuration file given, and neither {LOCAL_CONFIG} (here) nor {SYSTEM_CONFIG} exists"
        );
        return ExitCode::from(1);
    };
    // --check asks this machine too (users, commands, directories), in the
    // same pass as every other error.
    let read = if args.check {
        ringmaster_config::check
    } else {
        ringmaster_config::read
    };
    let loaded = match read(&path, args.format) {
        Ok(loaded) => loaded,
        Err(errors) => {
            say_err!("ringmasterd: configuration error:\n{errors}");
            return ExitCode::from(1);
        }
    };
    if args.strict && !args.convert && !loaded.warnings.is_empty() {
        say_err!("ringmasterd: configuration error (--strict makes every warning an error):");
        for warning in &loaded.warnings {
            say_err!("{warning}");
        }
        return ExitCode::from(1);
    }
    if args.convert {
        for warning in &loaded.warnings {
            say_err!("ringmasterd: warning: {warning}");
        }
        say_raw!("{}", loaded.toml);
        return ExitCode::SUCCESS;
    }
    if args.check {
        for warning in &loaded.warnings {
            say_err!("ringmasterd: warning: {warning}");
        }
        for note in &loaded.config.notes {
            say_err!("ringmasterd: note: {note}");
        }
        return check(&loaded.config);
    }
    let config = loaded.config;
    init_logging(
        args.log_level.unwrap_or(config.daemon.log_level),
        args.log_format.unwrap_or(config.daemon.log_format),
    );
    for warning in &loaded.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            say_err!("ringmasterd: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(ringmaster_engine::run(config));
    if let Err(err) = &result {
        tracing::error!("{err}");
    }
    // The last lines (\"ringmasterd stopped\") are still queued; give them
    // a moment, but a stderr nobody reads must not hold up the exit.
    ringmaster_logs::console::stdout().flush(EXIT_FLUSH);
    ringmaster_logs::console::stderr().flush(EXIT_FLUSH);
    match result {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(_) => ExitCode::from(1),
    }
}

fn check(config: &Config) -> ExitCode {
    say!("{}: OK", config.path.display());
    say!(
        "  socket   {} (mode {:04o})",
        config.daemon.socket.display(),
        config.daemon.socket_mode
    );
    say!("  logs     {}", config.daemon.logs_dir.display());
    say!(
        "  watchers {} ({})",
        config.watchers.len(),
        ringmaster_protocol::plural(config.process_count(), "process", "processes")
    );
    let width = config
        .watchers
        .iter()
        .map(|w| w.name.len())
        .max()
        .unwrap_or(0);
    for w in &config.watchers {
        // Quoted as a shell would need it, so the line reads back the same.
        let argv: Vec<String> = w.command.argv.iter().map(ToString::to_string).collect();
        let argv =
            shlex::try_join(argv.iter().map(String::as_str)).unwrap_or_else(|_| argv.join(" "));
        say!(
            "    {:width$}  x{:<3} priority {:<5} restart {:<10} {}{}",
            w.name,
            w.numprocesses,
            w.priority,
            w.restart.as_str(),
            argv,
            w.user
                .as_deref()
                .map(|u| format!("  (as {u})"))
                .unwrap_or_default(),
        );
        let order = start_order(w);
        if !order.is_empty() {
            say!("    {:width$}  {order}", "");
        }
    }
    ExitCode::SUCCESS
}

/// What `--check` says of a watcher's start order, checks and hooks:
/// `after db; ready by tcp; health by http every 5s; hooks before_start`.
fn start_order(w: &ringmaster_config::WatcherConfig) -> String {
    let mut notes = Vec::new();
    if !w.depends_on.is_empty() {
        notes.push(format!("after {}", w.depends_on.join(", ")));
    }
    if let Some(ready) = &w.ready {
        notes.push(format!("ready by {}", ready.check.kind()));
    }
    if let Some(health) = &w.health {
        notes.push(format!(
            "health by {} every {:?}",
            health.check.kind(),
            health.interval
        ));
    }
    let hooks: Vec<&str> = w.hooks.commands.iter().map(|(p, _)| p.name()).collect();
    if !hooks.is_empty() {
        notes.push(format!("hooks {}", hooks.join(", ")));
    }
    notes.join("; ")
}

fn init_logging(level: LogLevel, format: LogFormat) {
    let level = match level {
        LogLevel::Error => tracing::Level::ERROR,
        LogLevel::Warn => tracing::Level::WARN,
        LogLevel::Info => tracing::Level::INFO,
        LogLevel::Debug => tracing::Level::DEBUG,
        LogLevel::Trace => tracing::Level::TRACE,
    };
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        // Never std::io::stderr itself: a closed terminal or a full pipe
        // there would panic or stall the daemon (see logs::console).
        .with_writer(|| ringmaster_logs::console::StderrWriter)
        .with_ansi(
            std::io::stderr().is_terminal()
                && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()),
        )
        .with_target(false);
    // Under systemd, journald stamps every line itself.
    let journald = std::env::var_os("JOURNAL_STREAM").is_some_and(|v| !v.is_empty());
    match (format, journald) {
        (LogFormat::Text, false) => builder.init(),
        (LogFormat::Text, true) => builder.without_time().init(),
        (LogFormat::Json, _) => builder.json().init(),
    }
}
