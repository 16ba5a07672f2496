//! One handler per control command. Handlers that must wait for processes
//! (start, stop, restart, shutdown) register a job and return at once; the
//! engine answers when the processes get there.

use nix::unistd::Pid;
use ringmaster_protocol::{
    ActionResult, PROTOCOL_VERSION, PidEntry, PidResult, ProcessState, ReopenResult, Reply,
    Request, Response, ScaleArgs, SocketInfo, SocketsResult, StatusResult, VersionResult,
    did_you_mean, signals,
};
use serde_json::Value;
use tokio::sync::oneshot;

use super::Engine;
use crate::control::{Incoming, TapTarget};
use crate::jobs::{Goal, Job, Respond, evaluate};
use crate::process::ProcId;
use crate::refusal::Refusal;
use ringmaster_config::StderrSink;

/// Most processes one watcher may have (as `numprocesses` in the
/// configuration).
const MAX_PROCESSES: u32 = 100_000;

impl Engine {
    /// Dispatches one request; the reply is sent now or when its job ends.
    pub(super) fn handle(&mut self, incoming: Incoming) {
        let Incoming { id, request, reply } = incoming;
        let answer = match request {
            Request::Status(args) => self.handle_status(&args.names),
            Request::Start(args) => return self.handle_start(id, &args.names, reply),
            Request::Stop(args) => return self.handle_stop(id, &args.names, reply),
            Request::Restart(args) if args.rolling => {
                return self.handle_rolling_restart(id, &args.names, args.max_unavailable, reply);
            }
            Request::Restart(args) => return self.handle_restart(id, &args.names, reply),
            Request::Signal(args) => self.handle_signal(&args.signal, &args.names),
            Request::Pid(args) => self.handle_pid(&args.names),
            Request::Incr(args) => return self.handle_incr(id, &args, reply),
            Request::Reread => self.reload(false).map(Response::Reread),
            Request::Reload => self.reload(true).map(Response::Reload),
            Request::Decr(args) => return self.handle_decr(id, &args, reply),
            Request::Reopen => Ok(Response::Reopen(ReopenResult {
                files: self.reopen_logs(),
            })),
            Request::Shutdown => return self.handle_shutdown(id, reply),
            // Streams (from a broadcast the engine feeds) and stats (read
            // from /proc) are served by the connection; they never reach here.
            Request::Events | Request::Tail(_) | Request::Stats(_) | Request::Maintail(_) => {
                Err(Refusal::NotTheEngines)
            }
            Request::Clear(args) => self.handle_clear(&args.names),
            Request::Version => Ok(Response::Version(VersionResult {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                protocol: PROTOCOL_VERSION,
            })),
            Request::Sockets => Ok(Response::Sockets(self.sockets())),
        };
        let reply_line = match answer {
            Ok(response) => Reply::answer(id, &response),
            Err(refusal) => refusal.reply(id),
        };
        let _ = reply.send(reply_line);
    }

    /// The bound sockets, and the watchers each is passed to.
    fn sockets(&self) -> SocketsResult {
        let sockets = self
            .listeners
            .iter()
            .map(|listener| {
                let name = &listener.config.name;
                SocketInfo {
                    name: name.clone(),
                    address: listener.config.address.to_string(),
                    bound: listener.local.clone(),
                    watchers: self
                        .config
                        .watchers
                        .iter()
                        .filter(|w| {
                            w.sockets.contains(name) || w.stdin_socket.as_ref() == Some(name)
                        })
                        .map(|w| w.name.clone())
                        .collect(),
                }
            })
            .collect();
        SocketsResult { sockets }
    }

    /// The tail buffers of `name` (a watcher or a process). A merged stderr
    /// is read from stdout's buffer, where its bytes are.
    pub(super) fn taps(&self, name: &str, stderr: bool) -> Result<Vec<TapTarget>, Refusal> {
        let ids = self.resolve(&[name.to_owned()], false)?;
        Ok(ids
            .into_iter()
            .map(|id| {
                let merged = matches!(self.watcher(id).stderr, StderrSink::Stdout);
                let index = usize::from(stderr && !merged);
                TapTarget {
                    name: self.procs[id].name.clone(),
                    alias: self.procs[id].alias.clone(),
                    stream: if stderr { "stderr" } else { "stdout" },
                    tap: self.procs[id].taps[index].clone(),
                }
            })
            .collect())
    }

