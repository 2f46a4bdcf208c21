"""The Kubernetes API collector: a cluster's nodes and pods each interval, as catalog samples
(collectors.kube_cluster: kube-state-metrics' node families, pod counts, the cluster as a batch
site) and as job-history rows (collectors.kube_jobs: every pod, pending ones being the site's queue).

The API is reached as the scheduler hooks reach it (collectors.kube_api): a kubeconfig file, an
explicit URL with a token file and CA, or, with neither, the in-cluster service account. It needs
`list` on nodes and pods (a ClusterRole; with `namespaces`, pods in those namespaces only).

An interLink virtual node that reports no cpu or memory is flagged
(`ctwin_kube_virtual_node_capacity_missing`) and logged once per node and resource, by name: the
remote site's plugin said nothing, which the twin must not mistake for a drained site.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, ClassVar

import httpx
import polars as pl
from pydantic import Field, model_validator

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.kube_api import KubeApiConfig, KubeClient, KubeError
from collectors.kube_cluster import NodeFacts, emit_cluster, node_facts, pod_facts
from collectors.kube_jobs import pod_rows
from collectors.registry import register
from telemetry.redact import redact
from telemetry.schema import Duration

__all__ = ["KubernetesCollector", "KubernetesConfig"]

log = logging.getLogger(__name__)


class KubernetesConfig(KubeApiConfig, CollectorConfig):
    """The API server as the hooks reach it (url, kubeconfig, token_file, ca_file, verify_tls), then:"""

    timeout: Duration = Field(10.0, gt=0, description="Per request")
    site: str | None = Field(None, description="Written in the `site` column of the pods' job rows")
    nodes: dict[str, str] = Field(
        default_factory=dict, description="Node name -> ctwin site: the site an interLink virtual node fronts"
    )
    site_label: str = Field("ctwin.io/site", max_length=317, description="A node label naming that site")
    namespaces: list[str] = Field(default_factory=list, description="Read pods of these namespaces only; [] = all")

    @model_validator(mode="after")
    def _one_source(self) -> KubernetesConfig:
        if self.url is not None and self.kubeconfig is not None:
            raise ValueError("give the API server as url or kubeconfig, not both")
        if self.url is None and (self.token_file is not None or self.ca_file is not None):
            raise ValueError("token_file and ca_file go with url (a kubeconfig carries its own)")
        if self.url is not None and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"url must be http(s)://..., got {redact(self.url)!r}")
        return self


@register
class KubernetesCollector(Collector):
    name: ClassVar[str] = "kubernetes"
    config_model = KubernetesConfig
    config: KubernetesConfig

    def __init__(self, config: KubernetesConfig | None = None, *, clock: Callable[[], float] = time.time) -> None:
        super().__init__(config)
        self.clock = clock
        self._client: KubeClient | None = None
        self._rows: pl.DataFrame | None = None
        self._flagged: set[tuple[str, str]] = set()

    def availability(self) -> str | None:
        c = self.config
        if c.kubeconfig is not None and not c.kubeconfig.is_file():
            return f"{c.kubeconfig}: no such file"
        if c.url is None and c.kubeconfig is None:
            try:
                KubeClient.in_cluster().close()
            except ValueError as exc:
                return str(exc)
        return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    def job_updates(self) -> pl.DataFrame | None:
        return self._rows

    def _kube(self) -> KubeClient:
        if self._client is None:
            try:
                self._client = KubeClient.from_config(self.config)
            except (OSError, ValueError, KeyError) as exc:
                raise CollectorError(f"kubernetes: cannot configure the API client: {exc}") from None
        return self._client

    def _list(self, path: str) -> list[dict[str, Any]]:
        try:
            items = self._kube().list(path).get("items")
        except KubeError as exc:
            raise CollectorError(f"kubernetes: GET {path}: {exc}") from None
        except httpx.HTTPError as exc:
            raise CollectorError(f"kubernetes: GET {path}: {type(exc).__name__}: {redact(str(exc))}") from None
        if not isinstance(items, list):
            raise CollectorError(f"kubernetes: GET {path}: the answer is not a list (no `items`)")
        return [i for i in items if isinstance(i, dict)]

    def gather(self, emit: Emit) -> None:
        observed = int(self.clock())
        nodes = [node_facts(n, self.config.nodes, self.config.site_label) for n in self._list("/api/v1/nodes")]
        if self.config.namespaces:
            pods = [p for ns in self.config.namespaces for p in self._list(f"/api/v1/namespaces/{ns}/pods")]
        else:
            pods = self._list("/api/v1/pods")
        facts = [pod_facts(p) for p in pods]
        self._flag(nodes)
        emit_cluster(emit, nodes, facts)
        self._rows = pod_rows(pods, nodes, site=self.config.site, observed_s=observed)

    def _flag(self, nodes: list[NodeFacts]) -> None:
        """Log each virtual node's missing cpu/memory once (again after it was reported and lost)."""
        now_missing = {(n.name, r) for n in nodes for r in n.missing_capacity}
        for name, resource in sorted(now_missing - self._flagged):
            log.warning(
                "kubernetes: interLink virtual node %s reports no allocatable %s: its capacity is unknown"
                " (counted as unknown, not as a drained site)",
                name,
                resource,
            )
        self._flagged = now_missing
