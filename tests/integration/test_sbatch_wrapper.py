"""`ctwin sbatch` against a real two-cluster Slurm 22.05 and a real `ctwin serve`.

The clusters (tests/integration/slurm_cluster.py `two_slurm_clusters`): `alpha` and `beta`, each
its own slurmctld and two slurmd (2 × 2 CPUs), sharing one munged and one slurmdbd. The service is
`ctwin serve` in a subprocess, configured with the two clusters as two sites, each with the real
`slurm` collector (commands, its own slurm.conf, accounting on). Alpha gets a backlog (four long
sleeps on all its CPUs plus queued jobs); then the real CLI `ctwin sbatch` submits a short script.
It must land on beta with the advice id in its comment (squeue -M beta, sacct -M beta), and the
advice log must hold the answer with hook `sbatch`, chosen site beta, the job id, and, once the
job has ended, its realised wait and run from accounting. `--dry-run` shows the ranking next to
what `sbatch -M alpha,beta --test-only` alone picks; without a service the wrapper falls back to
plain sbatch (alpha, the client config's own cluster), or refuses with `--no-fallback`.
Needs root and the Slurm packages; skips without them unless CTWIN_REQUIRE_SERVERS=1.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from service.auth import TokenStore
from service.config import load_config
from tests.conftest import ROOT, free_port
from tests.integration.slurm_cluster import MultiCluster, poll
from tests.integration.slurm_cluster import two_slurm_clusters as two_slurm_clusters  # the fixture

pytestmark = pytest.mark.integration

CTWIN = str(Path(sys.executable).with_name("ctwin"))
JOB_SCRIPT = """#!/bin/bash
#SBATCH -J short
#SBATCH -t 1
#SBATCH -c 1
#SBATCH --comment "user note"
sleep 3
"""


@dataclass(frozen=True)
class Service:
    url: str
    token: str
    config: Path

    def get(self, path: str) -> httpx.Response:
        return httpx.get(f"{self.url}{path}", headers={"Authorization": f"Bearer {self.token}"}, timeout=10)


def _config(c: MultiCluster, port: int, data: Path) -> str:
    sites = "\n".join(
        f"""  - name: {name}
    kind: hpc
    collectors:
      - {{type: slurm, interval: 2s, timeout: 8s, transport: cli, slurm_conf: {c.conf(name)},
         accounting_window: 1h}}"""
        for name in c.names
    )
    return f"""data_dir: {data}
serve: {{listen: 127.0.0.1, port: {port}}}
advice: {{home: alpha}}
schedulers:
  slurm: {{enabled: true, clusters: {{alpha: alpha, beta: beta}}, slurm_conf: {c.client_conf}, default_walltime: 5m}}
sites:
{sites}
links:
  - {{between: [alpha, beta], bandwidth_gbps: 10, latency_ms: 1}}
