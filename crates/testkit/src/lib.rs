//! `ringmaster-testkit`: a child process for tests and benchmarks.
//!
//! Every mode first prints `ready pid=N` (stdout is line-buffered), so tests
//! synchronise on output rather than on time. Reports are `key=value` lines
//! ending with `end`.
//!
//! Modes:
//! - `sleep`: wait forever.
//! - `exit CODE [MS]`: exit with CODE (`wid`: RINGMASTER_WID % 256), after MS milliseconds.
//! - `term-log FILE`: on SIGTERM, append RINGMASTER_PROCESS to FILE and exit 0.
//! - `fail-once MARKER`: exit 1 if MARKER does not exist (creating it), else sleep.
//! - `print-creds`: uid, gids, groups, umask, rlimits, signal masks, cwd, fds; then sleep.
//! - `print-env`: the environment, sorted; then sleep.
//! - `ignore-term`: ignore SIGTERM, sleep.
//! - `group-ignore-term`: start a group member that ignores SIGTERM, then sleep.
//! - `hold-pipe-setsid`: start a member that leaves the group (setsid) holding stdout, then sleep.
//! - `orphan-storm N MS`: start a child that starts N `nap MS` grandchildren and exits at once, then sleep.
//! - `nap MS`: sleep MS milliseconds and exit 0 (silently).
//! - `stamp FILE`: append "PID NANOS" (wall clock, right after exec) to FILE, then sleep (silently).
//! - `lines COUNT`: write COUNT numbered lines of exactly 100 bytes to stdout (no `ready`), then exit 0.
//! - `spew BYTES [exit|hang]`: write BYTES numbered bytes to stdout, then exit 0 or sleep.
//! - `access-log COUNT MS`: write COUNT numbered 50-byte lines to stdout, one write(2) every MS
//!   milliseconds (a web worker's access log), then sleep (silently).
//! - `sockets`: what was passed, as watchexec's test-socketfd reports it: `listen_fds`,
//!   `listen_fdnames`, `listen_pid_is_self`, then per open descriptor from 3 (and a socket on
//!   0-2) `fdN=KIND ADDRESS inheritable|cloexec listening|bound`, the open descriptors, and
//!   `end`; then sleep.
//! - `http-late MS ADDR [ANSWER_MS]`: after MS milliseconds, listen on ADDR itself and answer
//!   every request (ANSWER_MS milliseconds after it came) with `200 OK` and
//!   `RINGMASTER_PROCESS pid=N`, for ever.
//! - `notify-late MS [child]`: after MS milliseconds send `READY=1` to `$NOTIFY_SOCKET` (with
//!   `child`, from a child process that lives on, as a forking server's), print `notified`, then
//!   sleep.
//! - `serve [MS]`: accept on fd 3 (or fd 0 with `stdin`) and answer each connection with
//!   `RINGMASTER_PROCESS pid=N` (after MS milliseconds); on SIGTERM finish the request in
//!   hand and exit 0.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Runs the mode named by `args` (without argv[0]); returns the exit code.
pub fn run(args: &[String]) -> i32 {
    let mode = args.first().map_or("sleep", String::as_str);
    let arg = |i: usize| args.get(i).map(String::as_str);
    if let Some(code) = run_silent(mode, arg(1), arg(2)) {
        return code;
    }
    // Handlers go in before "ready", so a test that saw "ready" may signal.
    let terminated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    if matches!(mode, "ignore-term" | "term-log") {
        let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, terminated.clone());
    }
    println!("ready pid={}", std::process::id());
    match mode {
        "sleep" => sleep_forever(),
        "exit" => {
            std::thread::sleep(Duration::from_millis(number(arg(2), 0)));
            if arg(1) == Some("wid") {
                let wid = std::env::var("RINGMASTER_WID").ok();
                return (number(wid.as_deref(), 0) % 256) as i32;
            }
            number(arg(1), 0) as i32
        }
        "term-log" => term_log(arg(1), &terminated),
        "fail-once" => fail_once(arg(1)),
        "print-creds" => {
            print_creds();
            sleep_forever()
        }
        "print-env" => {
            print_env();
            sleep_forever()
        }
        "ignore-term" => {
            println!("ignoring TERM");
            sleep_forever()
        }
        "group-ignore-term" => {
            let member = spawn_self(&["term-ignorer"]);
            println!("member pid={member}");
            sleep_forever()
        }
        "hold-pipe-setsid" => {
            spawn_self(&["escapee"]);
            sleep_forever()
        }
        "orphan-storm" => {
            let (count, nap) = (number(arg(1), 100), number(arg(2), 50));
            let mut parent = Command::new(self_exe());
            parent.args(["storm-parent", &count.to_string(), &nap.to_string()]);
            let _ = parent.status();
            println!("storm done");
            sleep_forever()
        }
        "storm-parent" => {
            storm_parent(number(arg(1), 100), number(arg(2), 50));
            0
        }
        "sockets" => {
            print_sockets();
            sleep_forever()
        }
        "serve" => serve(arg(1)),
        "http-late" => http_late(number(arg(1), 0), arg(2), number(arg(3), 0)),
        "notify-late" => {
            std::thread::sleep(Duration::from_millis(number(arg(1), 0)));
            if arg(2) == Some("child") {
                // A forking server: the child that notifies lives on.
                let _ = Command::new(self_exe()).arg("notify-now").spawn();
            } else {
                notify_ready();
            }
            println!("notified");
            sleep_forever()
        }
        "notify-now" => {
            notify_ready();
            sleep_forever()
        }
        "spew" => {
            spew(number(arg(1), 1024));
            if arg(2) == Some("hang") {
                sleep_forever()
            }
            0
        }
        other => {
            eprintln!("unknown mode '{other}'");
            2
        }
    }
}

