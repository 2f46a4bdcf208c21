"""The composition root: config → store, collectors, pipeline, twin. The only place that wires packages."""

from __future__ import annotations

import gc
import logging
import os
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from collectors import registry
from collectors.kube_api import KubeClient
from collectors.link_probe import LinkProbeConfig
from collectors.link_probe_wire import parse_address
from models.containers.config import ContainerConfig
from service.config import CloudConfig, LoadedConfig, ProbeConfig, SiteConfig
from service.config import CollectorSpec as ConfigCollectorSpec
from service.hooks.extender import Extender
from service.hooks.k8s_sites import NodeSites
from service.hooks.node_cache import NodeCache
from service.hooks.pod_worker import PodWorker
from service.influx_mirror import influx_mirror_of, remote_write_of
from service.ingest import Ingestor, push_collector_name
from service.probe_endpoint import ProbeEndpoint
from service.resume import resume_replays
from telemetry.influx import MirrorSink
from telemetry.pipeline import CollectorStats, Pipeline, RunningCollector, StoreSink
from telemetry.stores.base import Store
from telemetry.stores.duckdb_store import DuckDBStore
from twin.advice.carbon import carbon_intensity
from twin.advice.containers import ContainerEffects
from twin.advice.herding import HerdingLedger
from twin.advice.live import Advisor
from twin.advice.log import AdviceLog
from twin.advice.rank import AdvicePolicy
from twin.live import Twin, build_twin
from twin.queues import ModelSource
from twin.topology import (
    CollectorSpec,
    Energy,
    LinkSpec,
    PartitionLimits,
    Placement,
    Pricing,
    Provisioning,
    SiteSpec,
    Topology,
)

log = logging.getLogger(__name__)


class StoreBusyError(ValueError):
    """The embedded store is held by another process (DuckDB allows one process per file). The
    message names no way round it: that depends on the command (an export names its API route)."""

    def __init__(self, path: Path) -> None:
        super().__init__(f"the store {path} is open in a running ctwin service (one process at a time may open it)")
        self.path = path


def open_store(loaded: LoadedConfig, data_dir: str | Path | None = None, read_only: bool = False) -> Store:
    cfg = loaded.config.store
    path = loaded.store_path(data_dir)
    if read_only and not path.exists():
        raise FileNotFoundError(f"no store at {path}; run `ctwin serve` first or pass --data-dir")
    try:
        return DuckDBStore(path, memory_limit=cfg.memory_limit, read_only=read_only)
    except duckdb.IOException as exc:
        if "lock" not in str(exc).lower():
            raise
        raise StoreBusyError(path) from None


def build_collectors(loaded: LoadedConfig) -> list[RunningCollector]:
    return running_collectors(loaded.collectors, loaded.config.host_name())


def running_collectors(specs: Sequence[ConfigCollectorSpec], host: str) -> list[RunningCollector]:
    """Each configured collector in its running wrapper, labelled with its site and `host`."""
    running = []
    for spec in specs:
        collector = registry.get(spec.entry.type)(spec.config)
        interval = spec.entry.interval
        running.append(
            RunningCollector(
                spec.name,
                collector,
                interval_s=interval,
                timeout_s=spec.entry.timeout or max(1.0, min(interval, 30.0)),
                labels={"site": spec.site.name, "host": host},
            )
        )
    return running


