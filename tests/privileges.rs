//! What a child gets: identity, groups, umask, limits, directory,
//! environment, descriptors, signal state (test plan D22-D25, C17).

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use crate::support::{Daemon, copy_binary, open_dir, report, require_root, testkit};

/// The user and groups the privilege tests run children as.
struct TestUser {
    name: &'static str,
    uid: u32,
    primary_gid: u32,
    extra_gids: Vec<u32>,
}

const USER: &str = "rmtestuser";
const GROUPS: [&str; 2] = ["rmtest-a", "rmtest-b"];

/// Creates (once per run, idempotently) a user with two supplementary groups.
fn test_user() -> &'static TestUser {
    static USER_ONCE: OnceLock<TestUser> = OnceLock::new();
    USER_ONCE.get_or_init(|| {
        for group in GROUPS {
            if nix::unistd::Group::from_name(group).unwrap().is_none() {
                let status = Command::new("groupadd")
                    .arg(group)
                    .status()
                    .expect("groupadd");
                assert!(status.success(), "groupadd {group} failed");
            }
        }
        if nix::unistd::User::from_name(USER).unwrap().is_none() {
            let status = Command::new("useradd")
                .args([
                    "-M",
                    "-U",
                    "-d",
                    "/home/rmtestuser",
                    "-s",
                    "/bin/sh",
                    "-G",
                    &GROUPS.join(","),
                    USER,
                ])
                .status()
                .expect("useradd");
            assert!(status.success(), "useradd failed");
        }
        let user = nix::unistd::User::from_name(USER).unwrap().unwrap();
        let extra_gids = GROUPS
            .iter()
            .map(|g| {
                nix::unistd::Group::from_name(g)
                    .unwrap()
                    .unwrap()
                    .gid
                    .as_raw()
            })
            .collect();
        TestUser {
            name: USER,
            uid: user.uid.as_raw(),
            primary_gid: user.gid.as_raw(),
            extra_gids,
        }
    })
}

fn groups_of(report: &std::collections::BTreeMap<String, String>) -> BTreeSet<u32> {
    report["groups"]
        .split(',')
        .filter(|g| !g.is_empty())
        .map(|g| g.parse().unwrap())
        .collect()
}

/// Test plan D24: uid, gid and the exact supplementary groups, and HOME,
/// USER, LOGNAME, SHELL from passwd.
#[test]
fn user_gets_exact_identity_groups_and_passwd_environment() {
    require_root!();
    let user = test_user();
    let dir = open_dir();
    let kit = copy_binary(testkit(), dir.path());
    let daemon = Daemon::start(&format!(
        r#"
[watchers.creds]
cmd = "{kit} print-creds"
user = "{name}"
working_dir = "/"
start_secs = "0"

[watchers.env]
cmd = "{kit} print-env"
user = "{name}"
working_dir = "/"
start_secs = "0"
env = {{ SHELL = "/bin/overridden" }}

[watchers.regrouped]
cmd = "{kit} print-creds"
user = "{name}"
group = "{group}"
working_dir = "/"
start_secs = "0"
"#,
        kit = kit.display(),
        name = user.name,
        group = GROUPS[0],
    ));
    let creds = report(&daemon.wait_file("logs/creds-1.out.log", "end"));
    assert_eq!(creds["uid"], user.uid.to_string());
    assert_eq!(creds["euid"], user.uid.to_string());
    assert_eq!(creds["gid"], user.primary_gid.to_string());
    assert_eq!(creds["egid"], user.primary_gid.to_string());
    let mut expected: BTreeSet<u32> = user.extra_gids.iter().copied().collect();
    expected.insert(user.primary_gid);
    assert_eq!(groups_of(&creds), expected, "supplementary groups");

    let env = daemon.wait_file("logs/env-1.out.log", "end");
    assert!(env.contains("env HOME=/home/rmtestuser\n"), "{env}");
    assert!(env.contains("env USER=rmtestuser\n"), "{env}");
    assert!(env.contains("env LOGNAME=rmtestuser\n"), "{env}");
    assert!(
        env.contains("env SHELL=/bin/overridden\n"),
        "env wins over passwd: {env}"
    );

    let regrouped = report(&daemon.wait_file("logs/regrouped-1.out.log", "end"));
    assert_eq!(regrouped["gid"], user.extra_gids[0].to_string());
    let expected: BTreeSet<u32> = user.extra_gids.iter().copied().collect();
    assert_eq!(
        groups_of(&regrouped),
        expected,
        "group replaces the primary group"
    );
    // Children share the daemon's memory until they exec (clone with
    // CLONE_VM): their drop must never reach the daemon's own threads.
    let status = std::fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    for key in ["Uid:", "Gid:"] {
        let line = status.lines().find(|l| l.starts_with(key)).unwrap();
        let ids: Vec<&str> = line.split_whitespace().skip(1).collect();
        assert_eq!(ids, ["0", "0", "0", "0"], "the daemon's {key} {line}");
    }
    let threads = std::fs::read_dir(format!("/proc/{}/task", daemon.pid())).unwrap();
    for thread in threads {
        let status = std::fs::read_to_string(thread.unwrap().path().join("status")).unwrap();
        let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
        assert!(
            uid.split_whitespace().skip(1).all(|id| id == "0"),
            "a thread: {uid}"
        );
    }
}

