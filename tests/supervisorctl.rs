//! supervisord's own tools against ringmaster (issue 21): supervisorctl
//! from supervisor 4.3.0, run against ringmasterd and against supervisord
//! for the same file, side by side.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{DEADLINE, Daemon, venv_program, wait_until};

/// The file both run: processes named supervisord's way, one group of
/// two, one alone, one not started.
fn conf(dir: &Path) -> String {
    let socket = dir.join("supervisor.sock");
    format!(
        "[unix_http_server]\nfile={socket}\n\n\
         [supervisord]\nlogfile={dir}/supervisord.log\npidfile={dir}/supervisord.pid\nchildlogdir={dir}\n\n\
         [rpcinterface:supervisor]\nsupervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n\
         [supervisorctl]\nserverurl=unix://{socket}\n\n\
         [program:web]\ncommand=sleep 1000\nnumprocs=2\nprocess_name=%(program_name)s_%(process_num)02d\nstartsecs=0\n\n\
         [program:one]\ncommand=sleep 1000\nstartsecs=0\n\n\
         [program:off]\ncommand=sleep 1000\nautostart=false\nstartsecs=0\n\n\
         [program:talker]\ncommand=sh -c \"echo hello; echo world >&2; exec sleep 1000\"\nstartsecs=0\n",
        socket = socket.display(),
        dir = dir.display()
    )
}

