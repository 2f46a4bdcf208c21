"""Overload: the real service under ten times the rate of expensive requests it can sustain.

- The service: `ctwin serve` as a process on the built-in default config (this machine, the two
  replayed HPC sites, the cloud site; every collector running), a fresh data dir.
- The load, with wrk (Debian's, C, two threads), a Lua script per client kind:
  - expensive: a rotation of `GET /v1/query` (an hour of a metric), `GET /v1/sites/kth-sp2/forecast`
    and `POST /v1/advice`. First alone with as many connections as the service runs expensive
    requests at once (`serve.max_expensive_requests`): its sustainable rate R (answers 200 per
    second). Then from 100 connections, each pausing so that together they offer 10 × R;
  - latest values, at the same time: `GET /v1/nodes` and `GET /v1/sites` from 8 connections, as
    dashboards and schedulers poll them; their latency percentiles are what must stay low.
- Checked: no answer 500 (or any 5xx but the 503 of shedding), the p99 of the latest-value
  requests ≤ 50 ms, the service's RSS growth over the overload ≤ 200 MB.

ratio = 50 ms ÷ the latest-value p99 (target ≥ 1); FAIL also on any 500 or RSS growth beyond 200 MB.

    .venv/bin/python bench/overload.py          # needs wrk: scripts/install-system-deps.sh bench
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
from _common import free_port, machine_note, result_line, stop_process, wait_http

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from service.auth import TokenStore

NAME = "overload"
TARGET = 1.0
P99_TARGET_MS = 50.0
RSS_GROWTH_MB = 200.0
ROOT = Path(__file__).resolve().parents[1]

_COUNTING = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end
function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for k, v in pairs(t:get("counts")) do total[k] = (total[k] or 0) + v end
  end
  for k, v in pairs(total) do io.write(string.format("status %d %d\n", k, v)) end
  for _, p in ipairs({50, 90, 99, 99.9}) do
    io.write(string.format("p%s_us %d\n", p, latency:percentile(p)))
  end
end
"""

EXPENSIVE_LUA = (
    r"""
local i = 0
local pause = 0
function init(args)
  counts = {}
  pause = tonumber(args[1] or "0")
  token = args[2]
end
function delay() return pause end
function request()
  i = i + 1
  local h = {["Authorization"] = "Bearer " .. token, ["Content-Type"] = "application/json"}
  local k = i % 3
  if k == 0 then
    return wrk.format("GET", "/v1/query?metric=node_cpu_busy_ratio&start=-1h", h)
  elseif k == 1 then
    return wrk.format("GET", "/v1/sites/kth-sp2/forecast?limit=50", h)
  end
  local job = '{"cores": 16, "walltime": "2h", "input": {"size": "5GB", "site": "local"}}'
  return wrk.format("POST", "/v1/advice", h, job)
end
"""
    + _COUNTING
)

LATEST_LUA = (
    r"""
local i = 0
function init(args) counts = {}; token = args[1] end
function request()
  i = i + 1
  local h = {["Authorization"] = "Bearer " .. token}
  if i % 2 == 0 then return wrk.format("GET", "/v1/nodes", h) end
  return wrk.format("GET", "/v1/sites", h)
end
"""
    + _COUNTING
)


def loaded_limit(config: Path | None) -> int:
    """The service's bound on expensive requests at once (the sustainable phase's connections)."""
    from service.config import load_config

    return load_config(config).config.serve.max_expensive_requests


def parse_wrk(text: str) -> tuple[dict[int, int], dict[str, float], float]:
    """(answers by status, latency percentiles in ms, requests per second) from our done() lines."""
    statuses = {int(a): int(b) for a, b in re.findall(r"^status (\d+) (\d+)$", text, re.M)}
    percentiles = {f"p{a}": int(b) / 1000 for a, b in re.findall(r"^p([\d.]+)_us (\d+)$", text, re.M)}
    rate = re.search(r"Requests/sec:\s+([\d.]+)", text)
    return statuses, percentiles, float(rate.group(1)) if rate else 0.0


