#!/usr/bin/env python3
"""Benchmark ringmaster side by side with supervisord and Circus.

One command: python3 bench/run.py [--quick] [--reps N] [--tools a,b] [--only s1,s2]

It installs supervisor and circus from PyPI into bench/.venv when missing
(and re-runs itself with that interpreter), builds ringmaster in release
mode, then runs every scenario against every tool, alternating between the
tools within each repetition so that drift on a shared machine hits all
alike. Each scenario writes the equivalent configuration for each tool
(ringmaster TOML, supervisord.conf, circus.ini), has a time limit, and kills
only the processes it started (by pid, from /proc).

Rows ("tools"):
  ringmaster      package defaults
  supervisord     package defaults (it has no restart knob below its 1 s tick)
  circus          package defaults (check_delay = 5 s)
  circus-fast     Circus's fastest restart setting: check_delay = 0.1 s

Settings common to every tool, so that the scenarios mean the same thing:
a process counts as running as soon as it is spawned (ringmaster
start_secs = 0, supervisord startsecs = 0; Circus has no such delay), log
rotation is off, and supervisord gets minfds = 8192 so that it can hold
1000 processes at all.

Results: bench/results/run-STAMP.json and run-STAMP.md (median of the
repetitions, with min and max, and ratios ringmaster/peer). --quick uses
tiny sizes and one repetition so CI can check that the harness still runs;
its figures mean nothing. Nothing here asserts on a time.
"""

import argparse
import datetime
import json
import multiprocessing
import os
import platform
import resource
import shlex
import shutil
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, "bench")
VENV = os.path.join(BENCH, ".venv")
VENV_PYTHON = os.path.join(VENV, "bin", "python")
# The peers, and the real programs tests run under ringmaster (gunicorn:
# a killed master's workers must not outlive it; celery with its Redis
# client: examples/webapp's worker).
PEERS = ["supervisor==4.3.0", "circus==0.19.0", "gunicorn==23.0.0", "flask==3.1.3",
         "celery[redis]==5.5.3", "prometheus_client==0.26.0"]
# What the venv was last set up with: a change of PEERS installs again.
VENV_STAMP = os.path.join(VENV, "ringmaster-peers.txt")
RELEASE = os.path.join(ROOT, "target", "release")
RINGMASTERD = os.path.join(RELEASE, "ringmasterd")
RINGMASTERCTL = os.path.join(RELEASE, "ringmasterctl")
KIT = os.path.join(RELEASE, "ringmaster-testkit")
SLEEP = shutil.which("sleep") or "/bin/sleep"
TICK = os.sysconf("SC_CLK_TCK")
LINE_BYTES = 100
FILLER = b"ringmaster log throughput line: every byte must arrive, in order, exactly once.........."


# ----------------------------------------------------------------- set-up --

def ensure_venv():
    """Re-runs this script under bench/.venv's python, creating it if needed."""
    if os.path.realpath(sys.prefix) == os.path.realpath(VENV):
        return
    wanted = "\n".join(PEERS) + "\n"
    try:
        with open(VENV_STAMP) as stamp:
            current = stamp.read()
    except OSError:
        current = None
    if not os.path.exists(VENV_PYTHON) or current != wanted:
        print("setting up %s with %s" % (VENV, ", ".join(PEERS)), flush=True)
        if not os.path.exists(VENV_PYTHON):
            subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([VENV_PYTHON, "-m", "pip", "install", "-q", "--disable-pip-version-check"] + PEERS,
                       check=True)
        with open(VENV_STAMP, "w") as stamp:
            stamp.write(wanted)
    os.execv(VENV_PYTHON, [VENV_PYTHON] + sys.argv)


def build():
    subprocess.run(["cargo", "build", "--release", "--locked", "--bins"], cwd=ROOT, check=True)


# ------------------------------------------------------------ /proc probes --