@dataclass
class Service:
    """Everything `ctwin serve` (and `ctwin run`) runs, wired once: the store, the collectors'
    pipeline feeding the store and the twin, the twin, the learned-model registry. `start` starts
    the collectors; `stop` stops them, flushes what they handed in, then closes the store."""

    loaded: LoadedConfig
    store: Store
    sink: StoreSink
    pipeline: Pipeline
    twin: Twin
    advisor: Advisor
    models: ModelSource | None
    salt: str
    extender: Extender | None = None
    """The kube-scheduler extender (schedulers.kubernetes.enabled), served by the app's routes."""
    pod_worker: PodWorker | None = None
    """Annotates advised pods and reports where they ran (schedulers.kubernetes.api set)."""
    node_cache: NodeCache | None = None
    """The API's nodes, listed and watched, for names-only extender requests (api set)."""
    probe_endpoint: ProbeEndpoint | None = None
    """What link probes at other sites measure against (probe.listen set)."""
    ingest: Ingestor | None = None
    """Takes the batches remote agents push (POST /v1/ingest) into the pipeline."""
    mirror: MirrorSink | None = None
    """Samples mirrored to InfluxDB through a spool (store.backend: influx); DuckDB serves reads."""
    remote_write: MirrorSink | None = None
    """Samples sent to a Prometheus remote-write receiver through a spool (store.remote_write)."""

    def start(self) -> None:
        if self.probe_endpoint is not None:
            self.probe_endpoint.start()  # first: a taken port fails the start before anything runs
        for mirror in (self.mirror, self.remote_write):
            if mirror is not None:
                mirror.start()  # replays what an earlier run left spooled
        self.pipeline.start()
        self.advisor.log.start()
        if self.node_cache is not None:
            self.node_cache.start()
        if self.pod_worker is not None:
            self.pod_worker.start()

    def stop(self) -> None:
        if self.pod_worker is not None:
            self.pod_worker.stop()
        if self.node_cache is not None:
            self.node_cache.stop()
        self.pipeline.stop()
        for mirror in (self.mirror, self.remote_write):
            if mirror is not None:
                mirror.close()  # one bounded last replay; the rest stays spooled for the next start
        self.twin.queues.close()  # background base rebuilds read the store
        self.advisor.log.close()
        self.store.close()
        if self.probe_endpoint is not None:
            self.probe_endpoint.stop()

    def batch_sites(self) -> list[str]:
        """Sites fed by a batch-scheduler collector (their queues are forecast regularly)."""
        return [s.name for s in self.twin.topology.sites if any(c.type in BATCH_TYPES for c in s.collectors)]


BATCH_TYPES = ("slurm", "replay")


def build_service(loaded: LoadedConfig, data_dir: str | Path | None = None, *, collect: bool = True) -> Service:
    """The one composition of the service. `collect=False` serves an existing store without
    running collectors (read replicas, tests, benchmarks)."""
    config = loaded.config
    store = open_store(loaded, data_dir)
    collectors = build_collectors(loaded) if collect else []
    models = model_registry(loaded.models_path(data_dir))
    topology = topology_of(loaded)
    advice = config.advice
    policy = AdvicePolicy(
        max_data_age_s=advice.max_data_age,
        stay_home=advice.stay_home,
        herding_ttl_s=advice.herding_ttl,
        default_home=advice.home or (topology.sites[0].name if topology.sites else "local"),
    )
    log = AdviceLog(store)
    ledger = HerdingLedger(policy.herding_ttl_s, time.time)
    pushed = {s.name: frozenset(s.push.tokens) for s in config.sites if s.push is not None}
    push_health = {push_collector_name(site): CollectorStats(push_collector_name(site)) for site in pushed}
    twin = build_twin(
        topology,
        store,
        {**{rc.name: rc.stats for rc in collectors}, **push_health},
        models,
        job_observers=(log.observe, ledger.observe),
        background_refresh=True,  # a request after a queue change answers from the previous base
    )
    containers = ContainerEffects(models)
    advisor = Advisor(twin, log, ledger, policy, containers=containers)
    if advisor.restored_holds:
        logging.getLogger(__name__).info("advice: %d cloud quota holds restored", advisor.restored_holds)
    sink = StoreSink(store)
    mirror = influx_mirror_of(loaded, data_dir)
    remote_write = remote_write_of(loaded, data_dir)
    pipeline = Pipeline(
        collectors,
        [sink, twin.state, *(m for m in (mirror, remote_write) if m is not None)],
        buffer_samples=config.pipeline.buffer_samples,
        max_batch_samples=config.pipeline.max_batch_samples,
        retry_samples=config.pipeline.retry_samples,
        labels={"host": config.host_name()},
    )
    resume_replays(store, pipeline.collectors)  # a restarted replay carries on after its last stored instant
    extender, worker, nodes = build_extender(loaded, advisor, topology)
    salt = resolve_salt(loaded, data_dir)
    _freeze_startup_heap()
    service = Service(loaded, store, sink, pipeline, twin, advisor, models, salt, extender, worker, nodes)
    service.probe_endpoint = probe_endpoint_of(config.probe)
    service.ingest = Ingestor(pipeline, store, pushed, max_rows=config.serve.max_ingest_rows, health=push_health)
    service.mirror = mirror
    service.remote_write = remote_write
    return service


