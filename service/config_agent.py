"""The typed config of `ctwin agent`: one remote site's collectors and where their batches go.

The collector entries are the service's own (service/config.py: flat, validated by each
collector's model, unknown keys refused with their line). The target is chosen by `kind`:
`serve` (a central `ctwin serve`, POST /v1/ingest) or `influx` (InfluxDB's /api/v2/write, the
keys of `store.influx`); each is one member of `TargetConfig` and one case in service/agent.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from service.config import (
    SITE_NAME,
    CollectorEntry,
    CollectorSpec,
    ConfigError,
    ConfigProblem,
    PipelineConfig,
    SiteConfig,
    _problems,
    collector_specs,
    read_yaml,
)
from service.config_influx import InfluxConfig
from telemetry.schema import ByteSize, Duration, StrictModel

__all__ = [
    "AgentConfig",
    "InfluxTargetConfig",
    "LoadedAgent",
    "ServeTargetConfig",
    "load_agent_config",
    "parse_agent_config",
]


class ServeTargetConfig(StrictModel):
    """A central `ctwin serve`; the token needs the `ingest` scope and must be named in the
    central config's `sites[].push.tokens` for this agent's site."""

    kind: Literal["serve"]
    url: str = Field(pattern=r"^https?://[^\s/]+", description="Base URL of the central service")
    token_file: Path | None = Field(None, description="File holding the API token, unless CTWIN_TOKEN is set")
    timeout: Duration = Field(10.0, description="One request's timeout; beyond it the batch is spooled")
    max_rows: int = Field(
        20_000, ge=1, le=1_000_000, description="Samples per request (larger batches are split; ~120 bytes each)"
    )

    def token(self) -> str:
        """CTWIN_TOKEN, else token_file's content; ValueError with the fix when neither has one."""
        from service.cli_common import api_token

        return api_token(None, self.token_file, options="set target.token_file", scope="ingest")


_SPOOL_KEYS = ("spool_dir", "spool_max_bytes", "retry_min", "retry_max")


class InfluxTargetConfig(InfluxConfig):
    """Straight to InfluxDB (the keys of `store.influx`); the agent's own `spool:` block holds the
    spool and its replay bounds, so the mirror's spool keys are refused here."""

    kind: Literal["influx"]

    @model_validator(mode="after")
    def _no_second_spool(self) -> InfluxTargetConfig:
        given = [k for k in _SPOOL_KEYS if k in self.model_fields_set]
        if given:
            raise ValueError(f"{', '.join(given)}: set these in the agent's `spool:` block (max_bytes, retry_min/max)")
        return self


TargetConfig = Annotated[ServeTargetConfig | InfluxTargetConfig, Field(discriminator="kind")]
"""Where batches go, by `kind`: a central ctwin serve, or InfluxDB."""


class SpoolConfig(StrictModel):
    max_bytes: ByteSize = Field(1 << 30, ge=1 << 20, description="Disk the spool may use; beyond it the oldest go")
    retry_min: Duration = Field(0.5, description="First wait before replaying to a refusing target")
    retry_max: Duration = Field(30.0, description="Longest wait between replays (the backoff doubles up to it)")
    final_replay: Duration = Field(10.0, description="At Ctrl-C, how long to keep replaying before exiting")


class StatusConfig(StrictModel):
    listen: str | None = Field(None, description="ADDR:PORT to serve /metrics on (the agent's own health); unset: none")
    every: Duration = Field(30.0, description="How often the status line is logged and pushed as samples")

    @field_validator("listen")
    @classmethod
    def _address(cls, value: str | None) -> str | None:
        if value is not None:
            host, sep, port = value.rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
                raise ValueError(f"status.listen must be ADDR:PORT, got {value!r}")
        return value


class AgentConfig(StrictModel):
    site: str = Field(pattern=SITE_NAME, description="The site this agent collects for (pushed to the central twin)")
    host: str | None = Field(None, description="Value of the host label; default: this machine's name")
    agent_id: str | None = Field(
        None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.@/-]{0,99}$", description="Names this agent in idempotency keys"
    )
    data_dir: str = Field("./agent-data", description="Holds the spool (<data_dir>/spool)")
    target: TargetConfig
    spool: SpoolConfig = SpoolConfig()
    status: StatusConfig = StatusConfig()
    pipeline: PipelineConfig = PipelineConfig()
    collectors: list[CollectorEntry] = Field(min_length=1)

    def host_name(self) -> str:
        return self.host or socket.gethostname()

    def agent_name(self) -> str:
        return self.agent_id or f"{self.site}/{self.host_name()}"


@dataclass(frozen=True)
class LoadedAgent:
    config: AgentConfig
    collectors: list[CollectorSpec]
    source: str

    def data_dir(self, override: str | Path | None = None) -> Path:
        return Path(override if override is not None else self.config.data_dir)


def parse_agent_config(text: str, source: str = "<agent config>") -> LoadedAgent:
    data, lines = read_yaml(text, source)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, _problems(exc, (), lines)) from None
    site = SiteConfig(name=config.site, collectors=config.collectors)
    specs, problems = collector_specs(site, ("collectors",), lines, set(), links=None)
    if problems:
        raise ConfigError(source, problems)
    return LoadedAgent(config, specs, source)


def load_agent_config(path: str | Path) -> LoadedAgent:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(p), [ConfigProblem("", f"cannot read the agent config: {exc.strerror}")]) from None
    return parse_agent_config(text, str(p))
