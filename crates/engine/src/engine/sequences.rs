//! Carrying out multi-level stops and restarts (see [`crate::sequence`]).

use super::Engine;
use crate::lifecycle;
use crate::process::ProcId;
use crate::sequence::Sequence;

impl Engine {
    /// Stops `ids`, or, when they span priority levels, the highest level
    /// first and each next one once the previous is down; with
    /// `then_start`, everything is started again afterwards, lowest
    /// priority first. Returns without waiting.
    pub(super) fn stop_in_order(&mut self, ids: &[ProcId], then_start: bool) {
        let sequence = Sequence::new(ids, |id| self.procs.order(id), then_start);
        if !sequence.spans_levels() {
            for &id in ids {
                if then_start {
                    self.restart_slot(id);
                } else {
                    self.stop_now(id);
                }
            }
            return;
        }
        for &id in ids {
            self.procs[id].held = true;
        }
        self.sequences.push(sequence);
        self.advance_sequences();
    }

    /// Stops one process now (a stop that is already under way stays one,
    /// and wins over what would have followed it).
    pub(super) fn stop_now(&mut self, id: ProcId) {
        self.drive(id, lifecycle::Input::Stop);
    }

    /// Takes `ids` out of every sequence: a newer request decides for
    /// them. Requests that waited on them are decided by their state now.
    pub(super) fn release(&mut self, ids: &[ProcId]) {
        if self.sequences.is_empty() {
            return;
        }
        for &id in ids {
            for sequence in &mut self.sequences {
                sequence.release(id);
            }
            if std::mem::take(&mut self.procs[id].held) {
                self.update_jobs(id);
            }
        }
        self.sequences.retain(|s| !s.is_done());
    }

    /// Moves every sequence on as far as the processes' states allow.
    pub(super) fn advance_sequences(&mut self) {
        let mut index = 0;
        while index < self.sequences.len() {
            if self.advance_sequence(index) {
                self.sequences.swap_remove(index);
            } else {
                index += 1;
            }
        }
    }

    /// One sequence as far as it can go; true when it is done.
    fn advance_sequence(&mut self, index: usize) -> bool {
        loop {
            let sequence = &mut self.sequences[index];
            let restart = sequence.restarts();
            let Some(level) = sequence.stops.front().cloned() else {
                let starts = std::mem::take(&mut sequence.starts);
                for id in starts {
                    self.procs[id].held = false;
                    self.start_slot(id);
                    self.update_jobs(id);
                }
                return true;
            };
            if !sequence.begun {
                sequence.begun = true;
                for id in level {
                    // A restart keeps its processes held until they start.
                    if !restart {
                        self.procs[id].held = false;
                    }
                    self.stop_now(id);
                    self.update_jobs(id);
                }
                continue;
            }
            let down = level
                .iter()
                .all(|&id| !self.procs[id].life.phase.is_alive());
            if !down {
                return false;
            }
            let sequence = &mut self.sequences[index];
            sequence.stops.pop_front();
            sequence.begun = false;
        }
    }
}
