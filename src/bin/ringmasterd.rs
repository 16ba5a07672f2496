//! `ringmasterd`: the ringmaster daemon. Parses arguments, loads the
//! configuration and hands over to the engine.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ringmaster_config::{Config, Dialect, LogFormat, LogLevel};

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
    /// Log level: error, warn, info, debug or trace (overrides the config).
    #[arg(long, value_name = "LEVEL")]
    log_level: Option<LogLevel>,
    /// Log format: text or json (overrides the config).
    #[arg(long, value_name = "FORMAT")]
    log_format: Option<LogFormat>,
}

fn default_config() -> PathBuf {
    let local = PathBuf::from("ringmaster.toml");
    if local.exists() {
        local
    } else {
        PathBuf::from("/etc/ringmaster/ringmaster.toml")
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let path = args
        .config
        .or(args.config_flag)
        .unwrap_or_else(default_config);
    let loaded = match ringmaster_config::read(&path, args.format) {
        Ok(loaded) => loaded,
        Err(errors) => {
            eprintln!("ringmasterd: configuration error:\n{errors}");
            return ExitCode::from(1);
        }
    };
    if args.convert {
        for warning in &loaded.warnings {
            eprintln!("ringmasterd: warning: {warning}");
        }
        print!("{}", loaded.toml);
        return ExitCode::SUCCESS;
    }
    if args.check {
        for warning in &loaded.warnings {
            eprintln!("ringmasterd: warning: {warning}");
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
            eprintln!("ringmasterd: cannot start the runtime: {err}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(ringmaster_engine::run(config)) {
        Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        Err(err) => {
            eprintln!("ringmasterd: {err}");
            ExitCode::from(1)
        }
    }
}

fn check(config: &Config) -> ExitCode {
    let problems = ringmaster_config::check_system(config);
    for problem in &problems {
        eprintln!("ringmasterd: {problem}");
    }
    println!(
        "{}: {}",
        config.path.display(),
        if problems.is_empty() { "OK" } else { "ERRORS" }
    );
    println!(
        "  socket   {} (mode {:04o})",
        config.daemon.socket.display(),
        config.daemon.socket_mode
    );
    println!("  logs     {}", config.daemon.logs_dir.display());
    println!(
        "  watchers {} ({} processes)",
        config.watchers.len(),
        config.process_count()
    );
    let width = config
        .watchers
        .iter()
        .map(|w| w.name.len())
        .max()
        .unwrap_or(0);
    for w in &config.watchers {
        let argv: Vec<String> = w.command.argv.iter().map(ToString::to_string).collect();
        println!(
            "    {:width$}  x{:<3} priority {:<5} restart {:<10} {}{}",
            w.name,
            w.numprocesses,
            w.priority,
            w.restart.as_str(),
            argv.join(" "),
            w.user
                .as_deref()
                .map(|u| format!("  (as {u})"))
                .unwrap_or_default(),
        );
    }
    if problems.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
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
        .with_writer(std::io::stderr)
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
