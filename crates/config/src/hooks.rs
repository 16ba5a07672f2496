//! A watcher's `hooks`: commands run around each of its processes' life.

use std::time::Duration;

use crate::template::Template;

/// How long a hook may run when `hook_timeout` is not given.
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// When a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// Before each spawn of a process; failing it fails that start.
    BeforeStart,
    /// Once a process is RUNNING (after its `ready` check).
    AfterStart,
    /// Before a stop signal is sent to a RUNNING process.
    BeforeStop,
    /// Once a process is gone (stopped, or exited on its own).
    AfterStop,
}

impl HookPoint {
    /// Every point, in the order of a process's life.
    pub const ALL: [Self; 4] = [
        Self::BeforeStart,
        Self::AfterStart,
        Self::BeforeStop,
        Self::AfterStop,
    ];

    /// The key that configures it (`before_start`).
    pub fn name(self) -> &'static str {
        match self {
            Self::BeforeStart => "before_start",
            Self::AfterStart => "after_start",
            Self::BeforeStop => "before_stop",
            Self::AfterStop => "after_stop",
        }
    }
}

/// The hooks of a watcher: a command (argv, split like `cmd`, no shell)
/// for each point that has one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hooks {
    /// `(point, argv)`, at most one per point.
    pub commands: Vec<(HookPoint, Vec<Template>)>,
    /// How long each run may take before it is killed (and, for
    /// `before_start`, counted as a failure).
    pub timeout: Duration,
}

impl Hooks {
    /// The command run at `point`, if any.
    pub fn at(&self, point: HookPoint) -> Option<&[Template]> {
        self.commands
            .iter()
            .find(|(p, _)| *p == point)
            .map(|(_, argv)| argv.as_slice())
    }
}
