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
use std::time::{Duration, SystemTime};

use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use ringmaster_protocol::{
    Command, ProcessInfo, ProcessState, Request as RmRequest, Response as RmResponse,
};
use ringmaster_xmlrpc::{FaultCode, Limits, Value};
use serde_json::Value as Json;
use tokio::net::UnixStream;
use tokio::sync::mpsc;

use super::Input;

/// The largest request body read.
const MAX_BODY: usize = 1 << 20;
/// A request's head must arrive within this (and an idle connection
/// is closed after it).
const HEADER_TIMEOUT: Duration = Duration::from_secs(30);
/// supervisord's XML-RPC API version, which supervisorctl checks.
const API_VERSION: &str = "3.0";

type Answer = Response<Full<Bytes>>;

/// Serves XML-RPC over HTTP on `stream` until the client closes it.
pub(super) async fn serve(stream: UnixStream, engine: mpsc::Sender<Input>) {
    let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
        let engine = engine.clone();
        async move { Ok::<_, Infallible>(answer(&engine, request).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(64 * 1024);
    let _ = builder
        .serve_connection(TokioIo::new(stream), service)
        .await;
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

/// The methods of the table, for `system.listMethods`.
const METHODS: &[&str] = &[
    "supervisor.getAPIVersion",
    "supervisor.getVersion",
    "supervisor.getSupervisorVersion",
    "supervisor.getIdentification",
    "supervisor.getState",
    "supervisor.getPID",
    "supervisor.getAllProcessInfo",
    "supervisor.getProcessInfo",
    "system.listMethods",
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
                METHODS.iter().map(|m| Value::from(*m)).collect(),
            ))
        }
        _ => Err((FaultCode::UnknownMethod, None)),
    }
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

/// supervisord's state number for a state.
fn state_code(state: ProcessState) -> i64 {
    match state {
        ProcessState::Stopped => 0,
        ProcessState::Starting => 10,
        ProcessState::Running => 20,
        ProcessState::Backoff => 30,
        ProcessState::Stopping => 40,
        ProcessState::Exited => 100,
        ProcessState::Fatal => 200,
    }
}

/// A process's group and name as supervisord has them: its
/// `GROUP:NAME` alias when it has one (a supervisord.conf's naming),
/// else its watcher and slot (`web`, `1`: supervisorctl shows `web:1`).
fn group_and_name(process: &ProcessInfo) -> (String, String) {
    match process.alias.as_deref() {
        Some(alias) => match alias.split_once(':') {
            Some((group, name)) => (group.to_owned(), name.to_owned()),
            None => (alias.to_owned(), alias.to_owned()),
        },
        None => (process.name.watcher.clone(), process.name.wid.to_string()),
    }
}

/// `getProcessInfo`'s struct for `process`, its members in supervisord's
/// order, at `now`.
fn process_info(process: &ProcessInfo, now: i64) -> Value {
    let (group, name) = group_and_name(process);
    let start = process.last_start.map_or(0, |t| t as i64);
    let stop = process.last_stop.map_or(0, |t| t as i64);
    let state = state_code(process.state);
    let pid = process.pid.map_or(0, i64::from);
    let spawnerr = match process.state {
        ProcessState::Backoff | ProcessState::Fatal => process.reason.clone().unwrap_or_default(),
        _ => String::new(),
    };
    let exitstatus = process
        .last_exit
        .as_ref()
        .map_or(0, |exit| exit.code.map_or(-1, i64::from));
    let stdout_log = process.stdout_log.clone().unwrap_or_default();
    let description = describe(process.state, (start, stop, now), pid, &spawnerr, &name);
    Value::record([
        ("name", Value::from(name)),
        ("group", Value::from(group)),
        ("start", Value::Int(start)),
        ("stop", Value::Int(stop)),
        ("now", Value::Int(now)),
        ("state", Value::Int(state)),
        ("statename", Value::from(process.state.as_str())),
        ("spawnerr", Value::from(spawnerr)),
        ("exitstatus", Value::Int(exitstatus)),
        ("logfile", Value::from(stdout_log.clone())),
        ("stdout_logfile", Value::from(stdout_log)),
        (
            "stderr_logfile",
            Value::from(process.stderr_log.clone().unwrap_or_default()),
        ),
        ("pid", Value::Int(pid)),
        ("description", Value::from(description)),
    ])
}

/// supervisord's `description` (`_interpretProcessInfo`): `pid N, uptime
/// H:MM:SS` while RUNNING, the spawn error in BACKOFF and FATAL, the time
/// it stopped (`Dec 08 01:20 AM`, in UTC) or `Not started` when at rest.
fn describe(
    state: ProcessState,
    (start, stop, now): (i64, i64, i64),
    pid: i64,
    spawnerr: &str,
    name: &str,
) -> String {
    match state {
        ProcessState::Running => format!("pid {pid}, uptime {}", timedelta((now - start).max(0))),
        ProcessState::Backoff | ProcessState::Fatal if spawnerr.is_empty() => {
            format!("unknown error (try \"tail {name}\")")
        }
        ProcessState::Backoff | ProcessState::Fatal => spawnerr.to_owned(),
        ProcessState::Stopped | ProcessState::Exited if start == 0 => "Not started".into(),
        ProcessState::Stopped | ProcessState::Exited => clock(stop),
        ProcessState::Starting | ProcessState::Stopping => String::new(),
    }
}

/// Python's `str(timedelta(seconds=N))`: `H:MM:SS`, with `D day(s), `
/// in front past a day.
fn timedelta(seconds: i64) -> String {
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    let hms = format!("{}:{:02}:{:02}", rest / 3600, rest % 3600 / 60, rest % 60);
    match days {
        0 => hms,
        1 => format!("1 day, {hms}"),
        n => format!("{n} days, {hms}"),
    }
}

/// `%b %d %I:%M %p` of unix time `t`, in UTC.
fn clock(t: i64) -> String {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (days, secs) = (t.div_euclid(86_400), t.rem_euclid(86_400));
    // Days to a civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let (hour, minute) = (secs / 3600, secs % 3600 / 60);
    let (hour12, half) = match hour {
        0 => (12, "AM"),
        1..=11 => (hour, "AM"),
        12 => (12, "PM"),
        _ => (hour - 12, "PM"),
    };
    format!(
        "{} {day:02} {hour12:02}:{minute:02} {half}",
        MONTHS[(month - 1) as usize]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_as_supervisord_writes_them() {
        assert_eq!(timedelta(0), "0:00:00");
        assert_eq!(timedelta(3723), "1:02:03");
        assert_eq!(timedelta(86_400 + 61), "1 day, 0:01:01");
        assert_eq!(timedelta(3 * 86_400), "3 days, 0:00:00");
        // 2026-12-08 01:20:00 UTC and 13:05 the same day.
        assert_eq!(clock(1_796_692_800), "Dec 08 01:20 AM");
        assert_eq!(
            clock(1_796_692_800 + 11 * 3600 + 45 * 60),
            "Dec 08 01:05 PM"
        );
        assert_eq!(clock(0), "Jan 01 12:00 AM");
    }
}
