"""The `schedulers:` section: how ctwin's advice reaches the schedulers where they already decide.

Three hooks, each off until configured: the kube-scheduler extender (`kubernetes`), the MultiKueue
external dispatcher (`multikueue`) and the Slurm multi-cluster wrapper `ctwin sbatch` (`slurm`).
Every hook maps the scheduler's own names (nodes, worker clusters, Slurm clusters) to ctwin sites.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from telemetry.schema import Duration, StrictModel

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
    """The kube-scheduler extender (routes /k8s/extender/v1/filter and /prioritize)."""

    enabled: bool = False


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
    """`ctwin sbatch`: picks `-M CLUSTER -p PARTITION` among the configured Slurm sites."""

    enabled: bool = False


class SchedulersConfig(StrictModel):
    kubernetes: KubernetesHookConfig = KubernetesHookConfig()
    multikueue: MultiKueueHookConfig = MultiKueueHookConfig()
    slurm: SlurmHookConfig = SlurmHookConfig()
