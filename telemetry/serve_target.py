"""A `ForwardTarget` (telemetry.forwarder) that posts batches to a central `ctwin serve`
(`POST /v1/ingest`, `/v1/ingest/jobs`) as Arrow IPC streams, with a token of the `ingest` scope.

Why these choices:
- Each request carries an `Idempotency-Key`: the agent's id and a SHA-256 of the body. A digest
  rather than the spool's sequence number, because a batch sent straight away gets a sequence only
  once it is spooled, after its first attempt: when that attempt reached the server but its
  answer was lost on a cut link, the replay would carry a new sequence and be stored twice. The
  body is the same on every attempt and across restarts (the frame is rechunked, the stream
  uncompressed), so its digest is too; two batches with the same digest hold the same samples
  (series, time, value), which a store keeps once anyway.
- What the server refuses for good (415, 422: a metric it does not know, a bad label) is dropped
  and counted here, not raised: the forwarder would otherwise retry that one batch forever, and
  everything behind it would wait in the spool. A 413 splits the batch in halves. Everything else
  (unreachable, 5xx, 401/403 until the central config or token is fixed) raises, so the batch
  stays spooled and is replayed.
"""

from __future__ import annotations

import hashlib
import io
import logging
from dataclasses import dataclass, field

import httpx
import polars as pl

from telemetry.schema import Batch

__all__ = ["INGEST_MEDIA_TYPE", "IngestError", "ServeTarget", "ipc_body"]

log = logging.getLogger(__name__)

INGEST_MEDIA_TYPE = "application/vnd.apache.arrow.stream"
_PERMANENT = (415, 422)


class IngestError(RuntimeError):
    """The server did not take the batch; it stays spooled and is sent again."""


def ipc_body(frame: pl.DataFrame) -> bytes:
    """The frame as an uncompressed Arrow IPC stream, one record batch: the same bytes for the same rows."""
    buffer = io.BytesIO()
    frame.rechunk().write_ipc_stream(buffer, compression="uncompressed")
    return buffer.getvalue()


@dataclass
class ServeTarget:
    """Posts to `url` (the central service's base URL). `agent_id` names this agent in its keys."""

    url: str
    token: str
    agent_id: str
    timeout_s: float = 10.0
    max_rows: int = 20_000
    """Rows per request; a larger batch goes in several (each with its own key)."""
    client: httpx.Client | None = None
    """Tests pass FastAPI's TestClient (an httpx.Client); None: a client of our own, over the network."""
    rejected_samples: int = 0
    """Samples the server refused for good (415/422), dropped here and logged."""
    rejected_job_rows: int = 0
    last_rejection: str | None = None
    name: str = field(init=False)
    _client: httpx.Client = field(init=False, repr=False)
    _own_client: bool = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")
        self.name = f"ctwin serve at {self.url}"
        self._own_client = self.client is None
        self._client = self.client if self.client is not None else httpx.Client(timeout=httpx.Timeout(self.timeout_s))

    def send(self, batch: Batch) -> None:
        self._post("/v1/ingest", batch.frame)

    def send_jobs(self, jobs: pl.DataFrame) -> None:
        self._post("/v1/ingest/jobs", jobs)

    def close(self) -> None:
        if self._own_client:
            self._client.close()

    def _post(self, path: str, frame: pl.DataFrame) -> None:
        if frame.height > self.max_rows:
            for offset in range(0, frame.height, self.max_rows):
                self._post(path, frame.slice(offset, self.max_rows))
            return
        body = ipc_body(frame)
        digest = hashlib.sha256(path.encode() + b"\0" + body).hexdigest()[:48]
        key = f"{self.agent_id}:{digest}"
        try:
            response = self._client.post(
                self.url + path,
                content=body,
                headers={
                    "Authorization": f"Bearer {self.token}",
                    "Content-Type": INGEST_MEDIA_TYPE,
                    "Idempotency-Key": key,
                },
            )
        except httpx.HTTPError as exc:
            raise IngestError(f"{type(exc).__name__}: {exc}") from exc
        if response.status_code == 200:
            return
        reason = _reason(response)
        if response.status_code == 413 and frame.height > 1:
            half = frame.height // 2
            self._post(path, frame.slice(0, half))
            self._post(path, frame.slice(half))
            return
        if response.status_code in _PERMANENT:
            if path.endswith("/jobs"):
                self.rejected_job_rows += frame.height
            else:
                self.rejected_samples += frame.height
            self.last_rejection = f"{response.status_code} {reason}"
            log.error("%s refused %d rows for good (%s); dropped", self.name, frame.height, self.last_rejection)
            return
        raise IngestError(f"{path} answered {response.status_code}: {reason}")


def _reason(response: httpx.Response) -> str:
    try:
        error = response.json()["error"]
        return f"{error['code']}: {error['message']}"
    except (ValueError, KeyError, TypeError):
        return response.text[:200] or response.reason_phrase
