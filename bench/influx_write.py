"""Our InfluxDB write path vs Telegraf-style raw line-protocol POSTs, same samples, same server, same run.

Server: the real VictoriaMetrics (Debian `victoria-metrics` 1.79; no InfluxDB 2 server exists in
Debian or on PyPI), fresh in a temp dir, `-influxSkipSingleField` as in our tests.

Workload: node_exporter-shaped scrapes (bench/_common.node_series: 800 series per node, CPU per
core × mode, disks, filesystems, network, memory, netstat...), `--nodes` nodes (250: 200,000
samples per round), labelled site/host, handed over as pipeline batches of `--batch-nodes` nodes.
One untimed warm-up round creates every series (VM's index) and warms our per-series prefix
cache, as in a running agent. Then `--rounds` timed rounds each, alternating ours and the peer,
each round two new scrape instants (15 s apart, new values: one for each side), VM left to settle
between rounds. Within a round the two sides take turns batch by batch (who goes first
alternates), so on a shared machine both see the same load.

- Ours: every `Batch` through `SpooledForwarder.write` → `InfluxTarget.send` (line protocol
  built column-wise with polars, `influxdb-client` WriteApi in SYNCHRONOUS mode, `--lines`
  lines per request, keep-alive), timed until the last write returned acknowledged. Encoding is
  inside the clock.
- Peer (what Telegraf's InfluxDB output does on the wire): the same samples pre-formatted
  (untimed; the same bytes, so the server does the same work) into bodies of the same `--lines`,
  POSTed one after another over one keep-alive `http.client` connection to `/write?precision=ns`,
  each answer read and checked (204).

Afterwards the samples VM holds for node_load1 are counted (every round of both must be there).
ratio = our samples/s ÷ peer samples/s (median round of each side); target 0.8.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from _common import fmt_rate, free_port, machine_note, node_series, require_binary, result_line, server, wait_idle

from telemetry.forwarder import SpooledForwarder
from telemetry.influx import InfluxTarget
from telemetry.line_protocol import LineEncoder
from telemetry.schema import Batch, canonical_labels
from telemetry.spool import Spool

NAME = "influx_write"
TARGET = 0.8
STEP_NS = 15 * 10**9


class Workload:
    """Every series once, and per round its values and instant, as pipeline batches."""

    def __init__(self, nodes: int, batch_nodes: int, rounds: int, seed: int = 7) -> None:
        templates = node_series()
        metrics, labels = [], []
        for n in range(nodes):
            base = {"site": "hpc1", "host": f"node{n:04d}"}
            for t in templates:
                metrics.append(t.metric)
                labels.append(canonical_labels({**base, **dict(t.labels)}))
        self.series = len(metrics)
        self.per_batch = batch_nodes * len(templates)
        self.metric = pl.Series("metric", metrics, pl.String)
        self.labels = pl.Series("labels", labels, pl.String)
        rng = np.random.default_rng(seed)
        self.start = np.round(rng.uniform(0, 1e7, self.series), 2)
        self.rng = rng
        self.t0 = (time.time_ns() // STEP_NS) * STEP_NS - (rounds + 10) * STEP_NS

    def round(self, i: int) -> list[Batch]:
        values = np.round(self.start + self.rng.uniform(0, 500, self.series) * i, 2)
        stamps = np.full(self.series, self.t0 + i * STEP_NS + 123_456, dtype=np.int64)  # sub-ms part: ns precision
        frame = pl.DataFrame({"metric": self.metric, "labels": self.labels, "value": values, "ts_ns": stamps})
        return [Batch(frame.slice(k, self.per_batch)) for k in range(0, self.series, self.per_batch)]


def time_ours(forwarder: SpooledForwarder, batch: Batch) -> float:
    before = forwarder.sent_samples
    started = time.perf_counter()
    forwarder.write(batch)
    elapsed = time.perf_counter() - started
    if forwarder.spool.pending_records or forwarder.sent_samples - before != len(batch):
        raise SystemExit(f"our path did not get a batch acknowledged: {forwarder.last_error}")
    return elapsed


def time_peer(conn: http.client.HTTPConnection, bodies: list[bytes]) -> float:
    started = time.perf_counter()
    for body in bodies:
        conn.request("POST", "/write?precision=ns", body, {"Content-Type": "text/plain; charset=utf-8"})
        answer = conn.getresponse()
        data = answer.read()
        if answer.status != 204:
            raise SystemExit(f"peer POST answered {answer.status}: {data[:200]!r}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=250, help="node_exporters per round (800 series each)")
    parser.add_argument("--batch-nodes", type=int, default=10, help="nodes per pipeline batch")
    parser.add_argument("--lines", type=int, default=5_000, help="lines per request, both sides")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per side")
    args = parser.parse_args()
    binary = require_binary("victoria-metrics")
    work = Workload(args.nodes, args.batch_nodes, 2 * args.rounds + 2)
    n = work.series
    print(machine_note(), flush=True)
    print(
        f"workload: {args.nodes} nodes x 800 series = {n:,} samples per round, batches of {work.per_batch:,}, "
        f"{args.lines:,} lines per request, {args.rounds} timed rounds each",
        flush=True,
    )
    ours_s: list[float] = []
    peer_s: list[float] = []
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-influx-") as tmp:
        port = free_port()
        argv = [
            binary,
            f"-storageDataPath={tmp}/vm",
            f"-httpListenAddr=127.0.0.1:{port}",
            "-retentionPeriod=100y",
            "-search.latencyOffset=0s",
            "-search.disableCache",
            "-influxSkipSingleField",
        ]
        print(f"[victoria-metrics] starting on 127.0.0.1:{port}", flush=True)
        with server(argv, port, Path(tmp), "/health", "victoria-metrics") as vm:
            url = vm.url()
            target = InfluxTarget(url, org="ctwin", bucket="telemetry", batch_size=args.lines, resend_window_s=30.0)
            forwarder = SpooledForwarder(target, Spool(Path(tmp) / "spool", 1 << 30))
            encoder = LineEncoder("ns", lines_per_body=args.lines)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            print("warm-up (untimed): every series created through the peer, then once through ours", flush=True)
            time_peer(conn, [b for batch in work.round(0) for b in encoder.bodies(batch)])
            for batch in work.round(1):
                time_ours(forwarder, batch)
            instant = 2
            for r in range(args.rounds):
                waited = wait_idle(vm.pid)
                ours_batches, peer_batches = work.round(instant), work.round(instant + 1)
                instant += 2
                peer_bodies = [list(encoder.bodies(batch)) for batch in peer_batches]  # untimed: Telegraf's input
                ours_t = peer_t = 0.0
                for k, (mine, theirs) in enumerate(zip(ours_batches, peer_bodies, strict=True)):
                    if k % 2:  # alternate who goes first, batch by batch: both see the same load
                        peer_t += time_peer(conn, theirs)
                        ours_t += time_ours(forwarder, mine)
                    else:
                        ours_t += time_ours(forwarder, mine)
                        peer_t += time_peer(conn, theirs)
                ours_s.append(ours_t)
                peer_s.append(peer_t)
                print(
                    f"  round {r + 1}/{args.rounds}: ours {fmt_rate(n, ours_t)} ({ours_t:.3f} s), "
                    f"peer {fmt_rate(n, peer_t)} ({peer_t:.3f} s), ratio {peer_t / ours_t:.3f}; "
                    f"VM settled {waited:.1f} s before",
                    flush=True,
                )
            conn.close()
            target.close()
            httpx.get(url + "/internal/force_flush", timeout=30).raise_for_status()
            stored = httpx.get(
                url + "/api/v1/query",
                params={"query": "sum(count_over_time(node_load1[1d]))", "time": str(time.time() + 5)},
                timeout=30,
            ).json()["data"]["result"]
            expected = args.nodes * instant
            got = int(float(stored[0]["value"][1])) if stored else 0
            print(f"check: VictoriaMetrics holds {got:,} node_load1 samples, expected {expected:,}", flush=True)
            if got != expected:
                print("FAIL: stored count differs", file=sys.stderr)
                raise SystemExit(1)
    ours_rate = n / statistics.median(ours_s)
    peer_rate = n / statistics.median(peer_s)
    print(f"ours (Batch -> SpooledForwarder -> InfluxTarget): {ours_rate:>12,.0f} samples/s (median)")
    print(f"peer (pre-formatted line protocol POSTs):         {peer_rate:>12,.0f} samples/s (median)")
    print(result_line(NAME, ours_rate / peer_rate, TARGET))


if __name__ == "__main__":
    main()
