//! Black-box tests: they run the real `ringmasterd`, `ringmasterctl` and
//! `ringmaster-testkit` binaries with real processes, pipes, signals and
//! sockets. One test binary (see Cargo.toml), one module per area.

mod support;

mod config_errors;
mod control;
mod lifecycle;
mod privileges;
mod reaping;
mod stopping;
