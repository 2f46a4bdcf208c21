"""POST /v1/ingest and /v1/ingest/jobs in-process, through the app's lifespan with a real DuckDB
store and twin: what is accepted reaches the store once and freshens the pushed site; every
refusal (scope, foreign site, body, schema, catalog, size) is a 4xx with its reason, and the
service goes on serving. Plus the agent's ServeTarget against the same app."""

from __future__ import annotations

import io
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.catalog import node as nm
from telemetry.forwarder import SpooledForwarder
from telemetry.jobs import empty_jobs
from telemetry.schema import Batch, Sample
from telemetry.serve_target import INGEST_MEDIA_TYPE, ServeTarget, ipc_body
from telemetry.spool import Spool
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore

CONFIG = """
serve: {max_body: 256KiB, max_ingest_rows: 2000}
sites:
  - name: central
    kind: hpc
  - name: edge
    kind: edge
    push: {tokens: [edge-agent], interval: 0.5s}
  - name: other
    kind: edge
    push: {tokens: [other-agent]}
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    data = tmp_path_factory.mktemp("ingest")
    loaded = parse_config(CONFIG)
    tokens = TokenStore(loaded.tokens_path(data))
    made = {
        "agent": tokens.create("edge-agent", ["ingest"])[1],
        "stranger": tokens.create("stranger", ["ingest"])[1],
        "read": tokens.create("reader", ["read"])[1],
        "other": tokens.create("other-agent", ["ingest"])[1],
    }
    with TestClient(create_app(loaded, data, ui=False)) as client:
        yield client, made


def _auth(token: str, key: str | None = None, media: str = INGEST_MEDIA_TYPE) -> dict[str, str]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": media}
    if key is not None:
        headers["Idempotency-Key"] = key
    return headers


def _batch(n: int, site: str = "edge", metric: str = nm.LOAD1.name, start_ns: int | None = None) -> Batch:
    t0 = start_ns if start_ns is not None else time.time_ns() - n * 1_000_000
    return Batch.from_samples(Sample(metric, float(i), {"site": site, "host": "e1"}, t0 + i * 1000) for i in range(n))


def _compressed(frame: pl.DataFrame) -> bytes:
    buffer = io.BytesIO()
    frame.write_ipc_stream(buffer, compression="zstd")
    return buffer.getvalue()


def _lying_rows(frame: pl.DataFrame, rows: int) -> bytes:
    """A stream whose record batch header claims `rows` rows while its buffers hold fewer: the
    row count is an int64 in the flatbuffer, found here as the batch's true count (unique enough
    in a small header)."""
    body = bytearray(ipc_body(frame))
    true = struct.pack("<q", frame.height)
    at = body.index(true, body.index(b"\xff\xff\xff\xff", 8))  # the second message: the record batch
    body[at : at + 8] = struct.pack("<q", rows)
    return bytes(body)


def _stored(client: TestClient, host: str, want: int) -> int:
    store = client.app.state.service.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    count = -1
    while time.monotonic() < deadline:
        count = store.count(Selection(metrics=(nm.LOAD1.name,), labels={"host": host}))
        if count >= want:
            break
        time.sleep(0.05)
    time.sleep(0.3)  # and nothing more arrives
    return int(store.count(Selection(metrics=(nm.LOAD1.name,), labels={"host": host})))


def _site(client: TestClient, tokens: dict[str, str], name: str) -> dict:
    body = client.get("/v1/sites", headers={"Authorization": f"Bearer {tokens['read']}"}).json()
    return next(s for s in body["items"] if s["name"] == name)


def test_a_pushed_batch_is_stored_and_freshens_its_site(served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    batch = Batch.from_samples(
        Sample(nm.LOAD1.name, float(i), {"site": "edge", "host": "fresh"}, time.time_ns() + i) for i in range(50)
    )
    answer = client.post("/v1/ingest", content=ipc_body(batch.frame), headers=_auth(tokens["agent"], "k-fresh-0001"))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"rows": 50, "sites": ["edge"], "duplicate": False}
    assert _stored(client, "fresh", 50) == 50
    edge = _site(client, tokens, "edge")
    assert edge["state"] == "ok"
    (push,) = edge["collectors"]
    assert push["name"] == "edge/push" and push["type"] == "push"
    time.sleep(1.6)  # three push intervals without a batch
    assert _site(client, tokens, "edge")["state"] == "stale"
    assert _site(client, tokens, "other")["state"] == "starting"  # never pushed


def test_a_replayed_key_is_answered_but_not_stored_twice(served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    body = ipc_body(_batch(20).frame.with_columns(pl.lit('{"host":"replayed","site":"edge"}').alias("labels")))
    first = client.post("/v1/ingest", content=body, headers=_auth(tokens["agent"], "k-replay-0001"))
    again = client.post("/v1/ingest", content=body, headers=_auth(tokens["agent"], "k-replay-0001"))
    assert first.json()["duplicate"] is False and again.status_code == 200 and again.json()["duplicate"] is True
    assert _stored(client, "replayed", 20) == 20
    # keys are per token: another agent's same key is its own batch (here refused: not its site)
    assert client.post("/v1/ingest", content=body, headers=_auth(tokens["other"], "k-replay-0001")).status_code == 403
    store = client.app.state.service.store  # type: ignore[attr-defined]
    assert store.ingest_key_seen("edge-agent/k-replay-0001")


def test_scopes_and_sites_are_enforced(served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    body = ipc_body(_batch(3).frame)
    assert client.post("/v1/ingest", content=body, headers={"Content-Type": INGEST_MEDIA_TYPE}).status_code == 401
    wrong_scope = client.post("/v1/ingest", content=body, headers=_auth(tokens["read"]))
    assert wrong_scope.status_code == 403 and wrong_scope.json()["error"]["code"] == "insufficient_scope"
    unlisted = client.post("/v1/ingest", content=body, headers=_auth(tokens["stranger"]))
    assert unlisted.status_code == 403 and "no site" in unlisted.json()["error"]["message"]
    foreign = client.post("/v1/ingest", content=ipc_body(_batch(3, site="other").frame), headers=_auth(tokens["agent"]))
    error = foreign.json()["error"]
    assert foreign.status_code == 403 and error["code"] == "foreign_site" and "only edge, not other" in error["message"]
    assert client.post("/v1/ingest", content=body, headers=_auth(tokens["agent"])).status_code == 200  # still serving


@pytest.mark.parametrize(
    ("body", "media", "status", "code"),
    [
        (b"", INGEST_MEDIA_TYPE, 422, "empty_body"),
        (b"not arrow at all", INGEST_MEDIA_TYPE, 422, "bad_arrow"),
        (b'{"metric": "node_load1"}', "application/json", 415, "unsupported_media_type"),
        (ipc_body(pl.DataFrame({"metric": ["node_load1"], "value": [1.0]})), INGEST_MEDIA_TYPE, 422, "bad_schema"),
        (
            ipc_body(_batch(2).frame.with_columns(pl.col("ts_ns").cast(pl.Float64))),
            INGEST_MEDIA_TYPE,
            422,
            "bad_schema",
        ),
        (ipc_body(_batch(2, metric="made_up_metric").frame), INGEST_MEDIA_TYPE, 422, "unknown_metric"),
        (ipc_body(_batch(2).frame.with_columns(pl.lit("[1]").alias("labels"))), INGEST_MEDIA_TYPE, 422, "bad_labels"),
        (
            ipc_body(_batch(2).frame.with_columns(pl.lit('{"site":"edge","pid":"9"}').alias("labels"))),
            INGEST_MEDIA_TYPE,
            422,
            "bad_labels",
        ),
        (ipc_body(_batch(2).frame.with_columns(pl.lit("{}").alias("labels"))), INGEST_MEDIA_TYPE, 422, "no_site"),
        (ipc_body(_batch(2, start_ns=10**19 // 2).frame), INGEST_MEDIA_TYPE, 422, "bad_timestamp"),
        (ipc_body(_batch(2001).frame), INGEST_MEDIA_TYPE, 413, "too_many_rows"),
        (bytes(300 * 1024), INGEST_MEDIA_TYPE, 413, "too_large"),
        (_compressed(_batch(500).frame), INGEST_MEDIA_TYPE, 422, "compressed"),
        (ipc_body(_batch(0).frame), INGEST_MEDIA_TYPE, 422, "no_rows"),
        (_lying_rows(_batch(4).frame, 1000), INGEST_MEDIA_TYPE, 422, "bad_arrow"),
        (_lying_rows(_batch(4).frame, 10**9), INGEST_MEDIA_TYPE, 413, "too_many_rows"),
        (ipc_body(_batch(4).frame)[:-30], INGEST_MEDIA_TYPE, 422, "bad_arrow"),
    ],
)
def test_bad_bodies_are_refused_with_a_reason(
    served: tuple[TestClient, dict[str, str]], body: bytes, media: str, status: int, code: str
) -> None:
    client, tokens = served
    answer = client.post("/v1/ingest", content=body, headers=_auth(tokens["agent"], media=media))
    assert answer.status_code == status, answer.text
    error = answer.json()["error"]
    assert error["code"] == code and error["message"]
    assert client.get("/healthz").status_code == 200


def test_bad_idempotency_key_is_refused(served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    answer = client.post("/v1/ingest", content=ipc_body(_batch(1).frame), headers=_auth(tokens["agent"], "short"))
    assert answer.status_code == 422 and answer.json()["error"]["code"] == "bad_idempotency_key"


def test_job_rows_are_ingested_for_their_own_site_only(served: tuple[TestClient, dict[str, str]]) -> None:
    client, tokens = served
    now = int(time.time())
    row = {"site": "edge", "source": "slurm", "job_id": "42", "state": "PENDING", "submit_s": now, "observed_s": now}
    jobs = pl.concat([empty_jobs(), pl.DataFrame([row])], how="diagonal_relaxed")
    ok = client.post("/v1/ingest/jobs", content=ipc_body(jobs), headers=_auth(tokens["agent"], "k-jobs-000001"))
    assert ok.status_code == 200 and ok.json()["rows"] == 1, ok.text
    foreign = client.post(
        "/v1/ingest/jobs",
        content=ipc_body(jobs.with_columns(pl.lit("central").alias("site"))),
        headers=_auth(tokens["agent"]),
    )
    assert foreign.status_code == 403
    store = client.app.state.service.store  # type: ignore[attr-defined]
    deadline = time.monotonic() + 10
    while store.jobs(site="edge").height == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert store.jobs(site="edge")["job_id"].to_list() == ["42"]
    assert store.jobs(site="central").height == 0


def test_serve_target_sends_and_a_lost_ack_replayed_from_the_spool_is_stored_once(
    served: tuple[TestClient, dict[str, str]], tmp_path: Path
) -> None:
    client, tokens = served
    target = ServeTarget("http://testserver", tokens["agent"], "edge/e1", client=client, max_rows=700)
    batch = Batch.from_samples(
        Sample(nm.LOAD1.name, float(i), {"site": "edge", "host": "target"}, time.time_ns() - 10**9 + i)
        for i in range(1500)
    )
    target.send(batch)  # in three requests of at most 700 rows
    # the first attempt reached the server but its answer was lost: the forwarder spooled it and
    # replays it after a restart; the body, hence the key, is the same, so nothing is stored twice
    spool = Spool(tmp_path / "spool", 1 << 24)
    spool.put(batch)
    forwarder = SpooledForwarder(target, Spool(tmp_path / "spool", 1 << 24))
    assert forwarder.replay() == 1 and forwarder.spool.head() is None
    assert _stored(client, "target", 1500) == 1500
    ingestor = client.app.state.service.ingest  # type: ignore[attr-defined]
    assert ingestor.duplicates >= 3
    # refused for good (a metric the central catalog lacks): dropped and counted, not retried forever
    target.send(_batch(5, metric="not_in_catalog"))
    assert target.rejected_samples == 5 and target.last_rejection is not None
    assert "unknown_metric" in target.last_rejection


def test_serve_target_raises_while_unreachable() -> None:
    from telemetry.serve_target import IngestError

    target = ServeTarget("http://127.0.0.1:9", "ctw_x_y", "edge/e1", timeout_s=1.0)
    with pytest.raises(IngestError):
        target.send(_batch(1))
    target.close()


def test_ingest_keys_survive_a_restart_and_are_bounded(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path / "s.duckdb")
    for i in range(5):
        store.remember_ingest_key(f"a/key-{i}", "edge", 1, keep=3)
    store.close()
    reopened = DuckDBStore(tmp_path / "s.duckdb")
    assert [reopened.ingest_key_seen(f"a/key-{i}") for i in range(5)] == [False, False, True, True, True]
    reopened.close()


def test_ipc_body_is_the_same_for_the_same_rows_however_chunked() -> None:
    batch = _batch(10, start_ns=1_000)
    chunked = Batch(pl.concat([batch.frame.slice(0, 4), batch.frame.slice(4)], rechunk=False))
    assert chunked.frame.n_chunks() == 2
    buffer = io.BytesIO()
    batch.frame.write_ipc(buffer, compression="lz4")
    roundtrip = pl.read_ipc(io.BytesIO(buffer.getvalue()))
    assert ipc_body(batch.frame) == ipc_body(chunked.frame) == ipc_body(roundtrip)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None, derandomize=True)
@given(data=st.data())
def test_mutated_streams_are_refused_or_taken_never_a_crash(
    served: tuple[TestClient, dict[str, str]], data: st.DataObject
) -> None:
    client, tokens = served
    body = bytearray(ipc_body(_batch(3).frame))
    for _ in range(data.draw(st.integers(1, 8))):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    answer = client.post("/v1/ingest", content=bytes(body), headers=_auth(tokens["agent"]))
    assert answer.status_code in (200, 403, 413, 422), answer.text
    assert answer.json().get("error", {}).get("code") != "internal_error"
