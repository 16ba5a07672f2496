//! supervisord's XML-RPC interface on the control socket, so that
//! `supervisorctl` and the tools built on it work against ringmaster.
//!
//! Theory of operation: a connection that passed the peer-credential
//! check and whose first byte is an upper-case letter (`POST /RPC2`) is
//! HTTP, served by hyper; anything else is the NDJSON protocol. Each
//! request body (at most [`MAX_BODY`]) is read by ringmaster-xmlrpc
//! within its limits, and the method is looked up in a fixed table of
//! supervisord's own method names: never dispatched by name
//! (CVE-2017-11610). A method asks the engine as a control connection
//! does. Methods not yet in the table answer supervisord's
//! `UNKNOWN_METHOD` fault.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ringmaster_config::BasicAuth;
use ringmaster_protocol::{Command, ProcessInfo, Request as RmRequest, Response as RmResponse};
use ringmaster_xmlrpc::{FaultCode, Limits, Value};
use serde_json::Value as Json;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::Input;

mod actions;
mod info;
mod logs;

use info::{group_and_name, process_info};

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;
/// A request's head must arrive within this (and an idle connection
/// is closed after it).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// XML-RPC connections over TCP served at once.
const MAX_TCP_CONNECTIONS: usize = 64;
/// supervisord's XML-RPC API version, which supervisorctl checks.
const API_VERSION: &str = "3.0";

type Answer = Response<Full<Bytes>>;

/// Serves XML-RPC over HTTP on `stream` (the control socket: its peer
/// credentials were checked) until the client closes it.
pub(super) async fn serve(stream: UnixStream, engine: mpsc::Sender<Input>) {
    serve_io(stream, engine, None).await;
}

/// Serves one connection, each request checked against `auth` when set.
pub(crate) async fn serve_io<IO>(io: IO, engine: mpsc::Sender<Input>, auth: Option<Arc<BasicAuth>>)
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let engine = engine.clone();
        let auth = auth.clone();
        async move {
            if let Some(auth) = auth.as_deref()
                && !authorized(auth, &request)
            {
                return Ok::<_, Infallible>(unauthorized());
            }
            Ok::<_, Infallible>(answer(&engine, request).await)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let _ = builder.serve_connection(TokioIo::new(io), service).await;
}

/// Whether `request` carries HTTP basic credentials that match `auth`
/// (a `{SHA}` password is compared by the hex SHA-1 of the one given);
/// compared in constant time.
fn authorized(auth: &BasicAuth, request: &Request<hyper::body::Incoming>) -> bool {
    use base64::Engine as _;
    let Some(encoded) = request
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
    else {
        return false;
    };
    let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
        return false;
    };
    let Some(colon) = decoded.iter().position(|&b| b == b':') else {
        return false;
    };
    let (username, password) = (&decoded[..colon], &decoded[colon + 1..]);
    let user_ok = same(username, auth.username.as_bytes());
    let password_ok = match auth.password.strip_prefix("{SHA}") {
        Some(hex) => {
            use sha1::Digest as _;
            let digest = sha1::Sha1::digest(password);
            let given = digest.iter().fold(String::new(), |mut hex, b| {
                use std::fmt::Write as _;
                let _ = write!(hex, "{b:02x}");
                hex
            });
            same(given.as_bytes(), hex.to_ascii_lowercase().as_bytes())
        }
        None => same(password, auth.password.as_bytes()),
    };
    user_ok & password_ok
}

/// Byte strings equal, in time that depends on their lengths only.
fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

fn unauthorized() -> Answer {
    let mut response = plain(StatusCode::UNAUTHORIZED, "unauthorized\n");
    response.headers_mut().insert(
        hyper::header::WWW_AUTHENTICATE,
        hyper::header::HeaderValue::from_static("Basic realm=\"default\""),
    );
    response
}

