"""Latest-values endpoint for 1,000 nodes: our `GET /v1/nodes` vs a bare Starlette app returning
the same precomputed JSON bytes, same server settings, measured side by side in one run.

- Ours: the real app, `service.app.create_app(loaded, data_dir, collect=False, ui=False)` with
  one site (`bench`, kind cloud, no collectors), its lifespan wrapped so that, once the store is
  open, the live twin receives one batch of 1,000 hosts × 6 node metrics (the families
  `/v1/nodes` reads). Every request goes through the whole stack: the request-latency middleware,
  the bearer-token check against the hashed token store (a `read` token made for the run), the
  route (a sync handler, so Starlette's thread pool) and the per-second JSON cache.
- Peer: `starlette.applications.Starlette` with one `async` route returning
  `Response(body, media_type="application/json")`, where `body` is exactly what our `/v1/nodes`
  answered just before (checked byte for byte through the peer afterwards).

Both run in their own subprocess under `uvicorn.run` with identical settings: 1 worker, the same
loop and HTTP implementation (httptools if installed, else h11), `log_level="warning"`,
`access_log=False`, on 127.0.0.1. Both are up for the whole run; only the one being measured
gets traffic. The load generator is `wrk` (Debian `wrk`; 1 thread, `--connections` keep-alive
connections), the same command line for both, our token header included (the peer ignores it);
without wrk, an asyncio raw-socket keep-alive client in this process stands in (`--client
python` forces it). Runs alternate (ours, peer, ours, peer...) after a short warm-up of each, so
a noisy neighbour on this shared 2-core machine hits both alike; every run prints its requests/s
and the CPU the server and the client used, which shows the server (one Python process, one
core) is the bottleneck rather than the client.

ratio = median of our requests/s ÷ median of the peer's requests/s; target 0.8.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from _common import (
    free_port,
    machine_note,
    proc_cpu_seconds,
    result_line,
    stop_process,
    wait_http,
)

NAME = "api_latest"
TARGET = 0.8
PATH = "/v1/nodes"
SITE = "bench"
CONFIG = f"sites: [{{name: {SITE}, kind: cloud, description: 'benchmark: 1,000 synthetic hosts'}}]\n"
HTTP_IMPL = "httptools" if importlib.util.find_spec("httptools") else "h11"
UVICORN: dict[str, Any] = {
    "host": "127.0.0.1",
    "workers": 1,
    "loop": "auto",
    "http": HTTP_IMPL,
    "log_level": "warning",
    "access_log": False,
    "lifespan": "on",
}


# ------------------------------------------------------------------------------ the two servers
def fill_twin(twin: Any, hosts: int, seed: int = 11) -> None:
    """One batch of the host families /v1/nodes reads, for `hosts` hosts of site `bench`."""
    from telemetry.schema import Batch, Sample

    rng = random.Random(seed)
    now = time.time_ns()
    samples: list[Sample] = []
    for i in range(hosts):
        labels = {"site": SITE, "host": f"n{i:04d}"}
        total = float(rng.choice((128, 256, 512)) * 2**30)
        available = total * rng.uniform(0.05, 0.95)
        values = {
            "node_cpu_count": float(rng.choice((32, 64, 128))),
            "node_cpu_busy_ratio": rng.random(),
            "node_load1": rng.uniform(0, 64),
            "node_memory_MemTotal_bytes": total,
            "node_memory_MemAvailable_bytes": available,
            "node_memory_used_ratio": 1 - available / total,
        }
        samples.extend(Sample(metric, value, labels, now) for metric, value in values.items())
    twin.write(Batch.from_samples(samples))


def ours_app(data_dir: Path, hosts: int) -> Any:
    """The real service app (no collectors, no UI), its twin filled once the lifespan has started."""
    from service.app import create_app
    from service.config import parse_config

    app = create_app(parse_config(CONFIG, "<bench>"), data_dir, collect=False, ui=False)
    inner = app.router.lifespan_context

    @contextlib.asynccontextmanager
    async def lifespan(a: Any) -> AsyncIterator[Any]:
        async with inner(a) as state:
            fill_twin(a.state.service.twin.state, hosts)
            yield state

    app.router.lifespan_context = lifespan
    return app


def peer_app(body: bytes) -> Any:
    """A bare Starlette app with one route that returns `body` as JSON."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    async def nodes(request: Request) -> Response:
        return Response(body, media_type="application/json")

    return Starlette(routes=[Route(PATH, nodes)])


