//! supervisord's start, stop and signal methods, on ringmaster's
//! requests: one process (`startProcess`: `True` or a fault), a group or
//! all of them (`startProcessGroup`, `startAllProcesses`: a struct per
//! process acted on, as supervisord's `make_allfunc` builds them).

use ringmaster_protocol::{
    ActionOutcome, Command, NamesArgs, ProcessInfo, ProcessState, Request, Response, SignalArgs,
};
use ringmaster_xmlrpc::{FaultCode, Value};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::{Fault, Input, group_and_name, status};

/// What is done to processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    Start,
    Stop,
    Signal,
}

impl Action {
    /// Whether it applies to a process in `state` (supervisord's
    /// `isNotRunning`, `isRunning`, `isSignallable`).
    fn applies(self, state: ProcessState) -> bool {
        let running = matches!(
            state,
            ProcessState::Running | ProcessState::Backoff | ProcessState::Starting
        );
        match self {
            Self::Start => !running,
            Self::Stop => running,
            Self::Signal => matches!(
                state,
                ProcessState::Running | ProcessState::Starting | ProcessState::Stopping
            ),
        }
    }

    /// The fault when it does not apply to one process.
    fn refusal(self) -> FaultCode {
        match self {
            Self::Start => FaultCode::AlreadyStarted,
            Self::Stop | Self::Signal => FaultCode::NotRunning,
        }
    }

    /// The fault of a process the request failed for.
    fn failure(self) -> FaultCode {
        match self {
            Self::Start => FaultCode::SpawnError,
            Self::Stop | Self::Signal => FaultCode::Failed,
        }
    }
}

/// Acts on the one process `name` (`GROUP:NAME`): `True`, or the fault
/// supervisord gives (`BAD_NAME`, `ALREADY_STARTED`, `NOT_RUNNING`,
/// `SPAWN_ERROR`, `BAD_SIGNAL`). A name ending in `:*` is its group.
pub(super) async fn one(
    engine: &mpsc::Sender<Input>,
    action: Action,
    name: &str,
    signal: Option<&str>,
    wait: bool,
) -> Result<Value, Fault> {
    if let Some(group) = name.strip_suffix(":*") {
        return many(engine, action, Some(group), signal, wait).await;
    }
    let processes = status(engine, vec![name.to_owned()]).await?;
    let [process] = processes.as_slice() else {
        // A group's name given to a one-process method.
        return many(engine, action, Some(name), signal, wait).await;
    };
    if !action.applies(process.state) {
        return Err((action.refusal(), Some(name.to_owned())));
    }
    let outcomes = act(engine, action, vec![name.to_owned()], signal, wait).await?;
    match outcomes.first() {
        Some(outcome) if !outcome.ok => Err((action.failure(), Some(name.to_owned()))),
        _ => Ok(Value::Bool(true)),
    }
}

/// Acts on every process of `group` (every process when `None`) the
/// action applies to; a struct per process, as supervisord returns them.
pub(super) async fn many(
    engine: &mpsc::Sender<Input>,
    action: Action,
    group: Option<&str>,
    signal: Option<&str>,
    wait: bool,
) -> Result<Value, Fault> {
    let names: Vec<String> = group.map(str::to_owned).into_iter().collect();
    let mut processes: Vec<ProcessInfo> = status(engine, names)
        .await?
        .into_iter()
        .filter(|p| action.applies(p.state))
        .collect();
    // supervisord goes by priority, then (for equal priorities) in the
    // order its groups are listed, which is by name.
    processes.sort_by_cached_key(group_and_name);
    if processes.is_empty() {
        return Ok(Value::Array(Vec::new()));
    }
    let targets = processes.iter().map(|p| p.name.to_string()).collect();
    let outcomes = act(engine, action, targets, signal, wait).await?;
    let results = processes
        .iter()
        .map(|process| {
            let (group, name) = group_and_name(process);
            let failed = outcomes
                .iter()
                .find(|o| o.name == process.name)
                .filter(|o| !o.ok);
            let (code, description) = match failed {
                Some(_) => {
                    let code = action.failure();
                    (code as i64, code.text(Some(&format!("{group}:{name}"))))
                }
                None => (FaultCode::Success as i64, "OK".to_owned()),
            };
            Value::record([
                ("name", Value::from(name)),
                ("group", Value::from(group)),
                ("status", Value::Int(code)),
                ("description", Value::from(description)),
            ])
        })
        .collect();
    Ok(Value::Array(results))
}

/// Sends the request for `names`; with `wait`, its outcomes once done,
/// else at once (the request goes on by itself) with none.
async fn act(
    engine: &mpsc::Sender<Input>,
    action: Action,
    names: Vec<String>,
    signal: Option<&str>,
    wait: bool,
) -> Result<Vec<ActionOutcome>, Fault> {
    let (request, command) = match action {
        Action::Start => (Request::Start(NamesArgs { names }), Command::Start),
        Action::Stop => (Request::Stop(NamesArgs { names }), Command::Stop),
        Action::Signal => (
            Request::Signal(SignalArgs {
                signal: signal.unwrap_or("TERM").to_owned(),
                names,
            }),
            Command::Signal,
        ),
    };
    let engine = engine.clone();
    let asked =
        async move { super::super::requests::ask_engine(&engine, Json::Null, request).await };
    if !wait {
        tokio::spawn(asked);
        return Ok(Vec::new());
    }
    match asked.await.into_response(command) {
        Ok(Response::Start(result) | Response::Stop(result) | Response::Signal(result)) => {
            Ok(result.processes)
        }
        Ok(_) => Err((FaultCode::Failed, None)),
        Err(err) => Err((FaultCode::Failed, Some(err.to_string()))),
    }
}

/// A signal as supervisord takes it (`HUP`, `SIGHUP`, `1`), or
/// `BAD_SIGNAL`.
pub(super) fn signal_name(value: &Value) -> Result<String, Fault> {
    let text = match value {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        _ => return Err((FaultCode::BadArguments, None)),
    };
    match ringmaster_protocol::signals::parse(&text) {
        Some(_) => Ok(text),
        None => Err((FaultCode::BadSignal, Some(text))),
    }
}
