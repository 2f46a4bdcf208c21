"""The `store.influx` block: where samples are mirrored when `store.backend` is `influx`.

With `backend: influx` every batch goes to the embedded DuckDB store (which keeps serving the
twin, the API, exports and the Dash pages, and holds job history and the advice log) and to
InfluxDB through a spooled forwarder (telemetry.influx, telemetry.forwarder). The token is never
inline: it comes from a file or an environment variable (collectors.secret), like every secret.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, model_validator

from collectors.secret import ENV_NAME
from telemetry.schema import ByteSize, Duration, StrictModel, parse_duration

__all__ = ["InfluxConfig"]


def _duration_or_zero(value: object) -> float:
    return 0.0 if value in (0, "0") else parse_duration(value)


class InfluxConfig(StrictModel):
    url: str = Field(pattern=r"^https?://", description="InfluxDB 2 (or a server with its /api/v2/write) base URL")
    org: str = Field("ctwin", min_length=1, description="Organization written to")
    bucket: str = Field("telemetry", min_length=1, description="Bucket written to")
    token_file: Path | None = Field(None, description="API token, from this file (read at start)")
    token_env: str | None = Field(None, pattern=ENV_NAME, description="...or from this environment variable")
    precision: Literal["ns", "us", "ms", "s"] = Field("ns", description="Timestamp precision of the lines sent")
    batch_size: int = Field(5_000, ge=1, le=1_000_000, description="Most lines per write request")
    timeout: Duration = Field(10.0, description="Bound of one write request")
    max_retries: int = Field(2, ge=0, le=10, description="Retries of one request (connect error, 429, 5xx)")
    retry_min: Duration = Field(0.5, description="First wait before replaying the spool after a refusal")
    retry_max: Duration = Field(30.0, description="Longest wait between replays (the wait doubles up to it)")
    spool_dir: str | None = Field(
        None, description="Batches kept while the server is away; default <data_dir>/spool/influx"
    )
    spool_max_bytes: ByteSize = Field(
        1 << 30, ge=1 << 20, description="Bound of the spool; beyond it the oldest are dropped and counted"
    )
    resend_window: Annotated[float, BeforeValidator(_duration_or_zero)] = Field(
        30.0,
        le=3600,
        description="Acknowledged bodies kept this long and sent again after a failure (a server that acks "
        "before it writes to disk, such as VictoriaMetrics, loses its last seconds in a crash); 0: off",
    )
    resend_max_bytes: ByteSize = Field(64 << 20, ge=0, description="Bound of what resend_window keeps")
    gzip: bool = Field(False, description="Compress request bodies")

    @model_validator(mode="after")
    def _one_token_source(self) -> InfluxConfig:
        if self.token_file is not None and self.token_env is not None:
            raise ValueError("give token_file or token_env, not both")
        if self.retry_max < self.retry_min:
            raise ValueError("retry_max must be at least retry_min")
        return self