/// The modes that print no `ready` line; `None` for the others.
fn run_silent(mode: &str, arg: Option<&str>, arg2: Option<&str>) -> Option<i32> {
    match mode {
        "stamp" => {
            stamp(arg);
            sleep_forever()
        }
        "lines" => {
            write_lines(number(arg, 1000));
            Some(0)
        }
        "nap" => {
            std::thread::sleep(Duration::from_millis(number(arg, 10)));
            Some(0)
        }
        "access-log" => {
            let count = number(arg, 1000);
            access_log(count, Duration::from_millis(number(arg2, 10)));
            sleep_forever()
        }
        "term-ignorer" => {
            ignore_term();
            sleep_forever()
        }
        "escapee" => {
            let _ = nix::unistd::setsid();
            println!("escapee pid={}", std::process::id());
            std::thread::sleep(Duration::from_secs(60));
            Some(0)
        }
        _ => None,
    }
}

/// Appends "PID NANOS" to `file`, the time taken first thing after exec.
fn stamp(file: Option<&str>) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    if let Some(file) = file
        && let Ok(mut out) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(file)
    {
        // One write(2), so a reader never sees half a line.
        let line = format!("{} {now}\n", std::process::id());
        let _ = out.write_all(line.as_bytes());
    }
}

/// Waits for SIGTERM, then appends RINGMASTER_PROCESS to `file`.
fn term_log(file: Option<&str>, terminated: &std::sync::atomic::AtomicBool) -> i32 {
    let Some(file) = file else {
        eprintln!("term-log needs a file");
        return 2;
    };
    while !terminated.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(5));
    }
    let name = std::env::var("RINGMASTER_PROCESS").unwrap_or_default();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file);
    if let Ok(mut log) = log {
        // One write(2): several processes append to the same file.
        let _ = log.write_all(format!("{name}\n").as_bytes());
    }
    0
}

/// Exits 1 the first time (leaving `marker`), sleeps ever after.
fn fail_once(marker: Option<&str>) -> i32 {
    let Some(marker) = marker else {
        eprintln!("fail-once needs a marker path");
        return 2;
    };
    if std::path::Path::new(marker).exists() {
        sleep_forever()
    }
    let _ = std::fs::write(marker, b"failed once\n");
    1
}

/// The environment, sorted, as `env K=V` lines, then `end`.
fn print_env() {
    let mut vars: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    vars.sort();
    for (k, v) in vars {
        println!("env {k}={v}");
    }
    println!("end");
}

