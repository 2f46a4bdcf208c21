"""The kube-scheduler extender: one scheduling cycle (filter, then prioritize) for 500 nodes, as a
kube-scheduler sends it, against a bare Starlette app doing the least any Python extender must.

- Ours: the real service (service.app.create_app, the extender enabled) on uvicorn (httptools,
  uvloop, as `ctwin serve` runs it) in its own process, over a realistic twin: this cluster as a
  config-only site, the two replayed HPC sites (KTH-SP2, SDSC-SP2, collectors running) and a cloud
  site; 496 cluster nodes and 4 interLink-style virtual nodes fronting the HPC sites.
- Peer: a bare Starlette app on the same uvicorn in another process, whose two routes read the
  body, decode it with the same stdlib JSON decoder and return a fixed answer of the same size as
  ours (every node passes, the Node objects echoed; every node the same score).
- The body: the real filter body captured from kube-scheduler v1.20.2
  (tests/fixtures/k8s-extender/ExtenderArgs.filter.kube-scheduler-1.20.2.json), its Node objects
  replicated to 500 with unique names and uids, each given a kubelet's status bulk (4 conditions,
  20 images) so a node is ~5 KB with its managedFields, as on a real cluster. Each cycle has a
  fresh pod UID, so each filter computes its advice (the prioritize reuses it, as in a real cycle).
- Client: one keep-alive connection, cycles one after another (the scheduler asks about one pod at
  a time), ours and the peer's interleaved so machine load hits both alike.
- Both ways a kube-scheduler can call: with `nodeCacheCapable: true` (names only, 7 KB: what
  deploy/ ships and what the README tells a cluster to run; the advice engine dominates) and with
  full Node objects (2.7 MB each way).

ratio = our cycles per second ÷ the peer's, the lower of the two body kinds (target ≥ 0.7). PASS
also needs our p99 ≤ 10 ms with names only. With full Node objects the p99 is reported, not judged:
decoding 2.7 MB with the stdlib decoder costs the bare peer itself more than 10 ms (its p50 is
about 45 ms here), so no Python extender can meet it that way; that is why the shipped
configuration is `nodeCacheCapable: true`.

    .venv/bin/python bench/extender.py [--cycles 200] [--name-cycles 1000]
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from _common import free_port, machine_note, stop_process, wait_http

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

NAME = "extender"
TARGET = 0.7
P99_TARGET_MS = 10.0
NODES = 500
CAPTURED = ROOT / "tests" / "fixtures" / "k8s-extender" / "ExtenderArgs.filter.kube-scheduler-1.20.2.json"
RESULTS = ROOT / "bench" / "results" / "extender.md"
UID = "00000000-0000-4000-8000-000000000000"

CONFIG = """
sites:
  - {name: cluster, kind: cloud, speed: 1, cloud: {quota_cores: 2000, provisioning: {p10: 1s, p50: 2s, p90: 5s}}}
  - name: kth-sp2
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 5s, speed: 60, start_offset: 30d}]
  - name: sdsc-sp2
    kind: hpc
    collectors: [{type: replay, trace: SDSC-SP2-1998-4.2-cln.swf.gz, interval: 5s, speed: 60, start_offset: 30d}]
  - {name: cloud-eu, kind: cloud, speed: 1, cloud: {quota_cores: 256}, pricing: {core_hour: 0.048}}
links:
  - {between: [cluster, kth-sp2], bandwidth_gbps: 10, latency_ms: 30}
  - {between: [cluster, sdsc-sp2], bandwidth_gbps: 10, latency_ms: 80}
  - {between: [cluster, cloud-eu], bandwidth_gbps: 1, latency_ms: 25}
advice: {home: cluster}
schedulers:
  kubernetes: {enabled: true, local_site: cluster}
