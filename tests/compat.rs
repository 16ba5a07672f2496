//! Real files run (issue 14): what supervisord, Circus or a shell accept
//! is accepted here too, and what is odd is said, not refused.

use crate::support::{Daemon, ringmasterd, stderr};

/// Issue 14: any `$(` that is not ringmaster's was refused, so the first
/// shell one-liner a user wrote failed. Now `$(id -u)`, `$((i+1))` and
/// `$(seq 2)` reach the shell as written, `--check` notes each, and what
/// is ours but wrong stays an error.
#[test]
fn a_shells_own_dollar_parens_reach_the_shell() {
    let builder = Daemon::builder().body(
        r#"
[watchers.oneliner]
args = ["sh", "-c", "echo uid=$(id -u); i=$((1+1)); echo i=$i; for n in $(seq 2); do echo n$n; done; echo $(wdi)"]
restart = "never"
start_secs = "0"
"#,
    );
    let config = builder.write_config();
    let check = std::process::Command::new(ringmasterd())
        .arg("--check")
        .arg(&config)
        .output()
        .unwrap();
    assert!(check.status.success(), "{check:?}");
    let notes = stderr(&check);
    for placeholder in ["$(id -u)", "$((1+1)", "$(seq 2)", "$(wdi)"] {
        assert!(
            notes.contains(&format!("note: {}:", config.display()))
                && notes.contains(&format!("{placeholder} is not a ringmaster placeholder")),
            "{placeholder}: {notes}"
        );
    }
    let daemon = builder.launch(config);
    daemon.wait_state("oneliner:1", "EXITED");
    let uid = nix::unistd::getuid();
    let out = daemon.wait_file("logs/oneliner-1.out.log", "n2\n");
    assert!(
        out.starts_with(&format!("uid={uid}\ni=2\nn1\nn2\n")),
        "{out}"
    );
}

/// Issue 14: `ringmasterctl -c FILE` validated the whole file just to find
/// the socket, so after a bad edit `-c FILE reread`, the command meant to
/// report the mistake, never reached the daemon. It reads only the socket
/// setting now, and the daemon says what is wrong, with file:line:key.
#[test]
fn ctl_reaches_the_daemon_through_a_broken_file() {
    let daemon = Daemon::start(
        r#"
[watchers.web]
cmd = "@TESTKIT@ sleep"
start_secs = "0"
"#,
    );
    daemon.wait_state("web:1", "RUNNING");
    let text = std::fs::read_to_string(&daemon.config).unwrap();
    std::fs::write(
        &daemon.config,
        text.replace("start_secs = \"0\"", "start_secs = \"soon\""),
    )
    .unwrap();
    let reread = std::process::Command::new(crate::support::ringmasterctl())
        .arg("-c")
        .arg(&daemon.config)
        .arg("reread")
        .env_remove("RINGMASTER_SOCKET")
        .output()
        .unwrap();
    assert_eq!(reread.status.code(), Some(1), "{reread:?}");
    let message = stderr(&reread);
    assert!(
        message.contains(&format!("{}:", daemon.config.display()))
            && message.contains("watchers.web.start_secs")
            && message.contains("[bad_config]"),
        "{message}"
    );
}

/// Issue 14: a conf.d fragment (programs, no `[supervisord]`), a typo and a
/// key given twice run, each said as a warning with file:line:key;
/// `--strict` makes them errors, at `--check` and at start.
#[test]
fn odd_but_accepted_files_run_and_strict_refuses_them() {
    let builder = Daemon::builder();
    let fragment = builder.path().join("app.conf");
    std::fs::write(
        &fragment,
        format!(
            "[program:app]\ncommand={} sleep\nstartsecs=0\nauto_start=true\nstartsecs=0\n",
            crate::support::testkit()
        ),
    )
    .unwrap();
    let run = |args: &[&str]| {
        std::process::Command::new(ringmasterd())
            .args(args)
            .arg(&fragment)
            .env("RINGMASTER_SOCKET", builder.path().join("rm.sock"))
            .output()
            .unwrap()
    };
    let check = run(&["--check"]);
    assert!(check.status.success(), "{check:?}");
    let said = stderr(&check);
    let file = fragment.display();
    for warning in [
        format!(
            "{file}:1: no [supervisord] section: read as a conf.d fragment, with supervisord's defaults"
        ),
        format!(
            "{file}:4: program:app.auto_start: unknown key (did you mean 'autostart'?): ignored, as supervisord ignores it"
        ),
        format!(
            "{file}:5: program:app.startsecs: startsecs is given again in [program:app] (first at line 3): the later value counts, as in supervisord"
        ),
    ] {
        assert!(said.contains(&warning), "missing {warning}\n{said}");
    }
    for strict in [&["--check", "--strict"][..], &["--strict"]] {
        let refused = run(strict);
        assert_eq!(refused.status.code(), Some(1), "{strict:?}: {refused:?}");
        assert!(
            stderr(&refused).contains("--strict makes every warning an error"),
            "{refused:?}"
        );
    }
    // And it runs, as supervisord would run it.
    let socket = builder.path().join("rm.sock").display().to_string();
    let daemon = builder
        .env("RINGMASTER_SOCKET", &socket)
        .launch(fragment.clone());
    daemon.wait_state("app:1", "RUNNING");
}