def children_of(pid):
    """Direct children of pid (from /proc/*/stat)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if int(fields[1]) == pid:
            found.append(int(entry))
    return found


class ChildTracker:
    """Counts a daemon's children that have exec'd `target`, reading /proc
    only for pids it has not classified yet, so that polling does not steal
    the CPU the daemons are being measured on."""

    def __init__(self, parent, target):
        self.parent, self.target = parent, target
        self.others, self.pending, self.done = set(), set(), set()

    def execd(self):
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            pid = int(entry)
            if pid in self.others or pid in self.done:
                continue
            if pid not in self.pending:
                try:
                    with open("/proc/%d/stat" % pid) as f:
                        stat = f.read()
                except OSError:
                    continue
                if int(stat[stat.rfind(")") + 2:].split()[1]) != self.parent:
                    self.others.add(pid)
                    continue
            # A child still running the daemon's image has not exec'd yet.
            if exe_of(pid) == self.target:
                self.pending.discard(pid)
                self.done.add(pid)
            else:
                self.pending.add(pid)
        return len(self.done)


def descendants(root):
    parents = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    stat = f.read()
                parents[int(entry)] = int(stat[stat.rfind(")") + 2:].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        for pid, ppid in parents.items():
            if ppid == parent and pid not in found:
                found.append(pid)
                frontier.append(pid)
    return found


def kill_descendants(root):
    """SIGKILL to everything below root (by pid, from /proc)."""
    for pid in descendants(root):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
        return stat[stat.rfind(")") + 2] != "Z"
    except OSError:
        return False


def exe_of(pid):
    try:
        return os.readlink("/proc/%d/exe" % pid)
    except OSError:
        return None


def cpu_seconds(pid):
    """utime + stime of the whole process (all threads)."""
    with open("/proc/%d/stat" % pid) as f:
        stat = f.read()
    fields = stat[stat.rfind(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def status_value(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def voluntary_switches(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


class Timeout(Exception):
    pass


def wait_for(check, limit, what, interval=0.002):
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise Timeout("timed out after %ss waiting for %s" % (limit, what))
        time.sleep(interval)


def summary(samples):
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p95": p95, "max": ordered[-1],
            "min": ordered[0], "n": len(ordered)}


# ----------------------------------------------------------------- tools --

#: A Watcher's stdout: a log file per process and stream, as each tool
#: writes by default (ringmaster's default files, supervisord's AUTO,
#: Circus FileStreams named by wid).
FILES = "files"


class Watcher:
    """One supervised program, described once for every tool."""

    def __init__(self, name, argv, count=1, stdout=None, autostart=True, restart=True, extra=""):
        self.name, self.argv, self.count = name, argv, count
        self.stdout, self.autostart, self.restart = stdout, autostart, restart
        #: More keys, for ringmaster's configuration only (its own features).
        self.extra = extra


class Tool:
    """A supervisor under test, running in its own temp dir."""

    label = "?"

    def __init__(self, watchers, daemon_extra=""):
        self.dir = tempfile.mkdtemp(prefix="rm-bench-%s-" % self.label)
        self.watchers = watchers
        #: More keys of ringmaster's [daemon] table (a line each).
        self.daemon_extra = daemon_extra
        self.proc = None
        self.err = None

    def path(self, name):
        return os.path.join(self.dir, name)

    #: Extra environment and a command prefix (systemd's variables, unshare).
    extra_env = {}
    prefix = []

    def start(self):
        self.write_config()
        self.err = open(self.path("daemon.err"), "w")
        self.started = time.monotonic()
        env = dict(os.environ, **self.extra_env)
        self.proc = subprocess.Popen(self.prefix + self.command(), stdin=subprocess.DEVNULL,
                                     stdout=self.err, stderr=self.err, cwd=self.dir,
                                     start_new_session=True, env=env)
        wait_for(self.ready, 60, "%s to answer" % self.label, interval=0.005)
        return self

    def total(self):
        return sum(w.count for w in self.watchers)

    def exited(self):
        return self.proc.poll() is not None

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            kill_descendants(self.proc.pid)
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()
        if self.err:
            self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()


class Ringmaster(Tool):
    label = "ringmaster"

    def close(self):
        super().close()
        remove_cgroups(self.path("rm.sock"))

    def write_config(self):
        self.socket = self.path("rm.sock")
        out = ['[daemon]\nsocket = "%s"\nlogs_dir = "%s"\nlog_level = "warn"\n%s'
               % (self.socket, self.path("logs"), self.daemon_extra)]
        for w in self.watchers:
            out.append("[watchers.%s]" % w.name)
            out.append("args = %s" % json.dumps(w.argv))
            out.append("numprocesses = %d" % w.count)
            out.append('start_secs = "0"')
            out.append("autostart = %s" % ("true" if w.autostart else "false"))
            out.append('restart = "%s"' % ("always" if w.restart else "never"))
            if w.extra:
                out.append(w.extra)
            if w.stdout == FILES:
                out.append("")  # ringmaster's default: a file per stream
            else:
                out.append('stdout = %s' % ('{ file = "%s" }' % w.stdout if w.stdout else '"null"'))
                out.append('stderr = "null"\n')
        with open(self.path("ringmaster.toml"), "w") as f:
            f.write("\n".join(out))

    def command(self):
        return [RINGMASTERD, self.path("ringmaster.toml")]

    def request(self, cmd, args=None):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.socket)
            line = {"id": 1, "cmd": cmd}
            if args is not None:
                line["args"] = args
            s.sendall((json.dumps(line) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def ready(self):
        try:
            return self.request("version")["ok"]
        except OSError:
            return False

    def running(self):
        return sum(p["state"] == "RUNNING" for p in self.request("status", {})["result"]["processes"])

    def start_watcher(self, name):
        self.request("start", {"names": [name]})

    def incr(self, name, count):
        """Adds COUNT processes and waits until they run; False if it cannot."""
        return self.request("incr", {"name": name, "count": count})["ok"]

    def cli_status(self):
        return [RINGMASTERCTL, "-s", self.socket, "status"]

    def cli_shutdown(self):
        return [RINGMASTERCTL, "-s", self.socket, "shutdown"]

    def control_path(self):
        return self.socket

    def status_once(self):
        return self.request("status", {})["ok"]

    def raw_session(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.socket)
        stream = sock.makefile("rwb")

        def call():
            stream.write(b'{"id":1,"cmd":"status"}\n')
            stream.flush()
            return stream.readline()
        return call, sock.close


class Supervisord(Tool):
    label = "supervisord"

    def write_config(self):
        self.socket = self.path("supervisor.sock")
        out = ["[supervisord]", "nodaemon = true", "logfile = %s" % self.path("supervisord.log"),
               "pidfile = %s" % self.path("supervisord.pid"), "childlogdir = %s" % self.dir,
               "loglevel = warn", "minfds = 8192", "minprocs = 4096", "",
               "[unix_http_server]", "file = %s" % self.socket, "",
               "[rpcinterface:supervisor]",
               "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
               "[supervisorctl]", "serverurl = unix://%s" % self.socket, ""]
        for w in self.watchers:
            out += ["[program:%s]" % w.name, "command = %s" % shlex.join(w.argv),
                    "numprocs = %d" % w.count, "process_name = %(program_name)s_%(process_num)d",
                    "startsecs = 0", "autostart = %s" % ("true" if w.autostart else "false"),
                    "autorestart = %s" % ("true" if w.restart else "false"),
                    "stdout_logfile = %s" % ("AUTO" if w.stdout == FILES else w.stdout or "NONE"),
                    "stdout_logfile_maxbytes = 0",
                    "stderr_logfile = %s" % ("AUTO" if w.stdout == FILES else "NONE"),
                    "stderr_logfile_maxbytes = 0", ""]
        with open(self.path("supervisord.conf"), "w") as f:
            f.write("\n".join(out))

    def command(self):
        return [os.path.join(VENV, "bin", "supervisord"), "-c", self.path("supervisord.conf")]

    def proxy(self):
        import xmlrpc.client
        from supervisor.xmlrpc import SupervisorTransport
        transport = SupervisorTransport(None, None, "unix://" + self.socket)
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)

    def ready(self):
        try:
            return self.proxy().supervisor.getState()["statename"] == "RUNNING"
        except Exception:
            return False

    def running(self):
        return sum(p["statename"] == "RUNNING" for p in self.proxy().supervisor.getAllProcessInfo())

    def start_watcher(self, name):
        self.proxy().supervisor.startProcessGroup(name, False)

    def incr(self, name, count):
        return False  # supervisord cannot add processes to a program

    def cli_status(self):
        return [os.path.join(VENV, "bin", "supervisorctl"), "-c", self.path("supervisord.conf"), "status"]

    def cli_shutdown(self):
        return [os.path.join(VENV, "bin", "supervisorctl"), "-c", self.path("supervisord.conf"), "shutdown"]

    def control_path(self):
        return self.socket

    def status_once(self):
        return bool(self.proxy().supervisor.getAllProcessInfo())

    def raw_session(self):
        proxy = self.proxy()
        return proxy.supervisor.getAllProcessInfo, lambda: None


class Circus(Tool):
    label = "circus"
    check_delay = 5.0

    def write_config(self):
        self.endpoint = "ipc://%s" % self.path("endpoint")
        out = ["[circus]", "endpoint = %s" % self.endpoint,
               "pubsub_endpoint = ipc://%s" % self.path("pubsub"),
               "check_delay = %s" % self.check_delay, "loglevel = WARNING",
               "logoutput = %s" % self.path("circus.log"), ""]
        for w in self.watchers:
            out += ["[watcher:%s]" % w.name, "cmd = %s" % w.argv[0],
                    "args = %s" % shlex.join(w.argv[1:]), "numprocesses = %d" % w.count,
                    "autostart = %s" % w.autostart, "respawn = %s" % w.restart, "copy_env = True"]
            if w.stdout == FILES:
                for stream in ("stdout", "stderr"):
                    out += ["%s_stream.class = FileStream" % stream,
                            "%s_stream.filename = %s" % (stream, self.path(
                                "%s-$(circus.wid).%s.log" % (w.name, stream)))]
            elif w.stdout:
                out += ["stdout_stream.class = FileStream", "stdout_stream.filename = %s" % w.stdout]
            out.append("")
        with open(self.path("circus.ini"), "w") as f:
            f.write("\n".join(out))

    def command(self):
        return [os.path.join(VENV, "bin", "circusd"), self.path("circus.ini")]

    def client(self):
        from circus.client import CircusClient
        return CircusClient(endpoint=self.endpoint, timeout=30)

    def call(self, command, **properties):
        client = self.client()
        try:
            return client.call({"command": command, "properties": properties})
        finally:
            client.stop()

    def ready(self):
        try:
            return self.call("status").get("status") == "ok"
        except Exception:
            return False

    def running(self):
        count = 0
        for w in self.watchers:
            count += sum(1 for pid in self.call("list", name=w.name).get("pids", []) if alive(pid))
        return count

    def start_watcher(self, name):
        self.call("start", name=name, waiting=False)

    def incr(self, name, count):
        return self.call("incr", name=name, nb=count, waiting=True).get("status") == "ok"

    def cli_status(self):
        return [os.path.join(VENV, "bin", "circusctl"), "--endpoint", self.endpoint, "status"]

    def cli_shutdown(self):
        return [os.path.join(VENV, "bin", "circusctl"), "--endpoint", self.endpoint, "quit", "--waiting"]

    def control_path(self):
        return self.path("endpoint")

    def status_once(self):
        return self.call("status").get("status") == "ok"

    def raw_session(self):
        client = self.client()
        return (lambda: client.call({"command": "status", "properties": {}})), client.stop


class CircusFast(Circus):
    label = "circus-fast"
    check_delay = 0.1


TOOLS = {t.label: t for t in (Ringmaster, Supervisord, Circus, CircusFast)}


# ------------------------------------------------------------- scenarios --

def idle(tool_cls, size):
    """10 sleeping children: footprint, and CPU and wake-ups while idle."""
    seconds = size["idle_secs"]
    with tool_cls([Watcher("idle", [SLEEP, "100000"], 10)]) as tool:
        wait_for(lambda: tool.running() == 10, 60, "10 running", interval=0.05)
        time.sleep(1.0)
        pid = tool.proc.pid
        cpu0, wake0 = cpu_seconds(pid), voluntary_switches(pid)
        time.sleep(seconds)
        cpu, wake = cpu_seconds(pid) - cpu0, voluntary_switches(pid) - wake0
        return {"rss_mb": status_value(pid, "VmRSS") / 1024, "pss_mb": (pss_kb(pid) or 0) / 1024,
                "threads": status_value(pid, "Threads"), "fds": len(os.listdir("/proc/%d/fd" % pid)),
                "idle_cpu_ms": cpu * 1000, "wakeups": wake, "idle_secs": seconds,
                "helpers": len([p for p in children_of(pid) if exe_of(p) != SLEEP])}


def scale(tool_cls, count, calls, incr):
    """COUNT sleeping children: daemon memory, status round trips on one
    connection, then incr by INCR (until the new ones run) where the tool
    has it (supervisord has no incr)."""
    with tool_cls([Watcher("many", [SLEEP, "100000"], count)]) as tool:
        wait_for(lambda: tool.running() == count, 180, "%d running" % count, interval=0.05)
        time.sleep(0.5)
        pid = tool.proc.pid
        result = {"rss_mb": status_value(pid, "VmRSS") / 1024}
        call, close = tool.raw_session()
        samples = []
        try:
            for _ in range(calls):
                t0 = time.perf_counter()
                call()
                samples.append((time.perf_counter() - t0) * 1e3)
        finally:
            close()
        result["raw_status_ms"] = summary(samples)
        t0 = time.perf_counter()
        done = tool.incr("many", incr)
        result["incr_ms"] = (time.perf_counter() - t0) * 1e3 if done else "n/a"
        if done:
            wait_for(lambda: tool.running() == count + incr, 180, "%d running" % (count + incr),
                     interval=0.05)
        return result


def spawn_scale(tool_cls, count, logs=None):
    """Daemon start until N children have exec'd, then until the tool says
    all N are running; `logs` FILES: each process logs to files."""
    target = os.path.realpath(SLEEP)
    tool = tool_cls([Watcher("many", [SLEEP, "100000"], count, stdout=logs)])
    try:
        tool.write_config()
        tool.err = open(tool.path("daemon.err"), "w")
        t0 = time.monotonic()
        tool.proc = subprocess.Popen(tool.command(), stdin=subprocess.DEVNULL, stdout=tool.err,
                                     stderr=tool.err, cwd=tool.dir, start_new_session=True)
        tracker = ChildTracker(tool.proc.pid, target)
        wait_for(lambda: tracker.execd() >= count, 120, "%d children exec'd" % count, interval=0.01)
        execd = time.monotonic() - t0
        wait_for(tool.ready, 120, "the tool to answer", interval=0.01)
        wait_for(lambda: tool.running() >= count, 120, "%d running" % count, interval=0.02)
        return {"execd_s": execd, "running_s": time.monotonic() - t0}
    finally:
        tool.close()


def restart_latency(tool_cls, kills, total=1, logs=None):
    """SIGKILL a running child, time until its replacement's main() runs;
    with TOTAL processes in all (the others sleep), each with LOGS."""
    stamps = tempfile.mktemp(prefix="rm-bench-stamps-")

    def lines():
        try:
            with open(stamps) as f:
                # Complete lines only.
                return [line.split() for line in f.read().split("\n")[:-1] if line.strip()]
        except OSError:
            return []
    samples = []
    try:
        watchers = [Watcher("victim", [KIT, "stamp", stamps], stdout=logs)]
        if total > 1:
            watchers.append(Watcher("others", [SLEEP, "100000"], total - 1, stdout=logs))
        with tool_cls(watchers) as tool:
            wait_for(lambda: len(lines()) == 1, 120, "first stamp")
            for i in range(kills):
                wait_for(lambda: tool.running() == total, 120, "the children to be running",
                         interval=0.01)
                # Let the daemon fall quiet first: a crash meets an idle
                # supervisor, not one still sending the 1000-entry status
                # that was just asked of it (that tail was half a
                # millisecond of the 1000-process figure).
                time.sleep(0.05)
                pid = int(lines()[-1][0])
                t0 = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                entry = wait_for(lambda: len(lines()) == i + 2 and lines()[-1], 60, "restart",
                                 interval=0.0005)
                samples.append((int(entry[1]) - t0) / 1e6)
    finally:
        if os.path.exists(stamps):
            os.unlink(stamps)
    return summary(samples)


def spawn_baselines(count):
    """The floor for the spawn scenario on this machine: a bare
    posix_spawn loop (what glibc's posix_spawn does: clone(CLONE_VM |
    CLONE_VFORK)) starting COUNT sleeps with output to /dev/null, and
    again creating two log files and two pipes per process, as a
    supervisor that logs must; until every child has exec'd."""
    target = os.path.realpath(SLEEP)
    result = {}
    for key in ("null", "files"):
        out_dir = tempfile.mkdtemp(prefix="rm-bench-spawnbase-")
        null = os.open(os.devnull, os.O_WRONLY | os.O_CLOEXEC)
        pids, held = [], []
        try:
            t0 = time.monotonic()
            for i in range(count):
                if key == "null":
                    out = err = null
                else:
                    for stream in ("out", "err"):
                        held.append(os.open(os.path.join(out_dir, "many-%d.%s.log" % (i, stream)),
                                            os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                                            0o640))
                    (r1, out), (r2, err) = os.pipe(), os.pipe()
                    held += [r1, r2]
                pids.append(os.posix_spawn(SLEEP, [SLEEP, "100000"], os.environ, file_actions=[
                    (os.POSIX_SPAWN_DUP2, null, 0), (os.POSIX_SPAWN_DUP2, out, 1),
                    (os.POSIX_SPAWN_DUP2, err, 2)]))
                if key == "files":
                    os.close(out)
                    os.close(err)

            def execd():
                return sum(1 for pid in pids if exe_of(pid) == target)
            wait_for(lambda: execd() == count, 120, "%d exec'd" % count, interval=0.005)
            result[key + "_s"] = time.monotonic() - t0
        finally:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                    os.waitpid(pid, 0)
                except OSError:
                    pass
            for fd in held + [null]:
                os.close(fd)
            shutil.rmtree(out_dir, ignore_errors=True)
    return result


