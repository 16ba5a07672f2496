//! supervisord.conf run as supervisord would run it: what the child sees
//! (argv, environment, working directory, user), supervisord's process
//! names on the command line, and errors that name the INI line.

use crate::support::{Daemon, is_root, report, stderr, stdout, testkit};

/// A supervisord.conf in a fresh test directory, socket at rm.sock.
fn supervisor(body: &str) -> Daemon {
    supervisor_with(body, &[])
}

/// Like [`supervisor`], with variables in the daemon's environment.
fn supervisor_with(body: &str, env: &[(&str, &str)]) -> Daemon {
    let mut builder = Daemon::builder();
    for (key, value) in env {
        builder = builder.env(key, value);
    }
    let dir = builder.path().to_path_buf();
    let text = format!(
        "[unix_http_server]\nfile=%(here)s/rm.sock\n\n[supervisord]\nchildlogdir=%(here)s/logs\n{}",
        body.replace("@TESTKIT@", testkit())
    );
    let config = dir.join("supervisord.conf");
    std::fs::write(&config, text).unwrap();
    builder.launch(config)
}

#[test]
fn the_child_sees_what_supervisord_would_give_it() {
    let user = if is_root() { "user=nobody\n" } else { "" };
    // Supervisor issue 291: percent signs in the daemon's environment are
    // values, never formats.
    let daemon = supervisor_with(
        &format!(
            r#"environment=FROM_DAEMON="yes",SHARED="daemon"

[program:kit]
command=@TESTKIT@ print-env --port 80%(process_num)02d --name %(program_name)s 100%%
process_name=%(program_name)s_%(process_num)02d
numprocs=2
startsecs=0
directory=/tmp
environment=PORT="80%(process_num)02d",SHARED="program",PCT_COPY="%(ENV_PCT_VAR)s"

[program:creds]
command=@TESTKIT@ print-creds
startsecs=0
directory=/tmp
{user}
[group:site]
programs=kit
"#
        ),
        &[("PCT_VAR", "100% sure %(x)s")],
    );
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let env = daemon.wait_file("logs/kit-2.out.log", "\nend\n");
    let env = report(&env.replace("env ", ""));
    assert_eq!(env["PORT"], "8001");
    assert_eq!(env["SUPERVISOR_ENABLED"], "1");
    assert_eq!(env["SUPERVISOR_PROCESS_NAME"], "kit_01");
    assert_eq!(env["SUPERVISOR_GROUP_NAME"], "site");
    assert_eq!(env["FROM_DAEMON"], "yes");
    assert_eq!(env["SHARED"], "program", "a program's environment wins");
    assert_eq!(env["PCT_VAR"], "100% sure %(x)s");
    assert_eq!(env["PCT_COPY"], "100% sure %(x)s");
    // supervisord's children inherit its environment.
    assert!(env.contains_key("PATH"));

    let pid = daemon.process("kit:2")["pid"].as_i64().unwrap();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<&[u8]> = argv.split(|&b| b == 0).filter(|a| !a.is_empty()).collect();
    let argv: Vec<String> = argv
        .iter()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(
        argv[1..],
        ["print-env", "--port", "8001", "--name", "kit", "100%"]
    );

    let creds = report(&daemon.wait_file("logs/creds-1.out.log", "cwd="));
    assert_eq!(creds["cwd"], "/tmp");
    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(creds["uid"], nobody.uid.to_string());
    }
}

#[test]
fn supervisord_names_work_on_the_command_line() {
    let daemon = supervisor(
        r"
[program:kit]
command=@TESTKIT@ sleep
process_name=%(program_name)s_%(process_num)02d
numprocs=2
startsecs=0

[program:solo]
command=@TESTKIT@ sleep
startsecs=0

[group:site]
programs=kit
",
    );
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let status = stdout(&daemon.ctl(&["status"]));
    for name in ["site:kit_00", "site:kit_01", "solo "] {
        assert!(status.contains(name), "{name:?} in {status}");
    }
    assert!(daemon.ctl(&["stop", "site:kit_01"]).status.success());
    assert_eq!(daemon.process("kit:2")["state"], "STOPPED");
    assert_eq!(daemon.process("kit:1")["state"], "RUNNING");
    assert!(daemon.ctl(&["stop", "site:*"]).status.success());
    assert_eq!(daemon.process("kit:1")["state"], "STOPPED");
    assert_eq!(daemon.process("solo:1")["state"], "RUNNING");
    assert!(daemon.ctl(&["start", "site"]).status.success());
    assert_eq!(daemon.process("kit:2")["state"], "RUNNING");
    let json = daemon.request("status", serde_json::json!({"names": ["solo"]}));
    assert_eq!(json["result"]["processes"][0]["alias"], "solo");
    let refused = daemon.ctl(&["stop", "site:kit_07"]);
    assert!(
        stderr(&refused).contains("no process 'site:kit_07' (did you mean 'site:kit_00'?)"),
        "{refused:?}"
    );
}