/// Serves XML-RPC over TCP on `listener` until `token` is cancelled: at
/// most [`MAX_TCP_CONNECTIONS`] at once, every request behind `auth`
/// when set (the configuration demands it off loopback).
pub(crate) fn start_tcp(
    listener: std::net::TcpListener,
    engine: mpsc::Sender<Input>,
    auth: Option<BasicAuth>,
    token: tokio_util::sync::CancellationToken,
) {
    let address = listener
        .local_addr()
        .map_or_else(|_| "?".to_owned(), |a| a.to_string());
    let listener = match listener
        .set_nonblocking(true)
        .and_then(|()| tokio::net::TcpListener::from_std(listener))
    {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%address, "cannot serve XML-RPC: {err}");
            return;
        }
    };
    tracing::info!(%address, auth = auth.is_some(), "serving supervisord's XML-RPC over TCP");
    let auth = auth.map(Arc::new);
    tokio::spawn(crate::http::accept_loop(
        listener,
        MAX_TCP_CONNECTIONS,
        token,
        "XML-RPC",
        move |stream| serve_io(stream, engine.clone(), auth.clone()),
    ));
}

async fn answer(engine: &mpsc::Sender<Input>, request: Request<hyper::body::Incoming>) -> Answer {
    if request.uri().path() != "/RPC2" {
        return plain(StatusCode::NOT_FOUND, "not found: XML-RPC is at /RPC2\n");
    }
    if request.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "XML-RPC takes POST\n");
    }
    let body = match Limited::new(request.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return plain(StatusCode::PAYLOAD_TOO_LARGE, "request body too large\n"),
    };
    let call = match ringmaster_xmlrpc::parse_call(&body, Limits::default()) {
        Ok(call) => call,
        Err(err) => {
            tracing::warn!("XML-RPC request refused: {err}");
            return plain(StatusCode::BAD_REQUEST, &format!("{err}\n"));
        }
    };
    let text = match dispatch(engine, &call.method, &call.params).await {
        Ok(value) => ringmaster_xmlrpc::response(&value),
        Err((code, extra)) => ringmaster_xmlrpc::fault(code, extra.as_deref()),
    };
    let mut response = Response::new(Full::new(Bytes::from(text)));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/xml"),
    );
    response
}

fn plain(status: StatusCode, body: &str) -> Answer {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response
}

/// A method's fault: its code and the text after the code's name.
type Fault = (FaultCode, Option<String>);

/// Every method served: its name, its signature (the result's type
/// first, then the parameters', as `system.methodSignature` gives them)
/// and what it does (`system.methodHelp`).
const METHODS: &[(&str, &[&str], &str)] = &[
    (
        "supervisor.getAPIVersion",
        &["string"],
        "The XML-RPC API version ringmaster speaks (supervisord's: 3.0).",
    ),
    (
        "supervisor.getVersion",
        &["string"],
        "The same as getAPIVersion (an old name).",
    ),
    (
        "supervisor.getSupervisorVersion",
        &["string"],
        "ringmaster's version.",
    ),
    (
        "supervisor.getIdentification",
        &["string"],
        "The daemon's identifier.",
    ),
    (
        "supervisor.getState",
        &["struct"],
        "The daemon's state: statecode and statename.",
    ),
    ("supervisor.getPID", &["int"], "The daemon's pid."),
    (
        "supervisor.getAllProcessInfo",
        &["array"],
        "Every process's info struct, by group and name.",
    ),
    (
        "supervisor.getProcessInfo",
        &["struct", "string"],
        "The info struct of process GROUP:NAME.",
    ),
    (
        "supervisor.startProcess",
        &["boolean", "string", "boolean"],
        "Start process GROUP:NAME (GROUP:* for a group); with wait, until it runs.",
    ),
    (
        "supervisor.stopProcess",
        &["boolean", "string", "boolean"],
        "Stop process GROUP:NAME (GROUP:* for a group); with wait, until it is gone.",
    ),
    (
        "supervisor.startProcessGroup",
        &["array", "string", "boolean"],
        "Start every process of a group that is not running.",
    ),
    (
        "supervisor.stopProcessGroup",
        &["array", "string", "boolean"],
        "Stop every running process of a group.",
    ),
    (
        "supervisor.startAllProcesses",
        &["array", "boolean"],
        "Start every process that is not running.",
    ),
    (
        "supervisor.stopAllProcesses",
        &["array", "boolean"],
        "Stop every running process.",
    ),
    (
        "supervisor.signalProcess",
        &["boolean", "string", "string"],
        "Send a signal (name or number) to process GROUP:NAME.",
    ),
    (
        "supervisor.signalProcessGroup",
        &["array", "string", "string"],
        "Send a signal to every process of a group that can take one.",
    ),
    (
        "supervisor.signalAllProcesses",
        &["array", "string"],
        "Send a signal to every process that can take one.",
    ),
    (
        "supervisor.readProcessStdoutLog",
        &["string", "string", "int", "int"],
        "LENGTH bytes of a process's stdout log from OFFSET (a negative offset: the last -OFFSET bytes).",
    ),
    (
        "supervisor.readProcessStderrLog",
        &["string", "string", "int", "int"],
        "The same, of its stderr log.",
    ),
    (
        "supervisor.tailProcessStdoutLog",
        &["array", "string", "int", "int"],
        "[bytes, new offset, overflow] of a process's stdout log, for following it.",
    ),
    (
        "supervisor.tailProcessStderrLog",
        &["array", "string", "int", "int"],
        "The same, of its stderr log.",
    ),
    (
        "supervisor.clearProcessLogs",
        &["boolean", "string"],
        "Empty a process's log files.",
    ),
    (
        "supervisor.clearAllProcessLogs",
        &["array"],
        "Empty every process's log files.",
    ),
    (
        "supervisor.readLog",
        &["string", "int", "int"],
        "The daemon's own log: NO_FILE, it goes to the daemon's stderr.",
    ),
    (
        "supervisor.clearLog",
        &["boolean"],
        "NO_FILE: the daemon's own log goes to its stderr.",
    ),
    (
        "supervisor.shutdown",
        &["boolean"],
        "Stop every process and the daemon.",
    ),
    (
        "system.listMethods",
        &["array"],
        "The names of every method.",
    ),
    (
        "system.methodHelp",
        &["string", "string"],
        "What a method does.",
    ),
    (
        "system.methodSignature",
        &["array", "string"],
        "A method's signature: its result's type, then its parameters'.",
    ),
    (
        "system.multicall",
        &["array", "array"],
        "Calls made in one request: an array of {methodName, params} structs; each result, or its fault struct.",
    ),
];