def expected_chunk(first, count):
    return b"".join(b"%010d " % n + FILLER + b"\n" for n in range(first, first + count))


def verify_lines(path, count):
    """Compares the file with what the generator wrote: (lost, mangled,
    reordered) lines; all zero when byte-exact."""
    chunk_lines = 10000
    with open(path, "rb") as f:
        data_ok = True
        for first in range(0, count, chunk_lines):
            n = min(chunk_lines, count - first)
            want = expected_chunk(first, n)
            if f.read(len(want)) != want:
                data_ok = False
                break
        if data_ok and f.read(1) == b"":
            return 0, 0, 0
    lost = mangled = reordered = 0
    expected = 0
    with open(path, "rb") as f:
        for line in f:
            try:
                number = int(line[:10])
            except ValueError:
                mangled += 1
                continue
            if line != b"%010d " % number + FILLER + b"\n":
                mangled += 1
            if number == expected:
                expected += 1
            elif number > expected:
                lost += number - expected
                expected = number + 1
            else:
                reordered += 1
    lost += max(0, count - expected)
    return lost, mangled, reordered


def scratch_dir(prefix):
    """Log files go to tmpfs when there is one: the scenario measures the
    supervisors' pipelines, not the disk's writeback (the same for all)."""
    base = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
    return tempfile.mkdtemp(prefix=prefix, dir=base)


def cat_run(count, path):
    """The baseline: the same generator through `cat` into a file."""
    t0 = time.monotonic()
    subprocess.run("%s lines %d | cat > %s" % (shlex.quote(KIT), count, shlex.quote(path)),
                   shell=True, check=True)
    return count * LINE_BYTES / 1e6 / (time.monotonic() - t0)


def log_throughput(tool_cls, count):
    """One child writes COUNT 100-byte lines; MB/s until the file is
    complete, the daemon's CPU, and byte-exact verification. A `cat` run of
    the same size right before gives the ratio for this very moment."""
    total = count * LINE_BYTES
    out_dir = scratch_dir("rm-bench-log-")
    log = os.path.join(out_dir, "out.log")
    try:
        cat = cat_run(count, os.path.join(out_dir, "cat.out"))
        os.unlink(os.path.join(out_dir, "cat.out"))
        with tool_cls([Watcher("writer", [KIT, "lines", str(count)], 1, stdout=log,
                               autostart=False, restart=False)]) as tool:
            pid = tool.proc.pid
            cpu0 = cpu_seconds(pid)
            t0 = time.monotonic()
            tool.start_watcher("writer")
            wait_for(lambda: os.path.exists(log) and os.path.getsize(log) >= total, 600,
                     "%d bytes in the log" % total, interval=0.005)
            elapsed = time.monotonic() - t0
            cpu = cpu_seconds(pid) - cpu0
        lost, mangled, reordered = verify_lines(log, count)
        return {"mb_per_s": total / 1e6 / elapsed, "cat_mb_per_s": cat,
                "vs_cat": total / 1e6 / elapsed / cat, "daemon_cpu_s": cpu,
                "cpu_s_per_gb": cpu / (total / 1e9), "lost": lost, "mangled": mangled,
                "reordered": reordered, "bytes": total}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


def log_baselines(count):
    total = count * LINE_BYTES
    out_dir = scratch_dir("rm-bench-base-")
    try:
        t0 = time.monotonic()
        subprocess.run([KIT, "lines", str(count)], stdout=subprocess.DEVNULL, check=True)
        devnull = time.monotonic() - t0
        path = os.path.join(out_dir, "cat.out")
        cat = cat_run(count, path)
        lost, mangled, reordered = verify_lines(path, count)
        return {"generator_to_devnull_mb_per_s": total / 1e6 / devnull,
                "cat_pipe_to_file_mb_per_s": cat, "cat_lost": lost + mangled + reordered}
    finally:
        shutil.rmtree(out_dir, ignore_errors=True)


ACCESS_LINE = 50


def access_logs(root):
    """The files under ROOT holding an access-log writer's output."""
    found = []
    for base, _, names in os.walk(root):
        for name in names:
            path = os.path.join(base, name)
            if not os.path.isfile(path):  # sockets, FIFOs
                continue
            try:
                with open(path, "rb") as f:
                    if f.read(13) == b"00000000 GET ":
                        found.append(path)
            except OSError:
                pass
    return found


def chatty(tool_cls, procs, lines, interval_ms):
    """PROCS web workers, each writing one 50-byte access-log line every
    INTERVAL_MS to its own log file (the tool's default files), LINES each
    (a watcher of one process each).
    Over a window in the middle: the daemon's CPU, per line logged; its
    threads and RSS; at the end every file is checked line by line."""
    argv = [KIT, "access-log", str(lines), str(interval_ms)]
    # A watcher per process: Circus opens one stream per watcher, so only
    # this gives every process its own file in every tool.
    watchers = [Watcher("web%03d" % i, argv, 1, stdout=FILES, restart=False) for i in range(procs)]
    with tool_cls(watchers) as tool:
        wait_for(lambda: tool.running() == procs, 120, "%d running" % procs, interval=0.05)
        files = wait_for(lambda: (lambda f: len(f) == procs and f)(access_logs(tool.dir)), 30,
                         "a log file per process", interval=0.05)
        duration = lines * interval_ms / 1000
        time.sleep(duration * 0.2)
        pid = tool.proc.pid

        def logged():
            return sum(os.path.getsize(f) for f in files) // ACCESS_LINE
        cpu0, lines0, t0 = cpu_seconds(pid), logged(), time.monotonic()
        time.sleep(duration * 0.5)
        cpu, logged_lines, elapsed = cpu_seconds(pid) - cpu0, logged() - lines0, time.monotonic() - t0
        threads, rss = status_value(pid, "Threads"), status_value(pid, "VmRSS") / 1024
        wait_for(lambda: logged() >= procs * lines, duration + 60, "every line logged", interval=0.05)
        want = b"".join(b"%08d GET /index.html HTTP/1.1 200 512 0.003ms\n" % n for n in range(lines))
        intact = 0
        for path in files:
            with open(path, "rb") as f:
                intact += f.read() == want
        return {"cpu_pct": cpu / elapsed * 100, "us_per_line": cpu / max(logged_lines, 1) * 1e6,
                "lines_per_s": logged_lines / elapsed, "threads": threads, "rss_mb": rss,
                "files_intact": intact, "files": procs}


