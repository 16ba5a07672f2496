//! Issue 16, an operator's day: `--check` catches what will fail, in one
//! pass, and says which file or directory is in the way.

use std::os::unix::fs::PermissionsExt;
use std::process::Command;

use crate::support::{require_root, ringmasterd, stderr, stdout};

/// `ringmasterd --check [--strict]` on `text` in `dir`, optionally as
/// another user (through setpriv); (exit code, stdout, stderr).
fn check_as(
    dir: &std::path::Path,
    text: &str,
    as_user: Option<&str>,
    strict: bool,
) -> (Option<i32>, String, String) {
    let path = dir.join("ringmaster.toml");
    std::fs::write(&path, text).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut command = match as_user {
        Some(user) => {
            let mut c = Command::new("setpriv");
            // 65534: nogroup on Debian, nobody elsewhere.
            c.args(["--reuid", user, "--regid", "65534", "--clear-groups"]);
            c.arg(ringmasterd());
            c
        }
        None => Command::new(ringmasterd()),
    };
    command.arg("--check");
    if strict {
        command.arg("--strict");
    }
    let output = command.arg(&path).output().unwrap();
    (output.status.code(), stdout(&output), stderr(&output))
}

fn daemon_table(dir: &std::path::Path) -> String {
    format!(
        "[daemon]\nsocket = \"{0}/rm.sock\"\nlogs_dir = \"{0}/logs\"\n",
        dir.display()
    )
}

#[test]
fn check_reports_every_problem_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[watchers.web]\ncmd = \"no-such-tool-rm --flag\"\nrestrat = \"always\"\n\
         [watchers.worker]\ncmd = \"sleep 1\"\nuser = \"no-such-user-rm\"\n\
         [watchers.plain]\ncmd = \"{}/not-executable\"\n",
        daemon_table(dir.path()),
        dir.path().display()
    );
    std::fs::write(dir.path().join("not-executable"), "#!/bin/sh\n").unwrap();
    let (code, _, err) = check_as(dir.path(), &text, None, false);
    assert_eq!(code, Some(1), "{err}");
    let config = dir.path().join("ringmaster.toml");
    let config = config.display();
    for want in [
        format!("{config}:6:1: watchers.web.restrat: unknown key (did you mean 'restart'?)"),
        format!(
            "{config}:5:1: watchers.web.cmd: command not found: 'no-such-tool-rm' is in no directory of the PATH the process gets"
        ),
        format!("{config}:9:1: watchers.worker.user: no such user 'no-such-user-rm'"),
        format!(
            "{config}:11:1: watchers.plain.cmd: {}/not-executable is not executable by",
            dir.path().display()
        ),
    ] {
        assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    }
}

/// The venv made from a Python under a private home: the script is fine,
/// what cannot run is the interpreter its #! names, and that is what is
/// said (it used to be "permission denied" on the script).
#[test]
fn check_names_an_interpreter_out_of_reach() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let python = home.join("python3");
    std::fs::write(&python, "").unwrap();
    std::fs::set_permissions(&python, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).unwrap();
    let script = dir.path().join("gunicorn");
    std::fs::write(&script, format!("#!{}\nimport sys\n", python.display())).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let text = format!(
        "{}[watchers.web]\ncmd = \"{} app:app\"\nuser = \"nobody\"\n",
        daemon_table(dir.path()),
        script.display()
    );
    let (code, _, err) = check_as(dir.path(), &text, None, false);
    assert_eq!(code, Some(1), "{err}");
    let want = format!(
        "watchers.web.cmd: {} starts with #!{}, and user 'nobody' cannot enter {} (mode 700)",
        script.display(),
        python.display(),
        home.display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
}

