"""A real service for the export page's tests: a replayed SWF site (KTH SP2) and this host, real
collectors writing a DuckDB store through the pipeline, the real twin and advisor."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from service.app import create_app
from service.config import parse_config

CONFIG = """
sites:
  - name: local
    kind: edge
    collectors:
      - {type: node, interval: 0.3s}
  - name: kth
    kind: hpc
    collectors:
      - {type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.3s, speed: 3600, start_offset: 30d}
links:
  - {between: [local, kth], bandwidth_gbps: 10, latency_ms: 30}
"""


@contextmanager
def running_service(data: Path) -> Iterator[Any]:
    """The service, once the replay has finished a few jobs and its clock is known to the twin."""
    app = create_app(parse_config(CONFIG), data, ui=False)
    with TestClient(app):
        service = app.state.service
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            kth = service.twin.site("kth")
            done = service.store.jobs(site="kth", states=["COMPLETED"])
            if done.height >= 3 and kth.trace_wall_s is not None and kth.trace_speed:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the replay never finished a job")
        yield service
