"""The `schedulers:` section: how ctwin's advice reaches the schedulers where they already decide.

Three hooks, each off until configured: the kube-scheduler extender (`kubernetes`), the MultiKueue
external dispatcher (`multikueue`) and the Slurm multi-cluster wrapper `ctwin sbatch` (`slurm`).
Every hook maps the scheduler's own names (nodes, worker clusters, Slurm clusters) to ctwin sites.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from collectors.kube_api import KubeApiConfig  # (to annotate pods, to watch Workloads)
from telemetry.schema import ByteSize, Duration, StrictModel

__all__ = ["KubeApiConfig", "KubernetesHookConfig", "MultiKueueHookConfig", "SchedulersConfig", "SlurmHookConfig"]


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


class KueueConfigRef(StrictModel):
    """Where Kueue's own Configuration lives on the manager cluster: its `multiKueue.dispatcherName`
    says which dispatcher Kueue waits for (Kueue reads it at start from this ConfigMap)."""

    namespace: str = "kueue-system"
    name: str = "kueue-manager-config"
    key: str = "controller_manager_config.yaml"


class MultiKueueHookConfig(StrictModel):
    """`ctwin dispatcher`: nominates worker clusters for Kueue Workloads (MultiKueue's external
    dispatcher API), best first by ctwin's advice, when Kueue's dispatcherName is ours."""

    enabled: bool = False
    dispatcher_name: str = Field(
        "continuum-twin/ctwin",
        min_length=3,
        max_length=63,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/[-A-Za-z0-9._~/]+$",
        description="The name set as multiKueue.dispatcherName in Kueue's Configuration (domain/path)",
    )
    clusters: dict[str, str] = Field(
        default_factory=dict,
        description="MultiKueueCluster name -> ctwin site; a cluster not listed is the site of its name",
    )
    api: KubeApiConfig = KubeApiConfig()
    kueue_config: KueueConfigRef = KueueConfigRef()
    service_url: str | None = Field(None, description="ctwin's API; default: this config's serve address")
    token_file: Path | None = Field(None, description="API token (advise scope); default: the CTWIN_TOKEN variable")
    resync: Duration = Field(60.0, gt=0, description="Re-read Kueue's config, checks and every Workload this often")
    renominate_after: Duration = Field(
        600.0, gt=0, description="A nomination no cluster admitted within this long is stale and made afresh"
    )
    max_nominated: int = Field(10, ge=1, le=20, description="At most this many clusters per Workload (best first)")
    default_walltime: Duration = Field(3600.0, gt=0, description="When a Workload sets no maximumExecutionTimeSeconds")
    walltime_annotation: str = Field(
        "ctwin.io/walltime",
        description="A Workload annotation with its walltime (2h, 30m, seconds), before the default",
    )


class SlurmHookConfig(StrictModel):
    """`ctwin sbatch`: picks `-M CLUSTER -p PARTITION` among the configured Slurm sites.

    The wrapper runs where users submit (a login node), so it needs the service's address, the
    site ↔ cluster names and the Slurm client; it reads the same config file as the service."""

    enabled: bool = Field(False, description="Off: `ctwin sbatch` runs plain sbatch and says so")
    clusters: dict[str, str] = Field(
        default_factory=dict,
        description="ctwin site → Slurm cluster name (`sbatch -M`); default: every site with a slurm"
        " collector, under its own name",
    )
    url: str | None = Field(None, description="The service for the wrapper (default: CTWIN_URL, else serve:)")
    token_file: Path | None = Field(None, description="API token (advise scope) when neither --token nor CTWIN_TOKEN")
    sbatch: str = Field("sbatch", min_length=1, description="The real sbatch (a name on PATH or a path)")
    slurm_conf: str | None = Field(
        None, description="SLURM_CONF for sbatch: any slurm.conf whose accounting points at the clusters' slurmdbd"
    )
    default_walltime: Duration = Field(3600.0, description="Assumed when a job gives no --time (the DefaultTime)")
    timeout: Duration = Field(10.0, description="How long to wait for the advice before submitting without it")
    fallback: bool = Field(True, description="No advice: submit with the user's own options (--no-fallback: fail)")

    @model_validator(mode="after")
    def _one_site_per_cluster(self) -> SlurmHookConfig:
        seen: dict[str, str] = {}
        for site, cluster in self.clusters.items():
            if not cluster:
                raise ValueError(f"clusters.{site}: the Slurm cluster name is empty")
            if cluster in seen:
                raise ValueError(f"Slurm cluster {cluster!r} is mapped to two sites: {seen[cluster]} and {site}")
            seen[cluster] = site
        return self


class SchedulersConfig(StrictModel):
    kubernetes: KubernetesHookConfig = KubernetesHookConfig()
    multikueue: MultiKueueHookConfig = MultiKueueHookConfig()
    slurm: SlurmHookConfig = SlurmHookConfig()
