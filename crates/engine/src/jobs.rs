//! Requests that wait for processes to reach a state (start, stop,
//! restart). The engine never blocks on them: it records what each waits
//! for and re-evaluates a job whenever one of its processes changes state.

use ringmaster_protocol::{ActionOutcome, ActionResult, ProcessState, Reply, Response};
use serde_json::Value;
use tokio::sync::oneshot;

use crate::process::{Gate, ProcId, Process};

/// What a job waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// RUNNING (start, restart).
    Running,
    /// Gone (stop).
    Stopped,
}

/// How a job's outcomes become its command's response (`Response::Start`).
pub(crate) type Respond = fn(ActionResult) -> Response;

/// One waiting request.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: Value,
    pub reply: oneshot::Sender<Reply>,
    /// Its command's response.
    pub respond: Respond,
    pub goal: Goal,
    /// (process, outcome once decided), in request order.
    pub entries: Vec<(ProcId, Option<ActionOutcome>)>,
}

impl Job {
    /// Decides every undecided entry of `proc` that can be decided now;
    /// returns true when the whole job is decided.
    /// `completed`: the process is a one-shot job that completed.
    pub fn update(
        &mut self,
        proc: ProcId,
        process: &Process,
        completed: bool,
        shutting_down: bool,
    ) -> bool {
        for (id, outcome) in &mut self.entries {
            if *id == proc && outcome.is_none() {
                *outcome = evaluate(self.goal, process, completed, shutting_down);
            }
        }
        self.entries.iter().all(|(_, o)| o.is_some())
    }

    /// Sends the reply (the client may be gone, which is fine).
    pub fn finish(self) {
        let processes = self.entries.into_iter().filter_map(|(_, o)| o).collect();
        let _ = self.reply.send(Reply::answer(
            self.id,
            &(self.respond)(ActionResult { processes }),
        ));
    }
}

/// The outcome for `process` if its state decides the goal (`completed`:
/// it is a one-shot job that completed, which a start counts as done).
pub(crate) fn evaluate(
    goal: Goal,
    process: &Process,
    completed: bool,
    shutting_down: bool,
) -> Option<ActionOutcome> {
    use ProcessState as S;
    // Not decided while something comes first: its turn in a sequence,
    // the start queue, or a before_start or before_stop hook.
    if process.held || process.queued || process.hook.is_some() {
        return None;
    }
    let outcome = |ok: bool, message: String| Some(process.outcome(ok, message));
    match (&process.gate, goal) {
        (Some(Gate::Waiting(_)), _) => return None,
        (Some(Gate::Blocked(why)), Goal::Running) => return outcome(false, why.clone()),
        _ => {}
    }
    if completed && goal == Goal::Running {
        return outcome(true, "completed".into());
    }
    match goal {
        // A restart is undecided while its stop goes on (STOPPING).
        Goal::Running => match process.state() {
            S::Running => outcome(true, "running".into()),
            S::Fatal => outcome(
                false,
                process
                    .life
                    .reason
                    .clone()
                    .unwrap_or_else(|| "gave up".into()),
            ),
            S::Stopped | S::Exited if shutting_down => {
                outcome(false, "the daemon is shutting down".into())
            }
            S::Stopped | S::Exited => outcome(false, "stopped before it was running".into()),
            S::Starting | S::Backoff | S::Stopping => None,
        },
        Goal::Stopped => match process.state() {
            S::Stopped | S::Exited | S::Fatal => outcome(true, "stopped".into()),
            S::Starting | S::Running => outcome(false, "started again by another request".into()),
            S::Stopping | S::Backoff => None,
        },
    }
}

#[cfg(test)]
mod tests {
    use ringmaster_protocol::ProcessName;

    use super::*;

    fn process(state: ProcessState, restarting: bool) -> Process {
        use crate::lifecycle::{Phase, Stop, Then};
        let pid = nix::unistd::Pid::from_raw(1000);
        let since = std::time::Instant::now();
        let mut p = Process::new(
            ProcessName::new("web", 1),
            crate::table::WatcherId::default(),
        );
        p.life.phase = match state {
            ProcessState::Stopped => Phase::Stopped,
            ProcessState::Starting => Phase::Starting { pid, since },
            ProcessState::Running => Phase::Running { pid, since },
            ProcessState::Backoff => Phase::Backoff { until: since },
            ProcessState::Stopping => Phase::Stopping(Stop {
                leader: Some(pid),
                since,
                pgid: pid,
                group: true,
                kill_at: since,
                killed: false,
                then: if restarting { Then::Start } else { Then::Rest },
            }),
            ProcessState::Exited => Phase::Exited,
            ProcessState::Fatal => Phase::Fatal,
        };
        p.life.reason = Some("why".into());
        p
    }

    fn decided(goal: Goal, state: ProcessState, restarting: bool) -> Option<bool> {
        evaluate(goal, &process(state, restarting), false, false).map(|o| o.ok)
    }

    #[test]
    fn running_goal() {
        use ProcessState as S;
        assert_eq!(decided(Goal::Running, S::Running, false), Some(true));
        assert_eq!(decided(Goal::Running, S::Fatal, false), Some(false));
        assert_eq!(decided(Goal::Running, S::Stopped, false), Some(false));
        assert_eq!(decided(Goal::Running, S::Backoff, false), None);
        assert_eq!(decided(Goal::Running, S::Starting, false), None);
        // A restart is undecided while the old process is stopping.
        assert_eq!(decided(Goal::Running, S::Stopping, true), None);
        assert_eq!(decided(Goal::Running, S::Stopping, false), None);
    }

    #[test]
    fn stopped_goal() {
        use ProcessState as S;
        for state in [S::Stopped, S::Exited, S::Fatal] {
            assert_eq!(decided(Goal::Stopped, state, false), Some(true));
        }
        assert_eq!(decided(Goal::Stopped, S::Stopping, false), None);
        assert_eq!(decided(Goal::Stopped, S::Starting, false), Some(false));
    }
}
