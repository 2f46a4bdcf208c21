"""Reading sbatch's answers back, on output captured from a real two-cluster Slurm 22.05.8
(tests/fixtures/slurm/sbatch_test_only/PROVENANCE.md), and the wrapper's choice of cluster,
partition and advice request from the config."""

from __future__ import annotations

from datetime import datetime

import pytest

from service.config import ConfigError, parse_config
from service.hooks.sbatch_advice import SbatchSetupError, advice_body, candidates, placement, slurm_sites
from service.hooks.sbatch_output import parse_parsable, parse_test_only
from service.hooks.sbatch_script import read_job, split_command
from tests.conftest import FIXTURES

CAPTURED = FIXTURES / "slurm" / "sbatch_test_only"


def _read(name: str) -> str:
    return (CAPTURED / name).read_text()


def test_the_chosen_cluster_is_found_from_the_per_cluster_debug_lines() -> None:
    pick = parse_test_only(_read("alpha_busy_M_alpha_beta_vv.stderr"), ("alpha", "beta"))
    assert pick.clusters == ("beta",) and not pick.errors
    assert pick.chosen is not None and pick.chosen.start_text == "2026-12-02T16:20:51"
    assert pick.chosen.start_s == datetime(2026, 12, 2, 16, 20, 51).timestamp()  # local time, as sbatch prints
    assert (pick.chosen.nodes, pick.chosen.partition, pick.chosen.processors) == ("node1", "debug", 1)
    per = {w.cluster: w.start_text for w in pick.per_cluster}
    assert per == {"alpha": "2026-12-02T16:32:48", "beta": "2026-12-02T16:20:51"}


def test_without_verbose_output_the_cluster_is_not_known_unless_only_one_was_asked() -> None:
    multi = parse_test_only(_read("alpha_busy_M_alpha_beta.stderr"), ("alpha", "beta"))
    assert multi.chosen is not None and multi.clusters == () and multi.per_cluster == ()
    single = parse_test_only(_read("alpha_busy_M_alpha.stderr"), ("alpha",))
    assert single.clusters == ("alpha",) and single.chosen is not None
    assert single.chosen.start_text == "2026-12-02T16:32:48"


def test_refusals_and_unknown_clusters_are_reported() -> None:
    too_big = parse_test_only(_read("too_big_M_alpha_beta_vv.stderr"), ("alpha", "beta"))
    assert too_big.chosen is None and too_big.clusters == ()
    assert "Problem with submit to cluster alpha: Requested node configuration is not available" in too_big.errors
    assert "Can't run on any of the specified clusters" in too_big.errors
    one = parse_test_only(_read("too_big_M_alpha_vv.stderr"), ("alpha",))
    assert one.chosen is None and one.errors == ("Requested node configuration is not available",)
    gamma = parse_test_only(_read("unknown_cluster_vv.stderr"), ("alpha", "gamma"))
    assert gamma.errors == ("No cluster 'gamma' known by database.",) and gamma.chosen is not None
    assert gamma.clusters == ()  # two were asked and none was named: not guessed


def test_parsable_output() -> None:
    assert parse_parsable("10;beta\n") == ("10", "beta")
    assert parse_parsable("12\n") == ("12", None)
    with pytest.raises(ValueError, match="not JOBID"):
        parse_parsable("Submitted batch job 12\n")


CONFIG = """
sites:
  - {name: home, kind: edge}
  - name: alpha
    kind: hpc
    collectors: [{type: slurm, transport: cli}]
    partitions: [{name: batch}, {name: debug, max_walltime: 1h}]
  - name: beta-site
    kind: hpc
    collectors: [{type: slurm, transport: cli}]
"""


def test_slurm_sites_come_from_the_collectors_or_the_cluster_map() -> None:
    by_collector = slurm_sites(parse_config(CONFIG).config)
    assert [(s.site, s.cluster, s.partitions) for s in by_collector] == [
        ("alpha", "alpha", ("batch", "debug")),
        ("beta-site", "beta-site", ()),
    ]
    mapped = slurm_sites(parse_config(CONFIG + "schedulers: {slurm: {clusters: {beta-site: beta}}}").config)
    assert [(s.site, s.cluster) for s in mapped] == [("beta-site", "beta")]
    with pytest.raises(SbatchSetupError, match="nowhere, not a configured site"):
        slurm_sites(parse_config(CONFIG + "schedulers: {slurm: {clusters: {nowhere: x}}}").config)
    with pytest.raises(SbatchSetupError, match="no Slurm sites configured: give a site a `slurm` collector"):
        slurm_sites(parse_config("sites: [{name: home, kind: edge}]").config)
    with pytest.raises(ConfigError, match="mapped to two sites"):
        parse_config(CONFIG + "schedulers: {slurm: {clusters: {alpha: x, beta-site: x}}}")


def test_the_users_clusters_narrow_the_candidates() -> None:
    sites = slurm_sites(parse_config(CONFIG).config)
    assert [s.site for s in candidates(sites, ())] == ["alpha", "beta-site"]
    assert [s.site for s in candidates(sites, ("all",))] == ["alpha", "beta-site"]
    assert [s.site for s in candidates(sites, ("beta-site",))] == ["beta-site"]
    with pytest.raises(SbatchSetupError, match="gamma is not a cluster ctwin advises on"):
        candidates(sites, ("alpha", "gamma"))


def test_the_advice_request_and_the_partition_the_engine_judged() -> None:
    sites = slurm_sites(parse_config(CONFIG).config)
    job = read_job(split_command(["-n", "4", "-t", "30", "--mem=2G", "-G", "1", "job.sh"]), "#!/bin/sh\n")
    body = advice_body(job, sites, user="ana", default_walltime_s=3600, home="alpha")
    assert body == {
        "cores": 4, "walltime": 1800, "gpus": 1, "user": "ana", "memory": 2 * 2**30, "home": "alpha",
        "constraints": {"allowed_sites": ["alpha", "beta-site"]},
    }  # fmt: skip
    untimed = read_job(split_command(["-p", "debug", "--wrap", "x"]), None)
    body = advice_body(untimed, sites[1:], user="ana", default_walltime_s=600, home="alpha")
    assert body["walltime"] == 600 and body["partition"] == "debug" and "home" not in body  # home not a candidate
    # a site with partitions: the user's -p if it has it, else its first (what rank.py judged)
    assert placement({"recommended": "alpha"}, sites, untimed).partition == "debug"  # type: ignore[union-attr]
    plain = read_job(split_command(["--wrap", "x"]), None)
    assert placement({"recommended": "alpha"}, sites, plain).partition == "batch"  # type: ignore[union-attr]
    # a site without: the user's -p, or the cluster's default
    beta = placement({"recommended": "beta-site"}, sites, untimed)
    assert beta is not None and (beta.cluster, beta.partition) == ("beta-site", "debug")
    assert placement({"recommended": "beta-site"}, sites, plain).partition is None  # type: ignore[union-attr]
    assert placement({"recommended": None}, sites, plain) is None