"""


# ------------------------------------------------------------------------------------ the servers
def serve_ours(port: int, data: Path) -> None:
    import uvicorn

    from service.app import create_app
    from service.config import parse_config

    app = create_app(parse_config(CONFIG), data, ui=False)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, ws="none")


def serve_peer(port: int, answers: Path) -> None:
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.routing import Route

    fixed = json.loads(answers.read_text())
    filter_answer, prioritize_answer = fixed["filter"].encode(), fixed["prioritize"].encode()

    async def filter_(request: Request) -> Response:
        json.loads(await request.body())
        return Response(filter_answer, media_type="application/json")

    async def prioritize(request: Request) -> Response:
        json.loads(await request.body())
        return Response(prioritize_answer, media_type="application/json")

    async def healthz(request: Request) -> Response:
        return Response(b"{}", media_type="application/json")

    routes = [Route("/filter", filter_, methods=["POST"]), Route("/prioritize", prioritize, methods=["POST"])]
    app = Starlette(routes=[*routes, Route("/healthz", healthz)])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, ws="none")


# ------------------------------------------------------------------------------------ the bodies
def _bulk(node: dict[str, Any]) -> None:
    """A kubelet's status: four conditions and twenty images (the test's nodes have neither)."""
    status = node.setdefault("status", {})
    ready = (status.get("conditions") or [{}])[0]
    status["conditions"] = [
        {**ready, "type": t, "status": "False", "reason": f"Kubelethas{t}", "message": f"kubelet has no {t}"}
        for t in ("MemoryPressure", "DiskPressure", "PIDPressure")
    ] + [ready]
    status["images"] = [
        {"names": [f"registry.example/team/app-{i}@sha256:{i:064x}", f"registry.example/team/app-{i}:v1.{i}"],
         "sizeBytes": 100_000_000 + i}
        for i in range(20)
    ]  # fmt: skip


def bodies() -> tuple[bytes, bytes, list[str]]:
    """(full ExtenderArgs with a UID placeholder, the same by names only, the node names)."""
    captured = json.loads(CAPTURED.read_bytes())
    items = captured["Nodes"]["items"]
    local = next(n for n in items if n["status"]["nodeInfo"]["operatingSystem"] != "virtual-kubelet")
    virtual = next(n for n in items if n["status"]["nodeInfo"]["operatingSystem"] == "virtual-kubelet")
    nodes = []
    for i in range(NODES):
        site = ("kth-sp2", "sdsc-sp2")[i % 2] if i < 4 else None
        node = copy.deepcopy(virtual if site else local)
        name = f"vk-{site}-{i}" if site else f"node-{i:03d}"
        node["metadata"]["name"] = name
        node["metadata"]["uid"] = f"{i:08x}-0000-4000-8000-000000000000"
        node["metadata"]["labels"] = {**node["metadata"].get("labels", {}), "kubernetes.io/hostname": name}
        if site:
            node["metadata"]["labels"]["ctwin.io/site"] = site
        _bulk(node)
        nodes.append(node)
    pod = captured["Pod"]
    pod["metadata"]["uid"] = UID
    pod["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2", "memory": "4Gi"}}
    names = [n["metadata"]["name"] for n in nodes]
    full = {"Pod": pod, "Nodes": {"metadata": {}, "items": nodes}, "NodeNames": None}
    by_name = {"Pod": pod, "Nodes": None, "NodeNames": names}
    return (json.dumps(full, separators=(",", ":")).encode(), json.dumps(by_name, separators=(",", ":")).encode(),
            names)  # fmt: skip


# ------------------------------------------------------------------------------------ measuring
def cycle(client: httpx.Client, base: str, body: bytes) -> float:
    started = time.perf_counter()
    for verb in ("filter", "prioritize"):
        answer = client.post(f"{base}/{verb}", content=body, headers={"content-type": "application/json"})
        if answer.status_code != 200:
            raise SystemExit(f"{base}/{verb}: {answer.status_code} {answer.text[:300]}")
    return time.perf_counter() - started


def stats(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(seconds)
    return {
        "p50_ms": statistics.median(ordered) * 1e3,
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1e3,
        "per_s": len(ordered) / sum(ordered),
    }


def run(cycles: int, ours: str, peer: str, template: bytes) -> tuple[dict[str, float], dict[str, float]]:
    timings: dict[str, list[float]] = {"ours": [], "peer": []}
    with httpx.Client(timeout=60) as client:
        for i in range(cycles + 10):
            body = template.replace(UID.encode(), f"{i:08x}-1111-4000-8000-{time.time_ns() % 10**12:012d}".encode())
            for who, base in (("ours", ours), ("peer", peer)):
                took = cycle(client, base, body)
                if i >= 10:  # the first ten warm both up
                    timings[who].append(took)
    return stats(timings["ours"]), stats(timings["peer"])


def wait_for_data(url: str, token: str) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        advice = httpx.post(f"{url}/v1/advice", json={"cores": 2, "walltime": "1h"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30).json()  # fmt: skip
        if not any(s["excluded_because"] in ("no_data", "stale") for s in advice["sites"]):
            return
        time.sleep(1)
    raise SystemExit("the replayed sites reported no data in 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=200, help="cycles with full Node objects")
    parser.add_argument("--name-cycles", type=int, default=1000, help="cycles by names only (a p99 needs many)")
    parser.add_argument("--serve-ours", nargs=2, metavar=("PORT", "DATA"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-peer", nargs=2, metavar=("PORT", "ANSWERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_ours:
        serve_ours(int(args.serve_ours[0]), Path(args.serve_ours[1]))
        return
    if args.serve_peer:
        serve_peer(int(args.serve_peer[0]), Path(args.serve_peer[1]))
        return

    from service.auth import TokenStore
    from service.hooks.extender_wire import filter_result, host_priorities, parse_args

    print(machine_note())
    full, by_name, names = bodies()
    print(f"body: {NODES} nodes, {len(full):,} bytes with full Node objects ({len(full) // NODES:,} a node),"
          f" {len(by_name):,} by name")  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-extender-") as d:
        tmp = Path(d)
        data = tmp / "data"
        data.mkdir(mode=0o700)
        token = TokenStore(data / "tokens.json").create("bench", ["admin"])[1]
        parsed = parse_args(full)
        answers = tmp / "answers.json"
        answers.write_text(json.dumps({
            "filter": filter_result(parsed.nodes, {}, by_name=False).decode(),
            "prioritize": host_priorities((n, 5) for n in names).decode(),
        }))  # fmt: skip
        ours_port, peer_port = free_port(), free_port()
        me = [sys.executable, str(Path(__file__).resolve())]
        procs = [
            subprocess.Popen([*me, "--serve-ours", str(ours_port), str(data)], cwd=ROOT),
            subprocess.Popen([*me, "--serve-peer", str(peer_port), str(answers)], cwd=ROOT),
        ]
        try:
            ours_url, peer_url = f"http://127.0.0.1:{ours_port}", f"http://127.0.0.1:{peer_port}"
            wait_http(f"{ours_url}/healthz", timeout_s=60, proc=procs[0])
            wait_http(f"{peer_url}/healthz", timeout_s=30, proc=procs[1])
            wait_for_data(ours_url, token)
            ours_base, peer_base = f"{ours_url}/k8s/extender/v1", peer_url
            full_ours, full_peer = run(args.cycles, ours_base, peer_base, full)
            name_ours, name_peer = run(args.name_cycles, ours_base, peer_base, by_name)
            metrics = httpx.get(f"{ours_url}/metrics", timeout=10).text
        finally:
            for proc in procs:
                stop_process(proc)
    fallbacks = [line for line in metrics.splitlines() if line.startswith("ctwin_extender_fallback_total")]
    rows = [
        ("full Node objects", "ours", full_ours), ("full Node objects", "peer", full_peer),
        ("names only (nodeCacheCapable)", "ours", name_ours), ("names only (nodeCacheCapable)", "peer", name_peer),
    ]  # fmt: skip
    table = ["| body | server | p50 ms | p99 ms | cycles/s |", "|---|---|---|---|---|"]
    table += [f"| {b} | {w} | {s['p50_ms']:.1f} | {s['p99_ms']:.1f} | {s['per_s']:.1f} |" for b, w, s in rows]
    full_ratio = full_ours["per_s"] / full_peer["per_s"]
    name_ratio = name_ours["per_s"] / name_peer["per_s"]
    ratio = min(full_ratio, name_ratio)
    p99_ok = name_ours["p99_ms"] <= P99_TARGET_MS
    ok = ratio >= TARGET and p99_ok
    verdict = f"{NAME}: ratio={ratio:.3f} target={TARGET} {'PASS' if ok else 'FAIL'}"
    summary = (
        f"ours ÷ peer cycles/s: {name_ratio:.3f} by names only, {full_ratio:.3f} with full Node objects;"
        f" our p99 by names only {name_ours['p99_ms']:.1f} ms against {P99_TARGET_MS:.0f} ms"
        f" ({'met' if p99_ok else 'NOT met'}); with full Node objects {full_ours['p99_ms']:.1f} ms,"
        f" the bare peer's {full_peer['p99_ms']:.1f} ms (not judged: see the docstring)"
    )
    print("\n".join(table))
    print("fallbacks during the run: " + ", ".join(fallbacks))
    print(summary)
    RESULTS.write_text(
        f"# bench/extender.py\n\n{machine_note()}; {args.cycles} cycles (filter + prioritize) with full Node"
        f" objects, {args.name_cycles} by names only, one connection, ours and the peer interleaved.\n"
        f"Body: {NODES} nodes, {len(full):,} bytes with full Node objects, {len(by_name):,} by name.\n\n"
        + "\n".join(table)
        + f"\n\n{summary}.\n\n{verdict}\n"
    )
    print(verdict)


if __name__ == "__main__":
    main()
