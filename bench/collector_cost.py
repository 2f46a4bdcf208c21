"""Collector cost: CPU seconds per collection cycle of our node + containers + interconnect
collectors vs the real `prometheus-node-exporter`'s CPU seconds per scrape, both at 1 Hz.

- Ours: a child process (this script with `--child`) imports everything, builds the three
  collectors from the registry with their default configs, wraps each in the pipeline's
  `RunningCollector` (site/host labels, timeout, self-metrics, Batch building), runs two warm-up
  cycles, then on the parent's "go" runs one cycle per second (every collector's `collect()`)
  for `--seconds`. It reports its own CPU (getrusage self + children, all threads) over exactly
  that window, so interpreter start-up and imports are excluded.
- node_exporter (Debian 1.5.0, `--no-collector.systemd`, default collectors otherwise): started
  on 127.0.0.1:<free port> in a temp dir, scraped at 1 Hz from this (parent) process over a
  keep-alive connection, as Prometheus would; its CPU is utime+stime from /proc/<pid>/stat
  between the first and the last scrape of the window (two warm-up scrapes before).

Both run concurrently over the same window (halving the wall time); each is well under 5% of a
core, so they hardly disturb each other on 2 cores. Neither side's idle time is excluded: a
process's background work between cycles (Go GC, Python threads) counts against it.

ratio = node_exporter CPU per scrape ÷ our CPU per cycle (higher is better); target 1.0, i.e.
"ours costs at most what node_exporter costs".
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import free_port, machine_note, proc_cpu_seconds, require_binary, result_line, server

NAME = "collector_cost"
TARGET = 1.0
COLLECTORS = ("node", "containers", "interconnect")


def _cpu_self() -> float:
    """CPU seconds of this process (all threads) plus its reaped children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


# ------------------------------------------------------------------------------------------ child
def child(seconds: int, names: list[str]) -> None:
    """Run our collectors at 1 Hz for `seconds` after the parent says go; print one JSON line."""
    from collectors import registry
    from telemetry.pipeline import RunningCollector

    running = []
    for name in names:
        try:
            cls = registry.get(name)
        except KeyError as exc:
            print(json.dumps({"error": f"collector {name!r} is not registered yet: {exc}"}), flush=True)
            raise SystemExit(3) from None
        collector = cls()
        reason = collector.availability()
        if reason is not None:
            print(f"note: collector {name} unavailable here: {reason}", file=sys.stderr)
        labels = {"site": "local", "host": socket.gethostname()}
        running.append(RunningCollector(name, collector, interval_s=1.0, timeout_s=1.0, labels=labels))

    for _ in range(2):  # warm-up: first reads, lazy imports, caches
        for rc in running:
            rc.collect()
    print("READY", flush=True)
    sys.stdin.readline()  # the parent's "go"

    per_collector = dict.fromkeys(names, 0.0)
    samples = 0
    start_cpu, start = _cpu_self(), time.monotonic()
    next_due = start
    for _ in range(seconds):
        for rc in running:
            before = _cpu_self()
            samples += len(rc.collect())
            per_collector[rc.name] += _cpu_self() - before
        next_due += 1.0
        time.sleep(max(0.0, next_due - time.monotonic()))
    cpu, wall = _cpu_self() - start_cpu, time.monotonic() - start
    result = {
        "cycles": seconds,
        "cpu_s": cpu,
        "wall_s": wall,
        "samples": samples,
        "per_collector_cpu_s": per_collector,
        "errors": {rc.name: rc.stats.errors for rc in running},
        "last_error": {rc.name: rc.stats.last_error for rc in running if rc.stats.last_error},
    }
    for rc in running:
        rc.close()
    print(json.dumps(result), flush=True)


