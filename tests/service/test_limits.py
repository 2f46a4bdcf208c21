"""Bounded work per request (issue 13, items 4-6): time-series answers capped in points and exact
in buckets, unknown metrics a 404, request bodies bounded in size and depth, and expensive
requests shed with 503 + Retry-After beyond a bound while the cheap ones go on."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.api.query import MAX_TOTAL_POINTS, bucket_count, bucket_step
from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from service.limits import RequestLimits, json_depth
from telemetry.schema import Batch, Sample

S = 1_000_000_000
CONFIG = "sites: [{name: edge, kind: edge}]\nserve: {max_body: 64KiB, max_json_depth: 20}"


@pytest.fixture
def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    loaded = parse_config(CONFIG)
    token = TokenStore(loaded.tokens_path(tmp_path)).create("t", ["admin"])[1]
    app = create_app(loaded, tmp_path, collect=False, ui=False)
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {token}"
        yield c, app


def test_max_points_is_a_bound_on_every_range() -> None:
    rng = random.Random(3)
    for _ in range(2000):
        start = rng.randrange(0, 10**6) * S + rng.randrange(S)
        end = start + rng.randrange(1, 10**6) * S + rng.randrange(S)
        n = rng.randint(1, 11_000)
        step = bucket_step(start, end, n)
        assert bucket_count(start, end, step) <= n
        assert step == S or bucket_count(start, end, step - max(1, step // 1000)) > n or step - step // 1000 < S


def test_queries_answer_at_most_max_points_say_unknown_metrics_and_cap_total_points(client) -> None:  # type: ignore[no-untyped-def]
    c, app = client
    store = app.state.service.store
    now = 1_800_000_000
    store.append(
        Batch.from_samples(
            [Sample("node_load1", float(t), {"site": "edge", "host": "h"}, (now + t) * S) for t in range(0, 600, 7)]
        )
    )
    body = c.get(
        "/v1/query", params={"metric": "node_load1", "start": now + 3, "end": now + 600, "max_points": 5}
    ).json()
    assert len(body["series"][0]["points"]) == 5  # was 6: the range did not start on a bucket edge
    missing = c.get("/v1/query", params={"metric": "node_lod1", "start": now, "end": now + 600})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_metric"
    assert "did you mean node_load1" in missing.json()["error"]["message"]
    wide = [Sample("node_cpu_busy_ratio", 0.5, {"site": "edge", "host": f"h{i}"}, now * S) for i in range(600)]
    store.append(Batch.from_samples(wide))
    too_many = c.get(
        "/v1/query", params={"metric": "node_cpu_busy_ratio", "start": now, "end": now + 2000 * 60, "max_points": 2000}
    )
    assert too_many.status_code == 400 and too_many.json()["error"]["code"] == "too_many_points"
    assert (
        f"{MAX_TOTAL_POINTS:,}" in too_many.json()["error"]["message"] and "600 series × 2000 buckets" in too_many.text
    )
    fewer = c.get(
        "/v1/query", params={"metric": "node_cpu_busy_ratio", "start": now, "end": now + 60, "max_points": 100}
    )
    assert fewer.status_code == 200 and len(fewer.json()["series"]) == 600


def test_bodies_are_bounded_in_size_and_depth_and_the_service_keeps_serving(client) -> None:  # type: ignore[no-untyped-def]
    c, _ = client
    big = json.dumps({"cores": 1, "walltime": 60, "user": "x" * 70_000})
    assert c.post("/v1/advice", content=big, headers={"content-type": "application/json"}).status_code == 413
    chunks = (b"x" * 8192 for _ in range(20))  # no Content-Length: cut off once past the bound
    refused = c.post("/v1/advice", content=chunks, headers={"content-type": "application/json"})
    assert refused.status_code == 413 and refused.json()["error"]["code"] == "too_large"
    deep = '{"cores": 1, "walltime": 60, "user": ' + "[" * 30 + "]" * 30 + "}"
    nested = c.post("/v1/advice", content=deep, headers={"content-type": "application/json"})
    assert nested.status_code == 400 and nested.json()["error"]["code"] == "too_deep"
    ok = c.post("/v1/advice", json={"cores": 1, "walltime": 60})
    assert ok.status_code == 200
    assert c.post("/login", data={"token": "x" * 70_000}).status_code == 413  # the open form too


def test_json_depth_scans_without_recursing_and_skips_strings() -> None:
    assert json_depth(b'{"a": [1, {"b": "[[[[[["}]}', 10) == 3
    assert json_depth(b"[" * 100_000, 64) == 65  # stops counting past the limit
    assert json_depth(b'"\\"[[["', 5) == 0


def test_expensive_requests_beyond_the_bound_are_shed_with_retry_after() -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def slow_app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["path"] == "/v1/query":
            entered.set()
            await release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    limits = RequestLimits(slow_app, max_body_bytes=1024, max_json_depth=8, max_expensive=1)

    async def call(path: str) -> tuple[int, dict[bytes, bytes], bytes]:
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await limits({"type": "http", "method": "GET", "path": path, "headers": []}, receive, send)
        return sent[0]["status"], dict(sent[0]["headers"]), sent[-1]["body"]

    async def scenario() -> None:
        first = asyncio.create_task(call("/v1/query"))
        await entered.wait()
        status, headers, body = await call("/v1/sites/hpc/forecast")
        assert status == 503 and headers[b"retry-after"] == b"1" and b"overloaded" in body
        assert (await call("/v1/nodes"))[0] == 200  # cheap routes are never shed
        release.set()
        assert (await first)[0] == 200
        assert (await call("/v1/advice"))[0] == 200  # the slot is free again
        assert limits.shed == 1 and limits.running_expensive == 0
        # A short queue: a request that finds the slot taken waits for it (up to max_wait_s)
        release.clear()
        entered.clear()
        first = asyncio.create_task(call("/v1/query"))
        await entered.wait()
        waiting = asyncio.create_task(call("/v1/sites/hpc/forecast"))
        await asyncio.sleep(0.05)
        release.set()  # the first answers within the second's wait: it gets the slot, not a 503
        assert (await first)[0] == 200 and (await waiting)[0] == 200
        assert limits.shed == 1 and limits.running_expensive == 0 and not limits._waiting

    asyncio.run(scenario())


def test_a_full_queue_sheds_at_once() -> None:
    async def never(scope, receive, send):  # type: ignore[no-untyped-def]
        await asyncio.sleep(3600)

    limits = RequestLimits(never, max_body_bytes=1024, max_json_depth=8, max_expensive=1, max_waiting=0)

    async def scenario() -> None:
        held = asyncio.create_task(
            limits({"type": "http", "method": "GET", "path": "/v1/query", "headers": []}, _receive, _send_to([]))
        )
        await asyncio.sleep(0)
        sent: list[dict] = []
        started = asyncio.get_running_loop().time()
        await limits({"type": "http", "method": "GET", "path": "/v1/query", "headers": []}, _receive, _send_to(sent))
        assert sent[0]["status"] == 503 and asyncio.get_running_loop().time() - started < 0.1
        held.cancel()

    asyncio.run(scenario())


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


def _send_to(sent: list[dict]):  # type: ignore[no-untyped-def]
    async def send(message: dict) -> None:
        sent.append(message)

    return send
