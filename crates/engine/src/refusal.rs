//! Why the engine refuses a request: one type, one message per reason,
//! and the protocol's error kind derived from it.

use ringmaster_config::ConfigErrors;
use ringmaster_protocol::{ErrorKind, Reply};
use serde_json::Value;

/// A request the engine will not carry out, and why.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// Starting, restarting, scaling up or reloading during a shutdown.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// The engine ended before it answered.
    #[error("the daemon stopped before answering")]
    Gone,
    /// A name that names nothing, with did-you-mean.
    #[error("{0}")]
    NotFound(String),
    /// Arguments the command cannot take.
    #[error("{0}")]
    BadArgs(String),
    /// The configuration file has errors: nothing was `what` ("read",
    /// "reloaded, nothing changed").
    #[error("the configuration was not {what}: {errors}")]
    BadConfig {
        /// What did not happen.
        what: &'static str,
        /// The file's errors.
        errors: ConfigErrors,
    },
    /// A socket the new configuration adds or changes cannot be bound:
    /// nothing was reloaded.
    #[error("the configuration was not reloaded, nothing changed: {0}")]
    Bind(#[from] crate::listeners::BindError),
    /// A command the connection serves reached the engine.
    #[error("served by the connection, not the engine")]
    NotTheEngines,
}

impl Refusal {
    /// The protocol's error kind.
    pub(crate) fn kind(&self) -> ErrorKind {
        match self {
            Self::ShuttingDown | Self::Gone => ErrorKind::ShuttingDown,
            Self::NotFound(_) => ErrorKind::NotFound,
            Self::BadArgs(_) => ErrorKind::BadArgs,
            Self::BadConfig { .. } | Self::Bind(_) => ErrorKind::BadConfig,
            Self::NotTheEngines => ErrorKind::Internal,
        }
    }

    /// The failure reply to request `id`.
    pub(crate) fn reply(&self, id: Value) -> Reply {
        Reply::failure(id, self.kind(), self.to_string())
    }
}
