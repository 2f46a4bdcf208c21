"""A twin over a real DuckDB store holding one host's real node_exporter-style capture: our node
and interconnect collectors run over node_exporter's own e2e fixture (tests/fixtures/node_exporter),
written as minutes of samples in which every counter grows by 1 % of its captured value a minute,
so the captured proportions (CPU modes, disks, IB ports) are what the rates show."""

from __future__ import annotations

from pathlib import Path

from collectors.base import Recorder
from collectors.interconnect import InterconnectCollector, InterconnectConfig
from collectors.node import NodeCollector, NodeConfig
from telemetry.catalog import catalog
from telemetry.schema import Batch, Sample
from telemetry.stores.duckdb_store import DuckDBStore
from tests.collectors.node_exporter_oracle import ROOT
from tests.collectors.test_node import StatVFSSpy
from twin.live import Twin, build_twin
from twin.topology import CollectorSpec, SiteSpec, Topology

SITE, HOST = "lab", "n0000"
MINUTES = 30
GROWTH = 0.01
"""A counter's growth per minute, as a share of its captured value."""


def captured() -> list[Sample]:
    """One collection of the fixture by our own collectors (fake statvfs: 4 MB, 2 MB available)."""
    rec = Recorder(default_ts_ns=1)
    NodeCollector(NodeConfig.model_validate({"root": str(ROOT)}), statvfs=StatVFSSpy()).gather(rec)
    InterconnectCollector(InterconnectConfig.model_validate({"root": str(ROOT)})).gather(rec)
    return rec.samples


def gpu_captured() -> list[Sample]:
    """nvidia_gpu_exporter's output over an H100 under load (tests/fixtures/nvidia-smi), read by
    our Prometheus scrape collector: the series a scraped GPU host carries."""
    from tests.collectors.test_gpu import Golden

    return Golden("load").samples


def is_counter(metric: str) -> bool:
    return metric in catalog and catalog.get(metric).type == "counter"


def capture_twin(
    tmp_path: Path, now_s: float, hosts: tuple[str, ...] = (HOST,), *, gpu: bool = False
) -> tuple[Twin, DuckDBStore]:
    """The capture as `MINUTES` one-minute collections ending at `now_s` at each of `hosts` of
    site SITE (the i-th host's counters growing i + 1 times as fast); `gpu`: the first host also
    carries the scraped GPU capture, from a `prometheus` (scrape) collector."""
    store = DuckDBStore(tmp_path / "hosts.duckdb")
    topology = Topology(
        (
            SiteSpec(
                SITE,
                "edge",
                collectors=(
                    CollectorSpec(f"{SITE}/node", "node", 60.0),
                    CollectorSpec(f"{SITE}/ib", "interconnect", 60.0),
                    *((CollectorSpec(f"{SITE}/gpu", "prometheus", 60.0),) if gpu else ()),
                ),
            ),
        )
    )
    twin = build_twin(topology, store, clock=lambda: now_s)
    base = captured()
    gpus = gpu_captured() if gpu else []
    samples = []
    for k in range(MINUTES):
        ts_ns = int((now_s - 1 - 60 * (MINUTES - 1 - k)) * 1e9)  # the last a second before now
        for i, host in enumerate(hosts):
            for s in base:
                value = s.value * (1 + GROWTH * (i + 1) * k) if is_counter(s.metric) else s.value
                samples.append(Sample(s.metric, value, {**s.labels, "site": SITE, "host": host}, ts_ns))
        for s in gpus:
            samples.append(Sample(s.metric, s.value, {**s.labels, "site": SITE, "host": hosts[0]}, ts_ns))
    batch = Batch.from_samples(samples)
    store.append(batch)
    twin.state.write(batch)
    return twin, store
