"""The latest-value cache: the per-snapshot row templates answer exactly what serialising the
twin's views afresh would, second after second, and a new snapshot is seen at once."""

from __future__ import annotations

import json

import pytest

from service.api.latest import JsonCache, dumps
from telemetry.schema import Batch, Sample
from twin.live import Twin, build_twin
from twin.topology import CollectorSpec, SiteSpec, Topology

S = 1_000_000_000


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _twin(clock: Clock) -> Twin:
    topology = Topology(
        (
            SiteSpec("edge", "edge", collectors=(CollectorSpec("edge/node", "node", 10.0),), nodes=("ghost",)),
            SiteSpec("cloud", "cloud", collectors=(CollectorSpec("cloud/node", "node", 60.0),)),
        )
    )
    twin = build_twin(topology, None, clock=clock)
    samples = [
        Sample("node_cpu_count", 8, {"site": "edge", "host": "fresh"}, 1000 * S),
        Sample("node_cpu_busy_ratio", 0.25, {"site": "edge", "host": "fresh"}, 1000 * S),
        Sample("node_load1", float("nan"), {"site": "edge", "host": "fresh"}, 1000 * S),
        Sample("node_memory_MemTotal_bytes", 2.0**34, {"site": "edge", "host": "older"}, 990 * S + 123_456_789),
        Sample("node_memory_MemAvailable_bytes", 2.0**33, {"site": "edge", "host": "older"}, 990 * S + 123_456_789),
        Sample("node_cpu_count", 4, {"site": "cloud", "host": 'vm "é"/1'}, 995 * S),
        Sample("container_memory_usage_bytes", 1.5e9, {"site": "cloud", "host": "vm1", "container": 'a"b\\c'}, 997 * S),
        Sample(
            "container_spec_memory_limit_bytes", 4e9, {"site": "cloud", "host": "vm1", "container": 'a"b\\c'}, 997 * S
        ),
    ]
    twin.state.write(Batch.from_samples(samples))
    return twin


@pytest.mark.parametrize("path, view", [("/v1/nodes", "nodes"), ("/v1/containers", "containers")])
@pytest.mark.parametrize("site", [None, "edge", "cloud"])
def test_templates_answer_what_a_fresh_serialisation_would_as_time_passes(
    path: str, view: str, site: str | None
) -> None:
    clock = Clock(1000.25)
    twin = _twin(clock)
    cache = JsonCache()
    states = set()
    for now in (1000.25, 1001.5, 1019.999, 1020.5, 1031.0, 1200.75):  # `older` turns stale after 30 s
        clock.now = now
        fresh = dumps({"generated_at_s": now, "items": getattr(twin, view)(site)})
        assert cache.latest(twin, path, site) == fresh
        states |= {item.get("state") for item in json.loads(fresh)["items"]}
    if view == "nodes" and site != "cloud":
        assert {"ok", "stale", "down"} <= states  # every kind of row went through the templates


def test_a_new_snapshot_is_answered_at_once_and_the_second_is_reused_within_it() -> None:
    clock = Clock(1000.0)
    twin = _twin(clock)
    cache = JsonCache()
    first = cache.latest(twin, "/v1/nodes", "edge")
    clock.now = 1000.9
    assert cache.latest(twin, "/v1/nodes", "edge") is first  # same snapshot, same second
    fresh = Sample("node_cpu_busy_ratio", 0.75, {"site": "edge", "host": "fresh"}, 1001 * S)
    twin.state.write(Batch.from_samples([fresh]))
    items = json.loads(cache.latest(twin, "/v1/nodes", "edge"))["items"]
    assert next(i for i in items if i["host"] == "fresh")["cpu_util"] == 0.75
