//! Carrying out rolling restarts (see [`crate::rolling`]).

use ringmaster_protocol::{ActionOutcome, ActionResult, Reply, Response};
use serde_json::Value;
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::Engine;
use crate::process::ProcId;
use crate::rolling::{Ending, Roll, SlotView, Step};

/// A roll in progress and who waits for it.
#[derive(Debug)]
pub(crate) struct ActiveRoll {
    roll: Roll<ProcId>,
    /// The request to answer when it is over (none for a reload's roll).
    reply: Option<(Value, oneshot::Sender<Reply>)>,
    /// When the current slot's turn began, for the log.
    turn_began: Instant,
}

impl Engine {
    /// Replaces `ids` `max_unavailable` at a time; answers `reply` (if
    /// any) once every slot is replaced or the roll stopped.
    pub(super) fn start_roll(
        &mut self,
        ids: &[ProcId],
        max_unavailable: usize,
        reply: Option<(Value, oneshot::Sender<Reply>)>,
    ) {
        // A newer roll decides for the slots it names.
        for roll in &mut self.rolls {
            if ids.iter().any(|&id| roll.roll.involves(id)) {
                tracing::warn!("a new rolling restart takes over slots of one in progress");
            }
        }
        self.release(ids);
        let names: Vec<String> = ids.iter().map(|&id| self.procs[id].shown()).collect();
        tracing::info!(
            processes = %names.join(", "),
            max_unavailable,
            "rolling restart: begins"
        );
        self.rolls.push(ActiveRoll {
            roll: Roll::new(ids, max_unavailable),
            reply,
            turn_began: Instant::now(),
        });
        self.advance_rolls();
    }

    /// Moves every roll on as far as its slots' states allow.
    pub(super) fn advance_rolls(&mut self) {
        let mut index = 0;
        while index < self.rolls.len() {
            let steps = {
                let procs = &self.procs;
                self.rolls[index].roll.advance(|id| {
                    let process = &procs[id];
                    SlotView {
                        state: process.state(),
                        pid: process.pid(),
                        reason: process.life.reason.clone(),
                        start_pending: process.start_pending(),
                    }
                })
            };
            let mut over = false;
            for step in steps {
                over |= self.carry_out(index, step);
            }
            if over {
                let finished = self.rolls.swap_remove(index);
                self.answer_roll(finished);
            } else {
                index += 1;
            }
        }
    }

    /// One step of roll `index`; true when the roll is over.
    fn carry_out(&mut self, index: usize, step: Step<ProcId>) -> bool {
        match step {
            Step::Restart(id) => {
                self.rolls[index].turn_began = Instant::now();
                tracing::info!(process = %self.procs[id].shown(), "rolling restart: replacing");
                self.restart_slot(id);
            }
            Step::Replaced { slot, old, new } => {
                let took = self.rolls[index].turn_began.elapsed();
                tracing::info!(
                    process = %self.procs[slot].shown(),
                    old = old.map(nix::unistd::Pid::as_raw),
                    new = new.as_raw(),
                    "rolling restart: replaced in {:.1}s",
                    took.as_secs_f64()
                );
            }
            Step::Failed { slot, reason } => {
                tracing::warn!(
                    process = %self.procs[slot].shown(),
                    "rolling restart stopped: the new process failed ({reason}); the processes not yet replaced keep running"
                );
            }
            Step::Done => return true,
        }
        false
    }

    /// Answers the request of a roll that is over, one outcome per slot.
    fn answer_roll(&self, finished: ActiveRoll) {
        let Some((id, reply)) = finished.reply else {
            return;
        };
        let stopped_at = finished.roll.endings.iter().find_map(|(slot, e)| {
            matches!(e, Ending::Failed(_)).then(|| self.procs[*slot].shown())
        });
        let processes: Vec<ActionOutcome> = finished
            .roll
            .endings
            .iter()
            .map(|(slot, ending)| {
                let process = &self.procs[*slot];
                match ending {
                    Ending::Replaced { old, new } => {
                        let was = old.map_or_else(|| "none".to_owned(), |p| p.to_string());
                        process.outcome(true, format!("replaced (pid {was} -> {new})"))
                    }
                    Ending::Failed(reason) => {
                        process.outcome(false, format!("new process failed: {reason}"))
                    }
                    Ending::Untouched => process.outcome(
                        false,
                        format!(
                            "not replaced: the roll stopped at {}; its old process keeps running",
                            stopped_at.as_deref().unwrap_or("an earlier slot")
                        ),
                    ),
                }
            })
            .collect();
        let _ = reply.send(Reply::answer(
            id,
            &Response::Restart(ActionResult { processes }),
        ));
    }
}
