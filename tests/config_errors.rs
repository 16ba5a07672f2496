//! Configuration errors name file, line and key (test plan G39).

use std::process::Command;

use crate::support::{ringmasterd, stderr, stdout};

/// Runs `ringmasterd --check` on `text` (plus optional extra files) and
/// returns (exit code, stderr, config path).
fn check(text: &str, extra: &[(&str, &str)]) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringmaster.toml");
    std::fs::write(&path, text).unwrap();
    for (name, content) in extra {
        let file = dir.path().join(name);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, content).unwrap();
    }
    let output = Command::new(ringmasterd())
        .arg("--check")
        .arg(&path)
        .output()
        .unwrap();
    (
        output.status.code(),
        stderr(&output),
        path.display().to_string(),
    )
}

#[track_caller]
fn assert_error(text: &str, extra: &[(&str, &str)], location: &str, needles: &[&str]) {
    let (code, err, path) = check(text, extra);
    assert_eq!(
        code,
        Some(1),
        "expected failure for:\n{text}\nstderr: {err}"
    );
    let location = location
        .replace("CONFIG", &path)
        .replace("DIR", path.trim_end_matches("/ringmaster.toml"));
    assert!(err.contains(&location), "missing {location:?} in: {err}");
    for needle in needles {
        assert!(err.contains(needle), "missing {needle:?} in: {err}");
    }
}

#[test]
fn bad_watcher_values_name_file_line_and_key() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    assert_error(
        &format!("{w}restrat = \"always\"\n"),
        &[],
        "CONFIG:3:1: watchers.web.restrat",
        &["unknown key", "did you mean 'restart'"],
    );
    assert_error(
        &format!("{w}restart = \"sometimes\"\n"),
        &[],
        "CONFIG:3:11: watchers.web.restart",
        &["unknown value 'sometimes'", "always, on-failure, never"],
    );
    assert_error(
        &format!("{w}stop_timeout = \"soon\"\n"),
        &[],
        "CONFIG:3:16: watchers.web.stop_timeout",
        &["invalid duration"],
    );
    assert_error(
        "[watchers.web]\nnumprocesses = 2\n",
        &[],
        "CONFIG:1:11: watchers.web",
        &["missing cmd"],
    );
    assert_error(
        &format!("{w}args = [\"x\"]\n"),
        &[],
        "CONFIG:3:8: watchers.web.args",
        &["either cmd or args"],
    );
    assert_error(
        "[watchers.web]\ncmd = \"run $(env.RINGMASTER_TEST_NOPE)\"\n",
        &[],
        "CONFIG:2:7: watchers.web.cmd",
        &["RINGMASTER_TEST_NOPE is not set"],
    );
    assert_error(
        &format!("{w}metrics_port = 0\n"),
        &[],
        "CONFIG:3:16: watchers.web.metrics_port",
        &["0 is out of range (1 to 65535)"],
    );
    assert_error(
        &format!("{w}metrics_port = 65535\nnumprocesses = 2\n"),
        &[],
        "CONFIG:3:16: watchers.web.metrics_port",
        &["65535 + 2 workers passes port 65535"],
    );
    assert_error(
        "[watchers.web]\ncmd = \"serve --port $(metrics_port)\"\n",
        &[],
        "CONFIG:2:7: watchers.web.cmd",
        &["$(metrics_port): this watcher has no metrics_port"],
    );
    assert_error(
        "[watchers.web\ncmd = 1\n",
        &[],
        "CONFIG:1:",
        &["invalid TOML"],
    );
    assert_error(
        &format!("{w}stop_signal = \"TREM\"\n"),
        &[],
        "CONFIG:3:15: watchers.web.stop_signal",
        &["unknown signal 'TREM'", "did you mean 'TERM'"],
    );
    assert_error(
        &format!("{w}umask = \"999\"\n"),
        &[],
        "CONFIG:3:9: watchers.web.umask",
        &["invalid octal"],
    );
    assert_error(
        &format!("{w}exit_codes = [0, 300]\n"),
        &[],
        "CONFIG:3:18: watchers.web.exit_codes",
        &["300 is out of range"],
    );
    assert_error(
        &format!("{w}numprocesses = \"two\"\n"),
        &[],
        "CONFIG:3:16: watchers.web.numprocesses",
        &["expected an integer, found a string"],
    );
    assert_error(
        "[watchers.\"web:1\"]\ncmd = \"x\"\n",
        &[],
        "CONFIG:1:11: watchers.web:1",
        &["watcher names use"],
    );
}

