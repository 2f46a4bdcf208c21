"""Placement advice through the API: the default continuum ranked (this machine, the replayed HPC
sites, the cloud site), refusals with reasons, batch advice, and the advice log joined with the
realised outcome of an advised job on a replayed site."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.stores.duckdb_store import DuckDBStore


def _tokens(loaded, data: Path) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    store = TokenStore(loaded.tokens_path(data))
    return {scope: {"Authorization": f"Bearer {store.create(scope, [scope])[1]}"} for scope in ("read", "advise")}


def _ready_advice(client: TestClient, auth: dict[str, str], body: dict) -> dict:
    """Advice once every collected site has reported (the first answer may come before the first collection)."""
    deadline = time.monotonic() + 30
    while True:
        answer = client.post("/v1/advice", json=body, headers=auth)
        assert answer.status_code == 200, answer.text
        advice = answer.json()
        if not any(s["excluded_because"] == "no_data" for s in advice["sites"]) or time.monotonic() > deadline:
            return advice
        time.sleep(0.3)


def test_the_default_continuum_is_ranked_with_bands_reasons_ages_and_wall_clock(tmp_path: Path) -> None:
    loaded = parse_config("")  # the built-in default: local, kth-sp2, sdsc-sp2 (replayed), cloud-eu
    auth = _tokens(loaded, tmp_path)
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        before = time.time()
        job = {"cores": 64, "walltime": "2h", "input": {"size": "20GB", "site": "local"}, "user": "3"}
        advice = _ready_advice(client, auth["advise"], job)
        sites = {s["site"]: s for s in advice["sites"]}
        assert set(sites) == {"local", "kth-sp2", "sdsc-sp2", "cloud-eu"}
        assert advice["recommended"] in {"kth-sp2", "sdsc-sp2", "cloud-eu"} and advice["summary"]
        assert sites["local"]["excluded_because"] == "capacity" and "local has" in sites["local"]["reason"]
        for name in ("kth-sp2", "sdsc-sp2", "cloud-eu"):
            s = sites[name]
            assert s["feasible"], s
            for part in ("stage_in_s", "wait_s", "run_s", "stage_out_s", "turnaround_s", "cost", "energy_kwh", "co2_g"):
                assert s[part]["p10"] <= s[part]["p50"] <= s[part]["p90"], (name, part, s[part])
            assert "20 GB in over local" in s["reason"]
            start = datetime.fromisoformat(s["start_at"].replace("Z", "+00:00")).timestamp()
            assert (
                s["start_at"].endswith("Z") and before - 1 <= start and start == pytest.approx(s["start_at_s"], abs=1)
            )
            assert "state" in s["data_age_s"]
            # never before the answer: the queue's snapshot is older than it (start ≥ answer + stage-in)
            assert s["start_at_s"] >= advice["created_s"] + s["stage_in_s"]["p50"] / s["clock_speed"] - 1e-6, s
        for name in ("kth-sp2", "sdsc-sp2"):  # replayed: their queue's age and their trace clock's speed
            assert sites[name]["data_age_s"]["queue"] < 30 and sites[name]["clock_speed"] == 60.0
            assert "jobs ahead" in sites[name]["reason"]
        assert "no queue: an instance in" in sites["cloud-eu"]["reason"] and sites["cloud-eu"]["clock_speed"] == 1.0
        best = next(s["site"] for s in advice["sites"] if s["feasible"])
        assert best == advice["recommended"] or advice["stayed_home"]

        logged = client.get(f"/v1/advice/{advice['advice_id']}", headers=auth["advise"]).json()
        assert logged["recommended"] == advice["recommended"] and logged["request"]["cores"] == 64
        metrics = client.get("/metrics").text
        assert f'ctwin_advice_total{{site="{advice["recommended"]}"}}' in metrics

        def advised() -> float:
            lines = client.get("/metrics").text.splitlines()
            return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith("ctwin_advice_total{"))

        counted = advised()
        dry = client.post("/v1/advice", params={"preview": "true"}, json=job, headers=auth["advise"])
        assert dry.status_code == 200, dry.text
        preview = dry.json()
        assert preview["advice_id"].startswith("preview-") and {s["site"] for s in preview["sites"]} == set(sites)
        assert advised() == counted  # a dry run is not counted, not logged ...
        assert client.get(f"/v1/advice/{preview['advice_id']}", headers=auth["advise"]).status_code == 422
        outcome = {"site": preview["recommended"] or "kth-sp2", "job_id": "1"}
        refused = client.post(f"/v1/advice/{preview['advice_id']}/outcome", json=outcome, headers=auth["advise"])
        assert refused.status_code == 422  # ... and cannot be reported

        batch = client.post("/v1/advice/batch", json={"jobs": [job, {**job, "cores": 8}, job]}, headers=auth["advise"])
        assert batch.status_code == 200 and len(batch.json()["items"]) == 3


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"cores": 4, "walltime": "1h", "input": {"size": "1GB", "site": "atlantis"}}, 404, "no site named 'atlantis'"),
        ({"cores": 4, "walltime": "1h", "input": {"size": "lots"}}, 422, "invalid size 'lots'"),
        ({"cores": 4, "walltime": "soon"}, 422, "invalid duration"),
        ({"cores": 0, "walltime": "1h"}, 422, "cores"),
        ({"cores": 4, "walltime": "1h", "colour": "blue"}, 422, "colour"),
        ({"cores": 4, "walltime": "1h", "constraints": {"deadline": "tomorrow"}}, 422, "cannot read the time"),
        ({"cores": 4, "walltime": "1h", "home": "nowhere"}, 404, "no site named 'nowhere'"),
        ({"cores": True, "walltime": "1h"}, 422, "cores"),  # not one core: a client bug
        ({"cores": "4", "walltime": "1h"}, 422, "cores"),
        ({"cores": 4.0, "walltime": "1h"}, 422, "cores"),
        ({"cores": 4, "walltime": "1h", "nodes": True}, 422, "nodes"),
        ({"cores": 4, "walltime": "1h", "gpus": "1"}, 422, "gpus"),
        ({"cores": 4, "walltime": True}, 422, "walltime"),
        (
            {"cores": 4, "walltime": "1h", "objective": "weighted", "weights": {"turnaround": 0}},
            422,
            "weights: objective weighted needs at least one",
        ),
    ],
)
def test_bad_requests_are_refused_with_the_reason(tmp_path: Path, body: dict, status: int, says: str) -> None:
    loaded = parse_config("sites: [{name: local, kind: edge}]")
    auth = _tokens(loaded, tmp_path)
    with TestClient(create_app(loaded, tmp_path, ui=False, collect=False)) as client:
        answer = client.post("/v1/advice", json=body, headers=auth["advise"])
        assert answer.status_code == status and says in answer.text, answer.text
        assert client.post("/v1/advice", json={"cores": 1, "walltime": 60}, headers=auth["read"]).status_code == 403
        assert client.get("/v1/advice/adv-00000000000-00000000", headers=auth["advise"]).status_code == 404
        too_many = client.post(
            "/v1/advice/batch", json={"jobs": [{"cores": 1, "walltime": 60}] * 1001}, headers=auth["advise"]
        )
        assert too_many.status_code == 422
        assert client.post("/v1/advice", json={"cores": 1, "walltime": 60}, headers=auth["advise"]).status_code == 200


def test_counts_are_integers_and_walltime_a_number_or_a_duration(tmp_path: Path) -> None:
    loaded = parse_config("sites: [{name: local, kind: edge}]")
    auth = _tokens(loaded, tmp_path)
    with TestClient(create_app(loaded, tmp_path, ui=False, collect=False)) as client:
        for walltime, seconds in ((7200, 7200), (90.5, 91), ("2h", 7200), ("30m", 1800)):
            body = {"cores": 4, "nodes": 1, "gpus": 0, "walltime": walltime}
            answer = client.post("/v1/advice", json=body, headers=auth["advise"])
            assert answer.status_code == 200, answer.text
            logged = client.get(f"/v1/advice/{answer.json()['advice_id']}", headers=auth["advise"]).json()
            assert logged["request"]["walltime_s"] == seconds and logged["request"]["cores"] == 4
        weighted = {"cores": 4, "walltime": 60, "objective": "weighted", "weights": {"turnaround": 0, "cost": 1}}
        assert client.post("/v1/advice", json=weighted, headers=auth["advise"]).status_code == 200


def test_a_batch_names_the_item_a_refusal_is_about(tmp_path: Path) -> None:
    loaded = parse_config("sites: [{name: local, kind: edge}]")
    auth = _tokens(loaded, tmp_path)
    with TestClient(create_app(loaded, tmp_path, ui=False, collect=False)) as client:
        ok = {"cores": 1, "walltime": 60}
        for bad, says in (
            ({**ok, "home": "nowhere"}, "jobs[1]: no site named 'nowhere'"),
            ({**ok, "input": {"size": "1GB", "site": "atlantis"}}, "jobs[1]: no site named 'atlantis'"),
            ({**ok, "constraints": {"allowed_sites": ["mars"]}}, "jobs[1]: no site named 'mars'"),
        ):
            for preview in ("false", "true"):
                answer = client.post(
                    "/v1/advice/batch", params={"preview": preview}, json={"jobs": [ok, bad]}, headers=auth["advise"]
                )
                assert answer.status_code == 404 and says in answer.json()["error"]["message"], answer.text
        single = client.post("/v1/advice", json={**ok, "home": "nowhere"}, headers=auth["advise"])
        assert single.status_code == 404 and single.json()["error"]["message"].startswith("no site named")
        assert client.post("/v1/advice/batch", json={"jobs": [ok, ok]}, headers=auth["advise"]).status_code == 200


CLOUD = """
sites:
  - {name: local, kind: edge}
  - {name: cloud, kind: cloud, cloud: {quota_cores: 64}}
