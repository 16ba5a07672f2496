//! The engine booted in-process on tokio's paused clock, with a scripted
//! kernel: what needs the loop (timers, waiting requests, jobs, shutdown
//! order) measured in virtual time, to the millisecond, without a process.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::unistd::Pid;
use ringmaster_spawn::Exit;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Engine;
use crate::EngineError;
use crate::launch::Prepared;
use crate::os::{Children, DaemonSignal};
use crate::system::System;

const TERM: i32 = 15;
const KILL: i32 = 9;
const CONT: i32 = 18;

/// What the scripted kernel did and will do.
#[derive(Default)]
struct Script {
    next_pid: i32,
    alive: HashSet<i32>,
    /// Processes that ignore SIGTERM (SIGKILL still ends them).
    deaf: HashSet<i32>,
    /// Every process spawned from now on ignores SIGTERM.
    all_deaf: bool,
    /// Every process spawned from now on exits at once with this code.
    exit_at_once: Option<i32>,
    exits: VecDeque<(Pid, Exit)>,
    /// When each spawn happened, and its pid.
    spawned: Vec<(Instant, i32)>,
    /// When each signal was sent: (time, target, signal).
    signals: Vec<(Instant, i32, i32)>,
}

/// A kernel that spawns nothing: pids are numbers, exits are scripted,
/// and SIGTERM or SIGKILL ends a process unless it is deaf to SIGTERM.
struct Fake {
    script: Arc<Mutex<Script>>,
    wake: mpsc::UnboundedSender<DaemonSignal>,
}

impl Fake {
    fn end(&self, script: &mut Script, pid: i32, exit: Exit) {
        script.alive.remove(&pid);
        script.exits.push_back((Pid::from_raw(pid), exit));
        let _ = self.wake.send(DaemonSignal::Child);
    }
}

impl Children for Fake {
    fn spawn(
        &mut self,
        _prepared: &Prepared,
    ) -> Result<ringmaster_spawn::Spawned, ringmaster_spawn::SpawnError> {
        let mut script = self.script.lock().unwrap();
        script.next_pid += 1;
        let pid = 1000 + script.next_pid;
        script.alive.insert(pid);
        if script.all_deaf {
            script.deaf.insert(pid);
        }
        script.spawned.push((Instant::now(), pid));
        if let Some(code) = script.exit_at_once {
            self.end(&mut script, pid, Exit::Code(code));
        }
        // No pidfd: exits come as SIGCHLD and `reap`.
        Ok(ringmaster_spawn::Spawned {
            pid: Pid::from_raw(pid),
            pidfd: None,
        })
    }

    fn reap(&mut self) -> Result<Option<(Pid, Exit)>, nix::Error> {
        Ok(self.script.lock().unwrap().exits.pop_front())
    }

    fn reap_pid(&mut self, pid: Pid) -> Result<Option<Exit>, nix::Error> {
        let mut script = self.script.lock().unwrap();
        let at = script.exits.iter().position(|(exited, _)| *exited == pid);
        Ok(at
            .and_then(|at| script.exits.remove(at))
            .map(|(_, exit)| exit))
    }

    fn signal(&mut self, target: i32, signal: i32) -> Result<(), nix::Error> {
        let mut script = self.script.lock().unwrap();
        script.signals.push((Instant::now(), target, signal));
        let pid = target.abs();
        if !script.alive.contains(&pid) {
            return Err(nix::Error::ESRCH);
        }
        if signal == KILL || (signal == TERM && !script.deaf.contains(&pid)) {
            self.end(
                &mut script,
                pid,
                Exit::Signal {
                    signal,
                    core: false,
                },
            );
        }
        Ok(())
    }

    fn group_alive(&self, pgid: Pid) -> bool {
        self.script.lock().unwrap().alive.contains(&pgid.as_raw())
    }

    fn adopted(&self) -> Vec<Pid> {
        Vec::new()
    }
}

