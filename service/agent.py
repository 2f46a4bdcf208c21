"""`ctwin agent`: a remote site's collectors, pushing their batches to a central target, spooling
on local disk while it is away.

    collectors -> Pipeline -> SpooledForwarder (durable sink, telemetry.forwarder) -> target

The forwarder is the pipeline's durable sink, so "written" means the target took the batch or
the spool holds it on disk; the pipeline never waits on the network. The agent's own health
(connected, spooled, sent, dropped) is logged as a status line, pushed as samples with the
site's data, and served on /metrics when `status.listen` is set.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from service.compose import running_collectors
from service.config_agent import InfluxTargetConfig, LoadedAgent, ServeTargetConfig
from service.influx_mirror import influx_target_of
from telemetry.catalog import selfmetrics as sm
from telemetry.forwarder import ForwardTarget, SpooledForwarder
from telemetry.pipeline import Pipeline
from telemetry.schema import Batch, Sample, now_ns
from telemetry.serve_target import ServeTarget
from telemetry.spool import Spool

__all__ = ["Agent", "build_agent", "build_target"]

log = logging.getLogger(__name__)


def build_target(target: ServeTargetConfig | InfluxTargetConfig, agent_id: str) -> ForwardTarget:
    """The configured target. One case per `kind` (service.config_agent.TargetConfig)."""
    if isinstance(target, InfluxTargetConfig):
        return influx_target_of(target, what="target")
    return ServeTarget(target.url, target.token(), agent_id, timeout_s=target.timeout, max_rows=target.max_rows)


@dataclass
class Agent:
    loaded: LoadedAgent
    pipeline: Pipeline
    forwarder: SpooledForwarder
    target: ForwardTarget
    labels: dict[str, str]
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _status_thread: threading.Thread | None = field(default=None, repr=False)
    _http: Any = field(default=None, repr=False)

    # ------------------------------------------------------------ health
    def status(self) -> dict[str, Any]:
        spool = self.forwarder.spool
        rejected = int(getattr(self.target, "rejected_samples", 0))
        return {
            "connected": self.forwarder.connected,
            "problem": self.forwarder.problem(),
            "produced_samples": self.pipeline.accepted_samples,
            "sent_samples": self.forwarder.sent_samples + spool.replayed_samples,
            "replayed_samples": spool.replayed_samples,
            "spooled_samples": spool.pending_samples,
            "spooled_records": spool.pending_records,
            "dropped_samples": {
                "spool_full": spool.dropped_samples,
                "rejected": rejected,
                "buffer_full": self.pipeline.dropped_full,
                "store_failed": self.pipeline.dropped_store,
            },
            "corrupt_records": spool.corrupt_records,
        }

    def status_line(self) -> str:
        s = self.status()
        dropped = sum(s["dropped_samples"].values())
        state = "connected" if s["connected"] else f"DISCONNECTED ({s['problem']})"
        return (
            f"{state}; {s['sent_samples']} samples sent, {s['spooled_samples']} spooled"
            f" ({s['spooled_records']} records), {dropped} dropped"
        )

    def status_samples(self) -> Batch:
        s = self.status()
        ts = now_ns()
        samples = [
            Sample(sm.AGENT_CONNECTED.name, 1.0 if s["connected"] else 0.0, self.labels, ts),
            Sample(sm.AGENT_SPOOLED.name, float(s["spooled_samples"]), self.labels, ts),
            Sample(sm.AGENT_SENT.name, float(s["sent_samples"]), self.labels, ts),
        ]
        for reason, n in s["dropped_samples"].items():
            samples.append(Sample(sm.AGENT_DROPPED.name, float(n), {**self.labels, "reason": reason}, ts))
        return Batch.from_samples(samples)

    # ------------------------------------------------------------ lifecycle
    def start(self) -> None:
        self.forwarder.start()  # first: what a previous run left spooled goes out before new data
        self.pipeline.start()
        status = self.loaded.config.status
        if status.listen is not None:
            host, _, port = status.listen.rpartition(":")
            registry = CollectorRegistry(auto_describe=False)
            registry.register(AgentMetrics(self))
            self._http = start_http_server(int(port), addr=host.strip("[]"), registry=registry)
        self._status_thread = threading.Thread(target=self._status_loop, name="agent-status", daemon=True)
        self._status_thread.start()

    @property
    def metrics_address(self) -> tuple[str, int] | None:
        if self._http is None:
            return None
        server = self._http[0]
        return server.server_address[0], server.server_address[1]

    def stop(self) -> dict[str, Any]:
        """Stop collecting, flush into the forwarder, replay what is spooled for at most
        `spool.final_replay`, and return the final status. What remains stays spooled for the next start."""
        self._stop.set()
        if self._status_thread is not None:
            self._status_thread.join(5.0)
        self.pipeline.stop()
        self.forwarder.close(self.loaded.config.spool.final_replay)
        if self._http is not None:
            self._http[0].shutdown()
        close = getattr(self.target, "close", None)
        if callable(close):
            close()
        return self.status()

    def _status_loop(self) -> None:
        every = self.loaded.config.status.every
        while not self._stop.wait(every):
            log.info("agent: %s", self.status_line())
            self.pipeline.submit(self.status_samples())


class AgentMetrics(Collector):
    """The agent's /metrics, read at scrape time from the forwarder and the pipeline."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Any]:
        s = self.agent.status()
        connected = GaugeMetricFamily(sm.AGENT_CONNECTED.name, sm.AGENT_CONNECTED.help)
        connected.add_metric([], 1.0 if s["connected"] else 0.0)
        spooled = GaugeMetricFamily(sm.AGENT_SPOOLED.name, sm.AGENT_SPOOLED.help)
        spooled.add_metric([], s["spooled_samples"])
        sent = CounterMetricFamily(sm.AGENT_SENT.name.removesuffix("_total"), sm.AGENT_SENT.help)
        sent.add_metric([], s["sent_samples"])
        dropped = CounterMetricFamily(
            sm.AGENT_DROPPED.name.removesuffix("_total"), sm.AGENT_DROPPED.help, labels=["reason"]
        )
        for reason, n in s["dropped_samples"].items():
            dropped.add_metric([reason], n)
        yield from (connected, spooled, sent, dropped)


def build_agent(loaded: LoadedAgent, data_dir: str | Path | None = None, target: ForwardTarget | None = None) -> Agent:
    """The agent, wired and not started. `target`: tests pass one; None builds the configured one."""
    config = loaded.config
    labels = {"site": config.site, "host": config.host_name()}
    collectors = running_collectors(loaded.collectors, labels["host"])
    if target is None:
        target = build_target(config.target, config.agent_name())
    spool = Spool(loaded.data_dir(data_dir) / "spool", config.spool.max_bytes)
    forwarder = SpooledForwarder(target, spool, retry_min_s=config.spool.retry_min, retry_max_s=config.spool.retry_max)
    pipeline = Pipeline(
        collectors,
        [forwarder],
        buffer_samples=config.pipeline.buffer_samples,
        max_batch_samples=config.pipeline.max_batch_samples,
        retry_samples=config.pipeline.retry_samples,
        labels=labels,
    )
    return Agent(loaded, pipeline, forwarder, target, labels)
