//! Rolling restarts (`restart --rolling`, and `reload` of a changed
//! watcher that has sockets): a watcher's processes replaced a few slots
//! at a time, each next slot only once the new process of the last one is
//! ready, so the others (and the shared socket's backlog) keep serving.
//!
//! This is the roll's bookkeeping alone, as a pure state machine: the
//! engine shows it each slot's state after every change ([`Roll::advance`])
//! and carries out the [`Step`]s it returns (restart this slot, report
//! that one). A slot whose new process fails (BACKOFF, FATAL, or stopped
//! by another request) ends the roll there: the slots not yet replaced are
//! left running as they are.

use std::collections::VecDeque;

use nix::unistd::Pid;
use ringmaster_protocol::ProcessState;

/// What the roll needs to know of one slot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SlotView {
    /// Its state.
    pub state: ProcessState,
    /// Its live process.
    pub pid: Option<Pid>,
    /// Why it is in that state (a failure's reason).
    pub reason: Option<String>,
    /// A start of it is on its way though it is not STARTING yet (its
    /// before_start hook runs, it waits for its dependencies or in the
    /// start queue): not a failure.
    pub start_pending: bool,
}

/// What the engine does next for a roll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step<T> {
    /// Restart this slot (stop its process gracefully, start a new one).
    Restart(T),
    /// The slot's new process is ready.
    Replaced {
        /// The slot.
        slot: T,
        /// The process it replaced, if one ran.
        old: Option<Pid>,
        /// The new one.
        new: Pid,
    },
    /// The slot's new process failed: the roll stops here.
    Failed {
        /// The slot.
        slot: T,
        /// Why.
        reason: String,
    },
    /// Every slot is replaced, or the roll stopped: it is over.
    Done,
}

/// How a slot of the roll ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Ending {
    /// Its new process is ready.
    Replaced {
        /// The process it replaced.
        old: Option<Pid>,
        /// The new one.
        new: Pid,
    },
    /// Its new process failed.
    Failed(String),
    /// Not touched: the roll stopped before its turn (at the slot named).
    Untouched,
}

/// One roll in progress, of slots `T`.
#[derive(Debug)]
pub(crate) struct Roll<T> {
    /// Slots whose turn has not come, in order.
    pending: VecDeque<T>,
    /// Slots being replaced, with the process each had.
    active: Vec<(T, Option<Pid>)>,
    /// How many slots may be down at once.
    max_unavailable: usize,
    /// How each slot ended so far, in the order they ended.
    pub endings: Vec<(T, Ending)>,
    /// Whether [`Step::Done`] was returned.
    finished: bool,
}

impl<T: Copy + PartialEq> Roll<T> {
    /// A roll of `slots`, in this order, `max_unavailable` (at least 1)
    /// at a time.
    pub fn new(slots: &[T], max_unavailable: usize) -> Self {
        Self {
            pending: slots.iter().copied().collect(),
            active: Vec::new(),
            max_unavailable: max_unavailable.max(1),
            endings: Vec::new(),
            finished: false,
        }
    }

    /// Whether `slot` is part of this roll and not yet done.
    pub fn involves(&self, slot: T) -> bool {
        self.pending.contains(&slot) || self.active.iter().any(|(s, _)| *s == slot)
    }

    /// Whether the roll is over.
    #[cfg(test)]
    pub fn is_over(&self) -> bool {
        self.finished
    }