/// An engine running on the test's runtime.
struct Daemon {
    socket: PathBuf,
    script: Arc<Mutex<Script>>,
    signals: mpsc::UnboundedSender<DaemonSignal>,
    run: JoinHandle<Result<i32, EngineError>>,
    _dir: tempfile::TempDir,
}

/// Boots an engine on `watchers` (TOML tables) with `script` set first.
fn boot(watchers: &str, script: Script) -> Daemon {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("rm.sock");
    let path = dir.path().join("ringmaster.toml");
    let text = format!(
        "[daemon]\nsocket = \"{}\"\nlogs_dir = \"{}\"\nshutdown_timeout = \"60s\"\n{watchers}",
        socket.display(),
        dir.path().join("logs").display()
    );
    std::fs::write(&path, text).unwrap();
    let config = ringmaster_config::load(&path, None).unwrap();
    let (listener, authorizer, socket_file) = crate::control::bind(&config.daemon).unwrap();
    let (signals, source) = mpsc::unbounded_channel();
    let script = Arc::new(Mutex::new(script));
    let fake = Fake {
        script: script.clone(),
        wake: signals.clone(),
    };
    let system = System {
        base_env: Vec::new(),
        nofile: (1024, 1024),
        colour: false,
        notify_socket: None,
    };
    let engine = Engine::new(config, system, Box::new(fake)).unwrap();
    let run = tokio::spawn(engine.run(listener, authorizer, socket_file, source));
    Daemon {
        socket,
        script,
        signals,
        run,
        _dir: dir,
    }
}

impl Daemon {
    /// One request on a connection of its own; its reply.
    async fn ask(&self, cmd: &str, args: Value) -> Value {
        let stream = UnixStream::connect(&self.socket).await.unwrap();
        let (read, mut write) = stream.into_split();
        let line = json!({"id": 1, "cmd": cmd, "args": args}).to_string() + "\n";
        write.write_all(line.as_bytes()).await.unwrap();
        let mut reply = String::new();
        BufReader::new(read).read_line(&mut reply).await.unwrap();
        serde_json::from_str(&reply).unwrap()
    }

    /// `status` of one process: its entry.
    async fn process(&self, name: &str) -> Value {
        let reply = self.ask("status", json!({"names": [name]})).await;
        reply["result"]["processes"][0].clone()
    }

    /// `status` of `name` once `check` holds, without letting virtual time
    /// pass (the engine is polled in between); panics if it never does.
    async fn until(&self, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.watch(name, check, None).await
    }

    /// `status` of `name` once `check` holds, letting virtual time pass
    /// 10 ms between looks (timers fire at their exact times meanwhile).
    async fn after(&self, name: &str, check: impl Fn(&Value) -> bool) -> Value {
        self.watch(name, check, Some(Duration::from_millis(10)))
            .await
    }

    /// Looks at `name` until `check` holds, yielding or sleeping `pause`
    /// between looks; panics if it never does.
    async fn watch(
        &self,
        name: &str,
        check: impl Fn(&Value) -> bool,
        pause: Option<Duration>,
    ) -> Value {
        let mut last = Value::Null;
        for _ in 0..10_000 {
            last = self.process(name).await;
            if check(&last) {
                return last;
            }
            match pause {
                Some(pause) => tokio::time::sleep(pause).await,
                None => tokio::task::yield_now().await,
            }
        }
        panic!("{name} never got there: {last}");
    }

    /// A `start` of `names` sent from a task of its own; its reply.
    fn start_in_background(self: &Arc<Self>, names: Value) -> JoinHandle<Value> {
        let daemon = self.clone();
        tokio::spawn(async move { daemon.ask("start", json!({ "names": names })).await })
    }

    fn spawn_times(&self, since: Instant) -> Vec<Duration> {
        let script = self.script.lock().unwrap();
        script.spawned.iter().map(|(t, _)| *t - since).collect()
    }