/// The fixed table: supervisord's method names, each to its handler.
async fn dispatch(
    engine: &mpsc::Sender<Input>,
    method: &str,
    params: &[Value],
) -> Result<Value, Fault> {
    match method {
        "supervisor.getAPIVersion" | "supervisor.getVersion" => {
            arity(params, 0)?;
            Ok(API_VERSION.into())
        }
        "supervisor.getSupervisorVersion" => {
            arity(params, 0)?;
            Ok(concat!("ringmaster ", env!("CARGO_PKG_VERSION")).into())
        }
        "supervisor.getIdentification" => {
            arity(params, 0)?;
            Ok("supervisor".into())
        }
        "supervisor.getState" => {
            arity(params, 0)?;
            Ok(Value::record([
                ("statecode", Value::Int(1)),
                ("statename", Value::from("RUNNING")),
            ]))
        }
        "supervisor.getPID" => {
            arity(params, 0)?;
            Ok(Value::Int(i64::from(std::process::id())))
        }
        "supervisor.getAllProcessInfo" => {
            arity(params, 0)?;
            let now = unix_now();
            let mut processes = status(engine, Vec::new()).await?;
            // As supervisord lists them: by group, then name, as strings.
            processes.sort_by_cached_key(group_and_name);
            Ok(Value::Array(
                processes.iter().map(|p| process_info(p, now)).collect(),
            ))
        }
        "supervisor.getProcessInfo" => {
            arity(params, 1)?;
            let name = string(&params[0])?;
            let processes = status(engine, vec![name.to_owned()]).await?;
            let process = processes
                .first()
                .ok_or_else(|| (FaultCode::BadName, Some(name.to_owned())))?;
            Ok(process_info(process, unix_now()))
        }
        "system.listMethods" => {
            arity(params, 0)?;
            Ok(Value::Array(
                METHODS.iter().map(|(m, _, _)| Value::from(*m)).collect(),
            ))
        }
        "system.methodHelp" | "system.methodSignature" => {
            arity(params, 1)?;
            let name = string(&params[0])?;
            let (_, signature, help) = METHODS
                .iter()
                .find(|(m, _, _)| *m == name)
                .ok_or((FaultCode::SignatureUnsupported, None))?;
            Ok(if method == "system.methodHelp" {
                Value::from(*help)
            } else {
                let types = signature.iter().map(|t| Value::from(*t)).collect();
                Value::Array(vec![Value::Array(types)])
            })
        }
        "system.multicall" => {
            arity(params, 1)?;
            multicall(engine, &params[0]).await
        }
        "supervisor.shutdown" => {
            arity(params, 0)?;
            let engine = engine.clone();
            // Answered first: the shutdown ends this connection too.
            tokio::spawn(async move {
                let request = RmRequest::Shutdown;
                super::requests::ask_engine(&engine, Json::Null, request).await
            });
            Ok(Value::Bool(true))
        }
        _ if method.contains("Log") => log_method(engine, method, params).await,
        _ => act(engine, method, params).await,
    }
}

