//! `stats`: CPU, memory, descriptors and threads of processes, read from
//! /proc by the control connection (never by the engine's task).
//!
//! CPU is measured over a short window: /proc is read twice, `WINDOW`
//! apart, and the CPU time used in between is divided by the time that
//! passed. With `tree`, each process is summed with all its descendants
//! (found by parent pid), which is what a worker that forks its own
//! children costs; a process in a cgroup of its own is summed over its
//! cgroup instead (its `cpu.stat`, `memory.current` where the memory
//! controller is enabled, and the processes in it), which also counts
//! descendants that left its process tree (a double-forked daemon).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ringmaster_protocol::{ProcessInfo, ProcessStats, StatsResult, TreeStats};

/// How long CPU use is measured over.
pub(crate) const WINDOW: Duration = Duration::from_millis(250);

/// One reading of one process (and, with `tree`, its descendants).
#[derive(Debug, Clone, Copy, Default)]
struct Reading {
    /// CPU ticks (user + system) of the process itself.
    ticks: u64,
    rss_pages: u64,
    fds: Option<u64>,
    threads: u64,
    /// Summed over the process and its descendants.
    tree_ticks: u64,
    tree_rss_pages: u64,
    tree_processes: u32,
}

/// Reads every pid of `pids` (and their descendants when `tree`).
fn read_all(pids: &[i32], tree: bool) -> HashMap<i32, Reading> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    let mut stats: HashMap<i32, procfs::process::Stat> = HashMap::new();
    if tree && let Ok(all) = procfs::process::all_processes() {
        for process in all.flatten() {
            if let Ok(stat) = process.stat() {
                children.entry(stat.ppid).or_default().push(stat.pid);
                stats.insert(stat.pid, stat);
            }
        }
    }
    let mut readings = HashMap::new();
    for &pid in pids {
        let Ok(process) = procfs::process::Process::new(pid) else {
            continue;
        };
        let Some(stat) = stats.get(&pid).cloned().or_else(|| process.stat().ok()) else {
            continue;
        };
        let mut reading = Reading {
            ticks: stat.utime + stat.stime,
            rss_pages: stat.rss,
            fds: process.fd_count().ok().map(|n| n as u64),
            threads: u64::try_from(stat.num_threads).unwrap_or(0),
            ..Reading::default()
        };
        if tree {
            let mut queue = vec![pid];
            while let Some(next) = queue.pop() {
                if let Some(s) = stats.get(&next) {
                    reading.tree_ticks += s.utime + s.stime;
                    reading.tree_rss_pages += s.rss;
                    reading.tree_processes += 1;
                }
                if let Some(kids) = children.get(&next) {
                    queue.extend(kids);
                }
            }
        }
        readings.insert(pid, reading);
    }
    readings
}

/// Reads /proc for `processes`, waits `WINDOW`, reads again and builds
/// the result. Blocking: run it off the async runtime.
pub(crate) fn measure(processes: &[ProcessInfo], tree: bool) -> StatsResult {
    let pids: Vec<i32> = processes.iter().filter_map(|p| p.pid).collect();
    let cgroup_of = |p: &ProcessInfo| -> Option<std::path::PathBuf> {
        p.cgroup
            .as_deref()
            .filter(|_| tree)
            .map(std::path::PathBuf::from)
    };
    let cgroups_before: Vec<_> = processes
        .iter()
        .map(|p| cgroup_of(p).map(|path| ringmaster_cgroup::usage_of(&path)))
        .collect();
    let first = read_all(&pids, tree);
    let started = Instant::now();
    std::thread::sleep(WINDOW);
    let second = read_all(&pids, tree);
    let elapsed = started.elapsed().as_secs_f64();
    let ticks_per_second = procfs::ticks_per_second() as f64;
    let page = procfs::page_size();
    let percent = |before: u64, after: u64| {
        (after.saturating_sub(before) as f64 / ticks_per_second) / elapsed * 100.0
    };
    let processes = processes
        .iter()
        .zip(cgroups_before)
        .map(|(p, cgroup_before)| {
            // Both readings must be of the same process: a pid reused in
            // between would have a smaller tick count.
            let pair = p
                .pid
                .and_then(|pid| Some((*first.get(&pid)?, *second.get(&pid)?)))
                .filter(|(a, b)| b.ticks >= a.ticks);
            ProcessStats {
                name: p.name.clone(),
                alias: p.alias.clone(),
                state: p.state,
                pid: p.pid,
                cpu_percent: pair.map(|(a, b)| percent(a.ticks, b.ticks)),
                rss_bytes: pair.map(|(_, b)| b.rss_pages * page),
                fds: pair.and_then(|(_, b)| b.fds),
                threads: pair.map(|(_, b)| b.threads),
                restarts: p.restarts,
                uptime_secs: p.uptime_secs,
                tree: match (cgroup_of(p), cgroup_before) {
                    (Some(path), Some(before)) => Some(cgroup_tree(&path, before, elapsed)),
                    _ => pair.filter(|_| tree).map(|(a, b)| TreeStats {
                        processes: b.tree_processes,
                        cpu_percent: percent(a.tree_ticks, b.tree_ticks),
                        rss_bytes: b.tree_rss_pages * page,
                        memory_bytes: None,
                    }),
                },
            }
        })
        .collect();
    StatsResult {
        window_secs: elapsed,
        processes,
    }
}

/// A process's tree as its cgroup counts it, CPU over `elapsed` seconds
/// since `before`.
fn cgroup_tree(
    path: &std::path::Path,
    before: ringmaster_cgroup::TreeUsage,
    elapsed: f64,
) -> TreeStats {
    let after = ringmaster_cgroup::usage_of(path);
    let page = procfs::page_size();
    let rss_pages: u64 = std::fs::read_to_string(path.join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|pid| {
            procfs::process::Process::new(pid.trim().parse().ok()?)
                .ok()?
                .stat()
                .ok()
        })
        .map(|stat| stat.rss)
        .sum();
    TreeStats {
        processes: u32::try_from(after.processes).unwrap_or(u32::MAX),
        cpu_percent: (after.cpu_seconds - before.cpu_seconds).max(0.0) / elapsed * 100.0,
        rss_bytes: rss_pages * page,
        memory_bytes: after.memory_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_and_its_children() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let me = i32::try_from(std::process::id()).unwrap();
        let readings = read_all(&[me], true);
        let mine = readings[&me];
        assert!(mine.rss_pages > 0 && mine.threads >= 1 && mine.fds.unwrap_or(0) >= 3);
        assert!(mine.tree_processes >= 2, "{mine:?}");
        assert!(mine.tree_rss_pages >= mine.rss_pages);
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
