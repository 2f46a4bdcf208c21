"""Resume replayed sites where the previous run on the same store left them.

Why: a replay's clock starts at its configured `start_offset` in every new process, so a restarted
`ctwin serve` used to play the same trace hours again: the history held them twice and the job
rows went back from COMPLETED to PENDING. The store already holds where each replay was: the
`batch_replay_trace_time_seconds` it emitted every gather. This module reads it and hands it to
the collector before the pipeline starts. It lives in the composition because collectors may not
read the store (the dependency rule), and the store knows nothing of collectors.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from collectors.replay import ReplayCollector
from telemetry.catalog.batch import REPLAY_TIME
from telemetry.pipeline import RunningCollector
from telemetry.stores.base import Selection, Store

__all__ = ["resume_replays"]

log = logging.getLogger(__name__)


def resume_replays(store: Store, collectors: Sequence[RunningCollector]) -> dict[str, int]:
    """Resume every replay collector from the last trace instant stored for its site and trace
    (from any host: the latest instant wins); call before the pipeline starts. Returns the instants
    resumed from, by collector name (a replay with nothing stored starts as configured)."""
    resumed: dict[str, int] = {}
    for rc in collectors:
        replay = rc.collector
        site = rc.labels.get("site")
        if not isinstance(replay, ReplayCollector) or site is None:
            continue
        stored = store.latest(Selection(metrics=(REPLAY_TIME.name,), labels={"site": site, "trace": replay.trace_name}))
        values = [v for v in stored["value"].to_list() if v is not None and math.isfinite(v)]
        if not values:
            continue
        instant = int(max(values))
        replay.resume(instant)
        resumed[rc.name] = instant
        log.info(
            "%s: resuming the replay after trace instant %s (where the previous run stopped)",
            rc.name,
            datetime.fromtimestamp(instant, UTC).isoformat(timespec="seconds"),
        )
    return resumed