def serve_child(args: argparse.Namespace) -> None:
    """Child-process mode: serve one of the two apps until SIGTERM."""
    import uvicorn

    app = ours_app(Path(args.data_dir), args.hosts) if args.serve == "ours" else peer_app(Path(args.body).read_bytes())
    uvicorn.run(app, port=args.port, **UVICORN)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{PATH}"


@contextlib.contextmanager
def child(name: str, extra: list[str], workdir: Path, ready: str, headers: dict[str, str]) -> Iterator[Child]:
    port = free_port()
    log = workdir / f"{name}.log"
    argv = [sys.executable, __file__, "--serve", name, "--port", str(port), *extra]
    with log.open("wb") as fh:
        proc = subprocess.Popen(argv, stdout=fh, stderr=subprocess.STDOUT)
    srv = Child(name, proc, port, log)
    try:
        try:
            wait_http(f"http://127.0.0.1:{port}{ready}", 60.0, proc)
            r = httpx.get(srv.url, headers=headers, timeout=10)
            r.raise_for_status()
        except Exception:
            print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        yield srv
    finally:
        stop_process(proc)


# ------------------------------------------------------------------------------ load generators
@dataclass
class Run:
    rps: float
    requests: int
    seconds: float
    server_cpu_s: float
    client_cpu_s: float
    p50_ms: float | None = None
    p99_ms: float | None = None


_WRK_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _wrk_ms(text: str, label: str) -> float | None:
    m = re.search(rf"^\s*{label}\s+([\d.]+)(us|ms|s|m)\s*$", text, re.M)
    return float(m.group(1)) * _WRK_UNIT[m.group(2)] if m else None