/// The log methods: `(name, offset, length)` to read or tail one,
/// `(name)` to clear, `(offset, length)` for the daemon's own log.
async fn log_method(
    engine: &mpsc::Sender<Input>,
    method: &str,
    params: &[Value],
) -> Result<Value, Fault> {
    use logs::Channel;
    let int = |at: usize| -> Result<i64, Fault> {
        params[at].as_int().ok_or((FaultCode::BadArguments, None))
    };
    let channel = if method.contains("Stderr") {
        Channel::Stderr
    } else {
        Channel::Stdout
    };
    match method {
        "supervisor.readProcessStdoutLog" | "supervisor.readProcessStderrLog" => {
            arity(params, 3)?;
            logs::read(engine, string(&params[0])?, (int(1)?, int(2)?), channel).await
        }
        "supervisor.tailProcessStdoutLog" | "supervisor.tailProcessStderrLog" => {
            arity(params, 3)?;
            logs::tail(engine, string(&params[0])?, (int(1)?, int(2)?), channel).await
        }
        "supervisor.clearProcessLogs" => {
            arity(params, 1)?;
            let name = string(&params[0])?;
            known(engine, name).await?;
            logs::clear(engine, vec![name.to_owned()]).await
        }
        "supervisor.clearAllProcessLogs" => {
            arity(params, 0)?;
            let mut processes = status(engine, Vec::new()).await?;
            processes.sort_by_cached_key(group_and_name);
            logs::clear(
                engine,
                processes.iter().map(|p| p.name.to_string()).collect(),
            )
            .await?;
            Ok(Value::Array(
                processes
                    .iter()
                    .map(|p| {
                        let (group, name) = group_and_name(p);
                        Value::record([
                            ("name", Value::from(name)),
                            ("group", Value::from(group)),
                            ("status", Value::Int(FaultCode::Success as i64)),
                            ("description", Value::from("OK")),
                        ])
                    })
                    .collect(),
            ))
        }
        // The daemon's own log goes to its stderr (the journal), not to a
        // file supervisord's way.
        "supervisor.readLog" | "supervisor.clearLog" => {
            Err((FaultCode::NoFile, Some("None".into())))
        }
        _ => Err((FaultCode::UnknownMethod, None)),
    }
}

/// `system.multicall`: each call in turn, its result or its fault as a
/// struct; a multicall inside one is refused, as supervisord refuses it.
async fn multicall(engine: &mpsc::Sender<Input>, calls: &Value) -> Result<Value, Fault> {
    let Value::Array(calls) = calls else {
        return Err((FaultCode::BadArguments, None));
    };
    let mut results = Vec::with_capacity(calls.len());
    for call in calls {
        let member = |key: &str| match call {
            Value::Struct(members) => members.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        };
        let outcome = match member("methodName").and_then(Value::as_str) {
            None => Err((FaultCode::IncorrectParameters, Some("No methodName".into()))),
            Some("system.multicall") => Err((
                FaultCode::IncorrectParameters,
                Some("Recursive system.multicall forbidden".into()),
            )),
            Some(name) => {
                let params = match member("params") {
                    Some(Value::Array(params)) => params.clone(),
                    _ => Vec::new(),
                };
                Box::pin(dispatch(engine, name, &params)).await
            }
        };
        results.push(match outcome {
            Ok(value) => value,
            Err((code, extra)) => Value::record([
                ("faultCode", Value::Int(code as i64)),
                ("faultString", Value::Str(code.text(extra.as_deref()))),
            ]),
        });
    }
    Ok(Value::Array(results))
}

