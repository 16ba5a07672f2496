#!/usr/bin/env python3
"""ringmaster's own benchmark (spec section 10 figures).

Builds the release binaries, then measures, each scenario with a time limit
and killing only what it started:
  - idle footprint with 10 children: daemon RSS/PSS, threads, fds, and
    wake-ups (context switches of every daemon thread) over an idle window;
  - restart latency: SIGKILL a RUNNING child, time until the replacement's
    main() runs (it stamps the wall clock right after exec);
  - spawn scale: daemon start until `status` reports N processes RUNNING;
  - shutdown: `ringmasterctl shutdown` until the daemon and all N children
    are gone;
  - ctl latency: wall time of `ringmasterctl status` with 100 processes,
    process start included.

Usage: python3 bench/run.py [--quick] [--json FILE]
--quick uses tiny sizes so CI can check that the harness still works; its
figures mean nothing. No assertion is made on any time.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
DAEMON = os.path.join(RELEASE, "ringmasterd")
CTL = os.path.join(RELEASE, "ringmasterctl")
KIT = os.path.join(RELEASE, "ringmaster-testkit")


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--locked", "--bins"],
        cwd=ROOT,
        check=True,
    )


class Daemon:
    """A ringmasterd in its own temp dir; killed with its tree on exit."""

    def __init__(self, watchers, settle=True):
        self.dir = tempfile.mkdtemp(prefix="rm-bench-")
        self.socket = os.path.join(self.dir, "rm.sock")
        self.config = os.path.join(self.dir, "ringmaster.toml")
        with open(self.config, "w") as f:
            f.write('[daemon]\nsocket = "%s"\nlogs_dir = "%s/logs"\nlog_level = "warn"\n\n%s\n'
                    % (self.socket, self.dir, watchers))
        self.err = open(os.path.join(self.dir, "daemon.err"), "w")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([DAEMON, self.config], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.err)
        wait_for(lambda: os.path.exists(self.socket), 30, "daemon socket")

    def request(self, cmd, args=None):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(self.socket)
            line = {"id": 1, "cmd": cmd}
            if args is not None:
                line["args"] = args
            s.sendall((json.dumps(line) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        return json.loads(data)

    def status(self):
        return self.request("status", {})["result"]["processes"]

    def all_running(self, count):
        procs = self.status()
        return len(procs) == count and all(p["state"] == "RUNNING" for p in procs)

    def descendants(self):
        return descendants(self.proc.pid)

    def close(self):
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGSTOP)
            except ProcessLookupError:
                pass
            for pid in self.descendants():
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            self.proc.kill()
        self.proc.wait()
        self.err.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


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


def wait_for(check, limit, what):
    deadline = time.monotonic() + limit
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("timed out waiting for " + what)
        time.sleep(0.002)


def proc_status(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return line.split()[1]
    return None


def context_switches(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        with open("/proc/%d/task/%s/status" % (pid, tid)) as f:
            for line in f:
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
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


def summary(samples):
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"median": statistics.median(ordered), "p95": p95, "max": ordered[-1],
            "min": ordered[0], "n": len(ordered)}


def idle_footprint(idle_secs):
    watchers = '[watchers.idle]\ncmd = "sleep 100000"\nnumprocesses = 10\nstart_secs = "0"\n'
    with Daemon(watchers) as d:
        wait_for(lambda: d.all_running(10), 30, "10 running")
        time.sleep(1.0)  # let start-up allocations settle before sampling
        pid = d.proc.pid
        before = context_switches(pid)
        time.sleep(idle_secs)
        wakeups = context_switches(pid) - before
        return {
            "rss_kb": int(proc_status(pid, "VmRSS")),
            "pss_kb": pss_kb(pid),
            "threads": int(proc_status(pid, "Threads")),
            "fds": len(os.listdir("/proc/%d/fd" % pid)),
            "idle_secs": idle_secs,
            "wakeups": wakeups,
        }


def restart_latency(kills):
    tmp = tempfile.mkdtemp(prefix="rm-bench-stamps-")
    stamps = os.path.join(tmp, "stamps")
    watchers = ('[watchers.victim]\ncmd = "%s stamp %s"\nstart_secs = "0"\n'
                'stdout = "null"\nstderr = "null"\n' % (KIT, stamps))

    def lines():
        try:
            with open(stamps) as f:
                return [line.split() for line in f.read().splitlines() if line.strip()]
        except OSError:
            return []

    samples = []
    try:
        with Daemon(watchers):
            wait_for(lambda: len(lines()) == 1, 30, "first stamp")
            for i in range(kills):
                pid = int(lines()[-1][0])
                time.sleep(0.05)  # a settled RUNNING process, not one just born
                t0 = time.time_ns()
                os.kill(pid, signal.SIGKILL)
                entry = wait_for(lambda: len(lines()) == i + 2 and lines()[-1], 10, "restart")
                samples.append((int(entry[1]) - t0) / 1e6)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary(samples)


def spawn_and_shutdown(count):
    watchers = ('[watchers.many]\ncmd = "%s sleep"\nnumprocesses = %d\nstart_secs = "0"\n'
                'stdout = "null"\nstderr = "null"\n' % (KIT, count))
    with Daemon(watchers) as d:
        wait_for(lambda: d.all_running(count), 120, "%d running" % count)
        to_running = time.monotonic() - d.started
        children = d.descendants()
        t0 = time.monotonic()
        subprocess.run([CTL, "-s", d.socket, "shutdown"], check=True, stdout=subprocess.DEVNULL)
        d.proc.wait(timeout=120)
        left = [p for p in children if os.path.exists("/proc/%d" % p)]
        shutdown = time.monotonic() - t0
        return {"processes": count, "start_to_all_running_s": to_running,
                "shutdown_s": shutdown, "left_behind": len(left)}


def ctl_latency(calls):
    watchers = ('[watchers.many]\ncmd = "%s sleep"\nnumprocesses = 100\nstart_secs = "0"\n'
                'stdout = "null"\nstderr = "null"\n' % KIT)
    with Daemon(watchers) as d:
        wait_for(lambda: d.all_running(100), 60, "100 running")
        samples = []
        for _ in range(calls):
            t0 = time.perf_counter()
            subprocess.run([CTL, "-s", d.socket, "status"], stdout=subprocess.DEVNULL, check=True)
            samples.append((time.perf_counter() - t0) * 1e3)
        raw = []
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(d.socket)
            f = s.makefile("rwb")
            for i in range(200):
                t0 = time.perf_counter()
                f.write(b'{"id":%d,"cmd":"status"}\n' % i)
                f.flush()
                f.readline()
                raw.append((time.perf_counter() - t0) * 1e3)
        return {"ctl_status_ms": summary(samples), "raw_round_trip_ms": summary(raw)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, for CI")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    build()
    quick = args.quick
    results = {"quick": quick, "machine": {"cpus": os.cpu_count(), "kernel": os.uname().release}}
    results["idle"] = idle_footprint(1 if quick else 10)
    results["restart_ms"] = restart_latency(5 if quick else 30)
    results["scale"] = [spawn_and_shutdown(n) for n in ([20] if quick else [100, 1000])]
    results["ctl"] = ctl_latency(5 if quick else 50)

    idle = results["idle"]
    print("\nringmaster benchmark%s" % (" (quick: figures are meaningless)" if quick else ""))
    print("  idle, 10 children: RSS %d KiB, PSS %s KiB, %d threads, %d fds, %d wake-ups in %ds"
          % (idle["rss_kb"], idle["pss_kb"], idle["threads"], idle["fds"], idle["wakeups"], idle["idle_secs"]))
    r = results["restart_ms"]
    print("  restart after SIGKILL (n=%d): median %.2f ms, p95 %.2f ms, max %.2f ms"
          % (r["n"], r["median"], r["p95"], r["max"]))
    for s in results["scale"]:
        print("  %d processes: all RUNNING %.3f s after daemon start; shutdown %.3f s; %d left behind"
              % (s["processes"], s["start_to_all_running_s"], s["shutdown_s"], s["left_behind"]))
    c = results["ctl"]
    print("  ringmasterctl status, 100 processes (n=%d): median %.2f ms, p95 %.2f ms"
          % (c["ctl_status_ms"]["n"], c["ctl_status_ms"]["median"], c["ctl_status_ms"]["p95"]))
    print("  raw protocol status round trip (n=%d): median %.3f ms, p95 %.3f ms"
          % (c["raw_round_trip_ms"]["n"], c["raw_round_trip_ms"]["median"], c["raw_round_trip_ms"]["p95"]))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
