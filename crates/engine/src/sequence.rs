//! Requests that span several priority levels act on them in turn, as the
//! daemon's own start and shutdown do: `stop` stops the highest priority
//! first and the next level only once that one is down (the app before the
//! Redis it uses); `restart` stops them that way, then starts everything
//! from the lowest priority up. Processes whose turn has not come yet are
//! *held*: the requests waiting on them wait, and a later request that
//! names one of them takes it out of the sequence.

use std::collections::VecDeque;

/// One multi-level stop or restart in progress, of processes `T`.
#[derive(Debug)]
pub(crate) struct Sequence<T> {
    /// Levels still to stop, highest priority first; the first is being
    /// stopped once `begun`.
    pub stops: VecDeque<Vec<T>>,
    /// Whether the first level of `stops` has been told to stop.
    pub begun: bool,
    /// Started, in this order (lowest priority first), once every level is
    /// down; empty for a plain stop.
    pub starts: Vec<T>,
}

impl<T: Copy + PartialEq> Sequence<T> {
    /// Groups `ids` into levels by `priority` (the engine's is dependency
    /// rank, then priority), highest first; `then_start` makes it a
    /// restart.
    pub fn new<L: Ord + Copy>(ids: &[T], priority: impl Fn(T) -> L, then_start: bool) -> Self {
        let mut sorted = ids.to_vec();
        // Stable: within a level, the request's order.
        sorted.sort_by_key(|&id| std::cmp::Reverse(priority(id)));
        let mut stops: VecDeque<Vec<T>> = VecDeque::new();
        let mut last = None;
        for id in sorted {
            if last == Some(priority(id)) {
                if let Some(level) = stops.back_mut() {
                    level.push(id);
                }
            } else {
                stops.push_back(vec![id]);
                last = Some(priority(id));
            }
        }
        let mut starts = Vec::new();
        if then_start {
            starts = ids.to_vec();
            starts.sort_by_key(|&id| priority(id));
        }
        Self {
            stops,
            begun: false,
            starts,
        }
    }

    /// Whether more than one level is involved (one level needs no
    /// sequence: everything in it is acted on at once).
    pub fn spans_levels(&self) -> bool {
        self.stops.len() > 1
    }

    /// Takes `id` out of the sequence; true if it was in it.
    pub fn release(&mut self, id: T) -> bool {
        let mut found = false;
        for level in &mut self.stops {
            let before = level.len();
            level.retain(|&i| i != id);
            found |= level.len() != before;
        }
        let before = self.starts.len();
        self.starts.retain(|&i| i != id);
        found | (self.starts.len() != before)
    }

    /// Whether this is a restart (held processes are started at the end).
    pub fn restarts(&self) -> bool {
        !self.starts.is_empty()
    }

    /// Whether nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.stops.iter().all(Vec::is_empty) && self.starts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_go_highest_priority_first_and_starts_lowest_first() {
        let priority = |id: usize| [10, 20, 10, 30][id];
        let seq = Sequence::new(&[0, 1, 2, 3], priority, true);
        assert_eq!(Vec::from(seq.stops.clone()), [vec![3], vec![1], vec![0, 2]]);
        assert_eq!(seq.starts, [0, 2, 1, 3]);
        assert!(seq.spans_levels());
        let single = Sequence::new(&[0, 2], priority, false);
        assert!(!single.spans_levels());
        assert!(single.starts.is_empty());
    }

    #[test]
    fn release_takes_a_process_out() {
        let priority = |id: usize| [10, 20][id];
        let mut seq = Sequence::new(&[0, 1], priority, true);
        assert!(seq.release(0));
        assert!(!seq.release(0));
        assert_eq!(seq.starts, [1]);
        assert!(seq.release(1));
        assert!(seq.is_done());
    }
}