#[test]
fn errors_name_the_ini_file_line_and_key() {
    let builder = Daemon::builder();
    let check = |name: &str, body: &str, want: &str| {
        let config = builder.path().join(name);
        std::fs::write(&config, format!("[supervisord]\n\n[program:web]\n{body}")).unwrap();
        let output = std::process::Command::new(crate::support::ringmasterd())
            .arg(&config)
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        let text = stderr(&output);
        let want = format!("{}:{want}", config.display());
        assert!(text.contains(&want), "want {want}\ngot {text}");
    };
    check(
        "a.conf",
        "command=/bin/true\nstartsecs=soon\n",
        "5: program:web.startsecs: 'soon' is not an integer",
    );
    // Found by the TOML reader, reported against the INI line.
    check(
        "b.conf",
        "command=/bin/true\npriority=99999999999\n",
        "5: program:web.priority: 99999999999 is out of range",
    );
    check(
        "c.conf",
        "command=/bin/true\nuser=\n",
        "5: program:web.user:",
    );
}

/// A circus.ini watcher as circusd would run it: `$(circus.wid)`,
/// `$(circus.env.X)`, `[env]` and `[env:NAME]` with `$VAR`, the user, and
/// a file stream.
#[test]
fn a_circus_watcher_sees_what_circusd_would_give_it() {
    let builder = Daemon::builder();
    let user = if is_root() { "uid = nobody\n" } else { "" };
    let text = format!(
        "[env]\nAPP = demo\n\n[env:kit]\nPATH_COPY = $PATH\n\n[watcher:kit]\n\
         cmd = {} print-env\nargs = --wid $(circus.wid) --app $(circus.env.app)\n\
         numprocesses = 2\nworking_dir = /tmp\n{user}\
         stdout_stream.class = FileStream\nstdout_stream.filename = out-$(circus.wid).log\n",
        testkit()
    );
    let daemon = builder.launch_circus(&text);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let env = report(&daemon.wait_file("out-2.log", "\nend\n").replace("env ", ""));
    assert_eq!(env["APP"], "demo");
    assert_eq!(env["PATH_COPY"], std::env::var("PATH").unwrap());
    // No copy_env: only [env] and [env:kit], nothing of the daemon's own.
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some());
    assert!(!env.contains_key("CARGO_MANIFEST_DIR"), "{env:?}");
    let pid = daemon.process("kit:2")["pid"].as_i64().unwrap();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    let argv: Vec<String> = argv
        .split(|&b| b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    assert_eq!(argv[1..], ["print-env", "--wid", "2", "--app", "demo"]);
    assert_eq!(
        std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap(),
        std::path::Path::new("/tmp")
    );
    if is_root() {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert!(
            status.contains(&format!("Uid:\t{}\t", nobody.uid)),
            "{status}"
        );
    }
}

/// Every good fixture passes `ringmasterd --check`, and its `--convert`
/// output passes `--check` as TOML.
#[test]
fn fixtures_check_and_convert() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let fixtures = [
        "supervisor/full.conf",
        "supervisor/minimal.conf",
        "supervisor/percent.conf",
        "circus/full.ini",
        "circus/minimal.ini",
    ];
    // The converted file is kept next to its original (its relative paths
    // and $(here) are that directory's): both are read from a copy.
    let dir = tempfile::tempdir().unwrap();
    for sub in ["supervisor", "circus"] {
        let copied = std::process::Command::new("cp")
            .arg("-r")
            .arg(root.join(sub))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(copied.success());
    }
    for fixture in fixtures {
        let path = dir.path().join(fixture);
        // Read from another working directory than the tests': nothing
        // depends on where ringmasterd is started.
        let run = |args: &[&std::ffi::OsStr]| {
            std::process::Command::new(crate::support::ringmasterd())
                .args(args)
                .current_dir("/")
                .env_remove("RINGMASTER_SOCKET")
                .output()
                .unwrap()
        };
        let check = run(&["--check".as_ref(), path.as_os_str()]);
        assert!(check.status.success(), "{fixture}: {}", stderr(&check));
        assert!(stdout(&check).contains(": OK"), "{fixture}");
        let convert = run(&["--convert".as_ref(), path.as_os_str()]);
        assert!(convert.status.success(), "{fixture}: {}", stderr(&convert));
        let toml = path.with_extension("converted.toml");
        std::fs::write(&toml, &convert.stdout).unwrap();
        let again = run(&["--check".as_ref(), toml.as_os_str()]);
        assert!(
            again.status.success(),
            "{fixture} converted: {}",
            stderr(&again)
        );
        // The same processes, whichever file was read.
        let summary = |out: &std::process::Output| {
            stdout(out)
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        };
        assert_eq!(summary(&again), summary(&check), "{fixture}");
    }
}

