//! The examples the README points newcomers at keep working.

use std::io::{Read, Write};
use std::net::TcpStream;

use crate::support::{DEADLINE, Daemon, wait_until};

/// The page `127.0.0.1:PORT` serves, once it answers.
fn fetch(port: u16) -> String {
    wait_until(&format!("port {port} to answer"), DEADLINE, || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
        stream.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
        let mut page = String::new();
        stream.read_to_string(&mut page).ok()?;
        Some(page)
    })
}

/// `ringmasterd --convert CONFIG` gives TOML that `--check` accepts.
fn convert_then_check(config: &std::path::Path) {
    let run = |args: &[&std::ffi::OsStr]| {
        std::process::Command::new(crate::support::ringmasterd())
            .args(args)
            .output()
            .unwrap()
    };
    let converted = run(&["--convert".as_ref(), config.as_os_str()]);
    assert!(converted.status.success(), "{converted:?}");
    let toml = config.with_extension("converted.toml");
    std::fs::write(&toml, &converted.stdout).unwrap();
    let check = run(&["--check".as_ref(), toml.as_os_str()]);
    assert!(check.status.success(), "{check:?}");
}

/// examples/quickstart.toml starts, serves HTTP, restarts a killed worker
/// and shuts down cleanly (with the socket moved into a temp dir).
#[test]
fn quickstart_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let text = std::fs::read_to_string(format!("{root}/examples/quickstart.toml")).unwrap();
    let text = text.replacen(
        "[daemon]\n",
        &format!("[daemon]\nsocket = \"{}\"\n", dir.join("rm.sock").display()),
        1,
    );
    let config = dir.join("quickstart.toml");
    std::fs::write(&config, text).unwrap();
    std::fs::copy(format!("{root}/examples/worker.sh"), dir.join("worker.sh")).unwrap();
    let mut daemon = builder.launch(config);

    daemon.wait_all("the quickstart to be running", |p| p["state"] == "RUNNING");
    let page = fetch(8001);
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    daemon.wait_file("logs/worker-1.out.log", "processed job 1");
    daemon.wait_file("logs/worker-1.err.log", "started as worker:1");

    let output = daemon.ctl(&["shutdown"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
    assert!(
        daemon
            .read("logs/worker-1.out.log")
            .contains("SIGTERM, finishing")
    );
}

/// examples/supervisord.conf runs unchanged: supervisord's names, its
/// environment variables, AUTO logs, and `--convert` gives TOML that
/// `--check` accepts.
#[test]
fn supervisord_conf_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let text = std::fs::read_to_string(format!("{root}/examples/supervisord.conf")).unwrap();
    let text = text.replace("file=%(here)s/supervisor.sock", "file=%(here)s/rm.sock");
    let config = dir.join("supervisord.conf");
    std::fs::write(&config, text).unwrap();
    std::fs::copy(format!("{root}/examples/worker.sh"), dir.join("worker.sh")).unwrap();

    convert_then_check(&config);

    let mut daemon = builder.launch(config);
    daemon.wait_all("the example to be running", |p| p["state"] == "RUNNING");
    let status = crate::support::stdout(&daemon.ctl(&["status"]));
    for name in ["site:web_01", "site:web_02", "site:worker"] {
        assert!(status.contains(name), "{name} in {status}");
    }
    let page = fetch(8101);
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    daemon.wait_file("logs/worker-1.out.log", "processed job 1");
    daemon.wait_file("logs/web-1.log", "GET / HTTP/1.0");
    // Ignored supervisord settings are named in the daemon's log.
    let log = daemon.daemon_log();
    assert!(
        log.contains("supervisord.conf:16: supervisord.logfile: ignored"),
        "{log}"
    );

    let output = daemon.ctl(&["shutdown"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
}

/// examples/circus.ini runs unchanged: watchers by wid, file streams, and
/// the worker's output on the daemon's stdout as under circusd.
#[test]
fn circus_ini_runs() {
    let root = env!("CARGO_MANIFEST_DIR");
    let builder = Daemon::builder();
    let dir = builder.path().to_path_buf();
    let config = dir.join("circus.ini");
    std::fs::copy(format!("{root}/examples/circus.ini"), &config).unwrap();
    std::fs::copy(format!("{root}/examples/worker.sh"), dir.join("worker.sh")).unwrap();

    convert_then_check(&config);

    // A circus.ini cannot name ringmaster's socket: $RINGMASTER_SOCKET can.
    let socket = dir.join("rm.sock");
    let mut daemon = builder
        .env("RINGMASTER_SOCKET", socket.to_str().unwrap())
        .launch(config);
    daemon.wait_all("the example to be running", |p| p["state"] == "RUNNING");
    let page = fetch(8201);
    assert!(page.starts_with("HTTP/1.0 200"), "{page}");
    daemon.wait_file("logs/web-1.err.log", "GET / HTTP/1.0");
    daemon.wait_file("daemon.out", "worker:1 | worker 1: processed job 1");
    let log = daemon.daemon_log();
    assert!(
        log.contains("circus.ini:12: circus.check_delay: ignored"),
        "{log}"
    );

    let output = daemon.ctl(&["shutdown"]);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(daemon.wait_exit(DEADLINE), Some(0));
}

/// examples/container.toml (the Dockerfile's stack, not built in CI) is a
/// valid configuration with the container settings it advertises.
#[test]
fn container_example_reads() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/container.toml");
    let config = ringmaster_config::load(std::path::Path::new(path), None).unwrap();
    let web = config.watchers.iter().find(|w| w.name == "web").unwrap();
    assert!(web.essential && web.echo);
    assert_eq!(web.user.as_deref(), Some("app"));
    assert!(config.watchers.iter().all(|w| w.echo));
}

#[test]
fn the_prometheus_examples_pass_promtool() {
    let Some(promtool) = crate::support::system_program("promtool", "prometheus") else {
        return;
    };
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    for check in [
        ["rules", "prometheus/alerts.yml"],
        ["config", "prometheus/prometheus.yml"],
        ["config", "webapp/prometheus.yml"],
    ] {
        let output = std::process::Command::new(&promtool)
            .arg("check")
            .args(check)
            .current_dir(&examples)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "promtool check {check:?}: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