    /// Turns names into process ids, in order, without duplicates: `all`,
    /// a watcher (`web`), a group (`site`), a process (`web:2`), a
    /// supervisord-style name (`site:web_00`), or every process of a watcher
    /// or group (`web:*`, `site:*`). No names means all when `empty_is_all`.
    fn resolve(&self, names: &[String], empty_is_all: bool) -> Result<Vec<ProcId>, Refusal> {
        if (names.is_empty() && empty_is_all) || names.iter().any(|n| n == "all") {
            return Ok(self.procs.all_live());
        }
        let mut ids = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for name in names {
            let matched = self
                .named(name)
                .ok_or_else(|| Refusal::NotFound(self.not_found(name)))?;
            ids.extend(matched.into_iter().filter(|&id| seen.insert(id)));
        }
        Ok(ids)
    }

    /// What `name` stands for, in configuration then wid order; `None`
    /// when nothing is called that (a watcher with no process left is
    /// something: an empty list).
    fn named(&self, name: &str) -> Option<Vec<ProcId>> {
        let set = name.strip_suffix(":*");
        let mut found: Vec<ProcId> = Vec::new();
        if set.is_none() {
            found.extend(self.procs.slot_named(name));
        }
        let set = set.unwrap_or(name);
        let mut known = !found.is_empty();
        if !name.contains(':') || name.ends_with(":*") {
            let watchers = self.procs.live_watcher(set).into_iter().chain(
                self.config
                    .groups
                    .iter()
                    .filter(|g| g.name == set)
                    .inspect(|_| known = true)
                    .flat_map(|g| &g.watchers)
                    .filter_map(|w| self.procs.live_watcher(w)),
            );
            for watcher in watchers.collect::<Vec<_>>() {
                known = true;
                found.extend_from_slice(self.procs.live_slots(watcher));
            }
        }
        found.sort_by_key(|&i| (self.procs[i].watcher, self.procs[i].name.wid));
        found.dedup();
        known.then_some(found)
    }

    fn not_found(&self, name: &str) -> String {
        let (what, candidates): (&str, Vec<String>) = if name.contains(':') && !name.ends_with(":*")
        {
            (
                "process",
                self.procs
                    .iter()
                    .flat_map(|p| std::iter::once(p.name.to_string()).chain(p.alias.clone()))
                    .collect(),
            )
        } else {
            (
                if self.config.groups.is_empty() {
                    "watcher"
                } else {
                    "watcher or group"
                },
                self.procs
                    .watcher_ids()
                    .filter(|&w| !self.procs.watcher(w).removed)
                    .map(|w| self.procs.watcher(w).config.name.clone())
                    .chain(self.config.groups.iter().map(|g| g.name.clone()))
                    .collect(),
            )
        };
        let hint = did_you_mean(name, candidates.iter().map(String::as_str))
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        format!("no {what} '{name}'{hint}")
    }

    /// Why `name` is no watcher `command` (incr, decr) can scale: a group
    /// or a process said as such, else the usual not-found.
    fn no_watcher(&self, command: &str, name: &str) -> String {
        let watchers: Vec<String> = self
            .procs
            .watcher_ids()
            .filter(|&w| !self.procs.watcher(w).removed)
            .map(|w| self.procs.watcher(w).config.name.clone())
            .collect();
        if let Some(group) = self.config.groups.iter().find(|g| g.name == name) {
            return format!(
                "'{name}' is a group; {command} takes one of its watchers: {}",
                group.watchers.join(", ")
            );
        }
        if let Some((watcher, _)) = name.split_once(':')
            && watchers.iter().any(|w| w == watcher)
        {
            return format!("{command} takes a watcher ('{watcher}'), not a process");
        }
        let hint = did_you_mean(name, watchers.iter().map(String::as_str))
            .map(|s| format!(" (did you mean '{s}'?)"))
            .unwrap_or_default();
        format!("no watcher '{name}'{hint}")
    }

    fn handle_status(&self, names: &[String]) -> Result<Response, Refusal> {
        let ids = self.resolve(names, true)?;
        Ok(Response::Status(StatusResult {
            processes: ids
                .iter()
                .map(|&i| self.procs[i].info(self.watcher(i)))
                .collect(),
        }))
    }