def probe_endpoint_of(probe: ProbeConfig) -> ProbeEndpoint | None:
    """The configured probe endpoint, not yet started; None when probe.listen is unset."""
    if probe.listen is None:
        return None
    host, port = parse_address(probe.listen, listen=True)
    return ProbeEndpoint(
        host, port, max_bytes=probe.max_bytes, max_seconds=probe.max_seconds, max_clients=probe.max_clients
    )


def _freeze_startup_heap() -> None:
    """Move what start-up made (modules, their functions and tables, the config) out of the
    collector's reach: a full collection walks every tracked object, and the hundreds of thousands
    the imports leave behind made each one cost tens of milliseconds in the middle of requests
    (a batch of 1,000 advices: 1.3 s with them, 1.0 s without; bench/advice_latency.py). What is
    made later (queue bases, answers) is collected as before. Once per process: what a second
    service in the same process (tests) leaves is ordinary garbage."""
    global _FROZEN
    if _FROZEN:
        return
    _FROZEN = True
    gc.collect()
    gc.freeze()


_FROZEN = False


def build_extender(
    loaded: LoadedConfig, advisor: Advisor, topology: Topology
) -> tuple[Extender | None, PodWorker | None, NodeCache | None]:
    """The kube-scheduler extender, its pod worker and node cache, when configured (service/hooks/extender.py)."""
    hook = loaded.config.schedulers.kubernetes
    if not hook.enabled:
        return None, None, None
    names = [s.name for s in topology.sites]
    local = hook.local_site or loaded.config.advice.home or (names[0] if names else "local")
    worker = cache = None
    if hook.api is not None:
        api = hook.api

        def client() -> KubeClient:
            return KubeClient.from_config(api)

        cache = NodeCache(client)
    sites = NodeSites(names, local, hook.nodes, hook.site_label, cache.node if cache is not None else None)
    if cache is not None:
        worker = PodWorker(client, sites, advisor, scheduler_name=hook.scheduler_name, node_lookup=cache.node)
    extender = Extender(
        advisor,
        sites,
        default_walltime_s=hook.default_walltime,
        advice_ttl_s=hook.advice_ttl,
        neutral_score=hook.neutral_score,
        on_advice=worker.advised if worker is not None else None,
    )
    return extender, worker, cache


