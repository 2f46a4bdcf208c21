"""The typed container configuration: validation, what a site's forced fields override, features."""

from __future__ import annotations

import math

import pytest

from models.containers.config import ContainerConfig, config_features
from models.containers.effect import CONFIG_FEATURES


def test_bad_values_are_refused_with_the_reason() -> None:
    with pytest.raises(ValueError, match="containers_per_node must be at least 1"):
        ContainerConfig(containers_per_node=0)
    with pytest.raises(ValueError, match="affinity must be one of none, cpu, cpu\\+memory"):
        ContainerConfig(affinity="numa")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="network must be one of host, private"):
        ContainerConfig(network="bridge")  # type: ignore[arg-type]


def test_a_site_overrides_only_what_it_forces() -> None:
    job = ContainerConfig(runtime="apptainer", containers_per_node=4, affinity="cpu", network="host")
    site = ContainerConfig(runtime="podman", network="private")
    run = job.overridden_by(site)
    assert run == ContainerConfig(runtime="podman", containers_per_node=4, affinity="cpu", network="private")
    assert job.overridden_by(ContainerConfig()) == job
    assert not ContainerConfig().is_set and job.is_set


def test_features_follow_the_published_runs_encoding() -> None:
    rows = config_features(
        [ContainerConfig(), ContainerConfig(containers_per_node=8, affinity="cpu+memory")],
        hosts=4,
        cores_per_node=32,
        client_batch=8,
    )
    assert dict(rows.schema) == CONFIG_FEATURES
    one, eight = rows.row(0, named=True), rows.row(1, named=True)
    assert (one["containers"], one["cpus_per_container"], one["memory_affinity"]) == (1.0, 32.0, 0.0)
    assert (eight["cpus_per_container"], eight["cpu_affinity"], eight["memory_affinity"]) == (4.0, 1.0, 1.0)
    assert eight["hosts"] == 4.0 and eight["client_batch"] == 8.0 and math.isnan(eight["server_batch"])
    # one container with cpu+memory is what the published `cpumemory` env does: no memory script
    single = config_features([ContainerConfig(affinity="cpu+memory")]).row(0, named=True)
    assert single["cpu_affinity"] == 1.0 and single["memory_affinity"] == 0.0
