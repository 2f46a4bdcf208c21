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
