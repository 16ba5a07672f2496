//! supervisord's view of a process: its group and name, state number,
//! and `getProcessInfo`'s struct with its `description`.

use ringmaster_protocol::{ProcessInfo, ProcessState};
use ringmaster_xmlrpc::Value;

/// supervisord's state number for a state.
pub(super) fn state_code(state: ProcessState) -> i64 {
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
pub(super) fn group_and_name(process: &ProcessInfo) -> (String, String) {
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
pub(super) fn process_info(process: &ProcessInfo, now: i64) -> Value {
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