/// The dialect comes from the extension, then the content; `--format`
/// forces it.
#[test]
fn the_dialect_is_detected_or_forced() {
    let dir = tempfile::tempdir().unwrap();
    let text = "[supervisord]\n\n[program:web]\ncommand=/bin/sleep 10\n";
    let check = |name: &str, format: Option<&str>| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let mut command = std::process::Command::new(crate::support::ringmasterd());
        command.arg("--check").arg(&path);
        if let Some(format) = format {
            command.args(["--format", format]);
        }
        command.output().unwrap()
    };
    let by_content = check("app.cfg", None);
    assert!(by_content.status.success(), "{}", stderr(&by_content));
    assert!(stdout(&by_content).contains("watchers 1 (1 process)"));
    let as_toml = check("app.toml", None);
    assert_eq!(as_toml.status.code(), Some(1));
    assert!(
        stderr(&as_toml).contains("invalid TOML"),
        "{}",
        stderr(&as_toml)
    );
    let forced = check("app.toml", Some("supervisord"));
    assert!(forced.status.success(), "{}", stderr(&forced));
    // Read as circusd would read it: nothing it knows, said section by section.
    let wrong = check("other.conf", Some("circus"));
    assert!(wrong.status.success(), "{}", stderr(&wrong));
    assert!(
        stderr(&wrong).contains("[supervisord]: unknown section: ignored, as circusd ignores it")
            && stdout(&wrong).contains("watchers 0"),
        "{}",
        stderr(&wrong)
    );
}

/// A unix socket's answer, read to the end.
fn ask_unix(path: &std::path::Path) -> String {
    use std::io::Read;
    let mut stream = std::os::unix::net::UnixStream::connect(path).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Circus's `[socket:NAME]`, `use_sockets` and `$(circus.sockets.NAME)`,
/// and `stdin_socket`, served as circusd serves them.
#[test]
fn circus_sockets_are_bound_by_the_daemon_and_passed_to_the_watchers() {
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let text = format!(
        "[watcher:web]\ncmd = {kit} sockets --fd $(circus.sockets.api)\nuse_sockets = True\n\n\
         [watcher:php]\ncmd = {kit} serve stdin\nstdin_socket = fcgi\n\n\
         [socket:web]\nhost = 127.0.0.1\nport = 0\n\n\
         [socket:api]\nhost = 127.0.0.1\nport = 0\ntype = SOCK_DGRAM\n\n\
         [socket:fcgi]\npath = {dir}/fcgi.sock\numask = 0\n",
        kit = testkit(),
        dir = dir.display()
    );
    let daemon = builder.launch_circus(&text);
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let pid = daemon.process("web:1")["pid"].as_i64().unwrap();
    let argv = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        argv.ends_with(b"--fd\x004\x00"),
        "api is the second socket: {argv:?}"
    );
    let answer = ask_unix(&dir.join("fcgi.sock"));
    assert!(answer.starts_with("php:1 pid="), "{answer}");
    let meta = std::fs::metadata(dir.join("fcgi.sock")).unwrap();
    assert_eq!(
        std::os::unix::fs::MetadataExt::mode(&meta) & 0o777,
        0o777,
        "umask 0"
    );
}

/// supervisord's `[fcgi-program:x]`: its socket bound by the daemon and
/// given on each process's stdin, with socket_owner and socket_mode.
#[test]
fn a_supervisord_fcgi_program_gets_its_socket_on_stdin() {
    let owner = if is_root() {
        "socket_owner = nobody:nogroup\n"
    } else {
        ""
    };
    let daemon = supervisor(&format!(
        "[fcgi-program:php]\ncommand = @TESTKIT@ serve stdin\n\
         socket = unix://%(here)s/%(program_name)s.sock\n{owner}socket_mode = 0660\n\
         numprocs = 2\nprocess_name = %(program_name)s_%(process_num)02d\n"
    ));
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let path = daemon.path("php.sock");
    let answer = ask_unix(&path);
    assert!(answer.starts_with("php:"), "{answer}");
    let meta = std::fs::metadata(&path).unwrap();
    assert_eq!(std::os::unix::fs::MetadataExt::mode(&meta) & 0o777, 0o660);
    if is_root() {
        let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
        assert_eq!(
            std::os::unix::fs::MetadataExt::uid(&meta),
            nobody.uid.as_raw()
        );
    }
}