def topology_of(loaded: LoadedConfig) -> Topology:
    by_site: dict[str, list[CollectorSpec]] = {}
    for spec in loaded.collectors:
        by_site.setdefault(spec.site.name, []).append(CollectorSpec(spec.name, spec.entry.type, spec.entry.interval))
    for site in loaded.config.sites:  # a pushed site is heard from through its agent's batches
        if site.push is not None:
            by_site.setdefault(site.name, []).append(
                CollectorSpec(push_collector_name(site.name), "push", site.push.interval)
            )
    replay_speed = replay_speeds(loaded)
    sites = tuple(
        SiteSpec(
            s.name,
            s.kind,
            s.description,
            tuple(s.nodes),
            tuple(by_site.get(s.name, ())),
            placement_of(s, replay_speed.get(s.name, 1.0)),
        )
        for s in loaded.config.sites
    )
    probed = {frozenset(spec.config.between) for spec in loaded.collectors if isinstance(spec.config, LinkProbeConfig)}
    links = tuple(
        LinkSpec(
            a=link.between[0],
            b=link.between[1],
            description=link.description,
            bandwidth_bps=link.bandwidth_gbps * 1e9 if link.bandwidth_gbps is not None else None,
            latency_s=link.latency_ms / 1e3 if link.latency_ms is not None else None,
            interface=link.interface,
            probed=frozenset(link.between) in probed,
        )
        for link in loaded.config.links
    )
    return Topology(sites, links)


def replay_speeds(loaded: LoadedConfig) -> dict[str, float]:
    """Each replayed site's configured speed (trace seconds per wall second)."""
    return {
        spec.site.name: float(getattr(spec.config, "speed", 1.0))
        for spec in loaded.collectors
        if spec.entry.type == "replay"
    }


def placement_of(site: SiteConfig, clock_speed: float) -> Placement:
    """What advice knows of a site from its config (twin.topology.Placement)."""
    intensity, source = carbon_intensity(site.energy.carbon_intensity, site.energy.country)
    cloud = site.cloud if site.cloud is not None else (CloudConfig() if site.kind == "cloud" else None)
    return Placement(
        speed=site.speed if site.speed is not None else 1.0,
        speed_configured=site.speed is not None,
        cores_per_node=site.cores_per_node,
        memory_per_node_bytes=int(site.memory_per_node_gb * 2**30) if site.memory_per_node_gb else None,
        gpus=site.gpus,
        max_walltime_s=int(site.max_walltime) if site.max_walltime else None,
        partitions=tuple(
            PartitionLimits(
                p.name,
                int(p.max_walltime) if p.max_walltime else None,
                p.max_nodes,
                p.max_cores,
                p.gpus_per_node,
            )
            for p in site.partitions
        ),
        quota_cores=cloud.quota_cores if cloud is not None else None,
        quota_gpus=cloud.quota_gpus if cloud is not None else None,
        provisioning=Provisioning(cloud.provisioning.p10, cloud.provisioning.p50, cloud.provisioning.p90)
        if cloud is not None
        else None,
        pricing=Pricing(
            site.pricing.core_hour, site.pricing.gpu_hour, site.pricing.egress_per_gb, site.pricing.currency
        ),
        energy=Energy(
            site.energy.tdp_per_core_w,
            site.energy.gpu_tdp_w,
            site.energy.usage,
            site.energy.pue,
            intensity,
            source,
        ),
        clock_speed=clock_speed,
        containers=ContainerConfig(**site.containers.model_dump()) if site.containers is not None else None,
    )


def model_registry(path: Path) -> ModelSource | None:
    """The hash-checked, hot-reloading registry of learned models; None when scikit-learn and
    skops are not installed (the `models` extra): forecasts then use AVE2."""
    try:
        from models.artifacts import ModelRegistry
    except ImportError:
        log.warning("learned models disabled: install the `models` extra (scikit-learn, skops)")
        return None
    return ModelRegistry(path)


def resolve_salt(loaded: LoadedConfig, data_dir: str | Path | None = None) -> str:
    """The pseudonymisation salt: `privacy.salt` from the config, else a random one kept (mode 0600)
    in <data_dir>/pseudonym.salt, created on first use so pseudonyms stay stable across exports."""
    if loaded.config.privacy.salt:
        return loaded.config.privacy.salt
    path = loaded.data_dir(data_dir) / "pseudonym.salt"
    try:
        salt = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        salt = secrets.token_hex(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(salt + "\n")
        return salt
    if len(salt) < 16:
        raise ValueError(f"{path}: the salt is shorter than 16 characters; delete the file to make a new one")
    return salt
