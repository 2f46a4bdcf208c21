"""POST /v1/whatif through the real app on the default continuum (kth-sp2 and sdsc-sp2 replayed):
a queued job moved, a site down, a link slower; unknown names → 404, impossible scenarios → 422."""

from __future__ import annotations

import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from service.limits import EXPENSIVE


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Any:
    data = tmp_path_factory.mktemp("whatif")
    loaded = parse_config("")
    store = TokenStore(loaded.tokens_path(data))
    auth = {"Authorization": f"Bearer {store.create('read', ['read'])[1]}"}
    with TestClient(create_app(loaded, data, ui=False)) as client:
        yield client, auth


def _pending(client: TestClient, auth: dict[str, str], site: str, empty: bool = False) -> list[dict[str, Any]]:
    """The site's queued jobs once its replay has reported a queue (with jobs, unless `empty`)."""
    deadline = time.monotonic() + 30
    while True:
        answer = client.get(f"/v1/sites/{site}/forecast", headers=auth)
        if answer.status_code == 200 and (empty or answer.json()["jobs"]):
            return answer.json()["jobs"]
        assert time.monotonic() < deadline, answer.text
        time.sleep(0.3)


def test_a_moved_job_and_a_ranking_today_vs_the_scenario(api: Any) -> None:
    client, auth = api
    jobs = _pending(client, auth, "kth-sp2")
    _pending(client, auth, "sdsc-sp2", empty=True)
    job = max(jobs, key=lambda j: j["predicted_wait_s"])["job_id"]
    body = {
        "changes": [
            {"kind": "move", "job": job, "from": "kth-sp2", "to": "sdsc-sp2"},
            {"kind": "site_down", "site": "cloud-eu"},
        ],
        "job": {"cores": 8, "walltime": "1h", "input": {"size": "10GB", "site": "local"}},
    }
    answer = client.post("/v1/whatif", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    out = answer.json()
    assert out["changes"] == [f"move queued job {job} from kth-sp2 to sdsc-sp2", "take cloud-eu down"]
    assert out["sites"] == ["kth-sp2", "sdsc-sp2"] and set(out["now_s"]) == {"kth-sp2", "sdsc-sp2"}
    moved = next(j for j in out["jobs"] if j["job_id"] == job)
    assert moved["from_site"] == "kth-sp2" and moved["site"] == "sdsc-sp2" and moved["scenario_start_s"] is not None
    today = {s["site"]: s for s in out["today"]["sites"]}
    then = {s["site"]: s for s in out["scenario"]["sites"]}
    assert then["cloud-eu"]["excluded_because"] == "down" and "taken down in this what-if" in then["cloud-eu"]["reason"]
    assert today["cloud-eu"]["excluded_because"] != "down"
    assert out["today"]["advice_id"].startswith("preview-")  # a preview: not in the advice log


def test_a_slower_link_lengthens_stage_in(api: Any) -> None:
    client, auth = api
    _pending(client, auth, "kth-sp2")
    body = {
        "changes": [{"kind": "link_bandwidth", "a": "kth-sp2", "b": "local", "gbps": 0.1}],
        "job": {"cores": 8, "walltime": "1h", "input": {"size": "10GB", "site": "local"}},
    }
    out = client.post("/v1/whatif", json=body, headers=auth).json()
    assert out["jobs"] == [] and out["affected"] == 0
    today = next(s for s in out["today"]["sites"] if s["site"] == "kth-sp2")
    then = next(s for s in out["scenario"]["sites"] if s["site"] == "kth-sp2")
    assert then["stage_in_s"]["p50"] > 50 * today["stage_in_s"]["p50"]


@pytest.mark.parametrize(
    ("change", "status", "says"),
    [
        ({"kind": "move", "job": "no-such", "from": "kth-sp2", "to": "sdsc-sp2"}, 404, "no job 'no-such'"),
        ({"kind": "site_down", "site": "atlantis"}, 404, "no site named 'atlantis'"),
        ({"kind": "link_down", "a": "kth-sp2", "b": "sdsc-sp2"}, 404, "no link between 'kth-sp2' and 'sdsc-sp2'"),
        ({"kind": "nodes", "site": "kth-sp2", "drain": 100000}, 422, "leaves kth-sp2 no CPU"),
        ({"kind": "nodes", "site": "kth-sp2"}, 422, "either add=N or drain=N"),
        ({"kind": "move", "job": "1", "from": "kth-sp2", "to": "cloud-eu"}, 422, "cannot move a job to cloud-eu"),
        ({"kind": "link_bandwidth", "a": "local", "b": "kth-sp2", "gbps": -1}, 422, "greater than 0"),
        ({"kind": "explode", "site": "kth-sp2"}, 422, "kind"),
    ],
)
def test_refusals_say_why(api: Any, change: dict[str, Any], status: int, says: str) -> None:
    client, auth = api
    _pending(client, auth, "kth-sp2")
    answer = client.post("/v1/whatif", json={"changes": [change]}, headers=auth)
    assert answer.status_code == status, answer.text
    assert says in answer.text


def test_it_needs_a_token_and_counts_as_expensive(api: Any) -> None:
    client, _ = api
    assert client.post("/v1/whatif", json={"changes": [{"kind": "site_down", "site": "local"}]}).status_code == 401
    assert EXPENSIVE.match("/v1/whatif")
