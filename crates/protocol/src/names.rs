//! Process names (`web:2`) and process states, as the spec spells them.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The state of one supervised process (spec §5, Supervisor's rules).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProcessState {
    /// Not running, and not wanted running.
    Stopped,
    /// Spawned, waiting for `start_secs` to pass.
    Starting,
    /// Up for at least `start_secs`.
    Running,
    /// Exited too quickly; waiting before the next attempt.
    Backoff,
    /// Asked to stop; waiting for the process group to be gone.
    Stopping,
    /// Exited on its own from RUNNING; when a restart is due it follows at
    /// once (EXITED -> STARTING), else the process stays here.
    Exited,
    /// Gave up after `start_retries` quick failures.
    Fatal,
}

impl ProcessState {
    /// The upper-case name the CLI prints.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stopped => "STOPPED",
            Self::Starting => "STARTING",
            Self::Running => "RUNNING",
            Self::Backoff => "BACKOFF",
            Self::Stopping => "STOPPING",
            Self::Exited => "EXITED",
            Self::Fatal => "FATAL",
        }
    }

    /// True for the states in which a process has a live pid.
    pub fn has_pid(self) -> bool {
        matches!(self, Self::Starting | Self::Running | Self::Stopping)
    }

    /// True when the process neither runs nor tries to (STOPPED, EXITED,
    /// FATAL): nothing is left to stop.
    pub fn is_at_rest(self) -> bool {
        matches!(self, Self::Stopped | Self::Exited | Self::Fatal)
    }
}

impl fmt::Display for ProcessState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name a person reads a process by: its alias (`site:web_1`) when it
/// has one, else `web:1`. Both are accepted in requests; replies carry
/// both.
pub fn shown_name(name: &ProcessName, alias: Option<&str>) -> String {
    alias.map_or_else(|| name.to_string(), str::to_owned)
}

/// A process name: the watcher's name and the 1-based worker slot.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessName {
    /// Name of the watcher (`web`).
    pub watcher: String,
    /// 1-based worker slot (`2` in `web:2`).
    pub wid: u32,
}

impl ProcessName {
    /// Builds a name from its parts.
    pub fn new(watcher: impl Into<String>, wid: u32) -> Self {
        Self {
            watcher: watcher.into(),
            wid,
        }
    }
}

impl fmt::Display for ProcessName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.watcher, self.wid)
    }
}

/// Why a string is not a process name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("'{0}' is not a process name (expected WATCHER:WID, e.g. web:2)")]
pub struct ProcessNameError(pub String);

impl FromStr for ProcessName {
    type Err = ProcessNameError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (watcher, wid) = s
            .rsplit_once(':')
            .ok_or_else(|| ProcessNameError(s.to_owned()))?;
        let wid: u32 = wid.parse().map_err(|_| ProcessNameError(s.to_owned()))?;
        if watcher.is_empty() || wid == 0 {
            return Err(ProcessNameError(s.to_owned()));
        }
        Ok(Self::new(watcher, wid))
    }
}

impl Serialize for ProcessName {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ProcessName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        let name: ProcessName = "web:2".parse().unwrap();
        assert_eq!(name, ProcessName::new("web", 2));
        assert_eq!(name.to_string(), "web:2");
        assert!("web".parse::<ProcessName>().is_err());
        assert!("web:0".parse::<ProcessName>().is_err());
        assert!(":1".parse::<ProcessName>().is_err());
        assert_eq!(
            "grp:web:3".parse::<ProcessName>().unwrap(),
            ProcessName::new("grp:web", 3)
        );
    }

    #[test]
    fn states_serialize_upper_case() {
        assert_eq!(
            serde_json::to_string(&ProcessState::Backoff).unwrap(),
            "\"BACKOFF\""
        );
    }
}