links:
  - {between: [local, cloud], bandwidth_gbps: 1, latency_ms: 20}
advice: {home: local}
"""


def test_a_batch_preview_books_holds_and_logs_nothing(tmp_path: Path) -> None:
    """POST /v1/advice/batch?preview=true is a dry run like the single route's: `preview-` ids that
    cannot be read or reported, no count, no log row, no cloud quota held (so none comes back
    after a restart either); it still ranks each job after the earlier ones, as the batch would."""
    loaded = parse_config(CLOUD)
    auth = _tokens(loaded, tmp_path)
    jobs = {"jobs": [{"cores": 32, "walltime": "2h", "home": "local"}] * 3}
    with TestClient(create_app(loaded, tmp_path, ui=False, collect=False)) as client:
        advisor = client.app.state.service.advisor  # type: ignore[attr-defined]
        spec = client.get("/openapi.json").json()["paths"]["/v1/advice/batch"]["post"]
        assert any(p["name"] == "preview" and p["in"] == "query" for p in spec["parameters"])
        dry = client.post("/v1/advice/batch", params={"preview": "true"}, json=jobs, headers=auth["advise"])
        assert dry.status_code == 200, dry.text
        items = dry.json()["items"]
        assert all(i["advice_id"].startswith("preview-") for i in items) and len({i["advice_id"] for i in items}) == 3
        clouds = [next(s for s in i["sites"] if s["site"] == "cloud") for i in items]
        assert [c["feasible"] for c in clouds] == [True, True, True]
        assert "quota full (held by 2 advised jobs, 64 cores)" in clouds[2]["reason"]  # as the batch would say
        assert advisor.ledger.held("cloud") == [] and len(advisor.ledger) == 0
        assert "ctwin_advice_total{" not in client.get("/metrics").text and advisor.log.recent(10) == []
        for item in items:
            assert client.get(f"/v1/advice/{item['advice_id']}", headers=auth["advise"]).status_code == 422
            refused = client.post(
                f"/v1/advice/{item['advice_id']}/outcome", json={"site": "cloud", "job_id": "1"}, headers=auth["advise"]
            )
            assert refused.status_code == 422
        real = client.post("/v1/advice/batch", json=jobs, headers=auth["advise"])
        assert [i["recommended"] for i in real.json()["items"]] == [i["recommended"] for i in items]
        assert len(advisor.ledger.held("cloud")) == 3  # the real batch does hold the quota
    with TestClient(create_app(loaded, tmp_path, ui=False, collect=False)) as client:
        assert client.app.state.service.advisor.restored_holds == 3  # type: ignore[attr-defined]  # the real ones only


REPLAY = """
sites:
  - {name: home, kind: edge}
  - name: kth
    kind: hpc
    collectors:
      - {type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.3s, speed: 3600, start_offset: 30d}