/// Test plan D24: an unknown user or group is a spawn error, never a child
/// running as root.
#[test]
fn unknown_user_or_group_is_a_spawn_error() {
    let daemon = Daemon::start(
        r#"
[watchers.ghost]
cmd = "@TESTKIT@ print-creds"
user = "no-such-user-ringmaster"
start_retries = 0

[watchers.ghostgroup]
cmd = "@TESTKIT@ print-creds"
group = "no-such-group-ringmaster"
start_retries = 0
"#,
    );
    let ghost = daemon.wait_state("ghost:1", "FATAL");
    assert!(
        ghost["reason"]
            .as_str()
            .unwrap()
            .contains("no such user 'no-such-user-ringmaster'"),
        "{ghost}"
    );
    let group = daemon.wait_state("ghostgroup:1", "FATAL");
    assert!(
        group["reason"].as_str().unwrap().contains("no such group"),
        "{group}"
    );
    assert_eq!(daemon.read("logs/ghost-1.out.log"), "", "something ran");
    assert_eq!(
        daemon.read("logs/ghostgroup-1.out.log"),
        "",
        "something ran"
    );
}

/// Test plan D24/D25, C17: umask, rlimits (configured, and the original soft
/// NOFILE restored otherwise), working_dir relative to the config, only fds
/// 0-2 even when the daemon inherited more, its own process group.
#[test]
fn umask_rlimits_cwd_and_descriptors() {
    let builder = Daemon::builder().leak_fd().body(
        r#"
[watchers.limited]
cmd = "@TESTKIT@ print-creds"
umask = "027"
working_dir = "sub"
rlimits = { nofile = 1234, core = 0 }
start_secs = "0"

[watchers.plain]
cmd = "@TESTKIT@ print-creds"
start_secs = "0"
"#,
    );
    std::fs::create_dir(builder.path().join("sub")).unwrap();
    let daemon = builder.start();
    let limited = report(&daemon.wait_file("logs/limited-1.out.log", "end"));
    assert_eq!(limited["umask"], "0027");
    assert_eq!(limited["rlimit_nofile"], "1234:1234");
    assert_eq!(limited["rlimit_core"], "0:0");
    assert_eq!(limited["cwd"], daemon.path("sub").display().to_string());
    assert_eq!(limited["fds"], "0,1,2", "descriptors leaked into the child");
    assert_eq!(limited["pgid_is_pid"], "true");

    let plain = report(&daemon.wait_file("logs/plain-1.out.log", "end"));
    let (soft, hard) =
        nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE).unwrap();
    assert_eq!(
        plain["rlimit_nofile"],
        format!("{soft}:{hard}"),
        "the daemon's raised limit leaked"
    );
    assert_eq!(
        plain["cwd"],
        daemon.dir.path().display().to_string(),
        "default working_dir is the config's directory"
    );
    assert_eq!(plain["fds"], "0,1,2");
}

