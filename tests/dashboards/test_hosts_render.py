"""The hosts page's render functions over a real store holding a real node_exporter-style capture
(tests/dashboards/host_capture.py): what each panel would put on the page."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest

from dashboards import ids
from dashboards.app import PAGES
from dashboards.hosts import MAX_POINTS, METRICS, PAGE, chosen, host_query, render_panels, render_picker
from tests.dashboards.dom import text, with_attr
from tests.dashboards.host_capture import GROWTH, HOST, MINUTES, SITE, capture_twin, captured
from tests.dashboards.twin_double import NOW_S, REPLAY_SPEED, TRACE_TIME_S, FakeReader, continuum, node
from twin.live import Twin


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[Twin]:
    twin, store = capture_twin(tmp_path, NOW_S)
    yield twin
    store.close()


def _names(fig: go.Figure) -> list[str]:
    return [t.name for t in fig.data]


def _message(fig: go.Figure) -> str:
    return " ".join(a.text for a in fig.layout.annotations)


def test_the_page_is_registered_with_its_url() -> None:
    assert PAGE in PAGES and PAGE.href == "?view=hosts"
    assert host_query("s", "h", "6h") == "?view=hosts&site=s&host=h&range=6h"


def test_cpu_by_mode_is_the_captured_share_of_each_mode(twin: Twin) -> None:
    panels = render_panels(twin, host_query(SITE, HOST), now_s=NOW_S)
    seconds = {}
    for s in captured():
        if s.metric == "node_cpu_seconds_total":
            seconds[s.labels["mode"]] = seconds.get(s.labels["mode"], 0.0) + s.value
    total = sum(seconds.values())
    assert set(_names(panels.cpu)) == set(seconds)
    assert _names(panels.cpu)[-1] == "idle"  # stacked last, on top
    for trace in panels.cpu.data:
        assert len(trace.y) == MINUTES - 1  # a rate needs the minute before
        assert trace.y[-1] == pytest.approx(seconds[trace.name] / total)
        assert trace.stackgroup == "cpu"
    assert panels.cpu.layout.xaxis.title.text == "UTC"
    assert panels.note == f"{HOST} at {SITE}, last hour; times in UTC."


def test_memory_disk_network_fabric_and_psi_come_from_the_capture(twin: Twin) -> None:
    p = render_panels(twin, host_query(SITE, HOST), now_s=NOW_S)
    mem = {t.name: t for t in p.memory.data}
    assert list(mem) == ["used", "buffers", "cached", "free"]
    total = sum(mem[k].y[-1] for k in mem)
    assert total * 2**30 == pytest.approx(next(s.value for s in captured() if s.metric == "node_memory_MemTotal_bytes"))
    assert "sda read" in _names(p.disk) and "sda write" in _names(p.disk)
    sda_read = next(
        s.value for s in captured() if s.metric == "node_disk_read_bytes_total" and s.labels["device"] == "sda"
    )
    trace = next(t for t in p.disk.data if t.name == "sda read")
    assert trace.y[-1] == pytest.approx(sda_read * GROWTH / 60)  # bytes/s
    assert all(v <= 0 for v in next(t for t in p.disk.data if t.name == "sda write").y)
    assert "eth0 rx" in _names(p.network) and not any(n.startswith("lo ") for n in _names(p.network))
    assert {"mlx4_0:1 rx", "mlx4_0:2 tx"} <= set(_names(p.fabric))
    assert set(_names(p.psi)) == {"cpu", "io"}  # the fixture has no pressure/memory (PROVENANCE.md)
    mounts = with_attr(p.filesystems, ids.HOSTS_ATTR)
    assert "mount=/" in mounts and "mount=/boot" in mounts
    assert "50 %" in text(mounts["mount=/"])  # statvfs stand-in: 500 of 1000 blocks available


def test_panels_without_data_say_why(twin: Twin) -> None:
    p = render_panels(twin, host_query(SITE, HOST), now_s=NOW_S)
    assert _message(p.gpu) == "no GPU collector at this site"
    assert "no containers reported on this host" in text(p.containers)
    later = render_panels(twin, host_query(SITE, HOST), now_s=NOW_S + 3 * 3600)  # nothing in the last hour
    assert "no CPU counters from this host" in _message(later.cpu)
    assert "no memory series" in _message(later.memory)
    assert "no filesystem series" in text(later.filesystems)
    assert "no fabric counters: no InfiniBand port" in _message(later.fabric)


def test_a_scraped_gpu_is_drawn_busy_and_with_its_memory_used(tmp_path: Path) -> None:
    twin, store = capture_twin(tmp_path, NOW_S, gpu=True)
    p = render_panels(twin, host_query(SITE, HOST), now_s=NOW_S)
    traces = {t.name: t for t in p.gpu.data}
    assert list(traces) == ["GPU 00000000 busy", "GPU 00000000 memory"]
    assert traces["GPU 00000000 busy"].y[-1] == 1.0  # the capture under load: utilization.gpu 100 %
    assert traces["GPU 00000000 memory"].y[-1] == pytest.approx(20780679168 / 85520809984)
    store.close()
    other, store = capture_twin(tmp_path / "no-gpu", NOW_S, hosts=(HOST, "n0001"), gpu=True)
    assert _message(render_panels(other, host_query(SITE, "n0001"), now_s=NOW_S).gpu).startswith("no GPU on this host")
    store.close()


def test_bad_links_say_what_is_wrong(twin: Twin) -> None:
    assert render_panels(twin, "?view=hosts&site=nowhere", now_s=NOW_S).note == "No site named 'nowhere'."
    p = render_panels(twin, host_query(SITE, "ghost"), now_s=NOW_S)
    assert p.note == f"No host named 'ghost' at site {SITE}." and _message(p.cpu) == p.note
    assert render_panels(twin, "?view=hosts&range=7d", now_s=NOW_S).note.startswith(HOST)  # defaults
    batch_only = render_panels(continuum(), "?view=hosts&site=hpc1", now_s=NOW_S)  # a Slurm site, no node collector
    assert batch_only.note == "No host reports at site hpc1 (no node collector there)."
    assert "No host reports" in text(batch_only.filesystems)


def test_the_picker_links_keep_the_range_and_the_dropdown_lists_the_hosts(twin: Twin) -> None:
    nav, options, value = render_picker(twin, host_query(SITE, HOST, "6h"))
    links = with_attr(nav, ids.HOSTS_ATTR)
    assert set(links) == {f"site={SITE}", "range=1h", "range=6h", "range=24h"}
    assert options == [{"label": HOST, "value": HOST}] and value == HOST
    assert chosen(twin, "?view=hosts")[1:3] == (HOST, "1h")


def test_a_replayed_site_is_drawn_in_its_trace_clock(twin: Twin) -> None:
    reader: FakeReader = continuum()
    replay = next(s for s in reader.sites() if s.is_replay)
    reader.node_list.append(node(replay.name, HOST, 0.5))
    frame = twin.host_series(SITE, HOST, METRICS, NOW_S - 3600, NOW_S, max_points=MAX_POINTS)
    reader.host_frames[(replay.name, HOST)] = frame
    p = render_panels(reader, host_query(replay.name, HOST), now_s=NOW_S)
    assert reader.history_calls[-1] == ("host", replay.name, NOW_S - 3600, NOW_S, MAX_POINTS)
    last_ms = p.cpu.data[0].x[-1]
    # the last bucket starts 15 wall s (1 h / MAX_POINTS) before the replay's reference instant:
    # 15 × REPLAY_SPEED trace seconds before its trace instant
    step_s = 3600 / MAX_POINTS
    assert last_ms == pytest.approx((TRACE_TIME_S - step_s * REPLAY_SPEED) * 1000)
    assert p.memory.layout.xaxis.title.text == f"trace time (replay ×{REPLAY_SPEED:,.0f})"
    assert "(600 trace hours)" in p.note and "times in trace time" in p.note


def _panels_callback(client: Any, search: str) -> Any:
    """The panels callback called the way the browser does."""
    deps = client.get("/_dash-dependencies").json()
    spec = next(d for d in deps if ids.HOSTS_CPU in d["output"])
    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in spec["output"][2:-2].split("...")]
    body = {
        "output": spec["output"],
        "outputs": outputs,
        "inputs": [
            {"id": ids.URL, "property": "search", "value": search},
            {"id": ids.HISTORY_TICK, "property": "n_intervals", "value": 0},
        ],
        "changedPropIds": [f"{ids.URL}.search"],
        "state": [],
    }
    return client.post("/_dash-update-component", json=body)


def test_the_panels_answer_nothing_while_the_page_is_hidden(tmp_path: Path) -> None:
    import time

    from fastapi.testclient import TestClient

    from dashboards.app import create_dash

    live, store = capture_twin(tmp_path, time.time())  # the callback reads up to the wall clock's now
    with TestClient(create_dash(live).server) as client:
        hidden = _panels_callback(client, f"?site={SITE}&host={HOST}")
        assert hidden.status_code in (200, 204), hidden.text
        assert hidden.status_code == 204 or not hidden.json().get("response"), hidden.text  # all no_update
        shown = _panels_callback(client, host_query(SITE, HOST))
        assert shown.status_code == 200, shown.text
        answer = shown.json()["response"]
        assert answer[ids.HOSTS_NOTE]["children"].startswith(HOST)
        assert len(answer[ids.HOSTS_CPU]["figure"]["data"]) == 8
    store.close()