# ------------------------------------------------------------------------------------------ parent
def scrape_node_exporter(base_url: str, seconds: int, pid: int) -> dict[str, float]:
    """Scrape /metrics at 1 Hz for `seconds`; node_exporter's CPU from the first to the last scrape."""
    samples = 0
    with httpx.Client(timeout=10.0) as client:
        for _ in range(2):  # warm-up scrapes
            client.get(base_url).raise_for_status()
        cpu0, start = proc_cpu_seconds(pid), time.monotonic()
        next_due = start
        for _ in range(seconds):
            r = client.get(base_url)
            r.raise_for_status()
            samples += sum(1 for line in r.text.splitlines() if line and not line.startswith("#"))
            next_due += 1.0
            time.sleep(max(0.0, next_due - time.monotonic()))
        cpu = proc_cpu_seconds(pid) - cpu0
    return {"scrapes": seconds, "cpu_s": cpu, "wall_s": time.monotonic() - start, "samples": samples}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=60, help="measurement window, one cycle per second")
    ap.add_argument("--collectors", default=",".join(COLLECTORS))
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    names = [n for n in args.collectors.split(",") if n]
    if args.child:
        child(args.seconds, names)
        return

    binary = require_binary("prometheus-node-exporter")
    print(machine_note())
    print(f"collector cost at 1 Hz over {args.seconds}s: ours ({', '.join(names)}) vs node_exporter, concurrently")
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-collect-") as d:
        workdir = Path(d)
        (workdir / "textfile").mkdir()
        port = free_port()
        argv = [
            binary,
            f"--web.listen-address=127.0.0.1:{port}",
            "--no-collector.systemd",
            f"--collector.textfile.directory={workdir / 'textfile'}",
        ]
        ours = subprocess.Popen(
            [sys.executable, __file__, "--child", "--seconds", str(args.seconds), "--collectors", ",".join(names)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert ours.stdin is not None and ours.stdout is not None
            line = ours.stdout.readline().strip()
            if line != "READY":
                ours.wait(30)
                raise SystemExit(f"our collector process did not start: {line or 'no output'}")
            print(f"  ours ready (pid {ours.pid}); starting node_exporter on 127.0.0.1:{port}", flush=True)
            with server(argv, port, workdir, "/metrics", "node_exporter") as ne:
                ours.stdin.write("go\n")
                ours.stdin.flush()
                print(f"  measuring for {args.seconds}s...", flush=True)
                theirs = scrape_node_exporter(ne.url("/metrics"), args.seconds, ne.pid)
            mine = json.loads(ours.stdout.readline())
            ours.wait(30)
        finally:
            if ours.poll() is None:
                ours.kill()
                ours.wait(5)

    if "error" in mine:
        raise SystemExit(mine["error"])
    if any(mine["errors"].values()):
        print(f"  WARNING: collector errors {mine['errors']}: {mine['last_error']}")
    ours_per = mine["cpu_s"] / mine["cycles"]
    ne_per = theirs["cpu_s"] / theirs["scrapes"]
    print(
        f"  ours:          {mine['cpu_s']:.3f} CPU s over {mine['cycles']} cycles in {mine['wall_s']:.1f}s "
        f"= {ours_per * 1000:.2f} ms/cycle, {mine['samples'] / mine['cycles']:.0f} samples/cycle"
    )
    for name, cpu in mine["per_collector_cpu_s"].items():
        print(f"    {name:<13} {cpu / mine['cycles'] * 1000:7.2f} ms/cycle")
    print(
        f"  node_exporter: {theirs['cpu_s']:.3f} CPU s over {theirs['scrapes']:.0f} scrapes in "
        f"{theirs['wall_s']:.1f}s = {ne_per * 1000:.2f} ms/scrape, "
        f"{theirs['samples'] / theirs['scrapes']:.0f} samples/scrape"
    )
    ratio = ne_per / ours_per if ours_per > 0 else float("inf")
    print(f"  ours costs {1 / ratio if ratio else float('inf'):.2f}× node_exporter per cycle")
    print(machine_note())
    print(result_line(NAME, ratio, TARGET))


if __name__ == "__main__":
    main()
