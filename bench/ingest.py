"""Durable ingestion: our embedded DuckDB store vs the real VictoriaMetrics, same samples, same run.

Workload: node_exporter-shaped batches, 1,000 nodes × 800 series at one timestamp per batch
(800k samples), labelled site/host plus each series' own labels (cpu × mode, disk devices,
filesystems, network devices, memory, netstat...). One warm-up batch (every series is new: the
series-creation path, reported but not in the ratio), then `--batches` timed batches.

- Ours: `DuckDBStore.append(Batch)`; the Batch frames are built before the clock starts. When
  `append` returns the batch is committed to DuckDB's WAL (durable, see the store's docstring).
- VictoriaMetrics (Debian `victoria-metrics`): the same samples pre-encoded (untimed) as
  Prometheus text exposition, POSTed to `/api/v1/import/prometheus` over keep-alive httpx
  connections, each batch as `--chunks` bodies sent by `--concurrency` client threads (what a
  pushing agent such as vmagent does on a 2-core box), timed until every response is back.
  All bodies are encoded before the first POST, so batches go back to back, as ours do. VM
  answers once the rows are in its in-memory buffers (not fsynced), so this is the generous
  figure for VM; the time including `/internal/force_flush` is printed as well.
  `--vm-format influx` sends Influx line protocol to VM's `/write` instead (about the same).
- InfluxDB 1.6.7 (Debian `influxdb`, v1 `/write?precision=ms` line protocol, same chunking) is a
  second reference line, not part of the ratio. It fsyncs its WAL before answering.

Each server runs alone (started fresh in a temp dir, stopped before the next phase), so no phase
competes for the 2 cores with another. After the warm-up batch each server is given time to
finish its background work (its CPU use falls below 5% of a core) before the timed batches;
our store has no background work to wait for. Every system's stored count is checked afterwards, and
one series' values are compared between our store and VictoriaMetrics.

ratio = our samples/s ÷ VictoriaMetrics samples/s (timed batches only); target 1.0.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import polars as pl
from _common import (
    Server,
    fmt_rate,
    free_port,
    machine_note,
    node_series,
    require_binary,
    result_line,
    server,
    wait_idle,
)

from telemetry.schema import Batch, canonical_labels
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore

NAME = "ingest"
TARGET = 1.0
STEP_MS = 15_000  # one scrape every 15 s


@dataclass
class Workload:
    """Every series once (metric, canonical labels, wire prefixes) and the values of every batch."""

    metric: pl.Series
    labels: pl.Series
    prom_prefix: pl.Series
    influx_prefix: pl.Series
    values: list[np.ndarray]
    stamps_ms: list[int]

    @property
    def per_batch(self) -> int:
        return len(self.metric)

    def frame(self, i: int) -> Batch:
        n = self.per_batch
        return Batch(
            pl.DataFrame(
                {
                    "metric": self.metric,
                    "labels": self.labels,
                    "value": self.values[i],
                    "ts_ns": np.full(n, self.stamps_ms[i] * 1_000_000, dtype=np.int64),
                }
            )
        )

    def bodies(self, i: int, prefix: pl.Series, chunks: int) -> list[bytes]:
        """Batch i as `chunks` request bodies: `<prefix><value> <ts_ms>\\n` per sample."""
        lines = pl.DataFrame({"p": prefix, "v": self.values[i]}).select(
            pl.concat_str([pl.col("p"), pl.col("v").cast(pl.String), pl.lit(f" {self.stamps_ms[i]}")]).alias("line")
        )["line"]
        size = -(-len(lines) // chunks)
        return [("\n".join(lines.slice(k, size).to_list()) + "\n").encode() for k in range(0, len(lines), size)]


def build_workload(nodes: int, batches: int, seed: int = 7) -> Workload:
    """`batches` scrapes of `nodes` node_exporters (untimed)."""
    templates = node_series()
    metrics: list[str] = []
    labels: list[str] = []
    prom: list[str] = []
    influx: list[str] = []
    counter: list[bool] = []
    for n in range(nodes):
        base = {"site": "hpc1", "host": f"node{n:04d}"}
        for t in templates:
            ls = {**base, **dict(t.labels)}
            ordered = sorted(ls.items())
            metrics.append(t.metric)
            labels.append(canonical_labels(ls))
            prom.append(t.metric + "{" + ",".join(f'{k}="{v}"' for k, v in ordered) + "} ")
            influx.append(t.metric + "," + ",".join(f"{k}={v}" for k, v in ordered) + " value=")
            counter.append(t.counter)
    rng = np.random.default_rng(seed)
    n_series = len(metrics)
    is_counter = np.array(counter)
    start = np.round(rng.uniform(0, 1e7, n_series), 2)
    rate = rng.uniform(0, 500, n_series)
    values = []
    gauge = start.copy()
    for i in range(batches):
        gauge = gauge + rng.normal(0, 50, n_series)
        values.append(np.round(np.where(is_counter, start + rate * i * 15, np.abs(gauge)), 2))
    t0 = (int(time.time() * 1000) // STEP_MS) * STEP_MS - (batches + 10) * STEP_MS
    return Workload(
        pl.Series("metric", metrics, pl.String),
        pl.Series("labels", labels, pl.String),
        pl.Series("p", prom, pl.String),
        pl.Series("p", influx, pl.String),
        values,
        [t0 + i * STEP_MS for i in range(batches)],
    )


def report(label: str, times: list[float], per_batch: int) -> float:
    """Print per-batch times; return samples/s over the timed batches (all but the warm-up)."""
    warm, timed = times[0], times[1:]
    rate = per_batch * len(timed) / sum(timed)
    print(
        f"  {label}: warm-up (new series) {warm:.2f}s = {fmt_rate(per_batch, warm)}; "
        f"timed {' '.join(f'{t:.2f}' for t in timed)} s -> {rate:,.0f} samples/s"
    )
    return rate


# ------------------------------------------------------------------------------------------ ours
def run_ours(work: Workload, tmp: Path) -> tuple[float, list[float]]:
    print(f"[ours] building {len(work.values)} Batch frames (untimed)...", flush=True)
    frames = [work.frame(i) for i in range(len(work.values))]
    store = DuckDBStore(tmp / "ctwin.duckdb")
    times: list[float] = []
    try:
        for i, batch in enumerate(frames):
            t = time.perf_counter()
            store.append(batch)
            times.append(time.perf_counter() - t)
            print(f"  ours batch {i}: {times[-1]:.2f}s", flush=True)
        stored = store.count(Selection())
        expected = work.per_batch * len(frames)
        print(f"  ours stored {stored:,} samples (expected {expected:,})")
        if stored != expected:
            raise SystemExit(f"our store holds {stored} samples, expected {expected}")
        probe = store.query(Selection(metrics=("node_load1",), labels={"host": "node0001"}))
        ours_probe = probe["value"].to_list()
    finally:
        store.close()
    return report("ours (DuckDBStore.append)", times, work.per_batch), ours_probe


# ------------------------------------------------------------------------------------------ peers
def post_batch(client: httpx.Client, url: str, bodies: list[bytes], concurrency: int) -> float:
    """POST every body (at most `concurrency` at a time); seconds until the last response."""

    def send(body: bytes) -> None:
        r = client.post(url, content=body)
        if not r.is_success:
            raise RuntimeError(f"POST {url}: {r.status_code} {r.text[:300]}")

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        list(pool.map(send, bodies))
    return time.perf_counter() - t


def push_all(
    label: str,
    work: Workload,
    prefix: pl.Series,
    url: str,
    chunks: int,
    concurrency: int,
    pid: int,
) -> list[float]:
    """Push every batch; after the warm-up, let the server finish its background work first."""
    times: list[float] = []
    print(f"  {label}: encoding {len(work.values)} batches (untimed)...", flush=True)
    encoded = [work.bodies(i, prefix, chunks) for i in range(len(work.values))]
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    with httpx.Client(timeout=300.0, limits=limits) as client:
        for i, bodies in enumerate(encoded):
            times.append(post_batch(client, url, bodies, concurrency))
            print(f"  {label} batch {i}: {times[-1]:.2f}s ({sum(map(len, bodies)) / 1e6:.0f} MB)", flush=True)
            if i == 0:
                print(f"  {label} settled (CPU idle) after {wait_idle(pid):.1f}s", flush=True)
    return times


def run_vm(work: Workload, tmp: Path, chunks: int, concurrency: int, fmt: str, ours_probe: list[float]) -> float:
    binary = require_binary("victoria-metrics")
    port = free_port()
    workdir = tmp / "vm"
    workdir.mkdir()
    argv = [
        binary,
        f"-storageDataPath={workdir / 'data'}",
        f"-httpListenAddr=127.0.0.1:{port}",
        "-retentionPeriod=1",
        "-search.latencyOffset=0s",
        "-search.disableCache",
        "-search.maxUniqueTimeseries=10000000",
        "-influxSkipSingleField",  # line protocol `m,tags value=v` is stored as `m`, like the text format
        "-loggerLevel=WARN",
    ]
    print(f"[victoria-metrics] starting on 127.0.0.1:{port} in {workdir}", flush=True)
    with server(argv, port, workdir, "/health", "victoria-metrics") as vm:
        if fmt == "prometheus":
            url, prefix = vm.url("/api/v1/import/prometheus"), work.prom_prefix
        else:
            url, prefix = vm.url("/write?precision=ms"), work.influx_prefix
        times = push_all("vm", work, prefix, url, chunks, concurrency, vm.pid)
        t = time.perf_counter()
        httpx.get(vm.url("/internal/force_flush"), timeout=120).raise_for_status()
        flush_s = time.perf_counter() - t
        rate = report(f"victoria-metrics ({url.split(str(port))[1]})", times, work.per_batch)
        timed = sum(times[1:])
        with_flush = work.per_batch * (len(times) - 1) / (timed + flush_s)
        print(f"  vm force_flush {flush_s:.2f}s; timed batches incl. one final flush: {with_flush:,.0f} samples/s")
        verify_vm(vm, work, ours_probe)
    return rate


def vm_query(vm: Server, query: str, at_ms: int) -> float:
    r = httpx.post(vm.url("/api/v1/query"), data={"query": query, "time": f"{at_ms / 1000 + 1:.3f}"}, timeout=300)
    r.raise_for_status()
    result = r.json()["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def verify_vm(vm: Server, work: Workload, ours_probe: list[float]) -> None:
    expected = work.per_batch * len(work.values)
    span_s = (work.stamps_ms[-1] - work.stamps_ms[0]) // 1000 + 60
    stored = vm_query(vm, f'sum(count_over_time({{__name__=~"node_.+"}}[{span_s}s]))', work.stamps_ms[-1])
    print(f"  vm stored {stored:,.0f} samples (expected {expected:,})")
    if int(stored) != expected:
        raise SystemExit(f"VictoriaMetrics holds {stored} samples, expected {expected}")
    r = httpx.post(
        vm.url("/api/v1/export"),
        data={
            "match[]": '{__name__="node_load1",host="node0001"}',
            "start": str(work.stamps_ms[0] // 1000 - 1),
            "end": str(work.stamps_ms[-1] // 1000 + 1),
        },
        timeout=60,
    )
    r.raise_for_status()
    vm_values = json.loads(r.text.splitlines()[0])["values"]
    if vm_values != ours_probe:
        raise SystemExit(f"node_load1 of node0001 differs: ours {ours_probe}, VM {vm_values}")
    print(f"  node_load1{{host=node0001}} identical in both stores: {vm_values}")


INFLUX_CONF = """\
reporting-disabled = true
bind-address = "127.0.0.1:{rpc}"
[meta]
  dir = "{d}/meta"