def load_wrk(wrk: str, srv: Child, headers: dict[str, str], seconds: float, connections: int) -> Run:
    argv = [wrk, "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "--timeout", "10s"]
    for key, value in headers.items():
        argv += ["-H", f"{key}: {value}"]
    argv.append(srv.url)
    server0, client0 = proc_cpu_seconds(srv.proc.pid), _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    server_cpu, client_cpu = proc_cpu_seconds(srv.proc.pid) - server0, _children_cpu() - client0
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    out = done.stdout
    failure = re.search(r"Non-2xx or 3xx responses: \d+|Socket errors: .*", out)
    if failure is not None:
        raise SystemExit(f"{srv.name}: wrk saw failures ({failure.group(0)}):\n{out}")
    total = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if total is None or rps is None:
        raise SystemExit(f"cannot read wrk's output:\n{out}")
    secs = float(total.group(2)) * {"ms": 1e-3, "s": 1.0, "m": 60.0}[total.group(3)]
    return Run(
        float(rps.group(1)),
        int(total.group(1)),
        secs,
        server_cpu,
        client_cpu,
        _wrk_ms(out, "50%"),
        _wrk_ms(out, "99%"),
    )


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


async def _python_load(port: int, headers: dict[str, str], seconds: float, connections: int) -> tuple[int, list[float]]:
    """`connections` keep-alive HTTP/1.1 connections, each sending the next GET as soon as the
    previous answer is in; counts 200 answers (anything else aborts)."""
    request = (
        f"GET {PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        + "\r\n"
    ).encode()
    deadline = time.perf_counter() + seconds
    latencies: list[float] = []

    async def worker() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        n = 0
        try:
            while time.perf_counter() < deadline:
                started = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                status = head[9:12]
                if status != b"200":
                    raise SystemExit(f"GET {PATH}: HTTP {status.decode()}")
                length = re.search(rb"(?i)\r\ncontent-length:\s*(\d+)", head)
                if length is None:
                    raise SystemExit("the load generator needs Content-Length answers")
                await reader.readexactly(int(length.group(1)))
                latencies.append(time.perf_counter() - started)
                n += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        return n

    counts = await asyncio.gather(*(worker() for _ in range(connections)))
    return sum(counts), latencies


def load_python(srv: Child, headers: dict[str, str], seconds: float, connections: int) -> Run:
    from _common import cpu_seconds

    server0, client0, t = proc_cpu_seconds(srv.proc.pid), cpu_seconds(), time.perf_counter()
    n, latencies = asyncio.run(_python_load(srv.port, headers, seconds, connections))
    elapsed = time.perf_counter() - t
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1e3 if latencies else None
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1e3 if latencies else None
    return Run(n / elapsed, n, elapsed, proc_cpu_seconds(srv.proc.pid) - server0, cpu_seconds() - client0, p50, p99)


# ------------------------------------------------------------------------------ main
def alternate(
    servers: list[Child], measure: Callable[[Child, float], Run], runs: int, seconds: float, warmup: float
) -> dict[str, list[Run]]:
    """An untimed warm-up of each server, then `runs` timed runs of each, alternating; each printed."""
    for srv in servers:
        measure(srv, warmup)
    results: dict[str, list[Run]] = {srv.name: [] for srv in servers}
    for i in range(runs):
        for srv in servers:
            run = measure(srv, seconds)
            results[srv.name].append(run)
            latency = f"; p50 {run.p50_ms:.1f} ms, p99 {run.p99_ms:.1f} ms" if run.p50_ms and run.p99_ms else ""
            print(
                f"  run {i + 1} {srv.name}: {run.rps:>9,.1f} req/s ({run.requests:,} in {run.seconds:.1f} s; "
                f"server CPU {run.server_cpu_s / run.seconds:.0%} of a core, "
                f"{run.server_cpu_s / max(run.requests, 1) * 1e6:,.0f} us/request; "
                f"client CPU {run.client_cpu_s / run.seconds:.0%}{latency})",
                flush=True,
            )
    return results


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3, help="timed runs of each side, alternating")
    ap.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    ap.add_argument("--warmup", type=float, default=2.0, help="untimed load on each side first")
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--client", choices=("auto", "wrk", "python"), default="auto")
    ap.add_argument("--serve", choices=("ours", "peer"), help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--data-dir", help=argparse.SUPPRESS)
    ap.add_argument("--body", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve:
        serve_child(args)
        return

    wrk = shutil.which("wrk") if args.client != "python" else None
    if args.client == "wrk" and wrk is None:
        raise SystemExit("wrk is not installed; install the benchmark tools with: scripts/install-system-deps.sh bench")
    client = f"wrk -t1 -c{args.connections}" if wrk else f"python asyncio raw sockets, {args.connections} connections"
    print(machine_note())
    print(
        f"workload: GET {PATH} for {args.hosts:,} hosts; uvicorn 1 worker, http={HTTP_IMPL}, loop=auto; "
        f"client: {client}; {args.runs} × {args.seconds:g} s per side, alternating",
        flush=True,
    )

    from service.auth import TokenStore

    with tempfile.TemporaryDirectory(prefix="ctwin-bench-api-") as d:
        tmp = Path(d)
        data_dir = tmp / "data"
        _, token = TokenStore(data_dir / "tokens.json").create("bench", ["read"])
        headers = {"Authorization": f"Bearer {token}"}
        with child("ours", ["--data-dir", str(data_dir), "--hosts", str(args.hosts)], tmp, "/healthz", headers) as ours:
            r = httpx.get(ours.url, headers=headers, timeout=10)
            r.raise_for_status()
            body = r.content
            items = json.loads(body)["items"]
            if len(items) != args.hosts:
                raise SystemExit(f"ours answered {len(items)} nodes, expected {args.hosts}")
            refused = httpx.get(ours.url, timeout=10).status_code
            if refused != 401:
                raise SystemExit(f"ours answered {refused} without a token; the benchmark must measure the guard")
            print(f"  ours: {len(items):,} nodes, {len(body):,} bytes per answer; without a token: {refused}")
            (tmp / "body.json").write_bytes(body)
            with child("peer", ["--body", str(tmp / "body.json")], tmp, PATH, headers) as peer:
                if httpx.get(peer.url, timeout=10).content != body:
                    raise SystemExit("the peer does not answer our exact bytes")
                print("  peer: answers the same bytes", flush=True)

                def measure(srv: Child, seconds: float) -> Run:
                    if wrk:
                        return load_wrk(wrk, srv, headers, seconds, args.connections)
                    return load_python(srv, headers, seconds, args.connections)

                results = alternate([ours, peer], measure, args.runs, args.seconds, args.warmup)
    ours_rps = statistics.median(r.rps for r in results["ours"])
    peer_rps = statistics.median(r.rps for r in results["peer"])
    pairs = [o.rps / p.rps for o, p in zip(results["ours"], results["peer"], strict=True)]
    ours_cpu = sum(r.server_cpu_s for r in results["ours"]) / sum(r.requests for r in results["ours"])
    peer_cpu = sum(r.server_cpu_s for r in results["peer"]) / sum(r.requests for r in results["peer"])
    print("\nresults (median of runs, requests/s):")
    print(f"  ours (/v1/nodes, token, middleware)  {ours_rps:>10,.1f}   server CPU {ours_cpu * 1e3:.2f} ms/request")
    print(f"  bare Starlette, same bytes           {peer_rps:>10,.1f}   server CPU {peer_cpu * 1e3:.2f} ms/request")
    print(f"  per-pair ratios: {' '.join(f'{x:.3f}' for x in pairs)}")
    print(machine_note())
    print(result_line(NAME, ours_rps / peer_rps, TARGET))


if __name__ == "__main__":
    main()