def ctl_latency(tool_cls, calls, raw_calls):
    """With 100 processes: the real CLI's status (process start included),
    and raw protocol round trips on one connection."""
    with tool_cls([Watcher("many", [SLEEP, "100000"], 100)]) as tool:
        wait_for(lambda: tool.running() == 100, 120, "100 running", interval=0.05)
        cli = []
        for _ in range(calls):
            t0 = time.perf_counter()
            subprocess.run(tool.cli_status(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            cli.append((time.perf_counter() - t0) * 1e3)
        call, close = tool.raw_session()
        raw = []
        try:
            for _ in range(raw_calls):
                t0 = time.perf_counter()
                call()
                raw.append((time.perf_counter() - t0) * 1e3)
        finally:
            close()
        return {"cli_status_ms": summary(cli), "raw_status_ms": summary(raw)}


def crowd(tool_cls, idle_count, slow_count, garbage_bytes, calls):
    """10 processes; a fresh-connection status call, alone, then with
    IDLE_COUNT idle connections, SLOW_COUNT slow-loris clients (a byte each
    every 100 ms, never a newline) and GARBAGE_BYTES of garbage sent on
    one connection after another, all to the control endpoint at once."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = idle_count + slow_count + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(want, min(hard, 65536)), max(hard, want)))
    with tool_cls([Watcher("sleepy", [SLEEP, "100000"], 10)]) as tool:
        wait_for(lambda: tool.running() == 10, 60, "10 running", interval=0.05)

        def timed(n):
            samples = []
            for _ in range(n):
                t0 = time.perf_counter()
                if not tool.status_once():
                    raise RuntimeError("status failed")
                samples.append((time.perf_counter() - t0) * 1e3)
            return samples
        alone = timed(calls)
        path = tool.control_path()

        def connect():
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.connect(path)
            return sock
        idle_socks = [connect() for _ in range(idle_count)]
        # The abusers run in processes of their own, so that the timing
        # thread here never waits for Python's lock behind them.
        ctx = multiprocessing.get_context("fork")
        sent = ctx.Value("q", 0)
        cut = ctx.Value("q", 0)
        abusers = [ctx.Process(target=slow_loris, args=(path, slow_count)),
                   ctx.Process(target=garbage_sender, args=(path, garbage_bytes, sent, cut))]
        for abuser in abusers:
            abuser.start()
        try:
            # The slow clients connected before the measuring starts.
            wait_for(lambda: len(os.listdir("/proc/%d/fd" % abusers[0].pid)) >= slow_count, 30,
                     "slow clients connected", interval=0.01)
            wait_for(lambda: sent.value > 0 or cut.value > 0, 30, "garbage flowing", interval=0.01)
            # Measured in the steady state of the abuse, not while its
            # connections are still being accepted.
            time.sleep(0.5)
            loaded = timed(calls)
            rss = status_value(tool.proc.pid, "VmRSS")
        finally:
            for abuser in abusers:
                abuser.terminate()
                abuser.join()
            for sock in idle_socks:
                sock.close()
        sent, cut = sent.value, cut.value
        return {"alone_ms": summary(alone), "crowd_ms": summary(loaded),
                "rss_mb": rss / 1024 if rss else None, "garbage_mb": sent / 1e6,
                "garbage_cut": cut}


def slow_loris(path, count):
    """COUNT connections, each sent a byte every 100 ms, never a newline."""
    socks = []
    for _ in range(count):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(path)
        socks.append(sock)
    while True:
        for sock in socks:
            try:
                sock.send(b"{")
            except OSError:
                pass
        time.sleep(0.1)


def garbage_sender(path, total, sent, cut):
    """TOTAL bytes of newline-separated garbage, on one connection after
    another (a tool may close one), as fast as they are taken."""
    block = (b"#" * 4095 + b"\n") * 256
    while sent.value < total:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(path)
                while sent.value < total:
                    sock.sendall(block)
                    sent.value += len(block)
        except OSError:
            cut.value += 1


def stop_all(tool_cls, count, how, logs=None):
    """N children that exit on SIGTERM: time from the ctl's shutdown (or
    SIGTERM to the daemon) until the daemon and every child are gone."""
    with tool_cls([Watcher("many", [SLEEP, "100000"], count, stdout=logs)]) as tool:
        wait_for(lambda: tool.running() == count, 120, "%d running" % count, interval=0.05)
        children = children_of(tool.proc.pid)
        t0 = time.monotonic()
        if how == "ctl":
            subprocess.Popen(tool.cli_shutdown(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        else:
            os.kill(tool.proc.pid, signal.SIGTERM)
        remaining = list(children)

        def everything_gone():
            if not tool.exited():
                return False
            remaining[:] = [p for p in remaining if alive(p)]
            return not remaining
        try:
            wait_for(everything_gone, 120, "everything gone", interval=0.002)
        except Timeout:
            return {"seconds": None, "left_behind": len(remaining)}
        return {"seconds": time.monotonic() - t0, "left_behind": 0}


def reload_latency(tool_cls, watchers, reps):
    """ringmaster only: WATCHERS watchers of one process; the file changes
    one watcher's command; time from sending `reload` until its reply, and
    until the changed watcher runs again under a new pid (the others keep
    theirs)."""
    if tool_cls is not Ringmaster:
        return None
    ws = [Watcher("w%03d" % i, [SLEEP, "100000"]) for i in range(watchers)]
    with tool_cls(ws) as tool:
        wait_for(lambda: tool.running() == watchers, 120, "all running", interval=0.05)
        replied, applied = [], []
        target = ws[watchers // 2]

        def pid_of(name):
            procs = tool.request("status", {"names": [name]})["result"]["processes"]
            return procs[0]["pid"] if procs[0]["state"] == "RUNNING" else None
        for rep in range(reps):
            before = pid_of(target.name)
            others = {w.name: pid_of(w.name) for w in (ws[0], ws[-1])}
            target.argv = [SLEEP, str(100001 + rep)]
            tool.write_config()
            t0 = time.perf_counter()
            reply = tool.request("reload")
            replied.append((time.perf_counter() - t0) * 1e3)
            assert reply["ok"] and reply["result"]["changed"] == [target.name], reply
            wait_for(lambda: pid_of(target.name) not in (None, before), 10, "the changed watcher")
            applied.append((time.perf_counter() - t0) * 1e3)
            assert {w: pid_of(w) for w in others} == others, "unchanged watchers kept their pids"
        return {"reply_ms": summary(replied), "applied_ms": summary(applied)}


def repl_latency(tool_cls, lines):
    """ringmaster only: `ringmasterctl` in a PTY; time from sending
    `status NAME` to the next prompt, with 100 processes."""
    if tool_cls is not Ringmaster:
        return None
    import pty
    with tool_cls([Watcher("many", [SLEEP, "100000"], 100)]) as tool:
        wait_for(lambda: tool.running() == 100, 120, "100 running", interval=0.05)
        pid, fd = pty.fork()
        if pid == 0:
            os.environ.update({"HOME": tool.dir, "TERM": "xterm", "NO_COLOR": "1"})
            os.execv(RINGMASTERCTL, [RINGMASTERCTL, "-s", tool.socket])
        prompt = b"ringmaster> "

        def until_prompt(limit=10):
            seen, end = b"", time.monotonic() + limit
            while time.monotonic() < end:
                ready, _, _ = select.select([fd], [], [], 0.5)
                if ready:
                    seen += os.read(fd, 1 << 16)
                    # The prompt, redrawn after the command's output.
                    if seen.count(prompt) and seen.rstrip().endswith(b"\x1b[?2026l"):
                        return seen
            raise Timeout("no prompt")
        try:
            until_prompt()
            samples = []
            for i in range(lines):
                t0 = time.perf_counter()
                os.write(fd, b"status many:%d\r" % (i % 100 + 1))
                until_prompt()
                samples.append((time.perf_counter() - t0) * 1e3)
            os.write(fd, b"quit\r")
        finally:
            os.close(fd)
            os.waitpid(pid, 0)
        return {"line_ms": summary(samples)}


def systemd_notify(tool_cls, count, idle_secs):
    """ringmaster only, as under systemd: a datagram socket stands in for
    NOTIFY_SOCKET. Time from starting the daemon with COUNT processes to
    READY=1; then the daemon's wake-ups over IDLE_SECS without a watchdog,
    and with WatchdogSec=2 (WATCHDOG=1 every second)."""
    if tool_cls is not Ringmaster:
        return None
    results = {}
    for watchdog in (False, True):
        tool = Ringmaster([Watcher("many", [SLEEP, "100000"], count)])
        sock_path = tool.path("notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(sock_path)
        sock.settimeout(60)
        tool.extra_env = {"NOTIFY_SOCKET": sock_path}
        if watchdog:
            # systemd names the daemon's own pid: exec keeps the shell's.
            tool.extra_env["WATCHDOG_USEC"] = "2000000"
            tool.prefix = ["/bin/sh", "-c", 'export WATCHDOG_PID=$$; exec "$0" "$@"']
        try:
            t0 = time.monotonic()
            tool.start()
            while b"READY=1" not in sock.recv(4096):
                pass
            ready = time.monotonic() - t0
            time.sleep(1.0)
            pid = tool.proc.pid
            wake0 = voluntary_switches(pid)
            time.sleep(idle_secs)
            wakeups = voluntary_switches(pid) - wake0
            key = "watchdog" if watchdog else "plain"
            results[key] = {"ready_s": ready, "wakeups": wakeups, "idle_secs": idle_secs}
        finally:
            tool.close()
            sock.close()
    return results


def health_wakeups(tool_cls, count, idle_secs):
    """ringmaster only: COUNT sleeping children, each with a health check
    (a TCP connect, every second, to a socket the bench holds): the
    daemon's wake-ups and CPU over IDLE_SECS, against the checks made."""
    if tool_cls is not Ringmaster:
        return None
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4096)
    port = listener.getsockname()[1]
    check = 'health = { tcp = "127.0.0.1:%d", interval = "1s" }' % port
    try:
        with Ringmaster([Watcher("checked", [SLEEP, "100000"], count, extra=check)]) as tool:
            wait_for(lambda: tool.running() == count, 60, "%d running" % count, interval=0.05)
            time.sleep(1.5)
            pid = tool.proc.pid
            checks0 = sum(p["health"]["checks"] for p in tool.request("status")["result"]["processes"])
            cpu0, wake0 = cpu_seconds(pid), voluntary_switches(pid)
            time.sleep(idle_secs)
            cpu, wake = cpu_seconds(pid) - cpu0, voluntary_switches(pid) - wake0
            checks = sum(p["health"]["checks"] for p in tool.request("status")["result"]["processes"]) - checks0
            return {"checks": checks, "wakeups": wake, "cpu_ms": cpu * 1000,
                    "wakeups_per_check": wake / checks if checks else None, "idle_secs": idle_secs}
    finally:
        listener.close()


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def http_fetch(port, path):
    """One GET over a new connection: (seconds, bytes of body)."""
    t0 = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(("GET %s HTTP/1.0\r\nHost: bench\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = conn.recv(1 << 16)
            if not chunk:
                break
            data += chunk
    took = time.perf_counter() - t0
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.") or b" 200 " not in head.split(b"\r\n")[0]:
        raise RuntimeError("GET %s: %r" % (path, head[:80]))
    return took, len(body)


def metrics_scrapes(tool_cls, counts, scrapes, idle_secs, workers, series):
    """ringmaster only: the metrics listener. GET /metrics with each of
    COUNTS processes logging to files (median of SCRAPES); the daemon's
    RSS and its wake-ups over IDLE_SECS with the listener on and nobody
    scraping (10 processes); and GET /metrics/web over WORKERS workers'
    multiprocess files of SERIES counters each, against the Python
    client's own MultiProcessCollector and generate_latest on the same
    directory."""
    if tool_cls is not Ringmaster:
        return None
    result = {}
    for count in counts:
        port = free_port()
        extra = "metrics = \"127.0.0.1:%d\"\n" % port
        with Ringmaster([Watcher("many", [SLEEP, "100000"], count, stdout=FILES)], daemon_extra=extra) as tool:
            wait_for(lambda: tool.running() == count, 120, "%d running" % count, interval=0.05)
            http_fetch(port, "/metrics")
            samples, size = [], 0
            for _ in range(scrapes):
                took, size = http_fetch(port, "/metrics")
                samples.append(took * 1000)
            result["scrape_%d" % count] = summary(samples)
            result["bytes_%d" % count] = size
    port = free_port()
    extra = "metrics = \"127.0.0.1:%d\"\n" % port
    with Ringmaster([Watcher("quiet", [SLEEP, "100000"], 10, stdout=FILES)], daemon_extra=extra) as tool:
        wait_for(lambda: tool.running() == 10, 60, "10 running", interval=0.05)
        time.sleep(1.5)
        pid = tool.proc.pid
        wake0 = voluntary_switches(pid)
        time.sleep(idle_secs)
        # Nobody scraped: the listener alone must not wake the daemon.
        result["idle_wakeups"] = voluntary_switches(pid) - wake0
        result["rss_idle_mb"] = status_value(pid, "VmRSS") / 1024
        http_fetch(port, "/metrics")
        result["rss_mb"] = status_value(pid, "VmRSS") / 1024
    port = free_port()
    extra = "metrics = \"127.0.0.1:%d\"\n" % port
    multiproc = "prometheus_multiproc = true"
    with Ringmaster([Watcher("web", [SLEEP, "100000"], 1, stdout=FILES, extra=multiproc)],
                    daemon_extra=extra) as tool:
        wait_for(lambda: tool.running() == 1, 60, "web running", interval=0.05)
        directory = tool.path("rm.sock.prometheus/web")
        python = os.path.join(VENV, "bin", "python")
        subprocess.run([python, "-c", MULTIPROC_WRITER, directory, str(workers), str(series)], check=True)
        samples, size = [], 0
        for _ in range(scrapes):
            took, size = http_fetch(port, "/metrics/web")
            samples.append(took * 1000)
        result["merged"] = summary(samples)
        result["merged_bytes"] = size
        client = subprocess.run([python, "-c", MULTIPROC_CLIENT, directory, str(scrapes)],
                                check=True, capture_output=True, text=True)
        result["client_merged"] = summary([float(x) for x in client.stdout.split()])
    return result


def stop_trees(tool_cls, count):
    """ringmaster only: `stop` of one process that started COUNT - 1
    others, in its process group or as setsid escapees, with cgroups and
    with `cgroups = false`: how long stop took, and how many of them
    were still alive after it."""
    if tool_cls is not Ringmaster:
        return None
    result = {}
    for shape, child in (("group", "sleep 1000 &"),
                         ("setsid", "(setsid sleep 1000 </dev/null >/dev/null 2>&1 &);")):
        script = "for i in $(seq %d); do %s done; exec sleep 1000" % (count - 1, child)
        for cgroups in (True, False):
            extra = "" if cgroups else "cgroups = false\n"
            watcher = Watcher("tree", ["sh", "-c", script], 1, stdout=FILES, extra='stop_timeout = "10s"')
            with Ringmaster([watcher], daemon_extra=extra) as tool:
                wait_for(lambda: tool.running() == 1, 60, "the tree running", interval=0.05)
                leader = tool.request("status")["result"]["processes"][0]["pid"]
                wait_for(lambda: len(tree_pids(tool.proc.pid)) >= count, 60, "%d processes" % count,
                         interval=0.05)
                pids = tree_pids(tool.proc.pid)
                t0 = time.monotonic()
                reply = tool.request("stop", {"names": ["tree"]})
                took = time.monotonic() - t0
                if not reply.get("ok"):
                    raise RuntimeError("stop: %r" % reply)
                alive = [p for p in pids if p != leader and alive_pid(p)]
                key = "%s_%s" % (shape, "cgroups" if cgroups else "groups")
                result[key + "_s"] = took
                result[key + "_left"] = len(alive)
                for pid in alive:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
    return result


def tree_pids(daemon_pid):
    """The daemon's descendants (ours: setsid does not change the parent
    the daemon, a subreaper, adopts them under)."""
    out, queue = [], [daemon_pid]
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open("/proc/%s/stat" % entry) as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry))
            except (OSError, ValueError, IndexError):
                pass
    while queue:
        for kid in children.get(queue.pop(), []):
            out.append(kid)
            queue.append(kid)
    return out


