//! `depends_on`: the start-order graph between watchers.
//!
//! A watcher starts only once every watcher it depends on is ready, and
//! stops before them. The graph must name only defined watchers and have
//! no cycle; both are configuration errors naming the file and line of
//! every `depends_on` involved. [`ranks`] gives each watcher its depth in
//! the graph, which orders stopping (the deepest first).

use std::collections::HashMap;

use crate::error::ConfigError;
use crate::model::WatcherConfig;

/// Every error in the watchers' `depends_on`: a name that is not a
/// watcher, a watcher that depends on itself, a cycle.
pub(crate) fn check<'w>(watchers: impl IntoIterator<Item = &'w WatcherConfig>) -> Vec<ConfigError> {
    let watchers: Vec<&WatcherConfig> = watchers.into_iter().collect();
    let index: HashMap<&str, usize> = watchers
        .iter()
        .enumerate()
        .map(|(i, w)| (w.name.as_str(), i))
        .collect();
    let mut errors = Vec::new();
    for watcher in &watchers {
        for name in &watcher.depends_on {
            if name == &watcher.name {
                errors.push(watcher.invalid("depends_on", "a watcher cannot depend on itself"));
            } else if !index.contains_key(name.as_str()) {
                let hint = ringmaster_protocol::did_you_mean(name, index.keys().copied())
                    .map(|s| format!(" (did you mean '{s}'?)"))
                    .unwrap_or_default();
                errors.push(watcher.invalid(
                    "depends_on",
                    format!("no watcher '{name}' is defined{hint}"),
                ));
            }
        }
    }
    if errors.is_empty()
        && let Some(cycle) = find_cycle(&watchers, &index)
    {
        errors.push(cycle_error(&watchers, &cycle));
    }
    errors
}

/// Each watcher's depth: 0 for one that depends on nothing, else one more
/// than the deepest of its dependencies. Names that are not among
/// `watchers` count as nothing (a checked configuration has none).
pub fn ranks<'w>(watchers: impl IntoIterator<Item = &'w WatcherConfig>) -> HashMap<String, u32> {
    let watchers: Vec<&WatcherConfig> = watchers.into_iter().collect();
    let by_name: HashMap<&str, &WatcherConfig> =
        watchers.iter().map(|w| (w.name.as_str(), *w)).collect();
    let mut ranks: HashMap<String, u32> = HashMap::new();
    for watcher in &watchers {
        rank_of(watcher, &by_name, &mut ranks, 0);
    }
    ranks
}

/// A watcher's rank, memoised; `depth` bounds the walk should a cycle
/// slip through (it cannot in a checked configuration).
fn rank_of(
    watcher: &WatcherConfig,
    by_name: &HashMap<&str, &WatcherConfig>,
    ranks: &mut HashMap<String, u32>,
    depth: usize,
) -> u32 {
    if let Some(&rank) = ranks.get(&watcher.name) {
        return rank;
    }
    let mut rank = 0;
    if depth <= by_name.len() {
        for name in &watcher.depends_on {
            if let Some(dep) = by_name.get(name.as_str()) {
                rank = rank.max(rank_of(dep, by_name, ranks, depth + 1) + 1);
            }
        }
    }
    ranks.insert(watcher.name.clone(), rank);
    rank
}

/// The first cycle found, as the watchers' indexes in `depends_on` order
/// (`[a, b]` for a -> b -> a).
fn find_cycle(watchers: &[&WatcherConfig], index: &HashMap<&str, usize>) -> Option<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        New,
        OnPath,
        Done,
    }
    let mut marks = vec![Mark::New; watchers.len()];
    for root in 0..watchers.len() {
        if marks[root] != Mark::New {
            continue;
        }
        // Depth-first, with an explicit stack of (watcher, next edge).
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        marks[root] = Mark::OnPath;
        while let Some(&mut (node, ref mut edge)) = path.last_mut() {
            let Some(name) = watchers[node].depends_on.get(*edge) else {
                marks[node] = Mark::Done;
                path.pop();
                continue;
            };
            *edge += 1;
            let Some(&next) = index.get(name.as_str()) else {
                continue;
            };
            match marks[next] {
                Mark::OnPath => {
                    let from = path.iter().position(|&(n, _)| n == next).unwrap_or(0);
                    return Some(path[from..].iter().map(|&(n, _)| n).collect());
                }
                Mark::New => {
                    marks[next] = Mark::OnPath;
                    path.push((next, 0));
                }
                Mark::Done => {}
            }
        }
    }
    None
}

/// `depends_on forms a cycle: a -> b -> a (a at FILE:LINE, b at ...)`,
/// reported at the first member.
fn cycle_error(watchers: &[&WatcherConfig], cycle: &[usize]) -> ConfigError {
    let names: Vec<&str> = cycle.iter().map(|&i| watchers[i].name.as_str()).collect();
    let places: Vec<String> = cycle
        .iter()
        .map(|&i| {
            format!(
                "{} at {}",
                watchers[i].name,
                watchers[i].location("depends_on")
            )
        })
        .collect();
    let first = watchers[cycle[0]];
    first.invalid(
        "depends_on",
        format!(
            "depends_on forms a cycle: {} -> {} ({})",
            names.join(" -> "),
            names[0],
            places.join(", ")
        ),
    )
}
