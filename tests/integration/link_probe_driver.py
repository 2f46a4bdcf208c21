"""Run inside a network namespace by the netns link-probe test (`python -m ...link_probe_driver`):
`probe PEER GATHERS MAX_BYTES MAX_SECONDS` gathers the real link_probe collector that many times
and prints each sample as a JSON line; `fetch URL` downloads URL and prints its size and how long
it took from the connect to the last byte (the "real transfer" the stage-in estimate is held to)."""

from __future__ import annotations

import json
import sys
import time
import urllib.request

from collectors.base import Recorder
from collectors.link_probe import LinkProbeCollector, LinkProbeConfig


def probe(peer: str, gathers: int, max_bytes: str, max_seconds: str) -> None:
    config = LinkProbeConfig.model_validate(
        {"peer": peer, "between": ["hpc", "cloud"], "max_bytes": max_bytes, "max_seconds": max_seconds}
    )
    collector = LinkProbeCollector(config)
    for _ in range(gathers):
        rec = Recorder()
        collector.gather(rec)
        for s in rec.samples:
            print(json.dumps(s.as_dict()), flush=True)


def fetch(url: str) -> None:
    started = time.perf_counter()
    size = 0
    with urllib.request.urlopen(url, timeout=60) as response:
        while chunk := response.read(1 << 16):
            size += len(chunk)
    print(json.dumps({"bytes": size, "seconds": time.perf_counter() - started}), flush=True)


if __name__ == "__main__":
    command, *args = sys.argv[1:]
    if command == "probe":
        probe(args[0], int(args[1]), args[2], args[3])
    else:
        fetch(args[0])