/// `supervisorctl -c CONF ARGS`: exit code and stdout, with pids and
/// times masked.
fn supervisorctl(ctl: &Path, conf: &Path, args: &[&str]) -> (Option<i32>, String) {
    let (code, text) = supervisorctl_raw(ctl, conf, args);
    let masked: Vec<String> = text
        .lines()
        .map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            words
                .iter()
                .map(|w| {
                    if w.trim_end_matches(',')
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ':')
                        && w.chars().any(|c| c.is_ascii_digit())
                    {
                        "N"
                    } else {
                        w
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    (code, masked.join("\n"))
}

/// supervisord itself on `conf`, killed when dropped.
struct Supervisord(std::process::Child);

impl Drop for Supervisord {
    fn drop(&mut self) {
        // Its group: supervisord and the sleeps it started.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = self.0.wait();
    }
}

#[test]
fn supervisorctl_reads_ringmaster_as_it_reads_supervisord() {
    let (Some(ctl), Some(supervisord)) =
        (venv_program("supervisorctl"), venv_program("supervisord"))
    else {
        return;
    };
    // supervisord, on a file of its own.
    let theirs = tempfile::tempdir().unwrap();
    let their_conf = theirs.path().join("supervisord.conf");
    std::fs::write(&their_conf, conf(theirs.path())).unwrap();
    let child = {
        use std::os::unix::process::CommandExt;
        Command::new(&supervisord)
            .args(["-n", "-c"])
            .arg(&their_conf)
            .process_group(0)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    let _supervisord = Supervisord(child);
    // ringmasterd, on the same file in its own directory.
    let builder = Daemon::builder();
    let ours = builder.path().to_path_buf();
    let our_conf: PathBuf = ours.join("supervisord.conf");
    std::fs::write(&our_conf, conf(&ours)).unwrap();
    let daemon = builder
        .socket_at(&ours.join("supervisor.sock"))
        .launch(our_conf.clone());
    daemon.wait_state("one:1", "RUNNING");

    for args in [
        &["status"][..],
        &["status", "web:*"],
        &["status", "one"],
        &["pid", "one"],
    ] {
        let settled = |conf: &Path| {
            wait_until(&format!("supervisorctl {args:?}"), DEADLINE, || {
                let (code, text) = supervisorctl(&ctl, conf, args);
                let settled = !text.is_empty()
                    && !text.contains("STARTING")
                    && !text.contains("no such file")
                    && !text.contains("refused");
                settled.then_some((code, text))
            })
        };
        let (their_code, their_text) = settled(&their_conf);
        let (our_code, our_text) = settled(&our_conf);
        assert_eq!(our_text, their_text, "supervisorctl {args:?}");
        assert_eq!(our_code, their_code, "supervisorctl {args:?}: {our_text}");
    }
    // Starting, stopping and signalling, and their errors, in the order
    // an operator would type them.
    for args in [
        &["stop", "one"][..],
        &["stop", "one"],
        &["start", "one"],
        &["start", "one"],
        &["start", "off"],
        &["restart", "web:*"],
        &["signal", "HUP", "web:web_00"],
        &["signal", "NOPE", "web:web_00"],
        &["stop", "nope"],
        &["tail", "talker"],
        &["tail", "talker", "stderr"],
        &["tail", "-5", "talker"],
        &["clear", "talker"],
        &["tail", "talker"],
        &["tail", "nope"],
        &["start", "nope:*"],
        &["stop", "all"],
        &["start", "all"],
        &["status"],
    ] {
        let (their_code, their_text) = supervisorctl(&ctl, &their_conf, args);
        let (our_code, our_text) = supervisorctl(&ctl, &our_conf, args);
        // supervisord lists what it started or stopped as each finishes,
        // an order that varies from run to run: compare those as sets.
        let (ours, theirs) = if args.contains(&"all") || args.iter().any(|a| a.ends_with(":*")) {
            (sorted(&our_text), sorted(&their_text))
        } else {
            (vec![our_text.as_str()], vec![their_text.as_str()])
        };
        assert_eq!(ours, theirs, "supervisorctl {args:?}");
        assert_eq!(our_code, their_code, "supervisorctl {args:?}: {our_text}");
    }
    // The daemon's own pid, as supervisorctl pid prints it.
    let (_, pid) = supervisorctl_raw(&ctl, &our_conf, &["pid"]);
    assert_eq!(pid.trim(), daemon.pid().to_string());
}

/// `supervisorctl -c CONF ARGS`: exit code and stdout as printed.
fn supervisorctl_raw(ctl: &Path, conf: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(ctl)
        .arg("-c")
        .arg(conf)
        .args(args)
        .output()
        .unwrap();
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

fn sorted(text: &str) -> Vec<&str> {
    let mut lines: Vec<&str> = text.lines().collect();
    lines.sort_unstable();
    lines
}

/// A Python `ServerProxy` script, as monitoring scripts are written,
/// calls every method served and checks supervisord's answers.
#[test]
fn a_python_xmlrpc_client_gets_supervisords_answers() {
    let Some(python) = venv_program("python") else {
        return;
    };
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let conf_path = dir.join("supervisord.conf");
    std::fs::write(&conf_path, conf(&dir)).unwrap();
    let daemon = builder
        .socket_at(&dir.join("supervisor.sock"))
        .launch(conf_path.clone());
    daemon.wait_state("one:1", "RUNNING");
    daemon.wait_file("talker-1.out.log", "hello");
    let script =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/supervisor/rpc_client.py");
    let output = Command::new(python)
        .arg(script)
        .arg(format!("unix://{}", dir.join("supervisor.sock").display()))
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && said.trim_end().ends_with("ok"),
        "{said}"
    );
    // And shutdown, as supervisorctl asks for it.
    let ctl = venv_program("supervisorctl").unwrap();
    let (_, text) = supervisorctl_raw(&ctl, &conf_path, &["shutdown"]);
    assert_eq!(text.trim(), "Shut down");
    let mut daemon = daemon;
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
}

/// `[inet_http_server]` with a username and a `{SHA}` password:
/// supervisorctl over TCP with the right password is served, with a wrong
/// one refused; and an address off loopback without credentials is an
/// error of the file.
#[test]
fn supervisorctl_over_tcp_needs_the_password() {
    let Some(ctl) = venv_program("supervisorctl") else {
        return;
    };
    let port = crate::support::free_port();
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    // sha1("s3cret")
    let sha = "{SHA}fef341f85d87439e7d91a2d465b9871ef66b5e98";
    let conf_path = dir.join("supervisord.conf");
    let text = |password: &str| {
        format!(
            "[unix_http_server]\nfile={dir}/supervisor.sock\n\n\
             [inet_http_server]\nport=127.0.0.1:{port}\nusername=admin\npassword={sha}\n\n\
             [supervisord]\nlogfile={dir}/supervisord.log\n\n\
             [supervisorctl]\nserverurl=http://127.0.0.1:{port}\nusername=admin\npassword={password}\n\n\
             [program:one]\ncommand=sleep 1000\nstartsecs=0\n",
            dir = dir.display()
        )
    };
    std::fs::write(&conf_path, text("s3cret")).unwrap();
    let daemon = builder
        .socket_at(&dir.join("supervisor.sock"))
        .launch(conf_path.clone());
    daemon.wait_state("one:1", "RUNNING");
    let (code, status) = supervisorctl(&ctl, &conf_path, &["status"]);
    assert_eq!(
        (code, status.as_str()),
        (Some(0), "one RUNNING pid N uptime N")
    );
    let wrong = dir.join("wrong.conf");
    std::fs::write(&wrong, text("guess")).unwrap();
    let (code, said) = supervisorctl_raw(&ctl, &wrong, &["status"]);
    assert_ne!(code, Some(0));
    assert!(said.contains("Server requires authentication"), "{said}");

    let open = dir.join("open.conf");
    std::fs::write(
        &open,
        "[inet_http_server]\nport=*:9001\n\n[supervisord]\n\n[program:one]\ncommand=sleep 1\n",
    )
    .unwrap();
    let checked = Command::new(crate::support::ringmasterd())
        .arg("--check")
        .arg(&open)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(1), "{err}");
    assert!(
        err.contains("open.conf:1") && err.contains("0.0.0.0:9001 is not a loopback address"),
        "{err}"
    );
}