links:
  - {between: [home, kth], bandwidth_gbps: 10, latency_ms: 30}
advice: {home: home}
"""


def _trace_s(client: TestClient, site: str, wall_s: float) -> float:
    """The replayed site's trace clock at wall instant `wall_s`, as the twin maps it."""
    view = client.app.state.service.twin.site(site)  # type: ignore[attr-defined]
    assert view.trace_time_s is not None and view.trace_wall_s is not None and view.trace_speed
    return float(view.trace_time_s + (wall_s - view.trace_wall_s) * view.trace_speed)


def test_the_advice_log_joins_the_realised_outcome_when_the_advised_job_ends(tmp_path: Path) -> None:
    loaded = parse_config(REPLAY)
    auth = _tokens(loaded, tmp_path)
    with TestClient(create_app(loaded, tmp_path, ui=False)) as client:
        deadline = time.monotonic() + 30
        pending: list[dict] = []
        while not pending and time.monotonic() < deadline:
            jobs = client.get("/v1/sites/kth/jobs", headers=auth["read"]).json()["jobs"]
            pending = [j for j in jobs if j["state"] == "PENDING"]
            time.sleep(0.2)
        assert pending, "the replay never showed a pending job"
        body = {"cores": 1, "walltime": 3600}
        unknown_hook = client.post("/v1/advice", params={"hook": "carrier-pigeon"}, json=body, headers=auth["advise"])
        assert unknown_hook.status_code in (400, 422) and "hook" in unknown_hook.text
        advice = client.post("/v1/advice", params={"hook": "sbatch"}, json=body, headers=auth["advise"]).json()
        assert advice["recommended"] == "kth"
        url = f"/v1/advice/{advice['advice_id']}/outcome"

        old = pending[0]  # queued before the advice was given: it cannot be the job that followed it
        refused = client.post(url, json={"site": "kth", "job_id": old["job_id"]}, headers=auth["advise"])
        assert refused.status_code == 400, refused.text
        assert f"job {old['job_id']} at kth was submitted" in refused.text and "before advice" in refused.text
        assert client.get(f"/v1/advice/{advice['advice_id']}", headers=auth["advise"]).json()["job_id"] is None

        given = _trace_s(client, "kth", advice["created_s"])  # the advised job: one submitted after the answer
        fresh: list[dict] = []
        deadline = time.monotonic() + 30
        while not fresh and time.monotonic() < deadline:
            jobs = client.get("/v1/sites/kth/jobs", headers=auth["read"]).json()["jobs"]
            fresh = sorted(
                (j for j in jobs if j["submit_s"] >= given and (j["req_walltime_s"] or 0) <= 4 * 3600),
                key=lambda j: j["req_walltime_s"] or 0,
            )
            time.sleep(0.2)
        assert fresh, "the replay never showed a job submitted after the advice"
        job = fresh[0]  # a short request: it ends soon at one trace hour per second
        report = {"site": "kth", "job_id": job["job_id"], "stage_in_s": 2.5}
        reported = client.post(url, json=report, headers=auth["advise"])
        assert reported.status_code == 200 and reported.json()["job_id"] == job["job_id"], reported.text
        again = client.post(url, json=report, headers=auth["advise"])  # a retry: the same answer
        assert again.status_code == 200 and again.json()["job_id"] == job["job_id"]
        assert again.json()["reported_s"] == reported.json()["reported_s"]
        other = client.post(url, json={"site": "kth", "job_id": "999999"}, headers=auth["advise"])
        assert other.status_code == 409 and f"already reported as job {job['job_id']} at kth" in other.text
        wrong = client.post(url, json={"site": "mars", "job_id": "1"}, headers=auth["advise"])
        assert wrong.status_code == 404
        record: dict = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            record = client.get(f"/v1/advice/{advice['advice_id']}", headers=auth["advise"]).json()
            if record["outcome"] and record["outcome"].get("realised"):
                break
            time.sleep(0.3)
        outcome = record["outcome"]
        assert outcome and outcome["realised"], f"the advised job never ended: {record}"
        metrics = client.get("/metrics").text
        assert "ctwin_advice_outcomes_total 1.0" in metrics
    store = DuckDBStore(tmp_path / "ctwin.duckdb", read_only=True)
    try:
        row = store.jobs(site="kth").filter(store.jobs(site="kth")["job_id"] == job["job_id"]).row(0, named=True)
    finally:
        store.close()
    realised = outcome["realised"]
    assert realised["wait_s"] == row["start_s"] - row["submit_s"] and realised["run_s"] == row["end_s"] - row["start_s"]
    assert realised["stage_in_s"] == 2.5 and outcome["followed_advice"] is True
    predicted = outcome["predicted"]
    assert outcome["error_s"]["run_s"] == pytest.approx(realised["run_s"] - predicted["run_s"])
    assert outcome["regret_s"] == 0.0  # no other site was feasible
    assert record["hook"] == "sbatch"  # the log says which scheduler hook handed the answer out
    assert record["job_id"] == job["job_id"]  # the first report kept