/// Issue 14: Circus's `virtualenv` as `circus/util.py` `load_virtualenv`
/// does it: the venv's bin first on PATH, and PYTHONPATH with the packages
/// its `.pth` files name and its site-packages. A real venv from
/// `python3 -m venv`, a module installed in it and an editable-style
/// package (a `.pth` pointing outside): the system python imports both,
/// which only the PYTHONPATH Circus builds makes possible.
#[test]
fn a_circus_virtualenv_reaches_the_child() {
    let python = ["/usr/bin/python3", "/usr/local/bin/python3"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .expect("python3 (installed by .ci/run)");
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let venv = dir.join("venv");
    let made = std::process::Command::new(python)
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv)
        .status()
        .unwrap();
    assert!(made.success());
    let lib = std::fs::read_dir(venv.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("python")
        })
        .unwrap();
    let site = lib.join("site-packages");
    std::fs::write(site.join("greet.py"), "WHO = 'installed'\n").unwrap();
    let editable = dir.join("src");
    std::fs::create_dir_all(editable.join("mypkg")).unwrap();
    std::fs::write(editable.join("mypkg/__init__.py"), "WHO = 'editable'\n").unwrap();
    std::fs::write(
        site.join("mypkg.pth"),
        format!("# an editable install\n{}\n", editable.display()),
    )
    .unwrap();
    let config = dir.join("circus.ini");
    std::fs::write(
        &config,
        format!(
            "[watcher:app]\ncmd = {python}\n\
             args = -c \"import os, greet, mypkg; print(greet.WHO, mypkg.WHO); print(os.environ['PATH'].split(':')[0])\"\n\
             copy_env = True\nvirtualenv = {}\nrespawn = False\n\
             stdout_stream.class = FileStream\nstdout_stream.filename = {}/out.log\n",
            venv.display(),
            dir.display()
        ),
    )
    .unwrap();
    let socket = dir.join("rm.sock");
    let daemon = builder
        .env("RINGMASTER_SOCKET", socket.to_str().unwrap())
        .launch(config.clone());
    let bin = venv.join("bin").display().to_string();
    let out = daemon.wait_file("out.log", &format!("{bin}\n"));
    assert_eq!(out, format!("installed editable\n{bin}\n"));
    // Without copy_env, as circusd: an error naming the line and key.
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("copy_env = True", "copy_env = False");
    std::fs::write(&config, text).unwrap();
    let check = std::process::Command::new(ringmasterd())
        .arg("--check")
        .arg(&config)
        .output()
        .unwrap();
    assert_eq!(check.status.code(), Some(1));
    assert!(
        stderr(&check).contains(&format!(
            "{}:5: watcher:app.virtualenv: copy_env must be True",
            config.display()
        )),
        "{}",
        stderr(&check)
    );
}