def wrk(script: Path, url: str, connections: int, seconds: int, *args: str) -> subprocess.Popen[str]:
    threads = min(2, connections)
    # no 2 s timeout: on one, wrk reconnects and sends again while the server still works on the first
    command = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--timeout", "30s"]
    command += ["-s", str(script), url, "--", *args]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=20, help="length of the overload phase")
    parser.add_argument("--factor", type=float, default=10.0, help="offered rate over the sustainable one")
    parser.add_argument("--config", type=Path, help="a config file for the service (default: the built-in one)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("wrk not found: install it with scripts/install-system-deps.sh bench (Debian package wrk)")
        raise SystemExit(2)
    print(machine_note())
    with tempfile.TemporaryDirectory(prefix="ctwin-bench-overload-") as d:
        tmp = Path(d)
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        (tmp / "expensive.lua").write_text(EXPENSIVE_LUA)
        (tmp / "latest.lua").write_text(LATEST_LUA)
        data = tmp / "data"
        data.mkdir(mode=0o700)
        token = TokenStore(data / "tokens.json").create("bench", ["admin"])[1]
        command = [
            sys.executable,
            "-m",
            "service.cli",
            "serve",
            "--port",
            str(port),
            "--no-ui",
            "--data-dir",
            str(data),
        ]
        serve = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_http(f"{url}/healthz", 60, serve)  # type: ignore[arg-type]
            auth = {"Authorization": f"Bearer {token}"}
            deadline = time.monotonic() + 60
            ready_paths = ("/v1/sites/kth-sp2/forecast", "/v1/query?metric=node_cpu_busy_ratio&start=-1h")
            while time.monotonic() < deadline:  # the replayed queues are in, the first CPU shares stored
                if all(httpx.get(url + p, headers=auth, timeout=30).status_code == 200 for p in ready_paths):
                    break
                time.sleep(0.5)
            limit = loaded_limit(args.config)
            sustain = wrk(tmp / "expensive.lua", url, limit, 10, "0", token)
            s_status, s_lat, _ = parse_wrk(sustain.communicate()[0])
            rate = s_status.get(200, 0) / 10
            print(f"sustainable: {rate:.1f} expensive answers/s from {limit} connections", end=" ")
            print(f"({s_status}; p99 {s_lat.get('p99', 0):.0f} ms)")
            connections = 100
            offered = args.factor * max(rate, 1.0)
            pause_ms = max(1, int(connections * 1000 / offered))
            proc = psutil.Process(serve.pid)
            rss0 = proc.memory_info().rss
            heavy = wrk(tmp / "expensive.lua", url, connections, args.seconds, str(pause_ms), token)
            light = wrk(tmp / "latest.lua", url, 8, args.seconds, token)
            peak = rss0
            while heavy.poll() is None or light.poll() is None:
                peak = max(peak, proc.memory_info().rss)
                time.sleep(0.25)
            h_status, h_lat, h_rate = parse_wrk(heavy.communicate()[0])
            l_status, l_lat, l_rate = parse_wrk(light.communicate()[0])
            ready = httpx.get(f"{url}/readyz", timeout=10).status_code
        finally:
            stop_process(serve)  # type: ignore[arg-type]
    growth_mb = (peak - rss0) / 2**20
    offered_rate = connections * 1000 / pause_ms
    print(
        f"overload: {connections} connections offering ≈ {offered_rate:.0f} expensive requests/s"
        f" ({args.factor:g} × R) for {args.seconds} s: answered {h_rate:.0f}/s,"
        f" by status {dict(sorted(h_status.items()))}"
    )
    print(f"  expensive answers' latency: p50 {h_lat.get('p50', 0):.1f} ms, p99 {h_lat.get('p99', 0):.1f} ms")
    print(
        f"latest values meanwhile: {l_rate:.0f}/s, by status {dict(sorted(l_status.items()))};"
        f" p50 {l_lat.get('p50', 0):.1f} ms, p90 {l_lat.get('p90', 0):.1f} ms, p99 {l_lat.get('p99', 0):.1f} ms"
        f" (target ≤ {P99_TARGET_MS:.0f} ms)"
    )
    print(
        f"service RSS: {rss0 / 2**20:.0f} MB before, peak {peak / 2**20:.0f} MB"
        f" (+{growth_mb:.0f} MB; at most {RSS_GROWTH_MB:.0f})"
    )
    errors = sum(n for code, n in {**h_status, **l_status}.items() if code >= 500 and code != 503)
    errors += sum(n for code, n in l_status.items() if code == 503)  # latest values are never shed
    print(f"5xx other than shedding's 503: {errors}; /readyz after: {ready}")
    p99 = l_lat.get("p99", float("inf")) or float("inf")
    line = result_line(NAME, P99_TARGET_MS / p99, TARGET)
    if errors or growth_mb > RSS_GROWTH_MB or ready != 200:
        line = line.replace("PASS", "FAIL")
    print(line)


if __name__ == "__main__":
    main()
