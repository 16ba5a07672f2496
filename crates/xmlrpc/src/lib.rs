//! supervisord's XML-RPC, on the wire: a `methodCall` read within limits
//! (quick-xml), a `methodResponse` or fault written as Python's xmlrpclib
//! writes them, and supervisord's fault codes.
//!
//! Theory of operation: [`parse_call`] reads the request body into a small
//! tree, refusing more than [`Limits`] allow (bytes, nesting, elements)
//! and any document type declaration: no entity but XML's five and
//! character references is ever expanded, so an XML bomb is an error, not
//! memory. The tree is then read as XML-RPC's grammar says. What the
//! methods mean is the daemon's business; this crate only moves values.

mod read;
mod write;

pub use read::{Limits, ParseError, parse_call};
pub use write::{fault, response};

/// An XML-RPC value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `<int>`, `<i4>` or `<i8>`.
    Int(i64),
    /// `<boolean>`.
    Bool(bool),
    /// `<string>`, or text directly in `<value>`.
    Str(String),
    /// `<double>`.
    Double(f64),
    /// `<array>`.
    Array(Vec<Value>),
    /// `<struct>`, members in order.
    Struct(Vec<(String, Value)>),
    /// `<base64>`, as written (not decoded: no method takes one).
    Base64(String),
    /// `<dateTime.iso8601>`, as written.
    DateTime(String),
    /// `<nil/>`.
    Nil,
}

impl Value {
    /// A struct from `(name, value)` pairs.
    pub fn record<I, K>(members: I) -> Self
    where
        I: IntoIterator<Item = (K, Value)>,
        K: Into<String>,
    {
        Self::Struct(members.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// The integer, if this is one.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            Self::Int(i) => Some(*i),
            _ => None,
        }
    }

    /// The truth value: a boolean, or (as Python takes them) an integer.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Self::Bool(b) => Some(*b),
            Self::Int(i) => Some(*i != 0),
            _ => None,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Self::Str(s)
    }
}

impl From<i64> for Value {
    fn from(i: i64) -> Self {
        Self::Int(i)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Self::Bool(b)
    }
}

/// A method call: its name and parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Call {
    /// `supervisor.getAllProcessInfo`.
    pub method: String,
    /// In order.
    pub params: Vec<Value>,
}

/// supervisord's fault codes (`supervisor/xmlrpc.py`, `Faults`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultCode {
    /// No such method.
    UnknownMethod = 1,
    /// Wrong number of parameters.
    IncorrectParameters = 2,
    /// A parameter of the wrong kind or value.
    BadArguments = 3,
    /// `system.methodSignature` of a method without one.
    SignatureUnsupported = 4,
    /// The daemon is shutting down.
    ShutdownState = 6,
    /// No such process or group.
    BadName = 10,
    /// No such signal.
    BadSignal = 11,
    /// The program (or a log file) does not exist.
    NoFile = 20,
    /// The program cannot be executed.
    NotExecutable = 21,
    /// The request failed.
    Failed = 30,
    /// The process exited abnormally while it was being waited for.
    AbnormalTermination = 40,
    /// The process could not be spawned.
    SpawnError = 50,
    /// It runs already.
    AlreadyStarted = 60,
    /// It does not run.
    NotRunning = 70,
    /// Success (`multicall` results).
    Success = 80,
    /// The group exists already.
    AlreadyAdded = 90,
    /// The group still has processes running.
    StillRunning = 91,
    /// The configuration cannot be read again.
    CantReread = 92,
}

impl FaultCode {
    /// supervisord's name for it, the start of every fault string.
    pub fn name(self) -> &'static str {
        match self {
            Self::UnknownMethod => "UNKNOWN_METHOD",
            Self::IncorrectParameters => "INCORRECT_PARAMETERS",
            Self::BadArguments => "BAD_ARGUMENTS",
            Self::SignatureUnsupported => "SIGNATURE_UNSUPPORTED",
            Self::ShutdownState => "SHUTDOWN_STATE",
            Self::BadName => "BAD_NAME",
            Self::BadSignal => "BAD_SIGNAL",
            Self::NoFile => "NO_FILE",
            Self::NotExecutable => "NOT_EXECUTABLE",
            Self::Failed => "FAILED",
            Self::AbnormalTermination => "ABNORMAL_TERMINATION",
            Self::SpawnError => "SPAWN_ERROR",
            Self::AlreadyStarted => "ALREADY_STARTED",
            Self::NotRunning => "NOT_RUNNING",
            Self::Success => "SUCCESS",
            Self::AlreadyAdded => "ALREADY_ADDED",
            Self::StillRunning => "STILL_RUNNING",
            Self::CantReread => "CANT_REREAD",
        }
    }

    /// The fault string supervisord sends: the name, then `: extra`.
    pub fn text(self, extra: Option<&str>) -> String {
        match extra {
            Some(extra) => format!("{}: {extra}", self.name()),
            None => self.name().to_owned(),
        }
    }
}
