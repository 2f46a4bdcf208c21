"""`ctwin agent` pushing to a central `ctwin serve` across a real link that is cut for 30 s.

Two network namespaces joined by a veth pair (tests/netlab.py): the central service in A (its
own data dir; the remote site `edge` configured as pushed by the token `edge-agent`), the agent
in B (the node collector every 0.5 s, pushing to A over the veth). Both are real subprocesses.
The link is taken down on both ends for 30 s, then brought back. Asserted:

- the central API shows `edge` ok before the cut, stale during it, and ok again after it;
- the agent spooled during the cut and replayed after it, and dropped nothing;
- every sample the agent produced (its final status counts them) is in the central store, and
  each exactly once (no (series, timestamp) twice), although acknowledgements were lost when the
  link went down mid-request.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from tests.netlab import NetLab, netlab

PY = sys.executable
CTWIN = str(Path(PY).with_name("ctwin"))
PORT = 7400  # the namespaces are new: any port is free in them
CUT_S = 30.0

CENTRAL = """
data_dir: {data}
serve: {{listen: 0.0.0.0, port: {port}}}
sites:
  - name: central
    kind: hpc
  - name: edge
    kind: edge
    push: {{tokens: [edge-agent], interval: 1s}}
"""

AGENT = """
site: edge
host: edge-1
data_dir: {data}
target: {{kind: serve, url: "http://{addr}:{port}", token_file: {token_file}, timeout: 2s}}
spool: {{retry_min: 0.2s, retry_max: 2s, final_replay: 30s}}
status: {{every: 1s}}
collectors:
  - {{type: node, interval: 0.5s}}
"""

_GET = """
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], headers={"Authorization": "Bearer " + sys.argv[2]})
with urllib.request.urlopen(req, timeout=3) as r:
    print(r.read().decode())
"""


@pytest.fixture(scope="module")
def lab() -> Iterator[NetLab]:
    with netlab("100mbit") as made:
        yield made


def _token(config: Path, data: Path, name: str, scope: str) -> str:
    done = subprocess.run(
        [CTWIN, "token", "create", name, "--scope", scope, "--config", str(config), "--data-dir", str(data)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip().splitlines()[-1]


def _edge_state(lab: NetLab, token: str) -> str | None:
    """The central API's state of site `edge`, asked inside namespace A (over loopback: the cut
    veth does not hide the service from its own namespace); None when it does not answer."""
    try:
        done = lab.run(lab.a, [PY, "-c", _GET, f"http://127.0.0.1:{PORT}/v1/sites", token], timeout=15)
    except (AssertionError, subprocess.TimeoutExpired):
        return None
    sites = {s["name"]: s for s in json.loads(done.stdout)["items"]}
    return str(sites["edge"]["state"])


def _wait_state(lab: NetLab, token: str, want: str, timeout_s: float, procs: list[subprocess.Popen[str]]) -> float:
    started = time.monotonic()
    state = None
    while time.monotonic() - started < timeout_s:
        for proc in procs:
            if proc.poll() is not None:
                stderr = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"{proc.args} exited {proc.returncode}: {stderr[-3000:]}")
        state = _edge_state(lab, token)
        if state == want:
            return time.monotonic() - started
        time.sleep(0.3)
    raise AssertionError(f"site edge never became {want!r} within {timeout_s} s (last: {state})")


def test_agent_spools_through_a_cut_link_and_nothing_is_lost_or_doubled(lab: NetLab, tmp_path: Path) -> None:
    central_data, agent_data = tmp_path / "central", tmp_path / "agent"
    central_cfg, agent_cfg = tmp_path / "central.yaml", tmp_path / "agent.yaml"
    central_cfg.write_text(CENTRAL.format(data=central_data, port=PORT))
    ingest = _token(central_cfg, central_data, "edge-agent", "ingest")
    reader = _token(central_cfg, central_data, "reader", "read")
    token_file = tmp_path / "agent.token"
    token_file.write_text(ingest + "\n")
    agent_cfg.write_text(AGENT.format(data=agent_data, addr=lab.addr_a, port=PORT, token_file=token_file))

    central = lab.spawn(lab.a, [CTWIN, "serve", "--config", str(central_cfg), "--no-ui"])
    agent = lab.spawn(lab.b, [CTWIN, "agent", "--config", str(agent_cfg), "--json"])
    procs = [central, agent]
    _wait_state(lab, reader, "ok", 60.0, procs)

    lab.cut()
    cut_at = time.monotonic()
    try:
        went_stale = _wait_state(lab, reader, "stale", CUT_S - 2, procs)
        print(f"edge stale {went_stale:.1f} s into the cut")
        time.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
    finally:
        lab.restore()
    back = _wait_state(lab, reader, "ok", 30.0, procs)
    print(f"edge ok again {back:.1f} s after the link came back")
    time.sleep(2.0)  # a few more batches over the restored link

    os.killpg(agent.pid, signal.SIGINT)
    out, errors = agent.communicate(timeout=60)
    assert agent.returncode == 0, errors[-3000:]
    final = json.loads(out)
    print(f"agent final status: {final}")
    assert "unreachable" in errors or "refused" in errors, "the agent never noticed the cut"
    assert final["replayed_samples"] > 0, "nothing went through the spool"
    assert final["spooled_samples"] == 0 and final["connected"]
    assert final["dropped_samples"] == {"spool_full": 0, "rejected": 0, "buffer_full": 0, "store_failed": 0}
    produced = final["produced_samples"]
    assert produced > 0 and final["sent_samples"] == produced

    os.killpg(central.pid, signal.SIGTERM)
    _, central_errors = central.communicate(timeout=60)
    assert central.returncode == 0, central_errors[-3000:]
    con = duckdb.connect(str(central_data / "ctwin.duckdb"), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(DISTINCT (s.series_id, s.ts_ns)) FROM samples s JOIN series USING (series_id)"
            " WHERE json_extract_string(series.labels, '$.site') = 'edge'"
        ).fetchone()
        keys = con.execute("SELECT count(*) FROM ingest_keys").fetchone()
    finally:
        con.close()
    assert row is not None and keys is not None
    stored, distinct = row
    print(f"agent produced {produced} samples; central stored {stored} ({distinct} distinct), {keys[0]} batch keys")
    assert stored == produced, f"central has {stored} of the agent's {produced} samples"
    assert distinct == stored, "a sample was stored twice"
