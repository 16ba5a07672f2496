//! supervisord's log methods: reading and tailing a process's log file
//! as `supervisor/options.py`'s `readFile` and `tailFile` do, and
//! clearing it. The files are read on the blocking pool.

use std::io::{Read, Seek, SeekFrom};

use ringmaster_protocol::{Command, NamesArgs, ProcessInfo, Request, Response};
use ringmaster_xmlrpc::{FaultCode, Value};
use serde_json::Value as Json;
use tokio::sync::mpsc;

use super::{Fault, Input, status};

/// Which of a process's logs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Channel {
    Stdout,
    Stderr,
}

/// The one process `name`, or `BAD_NAME`.
async fn process(engine: &mpsc::Sender<Input>, name: &str) -> Result<ProcessInfo, Fault> {
    let mut processes = status(engine, vec![name.to_owned()]).await?;
    match processes.len() {
        1 => Ok(processes.remove(0)),
        _ => Err((FaultCode::BadName, Some(name.to_owned()))),
    }
}

/// Process `name`'s log file for `channel`: `Ok(path)` when it exists,
/// `Err(what is configured)` (a path not there yet, or none) when not;
/// `BAD_NAME` for no such process.
async fn log_file(
    engine: &mpsc::Sender<Input>,
    name: &str,
    channel: Channel,
) -> Result<Result<String, Option<String>>, Fault> {
    let process = process(engine, name).await?;
    let path = match channel {
        Channel::Stdout => process.stdout_log,
        Channel::Stderr => process.stderr_log,
    };
    Ok(match path {
        Some(path) if std::path::Path::new(&path).exists() => Ok(path),
        other => Err(other),
    })
}

/// `readProcessStdoutLog(name, offset, length)`: `length` bytes from
/// `offset`, or (a negative offset) the last `-offset` bytes.
pub(super) async fn read(
    engine: &mpsc::Sender<Input>,
    name: &str,
    (offset, length): (i64, i64),
    channel: Channel,
) -> Result<Value, Fault> {
    let path = log_file(engine, name, channel)
        .await?
        .map_err(|configured| {
            (
                FaultCode::NoFile,
                Some(configured.unwrap_or_else(|| "None".into())),
            )
        })?;
    let read = tokio::task::spawn_blocking(move || read_file(&path, offset, length)).await;
    match read {
        Ok(Ok(bytes)) => Ok(Value::from(String::from_utf8_lossy(&bytes).into_owned())),
        Ok(Err(code)) => Err((code, None)),
        Err(_) => Err((FaultCode::Failed, None)),
    }
}

/// supervisord's `readFile`.
fn read_file(path: &str, offset: i64, length: i64) -> Result<Vec<u8>, FaultCode> {
    let mut file = std::fs::File::open(path).map_err(|_| FaultCode::Failed)?;
    let mut data = Vec::new();
    if offset < 0 {
        if length != 0 {
            return Err(FaultCode::BadArguments);
        }
        let size = file.seek(SeekFrom::End(0)).map_err(|_| FaultCode::Failed)?;
        let from = size.saturating_sub(offset.unsigned_abs());
        file.seek(SeekFrom::Start(from))
            .map_err(|_| FaultCode::Failed)?;
        file.take(offset.unsigned_abs())
            .read_to_end(&mut data)
            .map_err(|_| FaultCode::Failed)?;
    } else {
        if length < 0 {
            return Err(FaultCode::BadArguments);
        }
        file.seek(SeekFrom::Start(offset.unsigned_abs()))
            .map_err(|_| FaultCode::Failed)?;
        let reader: Box<dyn Read> = if length == 0 {
            Box::new(file)
        } else {
            Box::new(file.take(length.unsigned_abs()))
        };
        let mut reader = reader;
        reader
            .read_to_end(&mut data)
            .map_err(|_| FaultCode::Failed)?;
    }
    Ok(data)
}

/// `tailProcessStdoutLog(name, offset, length)`: `[bytes, offset,
/// overflow]`, as supervisord's `tailFile` computes them.
pub(super) async fn tail(
    engine: &mpsc::Sender<Input>,
    name: &str,
    (offset, length): (i64, i64),
    channel: Channel,
) -> Result<Value, Fault> {
    let Ok(path) = log_file(engine, name, channel).await? else {
        return Ok(Value::Array(vec![
            Value::from(""),
            Value::Int(0),
            Value::Bool(false),
        ]));
    };
    let tailed = tokio::task::spawn_blocking(move || tail_file(&path, offset, length))
        .await
        .unwrap_or_else(|_| (Vec::new(), offset, false));
    let (bytes, offset, overflow) = tailed;
    Ok(Value::Array(vec![
        Value::from(String::from_utf8_lossy(&bytes).into_owned()),
        Value::Int(offset),
        Value::Bool(overflow),
    ]))
}

/// supervisord's `tailFile`: the bytes, the file's size and whether
/// more was written than asked for since `offset`.
fn tail_file(path: &str, offset: i64, length: i64) -> (Vec<u8>, i64, bool) {
    let Ok(mut file) = std::fs::File::open(path) else {
        return (Vec::new(), offset, false);
    };
    let Ok(size) = file.seek(SeekFrom::End(0)) else {
        return (Vec::new(), offset, false);
    };
    let size = i64::try_from(size).unwrap_or(i64::MAX);
    let (mut offset, mut length) = (offset, length);
    let mut overflow = false;
    if size > offset.saturating_add(length) {
        overflow = true;
        offset = size - 1;
    }
    if offset.saturating_add(length) > size {
        if offset > size - 1 {
            length = 0;
        }
        offset = size - length;
    }
    offset = offset.max(0);
    length = length.max(0);
    let mut data = Vec::new();
    if length > 0 && file.seek(SeekFrom::Start(offset.unsigned_abs())).is_ok() {
        let _ = file.take(length.unsigned_abs()).read_to_end(&mut data);
    }
    (data, size, overflow)
}

/// `clearProcessLogs(name)`: `True`.
pub(super) async fn clear(
    engine: &mpsc::Sender<Input>,
    names: Vec<String>,
) -> Result<Value, Fault> {
    let reply =
        super::super::requests::ask_engine(engine, Json::Null, Request::Clear(NamesArgs { names }))
            .await;
    match reply.into_response(Command::Clear) {
        Ok(Response::Clear(_)) => Ok(Value::Bool(true)),
        Ok(_) => Err((FaultCode::Failed, None)),
        Err(err) => Err((FaultCode::Failed, Some(err.to_string()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_tails_as_supervisord_does() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        std::fs::write(&path, b"0123456789").unwrap();
        let path = path.to_str().unwrap();
        assert_eq!(read_file(path, -4, 0).unwrap(), b"6789");
        assert_eq!(read_file(path, 2, 3).unwrap(), b"234");
        assert_eq!(read_file(path, 5, 0).unwrap(), b"56789");
        assert_eq!(read_file(path, -4, 1), Err(FaultCode::BadArguments));
        assert_eq!(read_file("/nonexistent", 0, 0), Err(FaultCode::Failed));
        // supervisorctl tail -f's first call: offset 0, length 1600.
        assert_eq!(
            tail_file(path, 0, 1600),
            (b"0123456789".to_vec(), 10, false)
        );
        // Grown past offset + length: the tail, and overflow.
        assert_eq!(tail_file(path, 0, 4), (b"6789".to_vec(), 10, true));
        assert_eq!(tail_file(path, 10, 4), (Vec::new(), 10, false));
    }
}