    fn signals_sent(&self, since: Instant) -> Vec<(Duration, i32, i32)> {
        let script = self.script.lock().unwrap();
        script
            .signals
            .iter()
            .filter(|(_, _, signal)| *signal != 0)
            .map(|(t, target, signal)| (*t - since, *target, *signal))
            .collect()
    }

    /// Ends process `pid` with exit code `code`, as if it exited.
    fn exit(&self, pid: i64, code: i32) {
        let mut script = self.script.lock().unwrap();
        let pid = i32::try_from(pid).unwrap();
        script.alive.remove(&pid);
        script
            .exits
            .push_back((Pid::from_raw(pid), Exit::Code(code)));
        let _ = self.signals.send(DaemonSignal::Child);
    }

    async fn shut_down(self) -> i32 {
        let _ = self.signals.send(DaemonSignal::Terminate);
        self.run.await.unwrap().unwrap()
    }
}

fn web(extra: &str) -> String {
    format!(
        "[watchers.web]\ncmd = \"/bin/sleep 1000\"\nstdout = \"null\"\nstderr = \"null\"\n{extra}\n"
    )
}

#[tokio::test(start_paused = true)]
async fn a_start_is_answered_once_start_secs_pass() {
    let daemon = boot(
        &web("autostart = false\nstart_secs = \"5s\""),
        Script::default(),
    );
    let t0 = Instant::now();
    let reply = daemon.ask("start", json!({"names": ["web"]})).await;
    assert_eq!(t0.elapsed(), Duration::from_secs(5), "{reply}");
    assert_eq!(reply["result"]["processes"][0]["ok"], true, "{reply}");
    assert_eq!(daemon.process("web:1").await["state"], "RUNNING");
    assert_eq!(daemon.shut_down().await, 0);
}

#[tokio::test(start_paused = true)]
async fn other_requests_are_answered_while_a_start_waits() {
    let daemon = Arc::new(boot(
        &web("autostart = false\nstart_secs = \"5s\""),
        Script::default(),
    ));
    let t0 = Instant::now();
    let waiting = daemon.start_in_background(json!(["web"]));
    // The start has reached the engine once the process is STARTING.
    daemon.until("web:1", |p| p["state"] == "STARTING").await;
    assert_eq!(t0.elapsed(), Duration::ZERO);
    let reply = waiting.await.unwrap();
    assert_eq!(reply["result"]["processes"][0]["state"], "RUNNING");
    assert_eq!(t0.elapsed(), Duration::from_secs(5));
}