/// Starts `count` silent `nap MS` children and returns without waiting:
/// they become orphans.
fn storm_parent(count: u64, nap: u64) {
    for _ in 0..count {
        let _ = Command::new(self_exe())
            .args(["nap", &nap.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
    }
}

fn number(text: Option<&str>, default: u64) -> u64 {
    text.and_then(|t| t.parse().ok()).unwrap_or(default)
}

fn self_exe() -> std::path::PathBuf {
    std::env::current_exe().unwrap_or_else(|_| "ringmaster-testkit".into())
}

/// Starts a helper and returns its pid; it is deliberately never waited
/// for (it outlives us or dies with us, as each mode intends).
#[allow(clippy::zombie_processes)]
fn spawn_self(args: &[&str]) -> u32 {
    match Command::new(self_exe()).args(args).spawn() {
        Ok(child) => child.id(),
        Err(err) => {
            eprintln!("cannot spawn helper: {err}");
            std::process::exit(2)
        }
    }
}

fn ignore_term() {
    // A registered handler that does nothing is, for the sender, a SIGTERM
    // that does not kill.
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, flag);
}

fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn spew(total: u64) {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut written = 0u64;
    let mut line = 0u64;
    while written < total {
        let text = format!(
            "{line:09} spew line with some padding to reach a hundred bytes of payload..........................\n"
        );
        let take = (total - written).min(text.len() as u64) as usize;
        if out.write_all(&text.as_bytes()[..take]).is_err() {
            return;
        }
        written += take as u64;
        line += 1;
    }
    let _ = out.flush();
}

/// Writes `count` lines of exactly 100 bytes, `NNNNNNNNNN ` then a fixed
/// filler, in 64 KiB writes (what a chatty, well-buffered program does).
fn write_lines(count: u64) {
    const FILLER: &[u8; 88] =
        b"ringmaster log throughput line: every byte must arrive, in order, exactly once..........";
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut buf = Vec::with_capacity(64 * 1024 + 100);
    for n in 0..count {
        let _ = write!(buf, "{n:010} ");
        buf.extend_from_slice(FILLER);
        buf.push(b'\n');
        if buf.len() >= 64 * 1024 - 100 {
            if out.write_all(&buf).is_err() {
                return;
            }
            buf.clear();
        }
    }
    let _ = out.write_all(&buf);
    let _ = out.flush();
}

/// One 50-byte line per write(2) every `interval`, on a fixed schedule
/// (a late line does not push the others back), as a web worker's access
/// log: `NNNNNNNN GET /index.html HTTP/1.1 200 512 0.003ms\n`.
fn access_log(count: u64, interval: Duration) {
    let mut out = std::io::stdout();
    let start = std::time::Instant::now();
    for n in 0..count {
        let line = format!("{n:08} GET /index.html HTTP/1.1 200 512 0.003ms\n");
        debug_assert_eq!(line.len(), 50);
        // Rust's stdout is line-buffered: one write(2) per line.
        if out.write_all(line.as_bytes()).is_err() || out.flush().is_err() {
            return;
        }
        let next = start + interval * u32::try_from(n + 1).unwrap_or(u32::MAX);
        std::thread::sleep(next.saturating_duration_since(std::time::Instant::now()));
    }
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

fn print_creds() {
    use nix::sys::resource::{Resource, getrlimit};
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let mut groups: Vec<u32> = nix::unistd::getgroups()
        .unwrap_or_default()
        .into_iter()
        .map(nix::unistd::Gid::as_raw)
        .collect();
    groups.sort_unstable();
    let groups: Vec<String> = groups.iter().map(ToString::to_string).collect();
    println!("uid={}", nix::unistd::getuid());
    println!("euid={}", nix::unistd::geteuid());
    println!("gid={}", nix::unistd::getgid());
    println!("egid={}", nix::unistd::getegid());
    println!("groups={}", groups.join(","));
    println!("umask={}", status_field(&status, "Umask:"));
    for (name, resource) in [
        ("nofile", Resource::RLIMIT_NOFILE),
        ("core", Resource::RLIMIT_CORE),
    ] {
        let (soft, hard) = getrlimit(resource).unwrap_or((0, 0));
        println!("rlimit_{name}={soft}:{hard}");
    }
    println!("sigblk={}", status_field(&status, "SigBlk:"));
    println!("sigign={}", status_field(&status, "SigIgn:"));
    println!(
        "pgid_is_pid={}",
        nix::unistd::getpgrp() == nix::unistd::getpid()
    );
    println!(
        "cwd={}",
        std::env::current_dir()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    );
    let fds: Vec<String> = open_fds().iter().map(i32::to_string).collect();
    println!("fds={}", fds.join(","));
    println!("end");
}

/// The descriptors open in this process, in order. Listing /proc/self/fd
/// opens one for the listing itself: only those still open afterwards.
fn open_fds() -> Vec<i32> {
    let listed: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map(|dir| {
            dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut open: Vec<i32> = listed
        .into_iter()
        .filter(|fd| std::fs::read_link(format!("/proc/self/fd/{fd}")).is_ok())
        .collect();
    open.sort_unstable();
    open
}

/// Reports the descriptors passed from 3 on and the systemd variables.
fn print_sockets() {
    let var = |name: &str| std::env::var(name).unwrap_or_else(|_| "-".into());
    println!("listen_fds={}", var("LISTEN_FDS"));
    println!("listen_fdnames={}", var("LISTEN_FDNAMES"));
    let own = std::env::var("LISTEN_PID").ok() == Some(std::process::id().to_string());
    println!("listen_pid_is_self={own}");
    let open = open_fds();
    // Every socket on 0..=2, and whatever else is open from 3 on.
    for &fd in &open {
        if fd >= 3 || is_socket(fd) {
            println!("fd{fd}={}", describe_socket(fd));
        }
    }
    let open: Vec<String> = open.iter().map(i32::to_string).collect();
    println!("fds={}", open.join(","));
    println!("end");
}

/// Descriptor `raw` as the supervisor passed it. std has no safe way to
/// name a descriptor a process inherited by number, hence the one
/// `unsafe` of the testkit.
#[allow(unsafe_code)]
fn inherited(raw: i32) -> Option<std::os::fd::BorrowedFd<'static>> {
    if std::fs::read_link(format!("/proc/self/fd/{raw}")).is_err() {
        return None;
    }
    // SAFETY: the descriptor is open (listed in /proc/self/fd just now),
    // and this process never closes a descriptor it inherited.
    Some(unsafe { std::os::fd::BorrowedFd::borrow_raw(raw) })
}

fn is_socket(fd: i32) -> bool {
    let Some(fd) = inherited(fd) else {
        return false;
    };
    nix::sys::stat::fstat(fd).is_ok_and(|st| st.st_mode & libc_s_ifmt() == libc_s_ifsock())
}

fn libc_s_ifmt() -> u32 {
    nix::libc::S_IFMT
}

fn libc_s_ifsock() -> u32 {
    nix::libc::S_IFSOCK
}

/// `tcp 127.0.0.1:8000 inheritable listening`, or what is wrong with it.
fn describe_socket(raw: i32) -> String {
    use nix::sys::socket::{SockaddrLike, SockaddrStorage, getsockname, getsockopt, sockopt};
    if !is_socket(raw) {
        return "not-a-socket".into();
    }
    let Some(fd) = inherited(raw) else {
        return "closed".into();
    };
    let kind = match getsockopt(&fd, sockopt::SockType) {
        Ok(nix::sys::socket::SockType::Stream) => "stream",
        Ok(nix::sys::socket::SockType::Datagram) => "dgram",
        _ => "other",
    };
    let address = match getsockname::<SockaddrStorage>(raw) {
        Ok(addr) => match addr.family() {
            Some(nix::sys::socket::AddressFamily::Inet) => {
                addr.as_sockaddr_in().map_or("?".into(), |a| {
                    format!("inet {}", std::net::SocketAddrV4::from(*a))
                })
            }
            Some(nix::sys::socket::AddressFamily::Inet6) => {
                addr.as_sockaddr_in6().map_or("?".into(), |a| {
                    format!("inet6 {}", std::net::SocketAddrV6::from(*a))
                })
            }
            Some(nix::sys::socket::AddressFamily::Unix) => {
                addr.as_unix_addr().map_or("?".into(), |a| {
                    format!(
                        "unix {}",
                        a.path().map_or("?".into(), |p| p.display().to_string())
                    )
                })
            }
            _ => "other".into(),
        },
        Err(err) => format!("unnamed({err})"),
    };
    let flags = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_GETFD).unwrap_or(0);
    let inheritable = if flags & nix::libc::FD_CLOEXEC == 0 {
        "inheritable"
    } else {
        "cloexec"
    };
    let listening = if getsockopt(&fd, sockopt::AcceptConn).unwrap_or(false) {
        "listening"
    } else {
        "bound"
    };
    format!("{kind} {address} {inheritable} {listening}")
}

/// Accepts on the passed socket, answering who answered, until SIGTERM:
/// then, like a web server's graceful stop, it finishes the request in
/// hand and exits, leaving the backlog to the other workers.
fn serve(arg: Option<&str>) -> i32 {
    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
    let raw = if arg == Some("stdin") { 0 } else { 3 };
    let delay = Duration::from_millis(number(arg.filter(|a| *a != "stdin"), 0));
    let Some(listener) = inherited(raw) else {
        eprintln!("no descriptor {raw} to serve on");
        return 3;
    };
    let terminated = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let _ = signal_hook::flag::register(signal_hook::consts::SIGTERM, terminated.clone());
    // Shared with the other workers: each polls, and one that loses the
    // race for a connection gets EAGAIN instead of blocking.
    let _ = nix::fcntl::fcntl(
        listener,
        nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
    );
    let name = std::env::var("RINGMASTER_PROCESS").unwrap_or_default();
    let answer = format!("{name} pid={}\n", std::process::id());
    while !terminated.load(std::sync::atomic::Ordering::Relaxed) {
        let mut ready = [PollFd::new(listener, PollFlags::POLLIN)];
        if !matches!(poll(&mut ready, PollTimeout::from(50u16)), Ok(n) if n > 0) {
            continue;
        }
        match nix::sys::socket::accept(listener) {
            Ok(conn) => {
                std::thread::sleep(delay);
                let _ = nix::fcntl::fcntl(
                    &conn,
                    nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::empty()),
                );
                let _ = nix::unistd::write(&conn, answer.as_bytes());
            }
            Err(nix::errno::Errno::EAGAIN | nix::errno::Errno::EINTR) => {}
            Err(err) => {
                eprintln!("accept failed: {err}");
                return 3;
            }
        }
    }
    0
}

/// Listens on `address` only after `delay_ms`, then answers HTTP requests.
fn http_late(delay_ms: u64, address: Option<&str>, answer_ms: u64) -> i32 {
    use std::io::Read;
    std::thread::sleep(Duration::from_millis(delay_ms));
    let Some(address) = address else {
        eprintln!("http-late needs an address");
        return 2;
    };
    let listener = match std::net::TcpListener::bind(address) {
        Ok(listener) => listener,
        Err(err) => {
            eprintln!("cannot listen on {address}: {err}");
            return 3;
        }
    };
    println!("listening on {address}");
    let name = std::env::var("RINGMASTER_PROCESS").unwrap_or_default();
    let body = format!("{name} pid={}\n", std::process::id());
    let answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    for conn in listener.incoming() {
        let Ok(mut conn) = conn else { continue };
        // The request's head, or what comes of it (a bare connect sends none).
        let mut head = [0u8; 4096];
        let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
        let _ = conn.read(&mut head);
        std::thread::sleep(Duration::from_millis(answer_ms));
        let _ = conn.write_all(answer.as_bytes());
    }
    0
}

/// Sends `READY=1` to `$NOTIFY_SOCKET`, as sd_notify(3) does (`@` is the
/// abstract namespace).
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    let Ok(target) = std::env::var("NOTIFY_SOCKET") else {
        eprintln!("no NOTIFY_SOCKET");
        return;
    };
    let address = match target.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()),
        None => std::os::unix::net::SocketAddr::from_pathname(&target),
    };
    let sent = std::os::unix::net::UnixDatagram::unbound()
        .and_then(|socket| socket.send_to_addr(b"STATUS=up\nREADY=1\n", &address?));
    if let Err(err) = sent {
        eprintln!("cannot notify {target}: {err}");
    }
}