"""


@pytest.fixture(scope="module")
def service(two_slurm_clusters: MultiCluster) -> Iterator[Service]:
    c = two_slurm_clusters
    data = c.workdir / "ctwin-data"
    config = c.workdir / "ctwin.yaml"
    port = free_port()
    config.write_text(_config(c, port, data))
    loaded = load_config(config)
    token = TokenStore(loaded.tokens_path()).create("wrapper", ["read", "advise"])[1]
    log = (c.workdir / "serve.log").open("w")
    proc = subprocess.Popen(
        [CTWIN, "serve", "--no-ui", "--config", str(config)], stdout=log, stderr=subprocess.STDOUT, env=c.env
    )
    svc = Service(f"http://127.0.0.1:{port}", token, config)
    try:

        def both_sites_seen() -> bool:
            assert proc.poll() is None, (c.workdir / "serve.log").read_text()
            with contextlib.suppress(httpx.HTTPError):
                sites = {s["name"]: s for s in svc.get("/v1/sites").json()["items"]}
                return all(sites[name]["state"] == "ok" and sites[name]["cpus_total"] for name in c.names)
            return False

        poll("ctwin serve to collect both clusters", both_sites_seen, 90)
        yield svc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wrapper(svc: Service, c: MultiCluster, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {**c.env, "CTWIN_TOKEN": svc.token, "CTWIN_URL": url or svc.url}
    return subprocess.run(
        [CTWIN, "sbatch", "--config", str(svc.config), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=c.workdir,
        check=False,
    )


@pytest.fixture(scope="module")
def backlog(two_slurm_clusters: MultiCluster, service: Service) -> list[str]:
    """Alpha full: four 1-CPU sleeps of 10 minutes on its four CPUs and two 2-CPU jobs queued."""
    c = two_slurm_clusters
    base = ["sbatch", "--parsable", "-M", "alpha", "-o", "/dev/null"]
    jobs = [c.run(*base, "-J", f"fill{i}", "-c", "1", "-t", "10", "--wrap", "sleep 600").strip() for i in range(4)]
    jobs += [c.run(*base, "-J", f"queued{i}", "-c", "2", "-t", "5", "--wrap", "sleep 60").strip() for i in range(2)]

    def seen() -> bool:  # the twin must know the backlog before it is asked
        states = [j["state"] for j in service.get("/v1/sites/alpha/jobs").json()["jobs"]]
        return states.count("RUNNING") == 4 and states.count("PENDING") == 2

    poll("the service to see alpha's backlog", seen, 60)
    return jobs


def test_dry_run_shows_the_ranking_next_to_sbatch_test_only(
    two_slurm_clusters: MultiCluster, service: Service, backlog: list[str], tmp_path: Path
) -> None:
    c = two_slurm_clusters
    script = c.workdir / "dry.sh"
    script.write_text(JOB_SCRIPT)
    before = c.run("squeue", "-M", "all", "-h", "-o", "%i")
    done = _wrapper(service, c, "--dry-run", "--json", str(script))
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["advice"]["recommended"] == "beta" and answer["placement"]["cluster"] == "beta"
    assert answer["advice"]["advice_id"].startswith("preview-")  # booked nothing, logged nothing
    test_only = answer["sbatch_test_only"]
    assert test_only["asked"] == ["alpha", "beta"] and test_only["clusters"] == ["beta"], test_only
    per = {w["cluster"]: w for w in test_only["per_cluster"]}
    assert per["alpha"]["start_s"] > per["beta"]["start_s"]  # alpha's earliest start is after its backlog
    text = _wrapper(service, c, "--dry-run", str(script))
    assert text.returncode == 0, text.stderr
    print(text.stdout)  # run with -s to see what a user sees
    assert "nothing submitted" in text.stdout and "ctwin advises:  -M beta" in text.stdout
    assert "sbatch -M alpha,beta alone: cluster beta, expected start" in text.stdout
    assert c.run("squeue", "-M", "all", "-h", "-o", "%i") == before  # nothing was submitted


def test_the_wrapped_job_runs_on_the_advised_cluster_and_its_outcome_is_joined(
    two_slurm_clusters: MultiCluster, service: Service, backlog: list[str]
) -> None:
    c = two_slurm_clusters
    script = c.workdir / "short.sh"
    script.write_text(JOB_SCRIPT)
    done = _wrapper(service, c, "-o", "/dev/null", str(script))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Submitted batch job ") and done.stdout.strip().endswith(" on cluster beta")
    job_id = done.stdout.split()[3]
    advice_id = done.stderr.rsplit("advice ", 1)[1].split()[0]
    comment = f"ctwin-advice={advice_id} user note"
    in_beta = c.run("squeue", "-M", "beta", "-h", "-t", "all", "-o", "%i|%k|%j")
    assert [job_id, comment, "short"] in [line.split("|") for line in in_beta.splitlines()], in_beta
    assert "short" not in c.run("squeue", "-M", "alpha", "-h", "-t", "all", "-o", "%j").split()

    row = service.get(f"/v1/advice/{advice_id}").json()
    assert row["hook"] == "sbatch" and row["recommended"] == "beta" and row["chosen_site"] == "beta"
    assert row["job_id"] == job_id and row["request"]["cores"] == 1 and row["request"]["walltime_s"] == 60
    assert row["request"]["user"] == (os.environ.get("USER") or "root")

    def joined() -> bool:
        return service.get(f"/v1/advice/{advice_id}").json()["outcome"] is not None

    poll("the advice log to join the job's outcome", joined, 120)
    outcome = service.get(f"/v1/advice/{advice_id}").json()["outcome"]
    acct = c.run("sacct", "-M", "beta", "-X", "-n", "-P", "-j", job_id, "-o", "JobID,State,Comment,Submit,Start,End")
    fields = acct.strip().splitlines()[0].split("|")
    assert fields[:3] == [job_id, "COMPLETED", comment], acct
    assert outcome["state"] == "COMPLETED" and outcome["followed_advice"] is True
    realised = outcome["realised"]
    assert realised["wait_s"] == outcome["start_s"] - outcome["submit_s"] >= 0
    assert realised["run_s"] == outcome["end_s"] - outcome["start_s"] and 3 <= realised["run_s"] <= 30


def test_without_the_service_it_falls_back_to_plain_sbatch_or_refuses(
    two_slurm_clusters: MultiCluster, service: Service
) -> None:
    c = two_slurm_clusters
    script = c.workdir / "fallback.sh"
    script.write_text(JOB_SCRIPT.replace("-J short", "-J fallback"))
    nowhere = f"http://127.0.0.1:{free_port()}"
    refused = _wrapper(service, c, "--no-fallback", "-o", "/dev/null", str(script), url=nowhere)
    assert refused.returncode == 1 and "cannot reach the service" in refused.stderr and refused.stdout == ""
    assert "fallback" not in c.run("squeue", "-M", "all", "-h", "-t", "all", "-o", "%j")
    done = _wrapper(service, c, "-o", "/dev/null", str(script), url=nowhere)
    assert done.returncode == 0, done.stderr
    assert "no advice: cannot reach the service" in done.stderr and "submitting with your own options" in done.stderr
    # plain sbatch: the client config's own cluster (alpha), its own output format
    assert done.stdout.startswith("Submitted batch job ")
    assert "fallback" in c.run("squeue", "-M", "alpha", "-h", "-t", "all", "-o", "%j")


def test_plain_sbatch_is_advised_through_the_cli_filter_lua_example(
    two_slurm_clusters: MultiCluster, service: Service, backlog: list[str]
) -> None:
    """deploy/slurm/cli_filter.lua in Slurm's own cli_filter/lua plugin (Debian ships it): a plain
    `sbatch` reaches beta, with the advice id in its comment, and the job is reported."""
    c = two_slurm_clusters
    conf_dir = c.workdir / "clifilter"
    conf_dir.mkdir()
    (conf_dir / "slurm.conf").write_text(Path(c.client_conf).read_text() + "CliFilterPlugins=cli_filter/lua\n")
    (conf_dir / "cli_filter.lua").write_text((ROOT / "deploy" / "slurm" / "cli_filter.lua").read_text())
    script = c.workdir / "filtered.sh"
    script.write_text(JOB_SCRIPT.replace("-J short", "-J filtered"))
    env = {**c.env, "SLURM_CONF": str(conf_dir / "slurm.conf"), "CTWIN_BIN": CTWIN, "CTWIN_CONFIG": str(service.config),
           "CTWIN_TOKEN": service.token, "CTWIN_URL": service.url, "CTWIN_CLI_FILTER_DEBUG": "1"}  # fmt: skip
    done = subprocess.run(
        ["sbatch", "-o", "/dev/null", str(script)], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().endswith(" on cluster beta"), (done.stdout, done.stderr)
    job_id = done.stdout.split()[3]
    line = c.run("squeue", "-M", "beta", "-h", "-t", "all", "-j", job_id, "-o", "%j|%k").strip().splitlines()[-1]
    name, comment = line.split("|")
    assert name == "filtered" and comment.startswith("ctwin-advice=adv-") and comment.endswith(" user note")
    advice_id = comment.split()[0].removeprefix("ctwin-advice=")
    row = service.get(f"/v1/advice/{advice_id}").json()
    assert row["hook"] == "sbatch" and row["chosen_site"] == "beta" and row["job_id"] == job_id