/// Issue 14: the Debian package's own /etc/supervisor/supervisord.conf,
/// unchanged, with conf.d fragments as applications ship them (programs
/// and a group, no [supervisord]): it runs. The daemon sees a private
/// /etc (an overlay: the host's is untouched), /var/log and /run.
#[test]
fn debians_supervisord_conf_with_fragments_runs_unchanged() {
    crate::support::require_root!();
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/supervisor/debian/supervisord.conf");
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    for sub in ["etc-upper", "etc-work", "log", "run", "fragments"] {
        std::fs::create_dir(dir.join(sub)).unwrap();
    }
    std::fs::write(
        dir.join("fragments/web.conf"),
        format!(
            "[program:web]\ncommand={} sleep\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)02d\n\
             startsecs=0\n",
            crate::support::testkit()
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("fragments/worker.conf"),
        format!(
            "[program:worker]\ncommand={} sleep\nstartsecs=0\nstdout_logfile=/var/log/supervisor/worker.log\n\n\
             [group:jobs]\nprograms=worker\n",
            crate::support::testkit()
        ),
    )
    .unwrap();
    let d = dir.display();
    let setup = format!(
        "mount -t overlay overlay -o lowerdir=/etc,upperdir={d}/etc-upper,workdir={d}/etc-work /etc\n\
         mkdir -p /etc/supervisor/conf.d\n\
         cp {} /etc/supervisor/supervisord.conf\n\
         cp {d}/fragments/*.conf /etc/supervisor/conf.d/\n\
         mount --bind {d}/log /var/log\n\
         if [ -L /var/run ]; then mount --bind {d}/run /run; else mount --bind {d}/run /var/run; fi",
        fixture.display()
    );
    let daemon = builder
        .mount_namespace(&setup)
        .socket_at(&dir.join("run/supervisor.sock"))
        .launch(std::path::PathBuf::from("/etc/supervisor/supervisord.conf"));
    daemon.wait_all("everything running", |p| p["state"] == "RUNNING");
    let names: Vec<String> = daemon
        .status()
        .iter()
        .map(|p| {
            p["alias"]
                .as_str()
                .unwrap_or(p["name"].as_str().unwrap())
                .to_owned()
        })
        .collect();
    // As supervisorctl names them.
    assert_eq!(names, ["web:web_00", "web:web_01", "jobs:worker"]);
    // Logs where the file says: childlogdir and the fragment's own path.
    daemon.wait_file("log/supervisor/worker.log", "ready pid=");
    // Included, the fragments are part of the main file: no warning.
    assert!(!daemon.daemon_log().contains("no [supervisord] section"));
    assert!(!std::path::Path::new("/etc/supervisor/conf.d/web.conf").exists());
}

/// Issue 14: `--convert` wrote `%(ENV_X)s` in `environment=` and commands
/// as the converting shell's value. It stays a reference, `$(env.X)` (when
/// the value cannot change how supervisord splits the line), so the
/// converted file run elsewhere means that machine's variable.
#[test]
fn converted_environment_keeps_its_references() {
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let conf = dir.join("app.conf");
    std::fs::write(
        &conf,
        format!(
            "[supervisord]\n[program:app]\ncommand={} print-env\nstartsecs=0\n\
             environment=GREETING=\"hello-%(ENV_RM_TEST_WHO)s\"\n\
             [program:argv]\ncommand=/bin/echo arg-%(ENV_RM_TEST_WHO)s\nstartsecs=0\nautorestart=false\n",
            crate::support::testkit()
        ),
    )
    .unwrap();
    let converted = std::process::Command::new(ringmasterd())
        .arg("--convert")
        .arg(&conf)
        .env("RM_TEST_WHO", "alpha")
        .output()
        .unwrap();
    assert!(converted.status.success(), "{converted:?}");
    let toml = String::from_utf8(converted.stdout).unwrap();
    assert!(
        toml.contains("GREETING = \"hello-$(env.RM_TEST_WHO)\""),
        "{toml}"
    );
    assert!(
        toml.contains("cmd = \"/bin/echo arg-$(env.RM_TEST_WHO)\""),
        "{toml}"
    );
    let config = dir.join("ringmaster.toml");
    let socket = dir.join("rm.sock");
    std::fs::write(
        &config,
        format!(
            "{toml}\n[daemon]\nsocket = \"{}\"\nlogs_dir = \"{}/logs\"\n",
            socket.display(),
            dir.display()
        ),
    )
    .unwrap();
    let daemon = builder.env("RM_TEST_WHO", "beta").launch(config);
    let env = daemon.wait_file("logs/app-1.out.log", "\nend\n");
    assert!(env.contains("GREETING=hello-beta\n"), "{env}");
    daemon.wait_file("logs/argv-1.out.log", "arg-beta\n");
}
