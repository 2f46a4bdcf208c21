"""deploy/helm/ctwin: Helm's own lint and render (helm-python-sdk, the Helm Go SDK offline), every
object checked with `kubernetes-validate --strict` against the schemas of current Kubernetes
releases, and the rendered ctwin config accepted by ctwin's typed config loader."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.chart import CHART, RELEASE_VALUES, by_kind, need_module, render, render_docs

# the oldest and newest schema sets kubernetes-validate ships (1.25 is the oldest still served by
# any supported cloud); 1.20, the apiserver the tests run, takes the same objects for real
# (test_helm_apiserver.py)
K8S_VERSIONS = ("1.25", "1.30", "1.37")
MINIMAL = {"tokens": {"existingSecret": "ctwin-tokens"}}


def _validate_strict(doc: dict[str, Any], version: str) -> None:
    kv = need_module("kubernetes_validate")
    kv.validate(doc, version, strict=True)


def test_helm_lint_finds_no_error() -> None:
    helm = need_module("helm_python")
    report = helm.lint(str(CHART))
    assert report["errors"] == [], report
    # the one informational message Helm gives a chart without an icon; nothing else
    assert [m for m in report["messages"] if m["severity"] > 1] == [], report


@pytest.mark.parametrize("values", [MINIMAL, RELEASE_VALUES], ids=["minimal", "everything"])
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(values: dict[str, Any], version: str) -> None:
    docs = render_docs(values)
    checked = 0
    for doc in docs:
        if doc["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD's kind: kubernetes-validate has no schema for it (checked below)
        _validate_strict(doc, version)
        checked += 1
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "Service", "ConfigMap", "ServiceAccount", "PersistentVolumeClaim"} <= kinds
    if values is RELEASE_VALUES:
        assert {"DaemonSet", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceMonitor"} <= kinds
        assert len(by_kind(docs, "Deployment")) == 2  # serve and the dispatcher
    assert checked >= 6


def test_strict_validation_catches_a_misspelt_field() -> None:
    """The validator is strict for real: one unknown field in the pod template fails it."""
    kv = need_module("kubernetes_validate")
    deployment = copy.deepcopy(by_kind(render_docs(MINIMAL), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(kv.ValidationError):
        kv.validate(deployment, "1.30", strict=True)


def _ctwin_config(docs: list[dict[str, Any]]) -> str:
    [cm] = by_kind(docs, "ConfigMap", "demo-ctwin")
    return str(cm["data"]["ctwin.yaml"])


@pytest.mark.parametrize("values", [MINIMAL, RELEASE_VALUES], ids=["minimal", "everything"])
def test_the_rendered_ctwin_config_passes_ctwin_config_check(values: dict[str, Any], tmp_path: Path) -> None:
    config = tmp_path / "ctwin.yaml"
    config.write_text(_ctwin_config(render_docs(values)))
    check = subprocess.run(
        [sys.executable, "-m", "service.cli", "config", "check", "--config", str(config), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    parsed = yaml.safe_load(config.read_text())
    assert parsed["data_dir"] == "/var/lib/ctwin"
    assert parsed["serve"] == {"listen": "0.0.0.0", "port": 8080}
    assert parsed["auth"]["tokens_file"] == "/etc/ctwin/tokens/tokens.json"
    if values is RELEASE_VALUES:
        k8s, mk = parsed["schedulers"]["kubernetes"], parsed["schedulers"]["multikueue"]
        assert k8s["enabled"] and k8s["scheduler_name"] == "ctwin-scheduler" and "api" in k8s
        assert mk["service_url"] == "http://demo-ctwin.ctwin.svc:8080"
        assert mk["token_file"] == "/etc/ctwin/dispatcher/token"


def test_a_config_key_ctwin_does_not_know_is_refused_by_ctwin(tmp_path: Path) -> None:
    """The chart passes config through: ctwin's own check is what catches a typo there."""
    values = {**MINIMAL, "config": {"advice": {"hom": "cluster"}, "sites": [{"name": "cluster"}]}}
    config = tmp_path / "ctwin.yaml"
    config.write_text(_ctwin_config(render_docs(values)))
    check = subprocess.run(
        [sys.executable, "-m", "service.cli", "config", "check", "--config", str(config)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode != 0
    assert "advice.hom" in check.stdout + check.stderr


def test_the_agent_config_is_the_agents_own() -> None:
    """The DaemonSet's agent.yaml, checked by `ctwin agent`'s typed config where that exists."""
    docs = render_docs(RELEASE_VALUES)
    [cm] = by_kind(docs, "ConfigMap", "demo-ctwin-agent")
    agent = yaml.safe_load(cm["data"]["agent.yaml"])
    assert agent["target"]["url"] == "http://demo-ctwin.ctwin.svc:8080"
    assert agent["target"]["token_file"] == "/etc/ctwin-agent/token/token"
    assert all(c.get("root") == "/host" for c in agent["collectors"])
    [ds] = by_kind(docs, "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    assert pod["containers"][0]["args"][:2] == ["agent", "--config=/etc/ctwin-agent/agent.yaml"]
    assert {"name": "host", "hostPath": {"path": "/"}} in pod["volumes"]
    try:
        from service.config_agent import parse_agent_config  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        pytest.skip("`ctwin agent` (service/config_agent.py) is not in this tree yet: only the layout was checked")
    parse_agent_config(cm["data"]["agent.yaml"], "agent.yaml")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({}, "tokens.existingSecret is required"),
        ({**MINIMAL, "agent": {"enabled": True}}, "agent.tokenSecret.name is required"),
        ({**MINIMAL, "dispatcher": {"enabled": True}}, "dispatcher.tokenSecret.name is required"),
        ({**MINIMAL, "config": {"data_dir": "/x"}}, "config.data_dir is set by the chart"),
        ({**MINIMAL, "config": {"serve": {"port": 9000}}}, "config.serve.listen and config.serve.port"),
        ({**MINIMAL, "config": {"auth": {"tokens_file": "/x"}}}, "config.auth.tokens_file is set by the chart"),
        ({**MINIMAL, "serve": {"port": "8080"}}, "/serve/port"),
        ({**MINIMAL, "persistence": {"size": "ten gigs"}}, "/persistence/size"),
        ({**MINIMAL, "replicas": 2}, "additional properties 'replicas' not allowed"),
    ],
    ids=["no-tokens", "agent-token", "dispatcher-token", "data-dir", "serve-port", "tokens-file", "type",
         "size", "unknown"],
)  # fmt: skip
def test_bad_values_fail_with_the_fix(values: dict[str, Any], message: str) -> None:
    with pytest.raises(Exception) as caught:  # HelmRenderError or HelmValuesError
        render(values)
    assert message in str(caught.value)


def test_pods_run_unprivileged() -> None:
    docs = render_docs(RELEASE_VALUES)
    for workload in by_kind(docs, "Deployment") + by_kind(docs, "DaemonSet"):
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        for container in pod["containers"]:
            sc = container["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, container["name"]
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
        # tokens only from Secrets, never in the ConfigMap or the environment
        secrets = {v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets, workload["metadata"]["name"]
        for container in pod["containers"]:
            assert not any("TOKEN" in e["name"] for e in container.get("env", []))
    [serve] = [d for d in by_kind(docs, "Deployment") if d["metadata"]["name"] == "demo-ctwin"]
    assert serve["spec"]["replicas"] == 1 and serve["spec"]["strategy"]["type"] == "Recreate"
    volumes = {v["name"]: v for v in serve["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "demo-ctwin-data"
    assert volumes["tokens"]["secret"]["secretName"] == "ctwin-tokens"


def test_persistence_off_uses_an_empty_dir_and_no_claim() -> None:
    docs = render_docs({**MINIMAL, "persistence": {"enabled": False}})
    assert by_kind(docs, "PersistentVolumeClaim") == []
    volumes = {v["name"]: v for v in by_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"] == {"name": "data", "emptyDir": {}}


def test_service_monitor_and_scrape_config_point_at_the_service() -> None:
    docs = render_docs(RELEASE_VALUES)
    [service] = by_kind(docs, "Service")
    [monitor] = by_kind(docs, "ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [p["name"] for p in service["spec"]["ports"]] == [monitor["spec"]["endpoints"][0]["port"]]
    assert by_kind(render_docs(MINIMAL), "ServiceMonitor") == []  # off by default: no CRD needed


def test_the_scrape_config_passes_promtool(tmp_path: Path) -> None:
    from tests.conftest import need_binary

    promtool = need_binary("promtool", "apt-get install prometheus")
    [cm] = by_kind(render_docs(MINIMAL), "ConfigMap", "demo-ctwin-scrape-config")
    config = tmp_path / "prometheus.yml"
    config.write_text(cm["data"]["scrape-config.yaml"])
    check = subprocess.run([promtool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