#[tokio::test(start_paused = true)]
async fn quick_failures_back_off_100_200_400ms_then_give_up() {
    let script = Script {
        exit_at_once: Some(1),
        ..Script::default()
    };
    let daemon = boot(&web("autostart = false\nstart_retries = 3"), script);
    let t0 = Instant::now();
    let reply = daemon.ask("start", json!({"names": ["web"]})).await;
    let entry = &reply["result"]["processes"][0];
    assert_eq!(entry["ok"], false, "{reply}");
    assert_eq!(entry["state"], "FATAL");
    let ms = Duration::from_millis;
    assert_eq!(daemon.spawn_times(t0), [ms(0), ms(100), ms(300), ms(700)]);
    let reason = daemon.process("web:1").await["reason"].clone();
    assert_eq!(
        reason,
        "exited too quickly (exit status 1); gave up after 4 attempts"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_that_is_ignored_becomes_sigkill_at_stop_timeout() {
    let script = Script {
        all_deaf: true,
        ..Script::default()
    };
    let daemon = boot(&web("start_secs = \"0\"\nstop_timeout = \"3s\""), script);
    let pid = daemon.until("web:1", |p| p["state"] == "RUNNING").await["pid"]
        .as_i64()
        .unwrap();
    let t0 = Instant::now();
    let reply = daemon.ask("stop", json!({"names": ["web"]})).await;
    assert_eq!(reply["result"]["processes"][0]["ok"], true, "{reply}");
    assert_eq!(t0.elapsed(), Duration::from_secs(3));
    let group = -i32::try_from(pid).unwrap();
    assert_eq!(
        daemon.signals_sent(t0),
        [
            (Duration::ZERO, group, TERM),
            (Duration::ZERO, group, CONT),
            (Duration::from_secs(3), group, KILL),
        ]
    );
    assert_eq!(daemon.process("web:1").await["state"], "STOPPED");
}

#[tokio::test(start_paused = true)]
async fn a_restart_is_answered_when_the_new_process_runs() {
    let daemon = boot(&web("start_secs = \"2s\""), Script::default());
    // Autostarted: RUNNING after 2 s.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = daemon.process("web:1").await;
    assert_eq!(before["state"], "RUNNING");
    let t0 = Instant::now();
    let reply = daemon.ask("restart", json!({"names": ["web:1"]})).await;
    let entry = &reply["result"]["processes"][0];
    assert_eq!(entry["state"], "RUNNING", "{reply}");
    assert_ne!(entry["pid"], before["pid"]);
    assert_eq!(t0.elapsed(), Duration::from_secs(2));
    assert_eq!(daemon.process("web:1").await["restarts"], 0);
}

#[tokio::test(start_paused = true)]
async fn an_exit_is_restarted_at_once_and_counted() {
    let daemon = boot(&web("start_secs = \"0\""), Script::default());
    let first = daemon.until("web:1", |p| p["state"] == "RUNNING").await;
    let t0 = Instant::now();
    daemon.exit(first["pid"].as_i64().unwrap(), 1);
    let now = daemon.until("web:1", |p| p["restarts"] == 1).await;
    assert_eq!(now["state"], "RUNNING");
    assert_ne!(now["pid"], first["pid"]);
    assert_eq!(
        t0.elapsed(),
        Duration::ZERO,
        "no timer between exit and respawn"
    );
}

#[tokio::test(start_paused = true)]
async fn a_shutdown_stops_the_highest_priority_first_and_the_next_once_it_is_gone() {
    let watchers = "[watchers.db]\ncmd = \"/bin/sleep 1000\"\nstdout = \"null\"\nstderr = \"null\"\n\
        start_secs = \"0\"\npriority = 1\n\
        [watchers.app]\ncmd = \"/bin/sleep 1000\"\nstdout = \"null\"\nstderr = \"null\"\n\
        start_secs = \"0\"\npriority = 2\nstop_timeout = \"1s\"\n";
    let daemon = boot(watchers, Script::default());
    let running = |p: &Value| p["state"] == "RUNNING";
    let db = daemon.until("db:1", running).await["pid"].as_i64().unwrap();
    let app = daemon.until("app:1", running).await["pid"]
        .as_i64()
        .unwrap();
    daemon
        .script
        .lock()
        .unwrap()
        .deaf
        .insert(i32::try_from(app).unwrap());
    let t0 = Instant::now();
    let script = daemon.script.clone();
    let code = daemon.shut_down().await;
    assert_eq!(code, 0);
    let sent: Vec<(Duration, i32, i32)> = script
        .lock()
        .unwrap()
        .signals
        .iter()
        .filter(|(_, _, s)| *s == TERM || *s == KILL)
        .map(|(t, target, s)| (*t - t0, target.abs(), *s))
        .collect();
    let (app, db) = (i32::try_from(app).unwrap(), i32::try_from(db).unwrap());
    assert_eq!(
        sent,
        [
            (Duration::ZERO, app, TERM),
            (Duration::from_secs(1), app, KILL),
            (Duration::from_secs(1), db, TERM),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_essential_process_that_ends_takes_the_daemon_down_with_its_code() {
    let daemon = boot(
        &web("start_secs = \"0\"\nrestart = \"never\"\nessential = true"),
        Script::default(),
    );
    let pid = daemon.until("web:1", |p| p["state"] == "RUNNING").await["pid"]
        .as_i64()
        .unwrap();
    daemon.exit(pid, 3);
    assert_eq!(daemon.run.await.unwrap().unwrap(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_start_still_waiting_when_the_daemon_shuts_down_is_told_so() {
    let daemon = Arc::new(boot(
        &web("autostart = false\nstart_secs = \"10s\""),
        Script::default(),
    ));
    let waiting = daemon.start_in_background(json!(["web"]));
    daemon.until("web:1", |p| p["state"] == "STARTING").await;
    let _ = daemon.signals.send(DaemonSignal::Terminate);
    let reply = waiting.await.unwrap();
    let entry = &reply["result"]["processes"][0];
    assert_eq!(entry["ok"], false, "{reply}");
    assert_eq!(entry["message"], "the daemon is shutting down");
}

#[tokio::test(start_paused = true)]
async fn incr_starts_what_it_adds_and_decr_stops_the_highest() {
    let daemon = boot(
        &web("start_secs = \"0\"\nnumprocesses = 2"),
        Script::default(),
    );
    daemon.until("web:2", |p| p["state"] == "RUNNING").await;
    let names = |reply: &Value| -> Vec<String> {
        let processes = reply["result"]["processes"].as_array().unwrap();
        processes
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let reply = daemon.ask("incr", json!({"name": "web", "count": 3})).await;
    assert_eq!(names(&reply), ["web:3", "web:4", "web:5"], "{reply}");
    let reply = daemon.ask("decr", json!({"name": "web", "count": 4})).await;
    assert_eq!(
        names(&reply),
        ["web:2", "web:3", "web:4", "web:5"],
        "{reply}"
    );
    let status = daemon.ask("status", json!({})).await;
    assert_eq!(status["result"]["processes"].as_array().unwrap().len(), 1);
    assert_eq!(daemon.spawn_times(Instant::now()).len(), 5);
}

#[tokio::test(start_paused = true)]
async fn requests_are_answered_while_a_thousand_processes_start() {
    let daemon = boot(
        &web("start_secs = \"0\"\nnumprocesses = 1000"),
        Script::default(),
    );
    let status = daemon.ask("status", json!({})).await;
    let processes = status["result"]["processes"].as_array().unwrap();
    let running = processes.iter().filter(|p| p["state"] == "RUNNING").count();
    assert_eq!(processes.len(), 1000);
    assert!(running < 1000, "answered only after every start: {running}");
    // Those not spawned yet say why they are STOPPED.
    let queued = processes
        .iter()
        .filter(|p| p["state"] == "STOPPED")
        .collect::<Vec<_>>();
    assert!(!queued.is_empty());
    assert!(
        queued.iter().all(|p| p["reason"] == "start queued"),
        "{queued:?}"
    );
    // Queued ones are told apart: a start waits for them, and all run.
    let reply = daemon.ask("start", json!({"names": ["web"]})).await;
    let outcomes = reply["result"]["processes"].as_array().unwrap();
    assert!(outcomes.iter().all(|p| p["state"] == "RUNNING"), "{reply}");
}

// ----- depends_on -----------------------------------------------------------

/// A watcher of one `sleep` named `name`, with `extra` keys.
fn watcher(name: &str, extra: &str) -> String {
    format!(
        "[watchers.{name}]\ncmd = \"/bin/sleep 1000\"\nstdout = \"null\"\nstderr = \"null\"\n{extra}\n"
    )
}

/// The pid of each spawn so far, in order, with its time since `since`.
fn spawns(daemon: &Daemon, since: Instant) -> Vec<(Duration, i32)> {
    let script = daemon.script.lock().unwrap();
    script
        .spawned
        .iter()
        .map(|(t, pid)| (*t - since, *pid))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_chain_starts_each_link_once_the_one_before_is_running() {
    let t0 = Instant::now();
    let daemon = boot(
        &[
            watcher(
                "proxy",
                "start_secs = \"0\"\ndepends_on = [\"app\"]\npriority = 1",
            ),
            watcher("app", "start_secs = \"1s\"\ndepends_on = [\"db\"]"),
            watcher("db", "start_secs = \"2s\"\npriority = 999"),
        ]
        .concat(),
        Script::default(),
    );
    let waiting = daemon
        .until("app:1", |p| p["reason"] == "waiting for db")
        .await;
    assert_eq!(waiting["state"], "STOPPED", "{waiting}");
    assert_eq!(daemon.process("proxy:1").await["reason"], "waiting for app");
    daemon.after("proxy:1", |p| p["state"] == "RUNNING").await;
    let times: Vec<Duration> = spawns(&daemon, t0).iter().map(|(t, _)| *t).collect();
    // db at once, app when db is RUNNING (2 s), proxy when app is (3 s),
    // whatever their priorities say.
    assert_eq!(
        times,
        [
            Duration::ZERO,
            Duration::from_secs(2),
            Duration::from_secs(3)
        ]
    );
    // Shutdown goes the other way: proxy, then app, then db.
    let pids: Vec<i32> = spawns(&daemon, t0).iter().map(|(_, pid)| *pid).collect();
    let script = daemon.script.clone();
    assert_eq!(daemon.shut_down().await, 0);
    let terms: Vec<i32> = script
        .lock()
        .unwrap()
        .signals
        .iter()
        .filter(|(_, _, s)| *s == TERM)
        .map(|(_, target, _)| target.abs())
        .collect();
    assert_eq!(terms, [pids[2], pids[1], pids[0]]);
}

#[tokio::test(start_paused = true)]
async fn a_diamond_waits_for_both_sides_and_a_one_shot_for_its_completion() {
    let t0 = Instant::now();
    let daemon = boot(
        &[
            watcher("migrate", "restart = \"never\"\nstart_secs = \"5s\""),
            watcher("left", "start_secs = \"1s\"\ndepends_on = [\"migrate\"]"),
            watcher("right", "start_secs = \"3s\"\ndepends_on = [\"migrate\"]"),
            watcher(
                "top",
                "start_secs = \"0\"\ndepends_on = [\"left\", \"right\"]",
            ),
        ]
        .concat(),
        Script::default(),
    );
    let migrate = daemon
        .until("migrate:1", |p| p["state"] == "STARTING")
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The migration ends after half a second: completed, not a failure.
    daemon.exit(migrate["pid"].as_i64().unwrap(), 0);
    let done = daemon.until("migrate:1", |p| p["state"] == "EXITED").await;
    assert_eq!(done["completed"], true, "{done}");
    daemon.after("top:1", |p| p["state"] == "RUNNING").await;
    let times: Vec<Duration> = spawns(&daemon, t0).iter().map(|(t, _)| *t).collect();
    let half = Duration::from_millis(500);
    assert_eq!(
        times,
        [Duration::ZERO, half, half, half + Duration::from_secs(3)]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_dependency_leaves_its_dependents_stopped_with_the_reason() {
    let daemon = Arc::new(boot(
        &[
            watcher("db", "start_retries = 0\nautostart = false"),
            watcher("app", "depends_on = [\"db\"]\nautostart = false"),
            watcher("proxy", "depends_on = [\"app\"]\nautostart = false"),
        ]
        .concat(),
        Script {
            exit_at_once: Some(1),
            ..Script::default()
        },
    ));
    let reply = daemon.ask("start", json!({"names": ["proxy"]})).await;
    let entry = &reply["result"]["processes"][0];
    assert_eq!(entry["ok"], false, "{reply}");
    assert_eq!(
        entry["message"],
        "not started: dependency 'app' failed (app:1: not started: dependency 'db' failed \
         (db:1: FATAL, exited too quickly (exit status 1); gave up after 1 attempts))",
        "{reply}"
    );
    assert_eq!(daemon.process("db:1").await["state"], "FATAL");
    let app = daemon.process("app:1").await;
    assert_eq!(app["state"], "STOPPED", "{app}");
    assert!(
        app["reason"]
            .as_str()
            .unwrap()
            .starts_with("not started: dependency 'db' failed"),
        "{app}"
    );
    // Only db was ever spawned.
    assert_eq!(daemon.spawn_times(Instant::now()).len(), 1);
}

#[tokio::test(start_paused = true)]
async fn starting_a_stopped_stack_by_its_top_starts_what_it_needs_first() {
    let daemon = boot(
        &[
            watcher("db", "start_secs = \"1s\"\nautostart = false"),
            watcher(
                "web",
                "start_secs = \"0\"\nautostart = false\ndepends_on = [\"db\"]",
            ),
            watcher("other", "autostart = false"),
        ]
        .concat(),
        Script::default(),
    );
    let t0 = Instant::now();
    let reply = daemon.ask("start", json!({"names": ["web"]})).await;
    assert_eq!(reply["result"]["processes"][0]["ok"], true, "{reply}");
    assert_eq!(t0.elapsed(), Duration::from_secs(1), "{reply}");
    assert_eq!(daemon.process("db:1").await["state"], "RUNNING");
    assert_eq!(daemon.process("other:1").await["state"], "STOPPED");
    assert_eq!(daemon.shut_down().await, 0);
}

// ----- health ---------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn failing_health_checks_restart_a_running_process_at_the_threshold() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    let t0 = Instant::now();
    let daemon = boot(
        &web(&format!(
            "start_secs = \"0\"\nhealth = {{ tcp = \"{address}\", interval = \"1s\", failures = 3 }}"
        )),
        Script::default(),
    );
    let first = daemon
        .after("web:1", |p| p["health"]["failures"] == 2)
        .await;
    assert_eq!(first["state"], "RUNNING", "{first}");
    let restarted = daemon
        .after("web:1", |p| {
            p["health"]["restarts"] == 1 && p["state"] == "RUNNING"
        })
        .await;
    assert_eq!(restarted["restarts"], 1, "{restarted}");
    // Checks at 1 s, 2 s and 3 s; the third restarts it then.
    assert_eq!(
        daemon.spawn_times(t0),
        [Duration::ZERO, Duration::from_secs(3)]
    );
    let last = restarted["health"]["last_failure"].as_str().unwrap();
    assert!(last.starts_with(&format!("tcp {address}: ")), "{last}");
}

// ----- hooks ----------------------------------------------------------------

#[tokio::test(start_paused = true)]
async fn a_stop_waits_for_before_stop_and_a_process_that_exits_meanwhile_stays_stopped() {
    let daemon = Arc::new(boot(
        &web("start_secs = \"0\"\nrestart = \"always\"\nhooks = { before_stop = \"/bin/true\" }"),
        Script::default(),
    ));
    let pid = daemon.until("web:1", |p| p["state"] == "RUNNING").await["pid"]
        .as_i64()
        .unwrap();
    let stop = {
        let daemon = daemon.clone();
        tokio::spawn(async move { daemon.ask("stop", json!({"names": ["web"]})).await })
    };
    // The hook is spawned; no signal reaches the process while it runs.
    let hook = loop {
        let spawned = spawns(&daemon, Instant::now());
        if spawned.len() == 2 {
            break i64::from(spawned[1].1);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    let target = i32::try_from(pid).unwrap();
    let signalled = daemon.signals_sent(Instant::now());
    assert!(
        signalled.iter().all(|s| s.1.abs() != target),
        "{signalled:?}"
    );
    assert_eq!(daemon.process("web:1").await["state"], "RUNNING");
    // The process dies on its own before the hook ends: the stop asked
    // for goes ahead, and it is not restarted.
    daemon.exit(pid, 1);
    let reply = stop.await.unwrap();
    assert_eq!(reply["result"]["processes"][0]["ok"], true, "{reply}");
    assert_eq!(daemon.process("web:1").await["state"], "STOPPED");
    daemon.exit(hook, 0);
    assert_eq!(spawns(&daemon, Instant::now()).len(), 2, "no respawn");
}