/// The start, stop and signal methods: `(name, wait=True)`,
/// `(wait=True)` for all, `(name, signal)` and `(signal)` for signals.
async fn act(engine: &mpsc::Sender<Input>, method: &str, params: &[Value]) -> Result<Value, Fault> {
    use actions::{Action, many, one, signal_name};
    let wait = |at: usize| -> Result<bool, Fault> {
        match params.get(at) {
            None => Ok(true),
            Some(v) => v.as_bool().ok_or((FaultCode::BadArguments, None)),
        }
    };
    let named = |at: usize| -> Result<&str, Fault> {
        params
            .get(at)
            .ok_or((FaultCode::IncorrectParameters, None))
            .and_then(string)
    };
    let at_most = |n: usize| -> Result<(), Fault> {
        if params.len() > n {
            Err((FaultCode::IncorrectParameters, None))
        } else {
            Ok(())
        }
    };
    let start_or_stop = |start: bool| if start { Action::Start } else { Action::Stop };
    match method {
        "supervisor.startProcess" | "supervisor.stopProcess" => {
            at_most(2)?;
            let action = start_or_stop(method == "supervisor.startProcess");
            one(engine, action, named(0)?, None, wait(1)?).await
        }
        "supervisor.startProcessGroup" | "supervisor.stopProcessGroup" => {
            at_most(2)?;
            let action = start_or_stop(method == "supervisor.startProcessGroup");
            let group = named(0)?;
            known(engine, group).await?;
            many(engine, action, Some(group), None, wait(1)?).await
        }
        "supervisor.startAllProcesses" | "supervisor.stopAllProcesses" => {
            at_most(1)?;
            let action = start_or_stop(method == "supervisor.startAllProcesses");
            many(engine, action, None, None, wait(0)?).await
        }
        "supervisor.signalProcess" => {
            arity(params, 2)?;
            let signal = signal_name(&params[1])?;
            one(engine, Action::Signal, named(0)?, Some(&signal), true).await
        }
        "supervisor.signalProcessGroup" => {
            arity(params, 2)?;
            let signal = signal_name(&params[1])?;
            let group = named(0)?;
            known(engine, group).await?;
            many(engine, Action::Signal, Some(group), Some(&signal), true).await
        }
        "supervisor.signalAllProcesses" => {
            arity(params, 1)?;
            let signal = signal_name(&params[0])?;
            many(engine, Action::Signal, None, Some(&signal), true).await
        }
        _ => Err((FaultCode::UnknownMethod, None)),
    }
}

/// `BAD_NAME` unless `name` names something.
async fn known(engine: &mpsc::Sender<Input>, name: &str) -> Result<(), Fault> {
    status(engine, vec![name.to_owned()]).await.map(|_| ())
}

fn arity(params: &[Value], wanted: usize) -> Result<(), Fault> {
    if params.len() == wanted {
        Ok(())
    } else {
        Err((FaultCode::IncorrectParameters, None))
    }
}

fn string(value: &Value) -> Result<&str, Fault> {
    value.as_str().ok_or((FaultCode::BadArguments, None))
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `status` of `names` (every process when empty), or supervisord's fault.
async fn status(
    engine: &mpsc::Sender<Input>,
    names: Vec<String>,
) -> Result<Vec<ProcessInfo>, Fault> {
    let reply = super::requests::ask_engine(
        engine,
        Json::Null,
        RmRequest::Status(ringmaster_protocol::NamesArgs {
            names: names.clone(),
        }),
    )
    .await;
    match reply.into_response(Command::Status) {
        Ok(RmResponse::Status(status)) => Ok(status.processes),
        Ok(_) => Err((FaultCode::Failed, None)),
        Err(ringmaster_protocol::ReplyError::Refused(error))
            if error.kind == ringmaster_protocol::ErrorKind::NotFound =>
        {
            Err((FaultCode::BadName, names.first().cloned()))
        }
        Err(err) => Err((FaultCode::Failed, Some(err.to_string()))),
    }
}