#[test]
fn bad_tables_and_sinks_name_file_line_and_key() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    assert_error(
        "[deamon]\n",
        &[],
        "CONFIG:1:2: deamon",
        &["unknown key", "did you mean 'daemon'"],
    );
    assert_error(
        "[daemon]\nlog_level = \"loud\"\n",
        &[],
        "CONFIG:2:13: daemon.log_level",
        &["unknown value 'loud'"],
    );
    assert_error(
        "[daemon]\nmetrics = \"9321\"\n",
        &[],
        "CONFIG:2:11: daemon.metrics",
        &["'9321' is not HOST:PORT"],
    );
    assert_error(
        "[daemon]\nmetrics = \"127.0.0.1:http\"\n",
        &[],
        "CONFIG:2:11: daemon.metrics",
        &["'http' is not a port number"],
    );
    assert_error(
        "[daemon]\nmetrics = \"no-such-host.invalid:9321\"\n",
        &[],
        "CONFIG:2:11: daemon.metrics",
        &["no-such-host.invalid"],
    );
    assert_error(
        &format!("{w}env_file = \"missing.env\"\n"),
        &[],
        "CONFIG:3:12: watchers.web.env_file",
        &["missing.env", "cannot read"],
    );
    assert_error(
        &format!("{w}env_file = \"bad.env\"\n"),
        &[("bad.env", "OK=1\nnonsense\n")],
        "DIR/bad.env:2:1",
        &["expected KEY=VALUE"],
    );
    assert_error(
        &format!("{w}stdout = {{ file = \"x.log\", max_size = \"huge\" }}\n"),
        &[],
        "CONFIG:3:39: watchers.web.stdout.max_size",
        &["invalid size 'huge'"],
    );
    assert_error(
        &format!("{w}stdout = {{ file = \"x.log\", backups = 3 }}\n"),
        &[],
        "CONFIG:3:38: watchers.web.stdout.backups",
        &["backups needs max_size"],
    );
    assert_error(
        &format!("{w}stderr = \"stdin\"\n"),
        &[],
        "CONFIG:3:10: watchers.web.stderr",
        &["unknown value 'stdin'"],
    );
    assert_error(
        &format!("{w}rlimits = {{ nofiles = 10 }}\n"),
        &[],
        "CONFIG:3:23: watchers.web.rlimits.nofiles",
        &["did you mean 'nofile'"],
    );
}

#[test]
fn host_problems_name_file_line_and_key() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    // Only --check can know: users and groups that do not exist.
    assert_error(
        &format!("{w}user = \"no-such-user-rm\"\n"),
        &[],
        "CONFIG:3:1: watchers.web.user",
        &["no such user 'no-such-user-rm'"],
    );
    assert_error(
        &format!("{w}group = \"no-such-group-rm\"\n"),
        &[],
        "CONFIG:3:1: watchers.web.group",
        &["no such group"],
    );
}

#[test]
fn include_errors_name_the_included_file() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    // Includes: a duplicate watcher, and [daemon] in an included file.
    assert_error(
        &format!("[daemon]\ninclude = [\"conf.d/*.toml\"]\n{w}"),
        &[("conf.d/a.toml", "[watchers.web]\ncmd = \"sleep 2\"\n")],
        "DIR/conf.d/a.toml:1:11: watchers.web",
        &[
            "duplicate watcher 'web'",
            "first defined at CONFIG_PLACEHOLDER".trim_end_matches("CONFIG_PLACEHOLDER"),
        ],
    );
    assert_error(
        "[daemon]\ninclude = \"conf.d/*.toml\"\n",
        &[("conf.d/b.toml", "[daemon]\nlog_level = \"debug\"\n")],
        "DIR/conf.d/b.toml:1:2: daemon",
        &["only appear in the main configuration file"],
    );
}

#[test]
fn several_errors_are_reported_at_once() {
    let (code, err, _) = check(
        "[watchers.a]\ncmd = \"x\"\nrestart = \"no\"\nstop_signal = \"NOPE\"\n",
        &[],
    );
    assert_eq!(code, Some(1));
    assert!(
        err.contains("watchers.a.restart") && err.contains("watchers.a.stop_signal"),
        "{err}"
    );
}

