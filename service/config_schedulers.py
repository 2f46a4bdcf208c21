"""The `schedulers:` section: how ctwin's advice reaches the schedulers where they already decide.

Three hooks, each off until configured: the kube-scheduler extender (`kubernetes`), the MultiKueue
external dispatcher (`multikueue`) and the Slurm multi-cluster wrapper `ctwin sbatch` (`slurm`).
Every hook maps the scheduler's own names (nodes, worker clusters, Slurm clusters) to ctwin sites.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from telemetry.schema import ByteSize, Duration, StrictModel

__all__ = ["KubeApiConfig", "KubernetesHookConfig", "MultiKueueHookConfig", "SchedulersConfig", "SlurmHookConfig"]


class KubeApiConfig(StrictModel):
    """How ctwin reaches a Kubernetes API server (to annotate pods, to watch Workloads)."""

    url: str | None = Field(None, description="https://host:port; default: in-cluster (KUBERNETES_SERVICE_HOST)")
    kubeconfig: Path | None = Field(None, description="Read server, CA and token from this kubeconfig instead")
    token_file: Path | None = Field(None, description="Bearer token, re-read on every request")
    ca_file: Path | None = Field(None, description="CA bundle of the API server's certificate")
    verify_tls: bool = True
    timeout: Duration = Field(5.0, description="Per request")


class KubernetesHookConfig(StrictModel):
    """The kube-scheduler extender (routes /k8s/extender/v1/filter and /prioritize; README,
    "Kubernetes scheduler extender"). A node is a site: `nodes` names it, else its `site_label`,
    else an interLink virtual node named like a site is that site; any other plain node is the
    `local_site`, and a virtual node nothing maps is left alone (it passes, neutral score)."""

    enabled: bool = False
    local_site: str | None = Field(
        None, description="The site of this cluster's own (non-virtual) nodes; default: advice.home, else the first"
    )
    nodes: dict[str, str] = Field(default_factory=dict, description="Node name -> ctwin site (wins over labels)")
    site_label: str = Field("ctwin.io/site", max_length=317, description="A node label naming the node's ctwin site")
    path_secret: str | None = Field(
        None,
        min_length=16,
        max_length=128,
        pattern=r"^[A-Za-z0-9_-]+$",
        description="Serve the routes under /k8s/extender/<secret>/v1 and take them from any address (the"
        " kube-scheduler sends no token); without it they answer loopback clients only",
    )
    max_body: ByteSize = Field(
        64 * 2**20,
        ge=1024,
        description="Largest ExtenderArgs body: full Node objects with managedFields are ~5 KB each"
        " (nodeCacheCapable: true sends names only)",
    )
    advice_ttl: Duration = Field(
        30.0, description="How long the filter's advice for a pod is reused by the prioritize call after it"
    )
    default_walltime: Duration = Field(
        3600.0, description="A pod's walltime without ctwin.io/walltime or spec.activeDeadlineSeconds"
    )
    neutral_score: int = Field(5, ge=0, le=10, description="Score of every node when ctwin has no opinion")
    api: KubeApiConfig | None = Field(
        None,
        description="Set to keep a node cache (names-only requests, nodeCacheCapable: true, map by labels,"
        " taints and OS), annotate advised pods (ctwin.io/advice-id) and report where they were bound;"
        " needs list/watch/get on nodes and list/watch/patch on pods",
    )
    scheduler_name: str = Field(
        "ctwin-scheduler",
        max_length=253,
        pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$|^$",
        description="The profile's schedulerName: the pod worker watches pods with it (one stream, field"
        " selector spec.schedulerName); empty: watch every pod",
    )


class MultiKueueHookConfig(StrictModel):
    """`ctwin dispatcher`: nominates worker clusters for Kueue Workloads."""

    enabled: bool = False


class SlurmHookConfig(StrictModel):
    """`ctwin sbatch`: picks `-M CLUSTER -p PARTITION` among the configured Slurm sites."""

    enabled: bool = False


class SchedulersConfig(StrictModel):
    kubernetes: KubernetesHookConfig = KubernetesHookConfig()
    multikueue: MultiKueueHookConfig = MultiKueueHookConfig()
    slurm: SlurmHookConfig = SlurmHookConfig()