    /// Resolves the targets of a request that waits for processes, or
    /// answers it at once: unknown names, or a start/restart (`starts`)
    /// while shutting down.
    fn targets(
        &self,
        id: &Value,
        names: &[String],
        reply: oneshot::Sender<Reply>,
        starts: bool,
    ) -> Option<(Vec<ProcId>, oneshot::Sender<Reply>)> {
        let resolved = if starts && self.shutdown.is_some() {
            Err(Refusal::ShuttingDown)
        } else {
            self.resolve(names, false)
        };
        match resolved {
            Ok(ids) => Some((ids, reply)),
            Err(refusal) => {
                let _ = reply.send(refusal.reply(id.clone()));
                None
            }
        }
    }

    fn handle_start(&mut self, id: Value, names: &[String], reply: oneshot::Sender<Reply>) {
        let Some((ids, reply)) = self.targets(&id, names, reply, true) else {
            return;
        };
        self.release(&ids);
        let mut already = Vec::new();
        let mut order = ids.clone();
        // Lowest priority first, as the daemon starts them.
        order.sort_by_key(|&proc| self.watcher(proc).priority);
        for proc in order {
            if self.procs[proc].state() == ProcessState::Running {
                already.push(proc);
            } else {
                self.start_slot(proc);
            }
        }
        let job = (id, reply, Response::Start as Respond);
        self.add_job(job, Goal::Running, &ids, &already, "already running");
    }

    fn handle_stop(&mut self, id: Value, names: &[String], reply: oneshot::Sender<Reply>) {
        let Some((ids, reply)) = self.targets(&id, names, reply, false) else {
            return;
        };
        self.release(&ids);
        let (already, active): (Vec<ProcId>, Vec<ProcId>) = ids
            .iter()
            .partition(|&&proc| self.procs[proc].state().is_at_rest());
        self.stop_in_order(&active, false);
        let job = (id, reply, Response::Stop as Respond);
        self.add_job(job, Goal::Stopped, &ids, &already, "not running");
    }

    fn handle_restart(&mut self, id: Value, names: &[String], reply: oneshot::Sender<Reply>) {
        let Some((ids, reply)) = self.targets(&id, names, reply, true) else {
            return;
        };
        self.release(&ids);
        self.stop_in_order(&ids, true);
        let job = (id, reply, Response::Restart as Respond);
        self.add_job(job, Goal::Running, &ids, &[], "");
    }

    /// `restart --rolling`: the slots replaced a few at a time (see
    /// [`crate::rolling`]); answered once the roll is over.
    fn handle_rolling_restart(
        &mut self,
        id: Value,
        names: &[String],
        max_unavailable: Option<u32>,
        reply: oneshot::Sender<Reply>,
    ) {
        let Some((ids, reply)) = self.targets(&id, names, reply, true) else {
            return;
        };
        let max = max_unavailable.unwrap_or(1) as usize;
        self.start_roll(&ids, max, Some((id, reply)));
    }

    /// `incr`: the watcher's next slots (retired ones revived first, so
    /// the lowest free wids), started; waits like `start`.
    fn handle_incr(&mut self, id: Value, args: &ScaleArgs, reply: oneshot::Sender<Reply>) {
        match self.grow_for_incr(args) {
            Ok(ids) => {
                for &proc in &ids {
                    self.start_slot(proc);
                }
                let job = (id, reply, Response::Incr as Respond);
                self.add_job(job, Goal::Running, &ids, &[], "");
            }
            Err(refusal) => {
                let _ = reply.send(refusal.reply(id));
            }
        }
    }

    /// The slots `incr` adds to its watcher, not started yet.
    fn grow_for_incr(&mut self, args: &ScaleArgs) -> Result<Vec<ProcId>, Refusal> {
        let w = self
            .procs
            .live_watcher(&args.name)
            .ok_or_else(|| Refusal::NotFound(self.no_watcher("incr", &args.name)))?;
        if self.shutdown.is_some() {
            return Err(Refusal::ShuttingDown);
        }
        let watcher = &self.procs.watcher(w).config;
        if watcher.process_name.as_ref().is_some_and(|t| !t.uses_wid()) {
            return Err(Refusal::BadArgs(format!(
                "{}: process_name does not use $(wid), so a second process would have the same name",
                watcher.name
            )));
        }
        let count = args.count.unwrap_or(1);
        let total = self
            .procs
            .watcher(w)
            .live
            .checked_add(count)
            .filter(|&t| t <= MAX_PROCESSES)
            .ok_or_else(|| {
                Refusal::BadArgs(format!(
                    "incr: at most {MAX_PROCESSES} processes per watcher"
                ))
            })?;
        Ok(self.grow(w, total))
    }