#[test]
fn check_prints_a_summary_and_exit_codes_follow_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ringmaster.toml");
    std::fs::write(
        &path,
        "[daemon]\ninclude = [\"conf.d/*.toml\"]\n[watchers.web]\ncmd = \"python3 -m http.server $(env.RM_PORT)\"\nnumprocesses = 2\n\
         depends_on = [\"worker\"]\nhealth = { tcp = \"127.0.0.1:$(env.RM_PORT)\", interval = \"5s\" }\n\
         hooks = { before_start = \"true\", after_stop = \"true\" }\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("conf.d")).unwrap();
    std::fs::write(
        dir.path().join("conf.d/worker.toml"),
        "[watchers.worker]\nargs = [\"sleep\", \"10\"]\n",
    )
    .unwrap();
    let output = Command::new(ringmasterd())
        .arg("--check")
        .arg(&path)
        .env("RM_PORT", "8080")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    let text = stdout(&output);
    assert!(text.contains(": OK"), "{text}");
    assert!(text.contains("watchers 2 (3 processes)"), "{text}");
    assert!(text.contains("python3 -m http.server 8080"), "{text}");
    assert!(
        text.contains("after worker; health by tcp every 5s; hooks before_start, after_stop"),
        "{text}"
    );

    let unset = Command::new(ringmasterd())
        .arg("--check")
        .arg(&path)
        .env_remove("RM_PORT")
        .output()
        .unwrap();
    assert_eq!(unset.status.code(), Some(1));
    assert!(
        stderr(&unset).contains("environment variable RM_PORT is not set"),
        "{unset:?}"
    );

    let usage = Command::new(ringmasterd()).arg("--bogus").output().unwrap();
    assert_eq!(usage.status.code(), Some(2), "{usage:?}");

    // A bad config at start-up (not --check) is exit 1 with the message.
    std::fs::write(&path, "[watchers.x]\nrestart = 1\n").unwrap();
    let start = Command::new(ringmasterd()).arg(&path).output().unwrap();
    assert_eq!(start.status.code(), Some(1));
    assert!(stderr(&start).contains("watchers.x"), "{start:?}");
}

#[test]
fn bad_sockets_name_file_line_and_key() {
    let sockets = "[sockets.web]\naddress = \"tcp://127.0.0.1:8000\"\n";
    assert_error(
        "[sockets.web]\naddress = \"127.0.0.1:8000\"\n",
        &[],
        "CONFIG:2:11: sockets.web.address",
        &["write tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH"],
    );
    assert_error(
        "[sockets.web]\nbacklog = 10\n",
        &[],
        "CONFIG:1:10: sockets.web.address",
        &["missing: every socket needs an address"],
    );
    assert_error(
        &format!("{sockets}mode = \"0600\"\n"),
        &[],
        "CONFIG:3:8: sockets.web.mode",
        &["only a unix:// socket has a file"],
    );
    assert_error(
        &format!("{sockets}[watchers.w]\ncmd = \"sleep 1\"\nsockets = [\"wbe\"]\n"),
        &[],
        "CONFIG:5:1: watchers.w.sockets",
        &["no socket 'wbe' is defined (did you mean 'web'?)"],
    );
    assert_error(
        &format!(
            "{sockets}[watchers.w]\ncmd = \"serve --fd $(sockets.api)\"\nsockets = [\"web\"]\n"
        ),
        &[],
        "CONFIG:4:7: watchers.w.cmd",
        &["$(sockets.api): 'api' is not one of this watcher's sockets (web)"],
    );
    assert_error(
        &format!("{sockets}[sockets.again]\naddress = \"tcp://127.0.0.1:8000\"\n"),
        &[],
        "CONFIG:3:10: sockets.again.address",
        &["tcp://127.0.0.1:8000 is already socket 'web'"],
    );
    assert_error(
        "[sockets.web]\naddress = \"tcp://127.0.0.1:$(wid+8000)\"\n",
        &[],
        "CONFIG:2:11: sockets.web.address",
        &["$(wid) means nothing here"],
    );
    assert_error(
        "[sockets.web]\naddress = \"tcp://127.0.0.1:$(env.RINGMASTER_TEST_NO_PORT)\"\n",
        &[],
        "CONFIG:2:11: sockets.web.address",
        &["RINGMASTER_TEST_NO_PORT is not set"],
    );
}

