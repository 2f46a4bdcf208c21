"""Link probes across a real shaped link: two network namespaces joined by a veth pair with a
`tbf rate 100mbit` on each end (tests/netlab.py). `ctwin probe-endpoint` runs in namespace A (the
"hpc" site), the link_probe collector in namespace B (the "cloud" site).

(1) The smoothed throughput after a few probes is within 15 % of the shaped rate (tbf counts
    Ethernet frames, so TCP payload tops out near 95.8 Mbit/s: ../shared/SERVICES.md §6).
(2) The stage-in estimate the advice engine's transfer planner makes from those probe series for
    40 MB over the link is within 15 % of the time a real 40 MB HTTP download across the veth took,
    while the configured figures (10 Gb/s, 30 ms; wrong on purpose) would be off by 50x.

Bounded: 4 probes of at most 8 MB / 2 s each, one 40 MB transfer (~3.4 s at 100 Mbit/s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from telemetry.catalog import links as lm
from telemetry.schema import Batch, Sample
from tests.netlab import NetLab, netlab
from twin.advice.transfer import TransferPlanner
from twin.live import build_twin
from twin.topology import LinkSpec, SiteSpec, Topology

RATE_BPS = 100e6
PORT = 7300  # the namespaces are new: any port is free in them
TRANSFER_BYTES = 40 * 10**6
PY = sys.executable


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    with netlab("100mbit") as made:
        yield made


def _wait_for_tcp(lab: NetLab, host: str, port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    """Until something listens on host:port as seen from namespace B."""
    probe = f"import socket; socket.create_connection(({host!r}, {port}), timeout=1).close()"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"server in {lab.a} exited: {proc.stderr.read() if proc.stderr else ''}")
        try:
            lab.run(lab.b, [PY, "-c", probe], timeout=10)
            return
        except AssertionError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listening on {host}:{port} after {timeout} s")


def _probe_samples(lab: NetLab, gathers: int) -> list[Sample]:
    done = lab.run(
        lab.b,
        [PY, "-m", "tests.integration.link_probe_driver", "probe", f"{lab.addr_a}:{PORT}", str(gathers), "8MB", "2s"],
    )
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    return [Sample(r["metric"], r["value"], {**r["labels"], "site": "cloud", "host": "b"}, r["ts_ns"]) for r in rows]


def test_probe_endpoint_and_collector_across_a_tbf_link(lab: NetLab, tmp_path: Path) -> None:
    ctwin = str(Path(PY).with_name("ctwin"))
    endpoint = lab.spawn(lab.a, [ctwin, "probe-endpoint", "--listen", f"{lab.addr_a}:{PORT}", "--max-bytes", "64MB"])
    _wait_for_tcp(lab, lab.addr_a, PORT, endpoint)

    # (1) the measured bandwidth
    samples = _probe_samples(lab, gathers=4)
    ema = [s.value for s in samples if s.metric == lm.THROUGHPUT.name]
    last = [s.value for s in samples if s.metric == lm.THROUGHPUT_LAST.name]
    rtts = [s.value for s in samples if s.metric == lm.RTT_LAST.name]
    assert len(ema) == len(last) == len(rtts) == 4
    assert all(s.labels["a"] == "hpc" and s.labels["b"] == "cloud" for s in samples)
    print(f"probe throughput EMA {ema[-1] / 1e6:.1f} Mbit/s (last {[round(x / 1e6, 1) for x in last]}), RTT {rtts}")
    assert abs(ema[-1] - RATE_BPS) / RATE_BPS < 0.15, f"EMA {ema[-1] / 1e6:.1f} Mbit/s vs the shaped 100 Mbit/s"
    assert all(abs(x - RATE_BPS) / RATE_BPS < 0.15 for x in last)
    assert all(0 < r < 0.05 for r in rtts)  # a veth: well under a millisecond, tbf's queue aside

    # (2) the twin and the advice engine's planner read those series instead of the configured link
    topology = Topology(
        (SiteSpec("hpc", "hpc"), SiteSpec("cloud", "cloud")),
        (LinkSpec("hpc", "cloud", "veth with tbf", bandwidth_bps=10e9, latency_s=0.030),),
    )
    twin = build_twin(topology)
    twin.state.write(Batch.from_samples(samples))
    (view,) = twin.links()
    assert view.probe_throughput_bps == pytest.approx(ema[-1])
    assert view.probe_rtt_s is not None and view.probe_throughput_age_s is not None
    route = TransferPlanner(twin.links(), probe_max_age_s=300.0).route("hpc", "cloud", TRANSFER_BYTES)
    assert route is not None and route.hops[0].probed
    estimate = route.seconds(TRANSFER_BYTES).p50
    unprobed = replace(view, probe_throughput_bps=None, probe_rtt_s=None)
    configured = TransferPlanner([unprobed]).route("hpc", "cloud", TRANSFER_BYTES)
    assert configured is not None

    # a real transfer of that size, hpc -> cloud: HTTP from namespace A, timed in namespace B
    (tmp_path / "input.bin").write_bytes(bytes(TRANSFER_BYTES))
    http = lab.spawn(lab.a, [PY, "-m", "http.server", "8000", "--bind", lab.addr_a, "--directory", str(tmp_path)])
    _wait_for_tcp(lab, lab.addr_a, 8000, http)
    fetched = json.loads(
        lab.run(
            lab.b, [PY, "-m", "tests.integration.link_probe_driver", "fetch", f"http://{lab.addr_a}:8000/input.bin"]
        ).stdout
    )
    assert fetched["bytes"] == TRANSFER_BYTES
    actual = fetched["seconds"]
    print(
        f"40 MB: estimate {estimate:.3f} s (probed), real {actual:.3f} s, "
        f"configured-only estimate {configured.seconds(TRANSFER_BYTES).p50:.3f} s; {route.describe(TRANSFER_BYTES)}"
    )
    assert abs(estimate - actual) / actual < 0.15
    assert abs(configured.seconds(TRANSFER_BYTES).p50 - actual) / actual > 0.5  # the probe is what made it right
