//! Test harness: a daemon under a kill-on-drop guard, in its own temp dir,
//! with helpers that wait on conditions (never on fixed sleeps).

#![allow(dead_code)]

use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tempfile::TempDir;

/// Generous deadline for conditions that normally hold within milliseconds.
pub const DEADLINE: Duration = Duration::from_secs(20);

pub fn ringmasterd() -> &'static str {
    env!("CARGO_BIN_EXE_ringmasterd")
}

pub fn ringmasterctl() -> &'static str {
    env!("CARGO_BIN_EXE_ringmasterctl")
}

pub fn testkit() -> &'static str {
    env!("CARGO_BIN_EXE_ringmaster-testkit")
}

pub fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// Returns from the test, saying SKIPPED, unless it runs as root; in CI
/// (which runs as root) not being root fails it.
macro_rules! require_root {
    () => {
        if !$crate::support::is_root() {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs the tests as root"
            );
            eprintln!("SKIPPED: this test needs root (CI runs as root)");
            return;
        }
    };
}
pub(crate) use require_root;

/// Polls `check` every 20 ms until it returns `Some`, or panics after
/// `deadline` with `what`.
pub fn wait_until<T>(what: &str, deadline: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A temp dir that other users can traverse (for privilege-drop tests).
pub fn open_dir() -> TempDir {
    let dir = tempfile::Builder::new()
        .prefix("rm-test-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// Copies a binary into `dir` so an unprivileged user can run it whatever
/// the permissions of the build directory.
pub fn copy_binary(src: &str, dir: &Path) -> PathBuf {
    let dest = dir.join(Path::new(src).file_name().unwrap());
    std::fs::copy(src, &dest).unwrap();
    std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o755)).unwrap();
    dest
}

/// A running `ringmasterd` that is killed, with all its descendants, on drop.
pub struct Daemon {
    pub child: Child,
    pub dir: TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub stderr: PathBuf,
}

pub struct Builder {
    dir: TempDir,
    daemon: String,
    body: String,
    env: Vec<(String, String)>,
    extra_fd: bool,
    fsize_blocks: Option<u64>,
    nofile: Option<u64>,
    watchdog_usec: Option<u64>,
    pid1: bool,
    mount_setup: Option<String>,
    socket: Option<PathBuf>,
    stdout: Option<Stdio>,
    stderr: Option<Stdio>,
}

impl Builder {
    /// Extra `[daemon]` keys (socket and logs_dir are always set).
    pub fn daemon(mut self, keys: &str) -> Self {
        self.daemon.push_str(keys);
        self.daemon.push('\n');
        self
    }

    /// Watcher tables and anything else after `[daemon]`.
    pub fn body(mut self, body: &str) -> Self {
        self.body.push_str(body);
        self.body.push('\n');
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Starts the daemon under `ulimit -f BLOCKS` (512-byte blocks).
    pub fn fsize_limit(mut self, blocks: u64) -> Self {
        self.fsize_blocks = Some(blocks);
        self
    }

    /// Starts the daemon under `ulimit -n FILES` (soft and hard).
    pub fn nofile_limit(mut self, files: u64) -> Self {
        self.nofile = Some(files);
        self
    }

    /// Starts the daemon the way systemd starts a unit with WatchdogSec:
    /// WATCHDOG_USEC set, and WATCHDOG_PID naming the daemon itself.
    pub fn watchdog_usec(mut self, usec: u64) -> Self {
        self.watchdog_usec = Some(usec);
        self
    }

    /// Runs the daemon as PID 1 of a new PID namespace (`unshare --pid
    /// --fork --mount-proc`), as in a container. The daemon's child handle
    /// is then unshare's, which exits with the daemon's status.
    pub fn pid1(mut self) -> Self {
        self.pid1 = true;
        self
    }

    /// Runs the daemon in a private mount namespace (`unshare --mount`),
    /// after the shell commands `setup` (mounts that give it a private view
    /// of system paths, leaving the host's untouched). Needs root.
    pub fn mount_namespace(mut self, setup: &str) -> Self {
        self.mount_setup = Some(setup.to_owned());
        self
    }

    /// Where the daemon's socket is (default: rm.sock in the test directory).
    pub fn socket_at(mut self, path: &Path) -> Self {
        self.socket = Some(path.to_path_buf());
        self
    }

    /// The daemon's stdout and stderr (default: daemon.out and daemon.err
    /// in the test directory).
    pub fn stdio(mut self, stdout: Stdio, stderr: Stdio) -> Self {
        self.stdout = Some(stdout);
        self.stderr = Some(stderr);
        self
    }

    /// Leaks a descriptor without close-on-exec into the daemon.
    pub fn leak_fd(mut self) -> Self {
        self.extra_fd = true;
        self
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The test directory, for a daemon started some other way.
    pub fn into_dir(self) -> TempDir {
        self.dir
    }

    pub fn write_config(&self) -> PathBuf {
        let dir = self.dir.path();
        let config = dir.join("ringmaster.toml");
        let text = format!(
            "[daemon]\nsocket = \"{}\"\nlogs_dir = \"{}\"\n{}\n{}",
            self.socket
                .clone()
                .unwrap_or_else(|| dir.join("rm.sock"))
                .display(),
            dir.join("logs").display(),
            self.daemon,
            self.body
                .replace("@TESTKIT@", testkit())
                .replace("@DIR@", &dir.display().to_string()),
        );
        std::fs::write(&config, text).unwrap();
        config
    }

    pub fn start(self) -> Daemon {
        let config = self.write_config();
        self.launch(config)
    }

    /// Starts the daemon on a circus.ini holding `text`, written in this
    /// builder's directory; a circus.ini names no control socket, so
    /// `$RINGMASTER_SOCKET` places it at `rm.sock` there.
    pub fn launch_circus(self, text: &str) -> Daemon {
        let config = self.path().join("circus.ini");
        std::fs::write(&config, text).unwrap();
        let socket = self.path().join("rm.sock");
        self.env("RINGMASTER_SOCKET", socket.to_str().unwrap())
            .launch(config)
    }

    /// Starts the daemon on an existing config file (whose socket must be
    /// `rm.sock` in this builder's directory).
    pub fn launch(mut self, config: PathBuf) -> Daemon {
        let stderr = self.dir.path().join("daemon.err");
        // A shell in front when the daemon needs a limit or its own pid
        // in the environment; it execs the daemon, keeping the pid.
        let mut prelude = Vec::new();
        if let Some(blocks) = self.fsize_blocks {
            prelude.push(format!("ulimit -f {blocks}"));
        }
        if let Some(files) = self.nofile {
            prelude.push(format!("ulimit -n {files}"));
        }
        if let Some(usec) = self.watchdog_usec {
            prelude.push(format!("export WATCHDOG_USEC={usec} WATCHDOG_PID=$$"));
        }
        let mut command = if let Some(setup) = &self.mount_setup {
            assert!(
                prelude.is_empty(),
                "a mount namespace takes no other prelude"
            );
            let mut unshare = Command::new("unshare");
            unshare
                .args(["--mount", "--propagation", "private", "/bin/sh", "-c"])
                .arg(format!("set -e\n{setup}\nexec \"$0\" \"$@\""))
                .arg(ringmasterd());
            unshare
        } else if self.pid1 {
            assert!(prelude.is_empty(), "pid1 takes no shell prelude");
            let mut unshare = Command::new("unshare");
            unshare
                .args(["--pid", "--fork", "--mount-proc"])
                .arg(ringmasterd());
            unshare
        } else if prelude.is_empty() {
            Command::new(ringmasterd())
        } else {
            let mut sh = Command::new("/bin/sh");
            sh.arg("-c")
                .arg(format!("{} && exec \"$0\" \"$@\"", prelude.join(" && ")))
                .arg(ringmasterd());
            sh
        };
        let out = self.stdout.take().unwrap_or_else(|| {
            Stdio::from(File::create(self.dir.path().join("daemon.out")).unwrap())
        });
        let err = self
            .stderr
            .take()
            .unwrap_or_else(|| Stdio::from(File::create(&stderr).unwrap()));
        command
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .env_remove("RINGMASTER_SOCKET");
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let leaked = if self.extra_fd {
            // pipe() without O_CLOEXEC: inherited by the daemon on purpose.
            Some(nix::unistd::pipe().unwrap())
        } else {
            None
        };
        let child = command.spawn().unwrap();
        drop(leaked);
        let mut daemon = Daemon {
            child,
            socket: self
                .socket
                .take()
                .unwrap_or_else(|| self.dir.path().join("rm.sock")),
            config,
            stderr,
            dir: self.dir,
        };
        daemon.wait_ready();
        daemon
    }
}

impl Daemon {
    pub fn builder() -> Builder {
        Builder {
            dir: tempfile::Builder::new()
                .prefix("rm-test-")
                .tempdir()
                .unwrap(),
            daemon: String::new(),
            body: String::new(),
            env: Vec::new(),
            extra_fd: false,
            fsize_blocks: None,
            nofile: None,
            watchdog_usec: None,
            pid1: false,
            mount_setup: None,
            socket: None,
            stdout: None,
            stderr: None,
        }
    }

    /// Starts a daemon whose config is `body` (watchers), with defaults.
    pub fn start(body: &str) -> Daemon {
        Self::builder().body(body).start()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn wait_ready(&mut self) {
        let socket = self.socket.clone();
        let stderr = self.stderr.clone();
        wait_until("the daemon's socket", DEADLINE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "daemon exited early ({status:?}):\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            UnixStream::connect(&socket).ok().map(|_| ())
        });
    }

    /// Runs `ringmasterctl -s SOCKET args...`.
    pub fn ctl(&self, args: &[&str]) -> Output {
        Command::new(ringmasterctl())
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .env_remove("RINGMASTER_SOCKET")
            .output()
            .unwrap()
    }

    /// One raw protocol round trip on a fresh connection.
    pub fn request(&self, cmd: &str, args: Value) -> Value {
        let mut conn = Connection::open(&self.socket);
        conn.call(cmd, args)
    }

    /// Every process as `status` reports it.
    pub fn status(&self) -> Vec<Value> {
        let reply = self.request("status", json!({}));
        assert_eq!(reply["ok"], true, "status failed: {reply}");
        reply["result"]["processes"].as_array().unwrap().clone()
    }

    /// The processes `status` lists, by name, in its order.
    pub fn names(&self) -> Vec<String> {
        self.status()
            .iter()
            .map(|p| p["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn process(&self, name: &str) -> Value {
        self.status()
            .into_iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Waits until `name` is in `state`, returning its status entry.
    pub fn wait_state(&self, name: &str, state: &str) -> Value {
        self.wait_for(&format!("{name} to be {state}"), |p| {
            p["name"] == name && p["state"] == state
        })
    }

    /// Waits until some process entry satisfies `pred`.
    pub fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        wait_until(what, DEADLINE, || {
            self.status().into_iter().find(|p| pred(p))
        })
    }

    /// Waits until every process satisfies `pred`.
    pub fn wait_all(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Vec<Value> {
        wait_until(what, DEADLINE, || {
            let status = self.status();
            status.iter().all(&pred).then_some(status)
        })
    }

    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    /// Waits until the file contains `needle`; returns its content.
    pub fn wait_file(&self, relative: &str, needle: &str) -> String {
        wait_until(&format!("'{needle}' in {relative}"), DEADLINE, || {
            let text = self.read(relative);
            text.contains(needle).then_some(text)
        })
    }

    /// Waits for the daemon to exit and returns its exit code.
    pub fn wait_exit(&mut self, deadline: Duration) -> Option<i32> {
        wait_until("the daemon to exit", deadline, || {
            self.child.try_wait().unwrap()
        })
        .code()
    }

    pub fn signal(&self, signal: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid()), signal).unwrap();
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Sends SIGTERM, waits up to `deadline` for exit 0, and asserts that
    /// the shutdown began stopping `names` in that order (earlier stops,
    /// a rolling restart's, do not count).
    pub fn shut_down_in_order(&mut self, deadline: Duration, names: &[&str]) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        assert_eq!(self.wait_exit(deadline), Some(0));
        let log = self.daemon_log();
        let from = log
            .find("SIGTERM: shutting down")
            .unwrap_or_else(|| panic!("no shutdown in the daemon's log:\n{log}"));
        let stopping = |name: &str| {
            log[from..]
                .find(&format!("RUNNING -> STOPPING process={name}"))
                .unwrap_or_else(|| panic!("{name} was not stopped:\n{log}"))
        };
        for pair in names.windows(2) {
            assert!(
                stopping(pair[0]) < stopping(pair[1]),
                "{} did not stop before {}:\n{log}",
                pair[0],
                pair[1]
            );
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- daemon log ----\n{}", self.daemon_log());
        }
        // Freeze the daemon first so it cannot respawn what we kill.
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGSTOP,
        );
        // Repeat: a child killed while forking may leave a fresh orphan,
        // which the (stopped) subreaper daemon adopts.
        for _ in 0..100 {
            if descendants(self.pid())
                .into_iter()
                .all(|pid| stat_field(pid, 3).as_deref() == Some("Z"))
            {
                break;
            }
            kill_tree(self.pid());
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.remove_cgroups();
    }
}

impl Daemon {
    /// The cgroup the daemon made for its processes (from its log).
    pub fn cgroup_base(&self) -> Option<PathBuf> {
        let log = self.daemon_log();
        let line = log
            .lines()
            .find(|l| l.contains("each process runs in a cgroup of its own"))?;
        let path = line.split("cgroup=").nth(1)?.split_whitespace().next()?;
        Some(PathBuf::from(path))
    }

    /// Removes the cgroups a daemon killed by the test left behind (its
    /// processes are gone: the cgroups are empty, or about to be).
    fn remove_cgroups(&self) {
        let Some(base) = self.cgroup_base() else {
            return;
        };
        for _ in 0..100 {
            if let Ok(entries) = std::fs::read_dir(&base) {
                for entry in entries.flatten() {
                    if entry.file_type().is_ok_and(|t| t.is_dir()) {
                        let _ = std::fs::remove_dir(entry.path());
                    }
                }
            }
            if std::fs::remove_dir(&base).is_ok() || !base.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// All descendants of `root` (from /proc), deepest last.
pub fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            if let Some(ppid) = stat_field(pid, 4).and_then(|f| f.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        for &(pid, ppid) in &parents {
            if ppid == parent && !found.contains(&pid) {
                found.push(pid);
            }
        }
        index += 1;
    }
    found.remove(0);
    found
}

/// Field `n` (1-based, after the comm) of /proc/PID/stat.
pub fn stat_field(pid: i32, n: usize) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 2..];
    after.split_whitespace().nth(n - 3).map(str::to_owned)
}

/// Kills every descendant of `root` and their process groups, by pid.
pub fn kill_tree(root: i32) {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    for pid in descendants(root) {
        if let Some(pgid) = stat_field(pid, 5).and_then(|f| f.parse::<i32>().ok())
            && pgid > 1
            && pgid != root
            && pgid != nix::unistd::getpgrp().as_raw()
        {
            let _ = kill(Pid::from_raw(-pgid), Signal::SIGKILL);
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

/// Whether any process is left in process group `pgid`.
pub fn group_alive(pgid: i32) -> bool {
    !matches!(
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(-pgid), None),
        Err(nix::errno::Errno::ESRCH)
    )
}

pub fn pid_alive(pid: i32) -> bool {
    // A zombie still answers kill(pid, 0); it is not alive for our purposes.
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
        && stat_field(pid, 3).as_deref() != Some("Z")
        && std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
}

/// A raw protocol connection.
pub struct Connection {
    pub stream: UnixStream,
    reader: BufReader<UnixStream>,
    next_id: u64,
}

impl Connection {
    pub fn open(socket: &Path) -> Self {
        let stream = UnixStream::connect(socket).unwrap();
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        Self {
            stream,
            reader,
            next_id: 1,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn read_reply(&mut self) -> Value {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("bad reply {line:?}: {e}"))
    }

    /// One line if it arrives within `wait`, else None.
    pub fn try_read_line(&mut self, wait: Duration) -> Option<Value> {
        self.stream.set_read_timeout(Some(wait)).unwrap();
        let mut line = String::new();
        let read = self.reader.read_line(&mut line);
        self.stream.set_read_timeout(Some(DEADLINE)).unwrap();
        match read {
            Ok(n) if n > 0 => Some(serde_json::from_str(&line).unwrap()),
            _ => None,
        }
    }

    pub fn call(&mut self, cmd: &str, args: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        let line = json!({"id": id, "cmd": cmd, "args": args}).to_string() + "\n";
        self.send_raw(line.as_bytes());
        let reply = self.read_reply();
        assert_eq!(reply["id"], id, "reply to another request: {reply}");
        reply
    }
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Parses `key=value` lines (print-creds) into a map.
pub fn report(text: &str) -> std::collections::BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// A small ext4 filesystem on a loop device, mounted for one test, that
/// can be frozen (`fsfreeze`): every write to it then blocks in the
/// kernel, as on a disk that has stopped answering. Dropping it thaws and
/// unmounts; keep the [`Frozen`] guard's scope inside the daemon's so the
/// disk thaws before the daemon is killed.
pub struct LoopDisk {
    mount: PathBuf,
}

impl LoopDisk {
    /// Makes and mounts the filesystem at `mount` (created if missing).
    /// Needs root and a loop device; fails the test loudly otherwise.
    pub fn mount(mount: &Path) -> LoopDisk {
        assert!(is_root(), "a loop-mounted disk needs root");
        std::fs::create_dir_all(mount).unwrap();
        let image = mount.with_extension("img");
        File::create(&image).unwrap().set_len(64 << 20).unwrap();
        run_tool("mkfs.ext4", &["-q", "-F", image.to_str().unwrap()]);
        run_tool(
            "mount",
            &[
                "-o",
                "loop",
                image.to_str().unwrap(),
                mount.to_str().unwrap(),
            ],
        );
        LoopDisk {
            mount: mount.to_path_buf(),
        }
    }

    /// Freezes the filesystem until the guard is dropped.
    pub fn freeze(&self) -> Frozen<'_> {
        run_tool("fsfreeze", &["-f", self.mount.to_str().unwrap()]);
        Frozen { disk: self }
    }

    fn thaw(&self) {
        let _ = Command::new("fsfreeze")
            .args(["-u", self.mount.to_str().unwrap()])
            .stderr(Stdio::null())
            .status();
    }
}

impl Drop for LoopDisk {
    fn drop(&mut self) {
        self.thaw();
        // Lazy: a process of the test that still has a file open there
        // must not make the unmount (and the test) fail.
        let _ = Command::new("umount")
            .args(["-l", self.mount.to_str().unwrap()])
            .status();
    }
}

/// A frozen [`LoopDisk`]; thaws when dropped.
pub struct Frozen<'a> {
    disk: &'a LoopDisk,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.disk.thaw();
    }
}

fn run_tool(tool: &str, args: &[&str]) {
    let output = Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} (installed by .ci/run): {e}");
    });
    assert!(
        output.status.success(),
        "{tool} {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A program from bench/.venv (created by `python3 bench/run.py --setup`,
/// which CI runs first), or None with a SKIPPED line when it is missing
/// locally. In CI a missing program fails the test.
pub fn venv_program(name: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("bench/.venv/bin")
        .join(name);
    if path.exists() {
        return Some(path);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{} is missing in CI (.ci/run runs bench/run.py --setup)",
        path.display()
    );
    eprintln!(
        "SKIPPED: {} is missing (run `python3 bench/run.py --setup`)",
        path.display()
    );
    None
}

/// A loopback TCP port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.0 GET to 127.0.0.1:`port`; the response, or None if
/// nothing answers.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::Read;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").as_bytes())
        .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.starts_with("HTTP/").then_some(response)
}

/// The TCP addresses `pid` listens on (from /proc/PID/fd and
/// /proc/net/tcp, tcp6), as the kernel writes them (hex).
pub fn tcp_listeners(pid: i32) -> Vec<String> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .filter_map(|target| {
                    let target = target.to_string_lossy().into_owned();
                    Some(
                        target
                            .strip_prefix("socket:[")?
                            .strip_suffix(']')?
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let mut listening = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local address, state (0A: LISTEN), inode.
            if fields.len() > 9 && fields[3] == "0A" && inodes.iter().any(|i| i == fields[9]) {
                listening.push(fields[1].to_owned());
            }
        }
    }
    listening
}

/// The processes in process group `pgid` (from /proc).
pub fn group_members(pgid: i32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<i32>().ok())
        .filter(|&pid| {
            stat_field(pid, 5).and_then(|f| f.parse::<i32>().ok()) == Some(pgid)
                && stat_field(pid, 3).as_deref() != Some("Z")
        })
        .collect()
}

/// Raises this test process's open-file limit to at least `files` (tests
/// that open thousands of connections); root may raise the hard limit.
pub fn raise_nofile(files: u64) {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    if soft >= files {
        return;
    }
    let hard = hard.max(files);
    setrlimit(Resource::RLIMIT_NOFILE, files, hard)
        .unwrap_or_else(|e| panic!("cannot raise the open-file limit to {files}: {e}"));
}

/// Resident memory of `pid` in bytes (VmRSS).
pub fn rss_bytes(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// A program Debian installs (`.ci/run` installs its package), or None with
/// a SKIPPED line when it is missing locally. In CI a missing one fails.
pub fn system_program(name: &str, package: &str) -> Option<PathBuf> {
    for dir in ["/usr/bin", "/usr/sbin", "/usr/local/bin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return Some(path);
        }
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{name} is missing in CI (.ci/run installs the {package} package)"
    );
    eprintln!("SKIPPED: {name} is missing (apt-get install {package})");
    None
}