def alive_pid(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def remove_cgroups(socket_path):
    """Removes the (empty) cgroups of a ringmasterd killed on SOCKET_PATH:
    ringmaster-FNV1A(socket) under the cgroup2 mount and our own cgroup,
    as the daemon names them. A daemon that shuts down removes its own."""
    try:
        with open("/proc/self/mountinfo") as f:
            mount = next(line.split()[4] for line in f
                         if " - cgroup2 " in line and line.split()[3] == "/")
        with open("/proc/self/cgroup") as f:
            own = next(line[3:].strip() for line in f if line.startswith("0::"))
    except (OSError, StopIteration):
        return
    digest = 0x811c9dc5
    for byte in os.fsencode(socket_path):
        digest = ((digest ^ byte) * 0x01000193) & 0xFFFFFFFF
    base = os.path.join(mount, own.lstrip("/"), "ringmaster-%08x" % digest)
    if not os.path.isdir(base):
        return
    for _ in range(100):
        for entry in os.listdir(base):
            leaf = os.path.join(base, entry)
            if os.path.isdir(leaf):
                try:
                    os.rmdir(leaf)
                except OSError:
                    pass
        try:
            os.rmdir(base)
            return
        except OSError:
            time.sleep(0.01)


#: Writes WORKERS files of SERIES labelled counters each, as WORKERS
#: workers of an app using prometheus_client in multiprocess mode would.
MULTIPROC_WRITER = """
import os, sys
from prometheus_client.mmap_dict import MmapedDict, mmap_key
directory, workers, series = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for worker in range(workers):
    d = MmapedDict(os.path.join(directory, "counter_%d.db" % (100000 + worker)))
    for i in range(series):
        key = mmap_key("app_requests", "app_requests_total", ["route"], ["/r%d" % i], "Requests.")
        d.write_value(key, float(i + worker), 0.0)
    d.close()
"""

#: Times the client's own merge of the directory, in ms per run.
MULTIPROC_CLIENT = """
import sys, time
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
directory, runs = sys.argv[1], int(sys.argv[2])
for _ in range(runs):
    t0 = time.perf_counter()
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)
    generate_latest(registry)
    print((time.perf_counter() - t0) * 1000)
"""


#: The example stack (examples/webapp): redis-server, nginx and the venv's
#: celery must be there.
WEBAPP = os.path.join(ROOT, "examples", "webapp")


def stack_ready(tool_cls):
    """ringmaster only: examples/webapp as it is (Redis, Celery, 4
    gunicorn workers with a migration hook, nginx, in dependency order):
    from starting ringmasterd until nginx is RUNNING, and until a task
    answers through nginx, Celery and Redis."""
    if tool_cls is not Ringmaster:
        return None
    for program in ("/usr/bin/redis-server", "/usr/sbin/nginx", os.path.join(VENV, "bin", "celery")):
        if not os.path.exists(program):
            print("  stack: %s is missing, skipped" % program, flush=True)
            return None
    work = tempfile.mkdtemp(prefix="rm-bench-stack-")
    for name in os.listdir(WEBAPP):
        if os.path.isfile(os.path.join(WEBAPP, name)):
            shutil.copy(os.path.join(WEBAPP, name), work)
    os.makedirs(os.path.join(work, "state"))
    ports = {}
    for key in ("WEBAPP_HTTP_PORT", "WEBAPP_WEB_PORT", "WEBAPP_REDIS_PORT", "WEBAPP_METRICS_PORT"):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            ports[key] = str(probe.getsockname()[1])
    env = dict(os.environ, WEBAPP_VENV=VENV, PATH=os.environ.get("PATH", "") + ":/usr/sbin:/sbin", **ports)
    err = open(os.path.join(work, "daemon.err"), "w")
    t0 = time.monotonic()
    proc = subprocess.Popen([RINGMASTERD, os.path.join(work, "ringmaster.toml")], stdin=subprocess.DEVNULL,
                            stdout=err, stderr=err, env=env, start_new_session=True)
    sock_path = os.path.join(work, "state", "ringmaster.sock")

    def nginx_running():
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(sock_path)
                s.sendall(b'{"id":1,"cmd":"status","args":{"names":["nginx"]}}\n')
                reply = json.loads(s.makefile().readline())
            return reply["result"]["processes"][0]["state"] == "RUNNING"
        except (OSError, ValueError, KeyError, IndexError):
            return False

    def task_answered():
        try:
            with socket.create_connection(("127.0.0.1", int(ports["WEBAPP_HTTP_PORT"])), timeout=5) as s:
                s.sendall(b"GET /add?x=2&y=3 HTTP/1.0\r\n\r\n")
                return b'"result":5' in s.makefile("rb").read()
        except OSError:
            return False
    try:
        wait_for(nginx_running, 120, "the stack running", interval=0.01)
        running = time.monotonic() - t0
        wait_for(task_answered, 60, "a task through nginx", interval=0.05)
        answered = time.monotonic() - t0
        return {"running_s": running, "task_s": answered}
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            kill_descendants(proc.pid)
            proc.kill()
            proc.wait()
        err.close()
        shutil.rmtree(work, ignore_errors=True)


def pid1_shutdown(tool_cls, count):
    """ringmaster only: the daemon as PID 1 of its own PID namespace
    (unshare), COUNT children; time from SIGTERM to the daemon until it and
    every child are gone."""
    if tool_cls is not Ringmaster:
        return None
    tool = Ringmaster([Watcher("many", [SLEEP, "100000"], count)])
    tool.prefix = ["unshare", "--pid", "--fork", "--mount-proc"]
    try:
        tool.start()
        wait_for(lambda: tool.running() == count, 120, "%d running" % count, interval=0.05)
        inner = [p for p in children_of(tool.proc.pid)]
        children = descendants(tool.proc.pid)
        t0 = time.monotonic()
        for pid in inner:
            os.kill(pid, signal.SIGTERM)
        wait_for(lambda: tool.exited() and not any(alive(p) for p in children), 120,
                 "everything gone", interval=0.002)
        return {"seconds": time.monotonic() - t0, "exit_code": tool.proc.returncode}
    finally:
        tool.close()


# ------------------------------------------------------------- reporting --

SIZES = {
    "full": {"reps": 3, "idle_secs": 10, "spawn": [100, 500, 1000], "kills": 20,
             "log_lines": 10_000_000, "ctl_calls": 50, "raw_calls": 200, "stop": [100, 1000], "restart_files": [10, 1000],
             "reload_watchers": 100, "reloads": 10, "repl_lines": 50,
             "notify_procs": 100, "notify_idle_secs": 10, "pid1_procs": 1000,
             "crowd": [1000, 100, 1 << 30, 200], "scale": [1000, 100, 100],
             "chatty": [100, 1000, 10], "web_steady_secs": 5, "health": [100, 10],
             "metrics": [[100, 1000], 20, 10, 8, 1000], "trees": 100},
    "quick": {"reps": 1, "idle_secs": 1, "spawn": [20], "kills": 2,
              "log_lines": 40_000, "ctl_calls": 3, "raw_calls": 20, "stop": [20], "restart_files": [5],
              "reload_watchers": 10, "reloads": 2, "repl_lines": 3,
              "notify_procs": 10, "notify_idle_secs": 1, "pid1_procs": 20,
              "crowd": [50, 10, 1 << 20, 5], "scale": [20, 5, 5], "chatty": [10, 100, 10],
              "web_steady_secs": 1, "health": [5, 2], "metrics": [[10], 3, 1, 2, 10], "trees": 10},
}


FIGURES = [
    # (key path, label, unit, lower is better)
    (("idle", "rss_mb"), "daemon RSS, 10 children", "MB", True),
    (("idle", "pss_mb"), "daemon PSS, 10 children", "MB", True),
    (("idle", "threads"), "daemon threads", "", True),
    (("idle", "fds"), "daemon fds, 10 children", "", True),
    (("idle", "idle_cpu_ms"), "daemon CPU while idle (per idle window)", "ms", True),
    (("idle", "wakeups"), "daemon wake-ups while idle (voluntary switches)", "", True),
    (("restart", "median"), "restart after kill -9: median", "ms", True),
    (("restart", "p95"), "restart after kill -9: p95", "ms", True),
    (("restart", "max"), "restart after kill -9: max", "ms", True),
    (("log", "mb_per_s"), "log capture throughput", "MB/s", False),
    (("log", "vs_cat"), "log throughput / `cat` pipe-to-file, run just before", "", False),
    (("log", "cpu_s_per_gb"), "daemon CPU per GB logged", "s", True),
    (("log", "lost"), "log lines lost", "", True),
    (("log", "mangled"), "log lines mangled", "", True),
    (("log", "reordered"), "log lines reordered", "", True),
    (("chatty", "cpu_pct"), "chatty: 100 processes x a 50-byte line / 10 ms, daemon CPU", "%", True),
    (("chatty", "us_per_line"), "chatty: daemon CPU per line", "us", True),
    (("chatty", "lines_per_s"), "chatty: lines logged per second", "", False),
    (("chatty", "threads"), "chatty: daemon threads", "", True),
    (("chatty", "rss_mb"), "chatty: daemon RSS", "MB", True),
    (("chatty", "files_intact"), "chatty: log files complete and in order (of 100)", "", False),
    (("ctl", "cli_status_ms", "median"), "CLI status, 100 processes: median", "ms", True),
    (("ctl", "raw_status_ms", "median"), "raw status round trip, 100 processes: median", "ms", True),
    (("scale", "rss_mb"), "daemon RSS, 1000 children", "MB", True),
    (("scale", "raw_status_ms", "median"), "raw status round trip, 1000 processes: median", "ms", True),
    (("scale", "raw_status_ms", "p95"), "raw status round trip, 1000 processes: p95", "ms", True),
    (("scale", "incr_ms"), "incr by 100 on a watcher of 1000, until they run", "ms", True),
    (("crowd", "alone_ms", "median"), "status on a fresh connection, 10 processes: median", "ms", True),
    (("crowd", "crowd_ms", "median"), "the same under 1000 idle + 100 slow-loris clients + 1 GB garbage: median", "ms", True),
    (("crowd", "crowd_ms", "p95"), "the same under the crowd: p95", "ms", True),
    (("crowd", "crowd_ms", "max"), "the same under the crowd: max", "ms", True),
    (("crowd", "rss_mb"), "daemon RSS with the crowd connected", "MB", True),
    (("reload", "reply_ms", "median"), "reload, 1 of 100 watchers changed: reply, median", "ms", True),
    (("reload", "applied_ms", "median"), "reload, 1 of 100 watchers changed: running again, median", "ms", True),
    (("repl", "line_ms", "median"), "interactive ctl: status line to next prompt, median", "ms", True),
    (("notify", "plain", "ready_s"), "start to READY=1 (systemd notify)", "s", True),
    (("notify", "plain", "wakeups"), "wake-ups while idle under systemd, no watchdog", "", True),
    (("notify", "watchdog", "wakeups"), "wake-ups while idle under systemd, WatchdogSec=2", "", True),
    (("pid1", "seconds"), "shutdown as PID 1 (SIGTERM until all gone)", "s", True),
    (("health", "checks"), "health: tcp checks made by 100 processes over 10 s (1 s interval)", "", False),
    (("health", "wakeups"), "health: daemon wake-ups over those 10 s", "", True),
    (("health", "wakeups_per_check"), "health: daemon wake-ups per check", "", True),
    (("health", "cpu_ms"), "health: daemon CPU over those 10 s", "ms", True),
    (("metrics", "scrape_100", "median"), "metrics: GET /metrics, 100 processes: median", "ms", True),
    (("metrics", "bytes_100"), "metrics: /metrics body, 100 processes", "B", True),
    (("metrics", "scrape_1000", "median"), "metrics: GET /metrics, 1000 processes: median", "ms", True),
    (("metrics", "scrape_1000", "p95"), "metrics: GET /metrics, 1000 processes: p95", "ms", True),
    (("metrics", "bytes_1000"), "metrics: /metrics body, 1000 processes", "B", True),
    (("metrics", "rss_idle_mb"), "metrics: daemon RSS with the listener on, 10 processes, never scraped", "MB", True),
    (("metrics", "rss_mb"), "metrics: daemon RSS with the listener on, 10 processes, after a scrape", "MB", True),
    (("metrics", "idle_wakeups"), "metrics: daemon wake-ups over the idle window, listener on", "", True),
    (("metrics", "merged", "median"), "metrics: GET /metrics/web, 8 workers x 1000 series: median", "ms", True),
    (("metrics", "client_merged", "median"), "metrics: the Python client's own merge of them: median", "ms", True),
    (("trees", "group_cgroups_s"), "trees: stop of 1 + 99 in its process group, cgroups", "s", True),
    (("trees", "group_groups_s"), "trees: stop of 1 + 99 in its process group, cgroups = false", "s", True),
    (("trees", "setsid_cgroups_s"), "trees: stop of 1 + 99 setsid escapees, cgroups", "s", True),
    (("trees", "setsid_cgroups_left"), "trees: escapees alive after that stop, cgroups", "", True),
    (("trees", "setsid_groups_s"), "trees: stop of 1 + 99 setsid escapees, cgroups = false", "s", True),
    (("trees", "setsid_groups_left"), "trees: escapees alive after that stop, cgroups = false", "", True),
    (("stack", "running_s"), "examples/webapp: ringmasterd to every watcher RUNNING", "s", True),
    (("stack", "task_s"), "examples/webapp: ringmasterd to a task answered through nginx", "s", True),
]


def dig(value, path):
    for key in path:
        if value is None:
            return None
        value = value.get(key) if isinstance(value, dict) else None
    return value


def aggregate(values):
    if values and all(v == "n/a" for v in values):
        return "n/a"
    values = [v for v in values if isinstance(v, (int, float))]
    if not values:
        return None
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(agg, unit):
    if agg is None:
        return "failed"
    if agg == "n/a":
        return "n/a"
    def num(v):
        if abs(v) >= 100 or float(v).is_integer():
            return "%.0f" % v
        return "%.3g" % v
    text = num(agg["median"])
    if agg["n"] > 1 and agg["min"] != agg["max"]:
        text += " (%s-%s)" % (num(agg["min"]), num(agg["max"]))
    return text + (" " + unit if unit else "")


def ratio(ours, theirs):
    if not isinstance(ours, dict) or not isinstance(theirs, dict) or theirs["median"] == 0:
        return "-"
    return "%.3g" % (ours["median"] / theirs["median"])


def markdown(results, tools, size):
    rows = []
    figures = list(FIGURES)
    for n in size["spawn"]:
        figures.append((("spawn", str(n), "execd_s"), "%d processes: start to all exec'd" % n, "s", True))
        figures.append((("spawn", str(n), "running_s"), "%d processes: start to all running (ctl)" % n, "s", True))
        figures.append((("spawn", "%d-files" % n, "execd_s"),
                        "%d processes logging to files: start to all exec'd" % n, "s", True))
        figures.append((("spawn", "%d-files" % n, "running_s"),
                        "%d processes logging to files: start to all running (ctl)" % n, "s", True))
    for n in size["restart_files"]:
        for stat in ("median", "p95"):
            figures.append((("restart_files", str(n), stat),
                            "restart after kill -9, %d processes logging to files: %s" % (n, stat),
                            "ms", True))
    for n in size["stop"]:
        for how in ("ctl", "sigterm"):
            for suffix, logged in (("", ""), ("-files", ", logging to files")):
                figures.append((("stop", "%d-%s%s" % (n, how, suffix), "seconds"),
                                "stop all %d%s (%s) until everything is gone"
                                % (n, logged, "ctl shutdown" if how == "ctl" else "SIGTERM"), "s", True))
    head = "| figure | " + " | ".join(tools) + " | rm/supervisord | rm/circus |"
    rows.append(head)
    rows.append("|" + "---|" * (len(tools) + 3))
    for path, label, unit, _lower in figures:
        # Scenarios left out with --only have no rows (a failed one has).
        if not any(path[0] in (rep.get(t) or {}) for rep in results["reps"] for t in tools):
            continue
        aggs = {t: aggregate([dig(rep.get(t), path) for rep in results["reps"]]) for t in tools}
        ran = {t: any(path[0] in (rep.get(t) or {}) for rep in results["reps"]) for t in tools}
        cells = [fmt(aggs[t], unit) if ran[t] else "-" for t in tools]
        rm = aggs.get("ringmaster")
        rows.append("| %s | %s | %s | %s |" % (label, " | ".join(cells),
                                               ratio(rm, aggs.get("supervisord")), ratio(rm, aggs.get("circus"))))
    base = aggregate([dig(rep, ("baselines", "cat_pipe_to_file_mb_per_s")) for rep in results["reps"]])
    gen = aggregate([dig(rep, ("baselines", "generator_to_devnull_mb_per_s")) for rep in results["reps"]])
    if any("baselines" in rep for rep in results["reps"]):
        rows.append("")
        rows.append("Baselines in the same run: `cat` pipe-to-file %s; the generator to /dev/null %s."
                    % (fmt(base, "MB/s"), fmt(gen, "MB/s")))
    for n in size["spawn"]:
        null = aggregate([dig(rep, ("spawn_baselines", str(n), "null_s")) for rep in results["reps"]])
        files = aggregate([dig(rep, ("spawn_baselines", str(n), "files_s")) for rep in results["reps"]])
        if any("spawn_baselines" in rep for rep in results["reps"]):
            rows.append("")
            rows.append("Spawn floor in the same run, %d sleeps from a bare posix_spawn loop until all "
                        "exec'd: output to /dev/null %s; creating 2 log files and 2 pipes each %s."
                        % (n, fmt(null, "s"), fmt(files, "s")))
    return "\n".join(rows)


# -------------------------------------------------------------------- web --
#
# The deploy users run: a Flask app under gunicorn, 4 workers, behind one
# port, under wrk's load (16 connections); the workers replaced by each
# tool's way of restarting them: ringmaster's rolling restart of 4
# single-worker gunicorns on a socket it holds, Circus's restart of the
# same on its [socket:web], supervisord's restart of one gunicorn master
# with 4 workers, and gunicorn's own HUP reload under supervisord.

WEB_WORKERS = 4
WEB_APP = "from flask import Flask\n\napp = Flask(__name__)\n\n\n@app.route('/')\ndef index():\n    return 'ok\\n'\n"


def wrk_path():
    return shutil.which("wrk")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def parse_wrk(text):
    """requests, rps, p50/p99/max latency (ms), failures, from wrk --latency."""
    def ms(value):
        for suffix, factor in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
            if value.endswith(suffix):
                return float(value[:-len(suffix)]) * factor
        return float(value)
    out = {"requests": 0, "failed": 0}
    for line in text.splitlines():
        words = line.split()
        if not words:
            continue
        if words[0] == "Latency" and len(words) >= 4:
            out["max_ms"] = ms(words[3])
        elif words[0] == "50%":
            out["p50_ms"] = ms(words[1])
        elif words[0] == "99%":
            out["p99_ms"] = ms(words[1])
        elif "requests in" in line:
            out["requests"] = int(words[0])
        elif words[0] == "Requests/sec:":
            out["rps"] = float(words[1])
        elif line.strip().startswith("Socket errors:"):
            out["failed"] += sum(int(part.split()[-1]) for part in line.split(":", 1)[1].split(","))
        elif line.strip().startswith("Non-2xx or 3xx responses:"):
            out["failed"] += int(words[-1])
    return out


def wrk_start(port, seconds):
    return subprocess.Popen([wrk_path(), "-t", "2", "-c", "16", "--timeout", "10s", "--latency",
                             "-d", "%ds" % seconds, "http://127.0.0.1:%d/" % port],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wrk_stop(proc):
    """Stops wrk (it prints what it measured so far on SIGINT)."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    return parse_wrk(out)


class WebSetup:
    """One tool serving the app on `port`, and its way of replacing the workers."""

    def __init__(self, variant, port):
        self.variant, self.port = variant, port
        self.dir = tempfile.mkdtemp(prefix="rm-bench-web-")
        with open(os.path.join(self.dir, "app.py"), "w") as f:
            f.write(WEB_APP)
        self.gunicorn = os.path.join(VENV, "bin", "gunicorn")
        self.proc = None

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self):
        if self.variant == "ringmaster":
            text = ('[daemon]\nsocket = "%s"\nlogs_dir = "%s"\nlog_level = "warn"\n\n'
                    '[sockets.web]\naddress = "tcp://127.0.0.1:%d"\n\n[watchers.web]\n'
                    'cmd = "%s --workers 1 --preload --chdir %s app:app"\nsockets = ["web"]\nnumprocesses = %d\n'
                    'ready = { notify = true, timeout = "30s" }\nstop_timeout = "30s"\n'
                    % (self.path("rm.sock"), self.path("logs"), self.port, self.gunicorn, self.dir,
                       WEB_WORKERS))
            with open(self.path("web.toml"), "w") as f:
                f.write(text)
            command = [RINGMASTERD, self.path("web.toml")]
        elif self.variant == "circus":
            text = ("[circus]\nendpoint = ipc://%s\npubsub_endpoint = ipc://%s\nloglevel = WARNING\n"
                    "logoutput = %s\n\n[watcher:web]\ncmd = %s --workers 1 --preload --chdir %s "
                    "--bind fd://$(circus.sockets.web) app:app\nuse_sockets = True\nnumprocesses = %d\n"
                    "copy_env = True\ngraceful_timeout = 30\n\n[socket:web]\nhost = 127.0.0.1\nport = %d\n"
                    % (self.path("endpoint"), self.path("pubsub"), self.path("circus.log"), self.gunicorn,
                       self.dir, WEB_WORKERS, self.port))
            with open(self.path("circus.ini"), "w") as f:
                f.write(text)
            command = [os.path.join(VENV, "bin", "circusd"), self.path("circus.ini")]
        else:
            text = ("[supervisord]\nnodaemon = true\nlogfile = %s\npidfile = %s\nloglevel = warn\n\n"
                    "[unix_http_server]\nfile = %s\n\n[rpcinterface:supervisor]\n"
                    "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n\n"
                    "[supervisorctl]\nserverurl = unix://%s\n\n[program:web]\n"
                    "command = %s --workers %d%s --bind 127.0.0.1:%d --chdir %s app:app\n"
                    "stopwaitsecs = 30\nstdout_logfile = NONE\nstderr_logfile = NONE\n"
                    % (self.path("sd.log"), self.path("sd.pid"), self.path("sd.sock"), self.path("sd.sock"),
                       # HUP reloads the app only without --preload.
                       self.gunicorn, WEB_WORKERS, "" if self.variant == "gunicorn-hup" else " --preload",
                       self.port, self.dir))
            with open(self.path("supervisord.conf"), "w") as f:
                f.write(text)
            command = [os.path.join(VENV, "bin", "supervisord"), "-c", self.path("supervisord.conf")]
        self.err = open(self.path("daemon.err"), "w")
        self.proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self.err, stderr=self.err,
                                     cwd=self.dir, start_new_session=True)
        wait_for(lambda: self.workers_ready(), 120, "%s serving" % self.variant, interval=0.05)
        return self

    def workers(self):
        """The pids of the processes that accept (gunicorn workers)."""
        found = []
        for pid in descendants(self.proc.pid):
            try:
                with open("/proc/%d/cmdline" % pid, "rb") as f:
                    argv = f.read().split(b"\0")
            except OSError:
                continue
            if any(b"gunicorn" in a for a in argv[:2]):
                found.append(pid)
        # Gunicorn's workers are the arbiters' children.
        def parent(pid):
            try:
                return status_value(pid, "PPid")
            except OSError:
                return None
        return sorted(p for p in found if parent(p) in found)

    def workers_ready(self):
        if len(self.workers()) != WEB_WORKERS:
            return False
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as s:
                s.sendall(b"GET / HTTP/1.0\r\n\r\n")
                return b" 200 " in s.recv(100)
        except OSError:
            return False

    def ctl(self, *args):
        if self.variant == "ringmaster":
            cmd = [RINGMASTERCTL, "-s", self.path("rm.sock")] + list(args)
        elif self.variant == "circus":
            cmd = [os.path.join(VENV, "bin", "circusctl"), "--endpoint", "ipc://" + self.path("endpoint"),
                   "--timeout", "60"] + list(args)
        else:
            cmd = [os.path.join(VENV, "bin", "supervisorctl"), "-c", self.path("supervisord.conf")] + list(args)
        return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)

    def replace_workers(self):
        """Replaces every worker as this tool does; returns once all are new."""
        before = set(self.workers())
        if self.variant == "ringmaster":
            self.ctl("restart", "--rolling", "web")
        elif self.variant == "circus":
            self.ctl("restart", "web")
        elif self.variant == "supervisord":
            self.ctl("restart", "web")
        else:
            self.ctl("signal", "HUP", "web")
        wait_for(lambda: len(set(self.workers()) - before) == WEB_WORKERS and
                 not (set(self.workers()) & before), 120, "new workers", interval=0.02)

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            kill_descendants(self.proc.pid)
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def web_serving(variant, steady_secs):
    """Steady rps/latency; the same during a replacement of all workers
    (and its duration); during a kill -9 of one worker."""
    if not wrk_path():
        return "n/a"
    setup = WebSetup(variant, free_port())
    try:
        setup.start()
        steady = wrk_stop(wait_and_return(wrk_start(setup.port, steady_secs), steady_secs))
        load = wrk_start(setup.port, 600)
        time.sleep(0.5)
        t0 = time.monotonic()
        setup.replace_workers()
        roll_s = time.monotonic() - t0
        rolling = wrk_stop(load)
        load = wrk_start(setup.port, 600)
        time.sleep(0.5)
        victim = setup.workers()[0]
        os.kill(victim, signal.SIGKILL)
        wait_for(lambda: victim not in setup.workers() and len(setup.workers()) == WEB_WORKERS, 60,
                 "a replacement worker", interval=0.02)
        time.sleep(0.5)
        killed = wrk_stop(load)
    finally:
        setup.close()
    return {"steady": steady, "roll": rolling, "roll_s": roll_s, "kill": killed,
            "roll_vs_steady": rolling.get("rps", 0) / steady["rps"] if steady.get("rps") else None}


def wait_and_return(proc, seconds):
    proc.wait(timeout=seconds + 30)
    return proc


WEB_VARIANTS = ["ringmaster", "circus", "supervisord", "gunicorn-hup"]
WEB_FIGURES = [
    (("steady", "rps"), "steady state: requests/s", ""),
    (("steady", "p50_ms"), "steady state: p50 latency", "ms"),
    (("steady", "p99_ms"), "steady state: p99 latency", "ms"),
    (("roll_s",), "replacing all 4 workers: time until all are new", "s"),
    (("roll", "rps"), "during the replacement: requests/s", ""),
    (("roll_vs_steady",), "during the replacement: throughput / steady", ""),
    (("roll", "p99_ms"), "during the replacement: p99 latency", "ms"),
    (("roll", "max_ms"), "during the replacement: worst latency", "ms"),
    (("roll", "failed"), "during the replacement: failed requests", ""),
    (("kill", "failed"), "kill -9 of a worker: failed requests", ""),
    (("kill", "max_ms"), "kill -9 of a worker: worst latency", "ms"),
]


def web_markdown(results):
    if not any("web" in rep for rep in results["reps"]):
        return ""
    rows = ["", "Web serving (gunicorn + Flask, 4 workers, wrk with 16 connections): ringmaster "
            "`restart --rolling` of 4 single-worker gunicorns on its socket; Circus `restart` of the same "
            "on `[socket:web]`; supervisord `restart` of one gunicorn with 4 workers; gunicorn's own "
            "HUP reload under supervisord.", "",
            "| figure | " + " | ".join(WEB_VARIANTS) + " |", "|" + "---|" * (len(WEB_VARIANTS) + 1)]
    for path, label, unit in WEB_FIGURES:
        cells = []
        for variant in WEB_VARIANTS:
            values = [dig(dig(rep, ("web", variant)), path) if isinstance(dig(rep, ("web", variant)), dict)
                      else dig(rep, ("web", variant)) for rep in results["reps"] if "web" in rep]
            cells.append(fmt(aggregate(values), unit))
        rows.append("| %s | %s |" % (label, " | ".join(cells)))
    return "\n".join(rows)


# ------------------------------------------------------------------ main --

def run_scenario(tool, name, func, *args):
    t0 = time.monotonic()
    try:
        value = func(TOOLS[tool], *args)
    except Exception as err:  # a tool that fails a scenario is reported, not fatal
        print("  %-12s %-10s FAILED: %s" % (tool, name, err), flush=True)
        return None
    print("  %-12s %-10s %.1fs" % (tool, name, time.monotonic() - t0), flush=True)
    return value


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes and one repetition, for CI")
    parser.add_argument("--reps", type=int, help="repetitions (default 3, quick 1)")
    parser.add_argument("--tools", default=",".join(TOOLS), help="comma-separated rows to run")
    parser.add_argument("--only", help="comma-separated scenarios: "
                        "idle,spawn,restart,log,chatty,ctl,scale,crowd,stop,reload,repl,notify,pid1,web,"
                        "health,stack,metrics,trees")
    parser.add_argument("--no-build", action="store_true", help="use the existing release build")
    parser.add_argument("--bin-dir", help="take ringmasterd, ringmasterctl and the testkit from this "
                        "directory (another build, to compare); implies --no-build")
    parser.add_argument("--setup", action="store_true",
                        help="only create bench/.venv with the peers (tests use their parsers)")
    args = parser.parse_args()
    ensure_venv()
    if args.setup:
        return
    if args.bin_dir:
        global RINGMASTERD, RINGMASTERCTL, KIT
        RINGMASTERD, RINGMASTERCTL, KIT = (os.path.join(os.path.abspath(args.bin_dir), name) for name in
                                           ("ringmasterd", "ringmasterctl", "ringmaster-testkit"))
    elif not args.no_build:
        build()
    size = dict(SIZES["quick" if args.quick else "full"])
    if args.reps:
        size["reps"] = args.reps
    tools = [t for t in args.tools.split(",") if t]
    scenarios = set((args.only or "idle,spawn,restart,log,chatty,ctl,scale,crowd,stop,reload,repl,"
                                 "notify,pid1,web,health,stack,metrics,trees").split(","))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    results = {"started": stamp, "quick": args.quick, "size": size, "tools": tools,
               "machine": {"cpus": os.cpu_count(), "kernel": platform.release(),
                           "cpu": cpu_model(), "python": platform.python_version()},
               "reps": []}
    for rep in range(size["reps"]):
        print("repetition %d/%d" % (rep + 1, size["reps"]), flush=True)
        rep_results = {}
        if "log" in scenarios:
            rep_results["baselines"] = log_baselines(size["log_lines"])
        # Alternate tools inside each scenario, rotating the order per rep.
        order = tools[rep % len(tools):] + tools[:rep % len(tools)]
        for tool in tools:
            rep_results[tool] = {}
        if "idle" in scenarios:
            for tool in order:
                rep_results[tool]["idle"] = run_scenario(tool, "idle", idle, size)
        if "spawn" in scenarios:
            for n in size["spawn"]:
                rep_results.setdefault("spawn_baselines", {})[str(n)] = spawn_baselines(n)
                for logs, key in ((None, str(n)), (FILES, "%d-files" % n)):
                    for tool in order:
                        rep_results[tool].setdefault("spawn", {})[key] = run_scenario(
                            tool, "spawn %s" % key, spawn_scale, n, logs)
        if "restart" in scenarios:
            for tool in order:
                rep_results[tool]["restart"] = run_scenario(tool, "restart", restart_latency, size["kills"])
            for n in size["restart_files"]:
                for tool in order:
                    rep_results[tool].setdefault("restart_files", {})[str(n)] = run_scenario(
                        tool, "restart %d files" % n, restart_latency, size["kills"], n, FILES)
        if "log" in scenarios:
            for tool in order:
                rep_results[tool]["log"] = run_scenario(tool, "log", log_throughput, size["log_lines"])
        if "chatty" in scenarios:
            for tool in order:
                rep_results[tool]["chatty"] = run_scenario(tool, "chatty", chatty, *size["chatty"])
        if "ctl" in scenarios:
            for tool in order:
                rep_results[tool]["ctl"] = run_scenario(tool, "ctl", ctl_latency,
                                                        size["ctl_calls"], size["raw_calls"])
        if "scale" in scenarios:
            for tool in order:
                rep_results[tool]["scale"] = run_scenario(tool, "scale", scale, *size["scale"])
        if "crowd" in scenarios:
            for tool in order:
                rep_results[tool]["crowd"] = run_scenario(tool, "crowd", crowd, *size["crowd"])
        # Ringmaster's own features, measured for the record (no peer row).
        if "reload" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["reload"] = run_scenario(
                "ringmaster", "reload", reload_latency, size["reload_watchers"], size["reloads"])
        if "repl" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["repl"] = run_scenario(
                "ringmaster", "repl", repl_latency, size["repl_lines"])
        if "notify" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["notify"] = run_scenario(
                "ringmaster", "notify", systemd_notify, size["notify_procs"], size["notify_idle_secs"])
        if "health" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["health"] = run_scenario(
                "ringmaster", "health", health_wakeups, *size["health"])
        if "stack" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["stack"] = run_scenario("ringmaster", "stack", stack_ready)
        if "trees" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["trees"] = run_scenario(
                "ringmaster", "trees", stop_trees, size["trees"])
        if "metrics" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["metrics"] = run_scenario(
                "ringmaster", "metrics", metrics_scrapes, *size["metrics"])
        if "pid1" in scenarios and "ringmaster" in tools:
            rep_results["ringmaster"]["pid1"] = run_scenario(
                "ringmaster", "pid1 %d" % size["pid1_procs"], pid1_shutdown, size["pid1_procs"])
        if "web" in scenarios:
            web = rep_results.setdefault("web", {})
            for variant in WEB_VARIANTS:
                t0 = time.monotonic()
                try:
                    web[variant] = web_serving(variant, size["web_steady_secs"])
                    print("  %-12s web        %.1fs" % (variant, time.monotonic() - t0), flush=True)
                except Exception as err:  # a failed run is a row of "failed", not a crash
                    print("  %-12s web        FAILED: %s" % (variant, err), flush=True)
                    web[variant] = None
        if "stop" in scenarios:
            for n in size["stop"]:
                for how in ("ctl", "sigterm"):
                    for logs, suffix in ((None, ""), (FILES, "-files")):
                        key = "%d-%s%s" % (n, how, suffix)
                        for tool in order:
                            rep_results[tool].setdefault("stop", {})[key] = run_scenario(
                                tool, "stop " + key, stop_all, n, how, logs)
        results["reps"].append(rep_results)

    out_dir = os.path.join(BENCH, "results")
    os.makedirs(out_dir, exist_ok=True)
    base = os.path.join(out_dir, "run-%s%s" % (stamp, "-quick" if args.quick else ""))
    with open(base + ".json", "w") as f:
        json.dump(results, f, indent=2)
    table = markdown(results, tools, size) + web_markdown(results)
    header = ("# ringmaster vs supervisord vs Circus (%s%s)\n\nMachine: %d CPUs, %s, Linux %s. "
              "Median of %d repetition(s), (min-max) when they differ.\n\n"
              % (stamp, ", QUICK: figures mean nothing" if args.quick else "", os.cpu_count(),
                 results["machine"]["cpu"], platform.release(), size["reps"]))
    with open(base + ".md", "w") as f:
        f.write(header + table + "\n")
    print("\n" + header + table)
    print("\nwritten: %s.json, %s.md" % (base, base))
    return 0


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


if __name__ == "__main__":
    sys.exit(main())