[data]
  dir = "{d}/data"
  wal-dir = "{d}/wal"
  query-log-enabled = false
  max-series-per-database = 0
  max-values-per-tag = 0
[http]
  enabled = true
  bind-address = "127.0.0.1:{http}"
  auth-enabled = false
  log-enabled = false
[monitor]
  store-enabled = false
[continuous_queries]
  enabled = false
[subscriber]
  enabled = false
"""


def run_influx(work: Workload, tmp: Path, chunks: int, concurrency: int) -> float:
    binary = require_binary("influxd")
    port, rpc = free_port(), free_port()
    workdir = tmp / "influx"
    workdir.mkdir()
    conf = workdir / "influxdb.conf"
    conf.write_text(INFLUX_CONF.format(rpc=rpc, d=workdir / "data", http=port))
    print(f"[influxdb 1.6] starting on 127.0.0.1:{port} in {workdir}", flush=True)
    with server([binary, "run", "-config", str(conf)], port, workdir, "/ping", "influxd") as ix:
        httpx.post(ix.url("/query"), data={"q": "CREATE DATABASE bench"}, timeout=30).raise_for_status()
        url = ix.url("/write?db=bench&precision=ms")
        times = push_all("influx", work, work.influx_prefix, url, chunks, concurrency, ix.pid)
        rate = report("influxdb 1.6.7 (/write line protocol)", times, work.per_batch)
        r = httpx.post(
            ix.url("/query"),
            data={"db": "bench", "q": "SELECT count(value) FROM /.*/"},
            timeout=300,
        )
        r.raise_for_status()
        series = r.json()["results"][0].get("series", [])
        stored = sum(int(s["values"][0][1]) for s in series)
        expected = work.per_batch * len(work.values)
        print(f"  influx stored {stored:,} samples (expected {expected:,})")
        if stored != expected:
            raise SystemExit(f"InfluxDB holds {stored} samples, expected {expected}")
    return rate


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--batches", type=int, default=5, help="timed batches (after one warm-up batch)")
    ap.add_argument("--chunks", type=int, default=8, help="HTTP bodies per batch for the servers")
    ap.add_argument("--concurrency", type=int, default=2, help="concurrent HTTP requests per batch")
    ap.add_argument(
        "--vm-format",
        choices=("prometheus", "influx"),
        default="prometheus",
        help="what VictoriaMetrics ingests: text exposition (/api/v1/import/prometheus) or line protocol (/write)",
    )
    ap.add_argument("--skip-influx", action="store_true", help="leave out the InfluxDB 1.6 reference line")
    args = ap.parse_args()
    require_binary("victoria-metrics")
    if not args.skip_influx:
        require_binary("influxd")

    print(machine_note())
    t = time.perf_counter()
    work = build_workload(args.nodes, args.batches + 1)
    print(
        f"workload: {args.nodes} nodes × {len(node_series())} series = {work.per_batch:,} samples/batch, "
        f"1 warm-up + {args.batches} timed batches (built in {time.perf_counter() - t:.1f}s)",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-ingest-") as d:
        tmp = Path(d)
        ours, probe = run_ours(work, tmp)
        vm = run_vm(work, tmp, args.chunks, args.concurrency, args.vm_format, probe)
        influx = None if args.skip_influx else run_influx(work, tmp, args.chunks, args.concurrency)
    print("\nresults (timed batches, samples/s):")
    print(f"  ours (DuckDB, durable)      {ours:>14,.0f}")
    print(f"  victoria-metrics 1.79       {vm:>14,.0f}")
    if influx is not None:
        print(f"  influxdb 1.6.7 (reference)  {influx:>14,.0f}   (ours = {ours / influx:.2f}× influx)")
    print(machine_note())
    print(result_line(NAME, ours / vm, TARGET))


if __name__ == "__main__":
    main()