/// Checked as the user the daemon runs as: `user =` needs root, and log
/// files must be writable by that user.
#[test]
fn check_as_a_plain_user_reports_user_switches_and_unwritable_logs() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let locked = dir.path().join("locked");
    std::fs::create_dir(&locked).unwrap();
    let text = format!(
        "[daemon]\nsocket = \"/tmp/rm-operator-never.sock\"\nlogs_dir = \"/tmp\"\n\
         [watchers.web]\ncmd = \"/bin/sleep 1\"\nuser = \"root\"\n\
         [watchers.logs]\ncmd = \"/bin/sleep 1\"\nstdout = {{ file = \"{}/out.log\" }}\n",
        locked.display()
    );
    let (code, _, err) = check_as(dir.path(), &text, Some("nobody"), false);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("watchers.web.user: cannot run as user 'root': the daemon is not running as root (ringmasterd --check asks as the user it runs as"),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "watchers.logs.stdout: log file {}/out.log cannot be created: {} is not writable by the daemon",
            locked.display(),
            locked.display()
        )),
        "{err}"
    );
}

/// A working directory that does not exist yet may be created before the
/// process starts: a warning, which --strict makes an error.
#[test]
fn a_missing_working_dir_is_a_warning_that_strict_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[watchers.app]\ncmd = \"/bin/sleep 1\"\nworking_dir = \"{}/not-yet\"\n",
        daemon_table(dir.path()),
        dir.path().display()
    );
    let (code, out, err) = check_as(dir.path(), &text, None, false);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains(": OK"), "{out}");
    let want = format!(
        "warning: {}:6:1: watchers.app.working_dir: {}/not-yet does not exist (yet?): the process cannot start unless something creates it first",
        dir.path().join("ringmaster.toml").display(),
        dir.path().display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    let (code, _, err) = check_as(dir.path(), &text, None, true);
    assert_eq!(code, Some(1), "{err}");
}