/// Test plan C17: no signal blocked or ignored in the child, although the
/// daemon (a Rust program) ignores SIGPIPE itself.
#[test]
fn child_signal_state_is_clean() {
    let daemon = Daemon::start(
        r#"
[watchers.status]
cmd = "cat /proc/self/status"
start_secs = "0"
restart = "never"
"#,
    );
    daemon.wait_state("status:1", "EXITED");
    let text = daemon.wait_file("logs/status-1.out.log", "SigCgt:");
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map_or("?", str::trim)
            .to_owned()
    };
    assert_eq!(field("SigBlk:"), "0000000000000000", "{text}");
    assert_eq!(field("SigIgn:"), "0000000000000000", "{text}");
}

/// Test plan D22: copy_env, env, env_file, placeholders, RINGMASTER_*
/// variables; the daemon's own NOTIFY_SOCKET/LISTEN_*/WATCHDOG_* never leak.
#[test]
fn environment_is_built_explicitly() {
    let builder = Daemon::builder()
        .env("RM_DAEMON_ONLY", "secret")
        .env("NOTIFY_SOCKET", "/run/systemd/notify")
        .env("LISTEN_FDS", "3")
        .env("WATCHDOG_USEC", "1000")
        .body(
            r#"
[watchers.copied]
cmd = "@TESTKIT@ print-env"
numprocesses = 2
start_secs = "0"
env_file = "app.env"
env = { FROM_ENV = "w$(wid)-$(name)", FROM_FILE_REF = "$(env.FILE_VAR)+", HERE = "$(here)" }

[watchers.isolated]
cmd = "@TESTKIT@ print-env"
copy_env = false
start_secs = "0"
env = { ONLY = "this" }
"#,
        );
    std::fs::write(
        builder.path().join("app.env"),
        "# comment\nFILE_VAR=from file\nexport QUOTED=\"a b\"\n",
    )
    .unwrap();
    let daemon = builder.start();
    let dir = daemon.dir.path().display().to_string();
    let copied = daemon.wait_file("logs/copied-2.out.log", "end");
    for line in [
        "env RM_DAEMON_ONLY=secret".to_owned(),
        "env FILE_VAR=from file".to_owned(),
        "env QUOTED=a b".to_owned(),
        "env FROM_ENV=w2-copied".to_owned(),
        "env FROM_FILE_REF=from file+".to_owned(),
        format!("env HERE={dir}"),
        "env RINGMASTER_PROCESS=copied:2".to_owned(),
        "env RINGMASTER_WATCHER=copied".to_owned(),
        "env RINGMASTER_WID=2".to_owned(),
        format!("env RINGMASTER_SOCKET={}", daemon.socket.display()),
    ] {
        assert!(
            copied.lines().any(|l| l == line),
            "missing {line:?} in:\n{copied}"
        );
    }
    for leaked in ["NOTIFY_SOCKET", "LISTEN_FDS", "WATCHDOG_USEC"] {
        assert!(
            !copied.contains(&format!("env {leaked}=")),
            "{leaked} leaked:\n{copied}"
        );
    }
    let isolated = daemon.wait_file("logs/isolated-1.out.log", "end");
    let vars: Vec<&str> = isolated
        .lines()
        .filter_map(|l| l.strip_prefix("env "))
        .map(|l| l.split('=').next().unwrap())
        .collect();
    assert_eq!(
        vars,
        [
            "ONLY",
            "RINGMASTER_PROCESS",
            "RINGMASTER_SOCKET",
            "RINGMASTER_WATCHER",
            "RINGMASTER_WID"
        ],
        "copy_env = false must give only what was configured"
    );
}