    /// Moves the roll on as far as the slots' states allow.
    pub fn advance(&mut self, view: impl Fn(T) -> SlotView) -> Vec<Step<T>> {
        let mut steps = Vec::new();
        if self.finished {
            return steps;
        }
        let mut index = 0;
        while index < self.active.len() {
            let (slot, old) = self.active[index];
            let now = view(slot);
            match now.state {
                ProcessState::Running if now.pid.is_some() && now.pid != old => {
                    self.active.swap_remove(index);
                    let new = now.pid.unwrap_or(Pid::from_raw(0));
                    self.endings.push((slot, Ending::Replaced { old, new }));
                    steps.push(Step::Replaced { slot, old, new });
                }
                ProcessState::Stopped | ProcessState::Exited if now.start_pending => index += 1,
                ProcessState::Backoff
                | ProcessState::Fatal
                | ProcessState::Stopped
                | ProcessState::Exited => {
                    self.active.swap_remove(index);
                    let reason = now.reason.unwrap_or_else(|| match now.state {
                        ProcessState::Stopped | ProcessState::Exited => {
                            "stopped by another request".into()
                        }
                        _ => "failed".into(),
                    });
                    self.endings.push((slot, Ending::Failed(reason.clone())));
                    steps.push(Step::Failed { slot, reason });
                    // The rest keep their old processes.
                    for untouched in self.pending.drain(..) {
                        self.endings.push((untouched, Ending::Untouched));
                    }
                }
                _ => index += 1,
            }
        }
        let failed = self
            .endings
            .iter()
            .any(|(_, e)| matches!(e, Ending::Failed(_)));
        while !failed && self.active.len() < self.max_unavailable {
            let Some(slot) = self.pending.pop_front() else {
                break;
            };
            self.active.push((slot, view(slot).pid));
            steps.push(Step::Restart(slot));
        }
        if self.active.is_empty() && self.pending.is_empty() {
            self.finished = true;
            steps.push(Step::Done);
        }
        steps
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::collections::HashMap;

    use super::*;
    use ProcessState as S;

    /// Slots 1..=n, each RUNNING with pid 100 + slot.
    struct World {
        slots: RefCell<HashMap<u32, SlotView>>,
    }

    impl World {
        fn new(n: u32) -> Self {
            let slots = (1..=n)
                .map(|s| (s, view(S::Running, Some(100 + s), None)))
                .collect();
            Self {
                slots: RefCell::new(slots),
            }
        }

        fn set(&self, slot: u32, state: S, pid: Option<i32>, reason: Option<&str>) {
            let pid = pid.map(|p| p as u32);
            self.slots
                .borrow_mut()
                .insert(slot, view(state, pid, reason));
        }

        fn advance(&self, roll: &mut Roll<u32>) -> Vec<Step<u32>> {
            let steps = roll.advance(|s| self.slots.borrow()[&s].clone());
            // A restarted slot is STOPPING its old process at once.
            for step in &steps {
                if let Step::Restart(slot) = step {
                    let pid = self.slots.borrow()[slot].pid;
                    self.slots.borrow_mut().insert(
                        *slot,
                        SlotView {
                            state: S::Stopping,
                            pid,
                            reason: None,
                            start_pending: false,
                        },
                    );
                }
            }
            steps
        }
    }

    fn view(state: S, pid: Option<u32>, reason: Option<&str>) -> SlotView {
        SlotView {
            state,
            pid: pid.map(|p| Pid::from_raw(p as i32)),
            reason: reason.map(str::to_owned),
            start_pending: false,
        }
    }

    fn pid(n: i32) -> Pid {
        Pid::from_raw(n)
    }

    #[test]
    fn one_slot_at_a_time_each_next_once_the_last_is_ready() {
        let world = World::new(3);
        let mut roll = Roll::new(&[1, 2, 3], 1);
        assert_eq!(world.advance(&mut roll), [Step::Restart(1)]);
        // Stopping, then starting: nothing moves on.
        assert!(world.advance(&mut roll).is_empty());
        world.set(1, S::Starting, Some(201), None);
        assert!(world.advance(&mut roll).is_empty());
        world.set(1, S::Running, Some(201), None);
        assert_eq!(
            world.advance(&mut roll),
            [
                Step::Replaced {
                    slot: 1,
                    old: Some(pid(101)),
                    new: pid(201)
                },
                Step::Restart(2)
            ]
        );
        world.set(2, S::Running, Some(202), None);
        assert_eq!(world.advance(&mut roll)[1], Step::Restart(3));
        world.set(3, S::Running, Some(203), None);
        let last = world.advance(&mut roll);
        assert_eq!(last.last(), Some(&Step::Done));
        assert!(roll.is_over());
        assert!(world.advance(&mut roll).is_empty(), "done once");
        assert_eq!(roll.endings.len(), 3);
    }

    #[test]
    fn max_unavailable_replaces_that_many_at_once() {
        let world = World::new(4);
        let mut roll = Roll::new(&[1, 2, 3, 4], 2);
        assert_eq!(
            world.advance(&mut roll),
            [Step::Restart(1), Step::Restart(2)]
        );
        world.set(2, S::Running, Some(202), None);
        let steps = world.advance(&mut roll);
        assert_eq!(steps[1], Step::Restart(3), "{steps:?}");
        assert!(roll.involves(1) && roll.involves(3) && roll.involves(4));
        assert!(!roll.involves(2));
    }

    #[test]
    fn the_still_running_old_process_does_not_count_as_replaced() {
        let world = World::new(1);
        let mut roll = Roll::new(&[1], 1);
        roll.advance(|_| view(S::Running, Some(101), None));
        // Seen RUNNING with its old pid (the stop not begun yet): waits.
        assert!(
            roll.advance(|_| view(S::Running, Some(101), None))
                .is_empty()
        );
        drop(world);
    }

    #[test]
    fn a_stopped_slot_whose_start_is_on_its_way_is_waited_for() {
        let world = World::new(1);
        let mut roll = Roll::new(&[1], 1);
        world.advance(&mut roll);
        // Its old process is gone and its before_start hook runs.
        world.slots.borrow_mut().insert(
            1,
            SlotView {
                start_pending: true,
                ..view(S::Stopped, None, Some("stopped (exit status 0)"))
            },
        );
        assert!(world.advance(&mut roll).is_empty());
        world.set(1, S::Running, Some(201), None);
        let steps = world.advance(&mut roll);
        assert_eq!(
            steps[0],
            Step::Replaced {
                slot: 1,
                old: Some(Pid::from_raw(101)),
                new: Pid::from_raw(201)
            }
        );
    }

    #[test]
    fn a_failed_new_process_stops_the_roll_and_the_rest_keep_running() {
        let world = World::new(3);
        let mut roll = Roll::new(&[1, 2, 3], 1);
        world.advance(&mut roll);
        world.set(1, S::Running, Some(201), None);
        world.advance(&mut roll);
        world.set(
            2,
            S::Backoff,
            None,
            Some("not ready within 5s; retrying in 100ms"),
        );
        let steps = world.advance(&mut roll);
        assert_eq!(
            steps,
            [
                Step::Failed {
                    slot: 2,
                    reason: "not ready within 5s; retrying in 100ms".into()
                },
                Step::Done
            ]
        );
        assert_eq!(roll.endings[2], (3, Ending::Untouched));
        assert!(!roll.involves(3));
    }
}