    /// `decr`: the watcher's highest slots retired and stopped; waits like
    /// `stop`.
    fn handle_decr(&mut self, id: Value, args: &ScaleArgs, reply: oneshot::Sender<Reply>) {
        let Some(w) = self.procs.live_watcher(&args.name) else {
            let _ = reply.send(Refusal::NotFound(self.no_watcher("decr", &args.name)).reply(id));
            return;
        };
        let remaining = self
            .procs
            .watcher(w)
            .live
            .saturating_sub(args.count.unwrap_or(1));
        let (ids, already) = self.shrink(w, remaining);
        let job = (id, reply, Response::Decr as Respond);
        self.add_job(job, Goal::Stopped, &ids, &already, "not running");
    }

    /// Registers a waiting request, deciding at once what can be decided.
    /// `already` are processes that were at the goal before the request.
    fn add_job(
        &mut self,
        (id, reply, respond): (Value, oneshot::Sender<Reply>, Respond),
        goal: Goal,
        ids: &[ProcId],
        already: &[ProcId],
        already_message: &str,
    ) {
        let shutting_down = self.shutdown.is_some();
        let entries = ids
            .iter()
            .map(|&proc| {
                let process = &self.procs[proc];
                let outcome = if already.contains(&proc) {
                    Some(process.outcome(true, already_message))
                } else {
                    evaluate(goal, process, self.completed(proc), shutting_down)
                };
                (proc, outcome)
            })
            .collect();
        let job = Job {
            id,
            reply,
            respond,
            goal,
            entries,
        };
        if job.entries.iter().all(|(_, o)| o.is_some()) {
            job.finish();
        } else {
            self.jobs.push(job);
        }
    }

    fn handle_signal(&mut self, signal: &str, names: &[String]) -> Result<Response, Refusal> {
        let number = signals::parse(signal)
            .ok_or_else(|| Refusal::BadArgs(format!("unknown signal '{signal}'")))?;
        let ids = self.resolve(names, false)?;
        let processes = ids
            .iter()
            .map(|&proc| {
                let process = &self.procs[proc];
                let (ok, message) = match process.pid() {
                    None => (false, "not running".to_owned()),
                    Some(pid) => match self.os.signal(pid.as_raw(), number) {
                        Ok(()) => (true, format!("sent SIG{}", signals::name(number))),
                        Err(err) => (false, format!("cannot signal: {err}")),
                    },
                };
                process.outcome(ok, message)
            })
            .collect();
        Ok(Response::Signal(ActionResult { processes }))
    }

    /// `clear`: each running process's log files emptied through the
    /// descriptors its pumps write (a process that is not running has
    /// none open: said, and nothing touched).
    fn handle_clear(&self, names: &[String]) -> Result<Response, Refusal> {
        let ids = self.resolve(names, false)?;
        let processes = ids
            .iter()
            .map(|&id| {
                let process = &self.procs[id];
                let files: Vec<_> = process.pumps.iter().filter(|p| p.has_file()).collect();
                if files.is_empty() {
                    let why = if process.pid().is_some() {
                        "it writes no log file"
                    } else {
                        "not running: its log files are not open (truncate them by hand)"
                    };
                    return process.outcome(false, why);
                }
                for pump in &files {
                    pump.clear();
                }
                let cleared = ringmaster_protocol::plural(files.len(), "log file", "log files");
                process.outcome(true, format!("{cleared} cleared"))
            })
            .collect();
        Ok(Response::Clear(ActionResult { processes }))
    }

    fn handle_pid(&self, names: &[String]) -> Result<Response, Refusal> {
        if names.is_empty() {
            return Ok(Response::Pid(PidResult {
                daemon: Some(std::process::id() as i32),
                processes: Vec::new(),
            }));
        }
        let ids = self.resolve(names, false)?;
        Ok(Response::Pid(PidResult {
            daemon: None,
            processes: ids
                .iter()
                .map(|&i| PidEntry {
                    name: self.procs[i].name.clone(),
                    alias: self.procs[i].alias.clone(),
                    pid: self.procs[i].pid().map(Pid::as_raw),
                })
                .collect(),
        }))
    }

    fn handle_shutdown(&mut self, id: Value, reply: oneshot::Sender<Reply>) {
        self.begin_shutdown(super::Trigger::Request);
        if let Some(shutdown) = self.shutdown.as_mut() {
            shutdown.waiters.push((id, reply));
        }
    }
}