/// Shell syntax in a command no shell runs is said, in both dialects, at
/// the line and key of the command; quoted, it is not.
#[test]
fn shell_syntax_without_a_shell_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[watchers.web]\ncmd = \"echo hi && sleep 100 | cat\"\n\
         [watchers.quoted]\ncmd = \"grep -e '&&' '*.log'\"\n\
         [watchers.shell]\ncmd = \"echo hi && sleep 100\"\nshell = true\n",
        daemon_table(dir.path())
    );
    let (code, _, err) = check_as(dir.path(), &text, None, false);
    assert_eq!(code, Some(0), "{err}");
    let config = dir.path().join("ringmaster.toml");
    let want = format!(
        "warning: {}:5:7: watchers.web.cmd: looks like shell syntax (&&), but no shell runs this command: set shell = true or use args",
        config.display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
    assert_eq!(err.matches("looks like shell syntax").count(), 1, "{err}");

    let conf = dir.path().join("supervisord.conf");
    std::fs::write(
        &conf,
        format!(
            "[unix_http_server]\nfile = {}/s.sock\n[supervisord]\n[program:app]\ncommand = /bin/echo $HOME > /tmp/out\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let output = Command::new(ringmasterd())
        .arg("--check")
        .arg(&conf)
        .output()
        .unwrap();
    let err = stderr(&output);
    let want = format!(
        "{}:5: program:app.command: looks like shell syntax ($HOME)",
        conf.display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
}

/// A group of a multi-process watcher, with no process_name: its
/// processes are site:web_1, site:web_2 (it used to be refused), and each
/// name works in commands.
#[test]
fn a_group_of_a_multi_process_watcher_names_its_processes() {
    let daemon = crate::support::Daemon::start(
        "[watchers.web]\ncmd = \"@TESTKIT@ sleep\"\nnumprocesses = 2\nstart_secs = \"0\"\n\
         [watchers.celery]\ncmd = \"@TESTKIT@ sleep\"\nstart_secs = \"0\"\n\
         [groups]\nsite = [\"web\", \"celery\"]\n",
    );
    let aliases: Vec<String> = daemon
        .wait_all("all running", |p| p["state"] == "RUNNING")
        .iter()
        .map(|p| p["alias"].as_str().unwrap_or("").to_owned())
        .collect();
    assert_eq!(aliases, ["site:web_1", "site:web_2", "site:celery"]);
    let stopped = daemon.ctl(&["stop", "site:web_2"]);
    assert!(stopped.status.success(), "{stopped:?}");
    assert_eq!(daemon.process("web:2")["state"], "STOPPED");
    assert_eq!(daemon.process("web:1")["state"], "RUNNING");
}

/// A process with an alias is called by it wherever a person reads it:
/// status, replies, pid, tail prefixes, events and the daemon's log; its
/// `web:1` still works as input, and --json carries both.
#[test]
fn a_process_is_called_by_one_name_everywhere() {
    let daemon = crate::support::Daemon::start(
        "[watchers.gunicorn]\ncmd = \"@TESTKIT@ sleep\"\nnumprocesses = 2\nstart_secs = \"0\"\n\
         process_name = \"gunicorn_$(wid-1:02)\"\n[groups]\nmyapp = [\"gunicorn\"]\n",
    );
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    let text = |args: &[&str]| crate::support::stdout(&daemon.ctl(args));
    let restarted = text(&["restart", "gunicorn:1"]);
    assert!(restarted.starts_with("myapp:gunicorn_00: "), "{restarted}");
    let pids = text(&["pid", "gunicorn"]);
    assert!(pids.starts_with("myapp:gunicorn_00 "), "{pids}");
    assert!(pids.contains("\nmyapp:gunicorn_01 "), "{pids}");
    let tail = text(&["tail", "gunicorn"]);
    assert!(tail.contains("myapp:gunicorn_00 | ready pid="), "{tail}");
    let json: serde_json::Value =
        serde_json::from_str(&text(&["--json", "restart", "myapp:gunicorn_01"])).unwrap();
    assert_eq!(json["processes"][0]["name"], "gunicorn:2");
    assert_eq!(json["processes"][0]["alias"], "myapp:gunicorn_01");
    // Events carry both; the log says the alias.
    let mut events = crate::support::Connection::open(&daemon.socket);
    events.send_raw(b"{\"id\":1,\"cmd\":\"events\"}\n");
    // Until the stream is subscribed, restart: each round makes events.
    let event = loop {
        assert!(daemon.ctl(&["restart", "gunicorn:2"]).status.success());
        if let Some(event) = events.try_read_line(std::time::Duration::from_millis(200)) {
            break event;
        }
    };
    assert_eq!(event["event"]["process"], "gunicorn:2", "{event}");
    assert_eq!(event["event"]["alias"], "myapp:gunicorn_01", "{event}");
    let log = daemon.daemon_log();
    assert!(log.contains("myapp:gunicorn_01"), "{log}");
    assert!(!log.contains("process=gunicorn:2"), "{log}");
}

/// supervisorctl's and circusctl's habits work, and their commands that
/// ringmaster does not have say what to do instead.
#[test]
fn supervisorctl_and_circusctl_habits() {
    let daemon = crate::support::Daemon::start(
        "[watchers.web]\ncmd = \"@TESTKIT@ sleep\"\nnumprocesses = 2\nstart_secs = \"0\"\n\
         [watchers.ticker]\ncmd = \"@TESTKIT@ lines 20\"\nstart_secs = \"0\"\nrestart = \"never\"\n",
    );
    daemon.wait_all("settled", |p| {
        p["state"] == "RUNNING" || p["state"] == "EXITED"
    });
    let socket = daemon.socket.display().to_string();
    let run = |args: &[&str]| {
        Command::new(crate::support::ringmasterctl())
            .args(args)
            .env_remove("RINGMASTER_SOCKET")
            .output()
            .unwrap()
    };
    // Options after the command.
    let status = run(&["status", "web", "-s", &socket]);
    assert_eq!(status.status.code(), Some(0), "{status:?}");
    assert!(stdout(&status).contains("web:2"), "{status:?}");
    let text = |args: &[&str]| stdout(&daemon.ctl(args));
    assert_eq!(text(&["update"]), text(&["reload"]));
    assert_eq!(
        text(&["avail"]),
        "web     in use  2 processes, 2 running\nticker  in use  1 process, 0 running\n"
    );
    assert_eq!(text(&["list"]), text(&["avail"]));
    assert_eq!(text(&["numprocesses", "web"]), "2\n");
    // supervisorctl's tail -N.
    let tail = text(&["tail", "-3", "ticker:1"]);
    assert_eq!(tail.lines().count(), 3, "{tail}");
    assert!(
        tail.lines().last().unwrap().starts_with("0000000019 "),
        "{tail}"
    );
    for (word, says) in [
        (
            "add",
            "`add`: ringmaster reads watchers from the configuration file: add it there and run `reload`",
        ),
        (
            "rm",
            "`rm`: ringmaster reads watchers from the configuration file",
        ),
        (
            "fg",
            "`fg`: ringmasterctl has no fg: `tail -f NAME` follows a process's output",
        ),
        ("listen", "`listen`: `events` streams every state change"),
    ] {
        let output = daemon.ctl(&[word, "web"]);
        assert_eq!(output.status.code(), Some(2), "{word}: {output:?}");
        assert!(
            stderr(&output).contains(says),
            "{word}: {}",
            stderr(&output)
        );
    }
    let quit = daemon.ctl(&["quit"]);
    assert!(stdout(&quit).starts_with("shut down ("), "{quit:?}");
}

/// A user's ringmasterctl, with no socket given, against a root daemon on
/// the system socket: its own default holds a stale socket, so the system
/// one is tried too, and the error names both (run in a mount namespace
/// with a /run of its own, so the system path is this test's).
#[test]
fn a_plain_user_finds_the_system_socket_and_is_told_what_was_tried() {
    require_root!();
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let own = dir.path().join("runtime");
    std::fs::create_dir(&own).unwrap();
    std::fs::set_permissions(&own, std::fs::Permissions::from_mode(0o777)).unwrap();
    drop(std::os::unix::net::UnixListener::bind(own.join("ringmaster.sock")).unwrap());
    std::fs::set_permissions(
        own.join("ringmaster.sock"),
        std::fs::Permissions::from_mode(0o777),
    )
    .unwrap();
    let config = dir.path().join("ringmaster.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nlogs_dir = \"{}/logs\"\n[watchers.web]\ncmd = \"/bin/sleep 100\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let script = format!(
        "mount -t tmpfs tmpfs /run || exit 90\n\
         {daemon} {config} 2>{dir}/daemon.err & pid=$!\n\
         i=0; until [ -S /run/ringmaster.sock ]; do i=$((i+1)); [ $i -gt 500 ] && exit 91; sleep 0.01; done\n\
         setpriv --reuid 65534 --regid 65534 --clear-groups env XDG_RUNTIME_DIR={own} {ctl} status\n\
         echo \"exit $?\"\n\
         kill $pid; wait $pid\n",
        daemon = ringmasterd(),
        ctl = crate::support::ringmasterctl(),
        config = config.display(),
        dir = dir.path().display(),
        own = own.display(),
    );
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .env_remove("RINGMASTER_SOCKET")
        .output()
        .unwrap();
    let (out, err) = (stdout(&output), stderr(&output));
    assert!(out.contains("exit 4"), "{out}\n{err}");
    let want = format!(
        "cannot reach ringmasterd at /run/ringmaster.sock: Permission denied (os error 13) (the socket allows root, the daemon's user and members of socket_group); also tried {}/ringmaster.sock (a stale socket: no daemon answers)",
        own.display()
    );
    assert!(err.contains(&want), "missing {want:?} in:\n{err}");
}

/// The words: plurals, a did-you-mean that is not the name typed, a
/// watcher with no process left, commands quoted in --check's summary,
/// one warning for processes run as root, both default config paths.
#[test]
fn messages_say_what_is_meant() {
    let dir = tempfile::tempdir().unwrap();
    let text = format!(
        "{}[watchers.web]\ncmd = \"sh -c 'echo hi; sleep 100'\"\n",
        daemon_table(dir.path())
    );
    let (code, out, err) = check_as(dir.path(), &text, None, false);
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("watchers 1 (1 process)"), "{out}");
    assert!(out.contains("sh -c 'echo hi; sleep 100'"), "{out}");

    let daemon = crate::support::Daemon::start(
        "[watchers.web]\ncmd = \"@TESTKIT@ sleep\"\nstart_secs = \"0\"\n\
         [watchers.api]\ncmd = \"@TESTKIT@ sleep\"\nstart_secs = \"0\"\n\
         [groups]\nsite = [\"web\"]\n",
    );
    daemon.wait_all("running", |p| p["state"] == "RUNNING");
    let incr = daemon.ctl(&["incr", "site"]);
    assert!(
        stderr(&incr).contains("'site' is a group; incr takes one of its watchers: web"),
        "{incr:?}"
    );
    assert!(!stderr(&incr).contains("did you mean 'site'"), "{incr:?}");
    daemon.ctl(&["decr", "api"]);
    let status = daemon.ctl(&["status", "api"]);
    assert_eq!(
        stdout(&status),
        "no processes: api has none now (`incr WATCHER` adds some)\n"
    );
    if crate::support::is_root() {
        let log = daemon.daemon_log();
        assert_eq!(log.matches("no user set for").count(), 1, "{log}");
        assert!(
            log.contains("no user set for web, api: their processes will run as root"),
            "{log}"
        );
    }
    let quit = daemon.ctl(&["shutdown"]);
    assert_eq!(stdout(&quit), "shut down (1 process stopped)\n");

    // No argument, no ./ringmaster.toml: both places are named.
    if !std::path::Path::new("/etc/ringmaster/ringmaster.toml").exists() {
        let empty = tempfile::tempdir().unwrap();
        let output = Command::new(ringmasterd())
            .current_dir(empty.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        assert!(
            stderr(&output).contains(
                "neither ./ringmaster.toml (here) nor /etc/ringmaster/ringmaster.toml exists"
            ),
            "{output:?}"
        );
    }
}

/// supervisorctl's maintail and clear: the daemon's recent log, and a
/// running process's log file emptied while it keeps writing.
#[test]
fn maintail_and_clear() {
    let daemon = crate::support::Daemon::start(
        "[watchers.spew]\ncmd = \"@TESTKIT@ spew 5000 hang\"\nstart_secs = \"0\"\n\
         stdout = { file = \"@DIR@/spew.log\" }\n\
         [watchers.idle]\ncmd = \"@TESTKIT@ sleep\"\nautostart = false\n",
    );
    let log = daemon.path("spew.log");
    crate::support::wait_until("5000 bytes logged", crate::support::DEADLINE, || {
        (std::fs::metadata(&log).map_or(0, |m| m.len()) >= 5000).then_some(())
    });
    let tail = stdout(&daemon.ctl(&["maintail", "-100"]));
    assert!(
        tail.contains("ringmasterd") && tail.contains("started"),
        "{tail}"
    );
    assert!(tail.contains("STARTING -> RUNNING"), "{tail}");
    let cleared = daemon.ctl(&["clear", "spew"]);
    assert!(cleared.status.success(), "{cleared:?}");
    // stdout, and stderr in its default file.
    assert_eq!(stdout(&cleared), "spew:1: 2 log files cleared\n");
    crate::support::wait_until("the file emptied", crate::support::DEADLINE, || {
        (std::fs::metadata(&log).map(|m| m.len()).ok()? == 0).then_some(())
    });
    let idle = daemon.ctl(&["clear", "idle"]);
    assert_eq!(idle.status.code(), Some(1), "{idle:?}");
    assert!(
        stdout(&idle).contains("idle:1: ERROR (not running: its log files are not open"),
        "{idle:?}"
    );
}
