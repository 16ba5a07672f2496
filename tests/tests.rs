//! Black-box tests: they run the real `ringmasterd`, `ringmasterctl` and
//! `ringmaster-testkit` binaries with real processes, pipes, signals and
//! sockets. One test binary (see Cargo.toml), one module per area.

// Tests panic on unexpected errors: that is how they fail.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::needless_pass_by_value,
    missing_docs
)]

mod support;

mod cgroups;
mod compat;
mod config_errors;
mod console;
mod containers;
mod control;
mod dialects;
mod events;
mod examples;
mod lifecycle;
mod logfiles;
mod metrics;
mod operator;
mod output;
mod privileges;
mod readiness;
mod reaping;
mod reload;
mod repl;
mod scaling;
mod sockets;
mod stack;
mod stats;
mod stopping;
mod supervisorctl;
mod systemd;
mod tail;
mod terminal;
mod web;
mod webapp;