#[test]
fn bad_readiness_checks_name_file_line_and_key() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    assert_error(
        &format!("{w}ready = {{ tcp = \"127.0.0.1:80\", log = \"up\" }}\n"),
        &[],
        "CONFIG:3:9: watchers.web.ready",
        &["gives 2 checks (tcp, log): give exactly one"],
    );
    assert_error(
        &format!("{w}ready = {{ timeout = \"5s\" }}\n"),
        &[],
        "CONFIG:3:9: watchers.web.ready",
        &["names no check"],
    );
    assert_error(
        &format!("{w}ready = {{ log = \"(unclosed\" }}\n"),
        &[],
        "CONFIG:3:17: watchers.web.ready.log",
        &["not a regular expression"],
    );
    assert_error(
        &format!("{w}ready = {{ http = \"https://x/\" }}\n"),
        &[],
        "CONFIG:3:18: watchers.web.ready.http",
        &["https is not checked"],
    );
    assert_error(
        &format!("{w}ready = {{ tcp = \"localhost\" }}\n"),
        &[],
        "CONFIG:3:17: watchers.web.ready.tcp",
        &["'localhost' is not HOST:PORT"],
    );
    assert_error(
        &format!("{w}ready = {{ tpc = \"127.0.0.1:80\" }}\n"),
        &[],
        "CONFIG:3:11: watchers.web.ready.tpc",
        &["unknown key (did you mean 'tcp'?)"],
    );
    assert_error(
        &format!("{w}ready = {{ tcp = \"127.0.0.1:80\", timeout = \"0s\" }}\n"),
        &[],
        "CONFIG:3:43: watchers.web.ready.timeout",
        &["must be more than 0"],
    );
}

/// Test plan G38: `depends_on` names only watchers, and a cycle is an
/// error naming every member with the file and line of its `depends_on`.
#[test]
fn bad_dependencies_name_file_line_and_key() {
    assert_error(
        "[watchers.web]\ncmd = \"sleep 1\"\ndepends_on = [\"rdis\"]\n\n[watchers.redis]\ncmd = \"sleep 1\"\n",
        &[],
        "CONFIG:3:1: watchers.web.depends_on",
        &["no watcher 'rdis' is defined", "did you mean 'redis'"],
    );
    assert_error(
        "[watchers.web]\ncmd = \"sleep 1\"\ndepends_on = [\"web\"]\n",
        &[],
        "CONFIG:3:1: watchers.web.depends_on",
        &["cannot depend on itself"],
    );
    assert_error(
        "[watchers.a]\ncmd = \"sleep 1\"\ndepends_on = [\"b\"]\n\n\
         [watchers.b]\ncmd = \"sleep 1\"\ndepends_on = [\"c\"]\n\n\
         [watchers.c]\ncmd = \"sleep 1\"\ndepends_on = [\"a\"]\n\n\
         [watchers.d]\ncmd = \"sleep 1\"\ndepends_on = [\"a\"]\n",
        &[],
        "CONFIG:3:1: watchers.a.depends_on",
        &[
            "depends_on forms a cycle: a -> b -> c -> a",
            "(a at ",
            "ringmaster.toml:3:1, b at ",
            "ringmaster.toml:7:1, c at ",
            "ringmaster.toml:11:1)",
        ],
    );
    assert_error(
        "[watchers.web]\ncmd = \"sleep 1\"\ndepends_on = \"redis\"\n",
        &[],
        "CONFIG:3:14: watchers.web.depends_on",
        &["a list of watcher names"],
    );
}

/// Health checks and hooks: one check per table, known names only,
/// durations and counts in range.
#[test]
fn bad_health_checks_and_hooks_name_file_line_and_key() {
    let w = "[watchers.web]\ncmd = \"sleep 1\"\n";
    assert_error(
        &format!("{w}health = {{ log = \"up\" }}\n"),
        &[],
        "watchers.web.health.log",
        &["unknown key"],
    );
    assert_error(
        &format!("{w}health = {{ interval = \"1s\" }}\n"),
        &[],
        "CONFIG:3:10: watchers.web.health",
        &["names no check: give one of tcp, http or cmd"],
    );
    assert_error(
        &format!("{w}health = {{ tcp = \"127.0.0.1:1\", failures = 0 }}\n"),
        &[],
        "watchers.web.health.failures",
        &["out of range"],
    );
    assert_error(
        &format!("{w}hooks = {{ before_strat = \"true\" }}\n"),
        &[],
        "watchers.web.hooks.before_strat",
        &["unknown key", "did you mean 'before_start'"],
    );
    assert_error(
        &format!("{w}hooks = {{ after_stop = \"\" }}\n"),
        &[],
        "watchers.web.hooks.after_stop",
        &["must not be empty"],
    );
    assert_error(
        &format!("{w}hook_timeout = \"0s\"\n"),
        &[],
        "CONFIG:3:16: watchers.web.hook_timeout",
        &["must be more than 0"],
    );
}
