"""A twin of two batch sites replaying the KTH SP2 trace (at different instants: one busy, one
quieter) and a cloud site, fed as the pipeline feeds it, for what-if tests over real bases."""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from collectors.base import Recorder
from collectors.replay import ReplayCollector, ReplayConfig
from telemetry.pipeline import CollectorStats
from telemetry.schema import Batch, Sample
from twin.advice.herding import HerdingLedger
from twin.advice.live import Advisor
from twin.advice.log import AdviceLog
from twin.advice.rank import AdvicePolicy
from twin.live import Twin, build_twin
from twin.topology import CollectorSpec, LinkSpec, Placement, Provisioning, SiteSpec, Topology
from twin.whatif import WhatIf

WALL = 1_800_000_000.0
TRACE = "KTH-SP2-1996-2.1-cln.swf.gz"
OFFSETS = {"kth": "60d", "kth2": "200d"}


@dataclass
class Replayed:
    twin: Twin
    advisor: Advisor
    whatif: WhatIf


def replayed(clock: float = WALL) -> Replayed:
    sites = (
        *(
            SiteSpec(name, "hpc", collectors=(CollectorSpec(f"{name}/replay", "replay", 1.0),), placement=Placement())
            for name in OFFSETS
        ),
        SiteSpec("cloud", "cloud", placement=Placement(quota_cores=256, provisioning=Provisioning(30, 60, 120))),
    )
    links = (
        LinkSpec("kth", "kth2", bandwidth_bps=10e9, latency_s=0.01),
        LinkSpec("kth", "cloud", bandwidth_bps=10e9, latency_s=0.02),
        LinkSpec("cloud", "kth2", bandwidth_bps=1e9, latency_s=0.02),
    )
    stats = {f"{n}/replay": CollectorStats(f"{n}/replay", collections=1, last_success_s=clock) for n in OFFSETS}
    twin = build_twin(Topology(sites, links), None, stats, clock=lambda: clock)
    for name, offset in OFFSETS.items():
        replay = ReplayCollector(ReplayConfig(trace=TRACE, start_offset=offset, site=name), clock=lambda: clock)
        rec = Recorder(default_ts_ns=int(clock * 1e9))
        replay.gather(rec)
        samples = [Sample(s.metric, s.value, {**s.labels, "site": name}, s.ts_ns) for s in rec.samples]
        twin.state.write(Batch.from_samples(samples))
        twin.state.write_jobs(replay.jobs_snapshot().with_columns(pl.lit(name).alias("site")))
    policy = AdvicePolicy(default_home="kth")
    advisor = Advisor(twin, AdviceLog(None, lambda: clock), HerdingLedger(600.0, lambda: clock), policy)
    return Replayed(twin, advisor, WhatIf(advisor))
