"""The advice page's render functions over a real Advisor (a live twin fed as a collector would,
tests/twin/advice/test_live_advisor.py): the job read from the URL, every site ranked, the log."""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs

import dash
import pytest

from dashboards import ids
from dashboards.advice import PAGE, _start, render_advice, render_log
from dashboards.advice_form import KEYS, advice_query, form_state, parse_job
from dashboards.app import PAGES, create_dash
from tests.dashboards.dom import text, walk, with_attr
from tests.dashboards.twin_double import NOW_S, REPLAY_SPEED, TRACE_TIME_S, continuum
from tests.twin.advice.test_live_advisor import WALL, Clock, _policy, _twin
from twin.advice.herding import HerdingLedger
from twin.advice.live import Advisor
from twin.advice.log import AdviceLog
from twin.advice.outcome import SiteOutcome
from twin.advice.request import Weights

JOB = "?view=advice&cores=8&walltime=3600&input=10&input_site=home"


@pytest.fixture
def advisor() -> Advisor:
    clock = Clock()
    twin, _ = _twin(clock, {"home": 1.0, "a": 1.2, "b": 1.0}, {"home": 64})
    return Advisor(twin, AdviceLog(None, clock), HerdingLedger(600.0, clock), _policy(), clock=clock)


def test_the_page_is_registered() -> None:
    assert PAGE in PAGES and PAGE.href == "?view=advice" and PAGE.label == "Advice"


def test_the_url_names_the_job_and_a_form_link_round_trips() -> None:
    form = parse_job(JOB + "&objective=cost&memory=4&containers=2&affinity=cpu&runtime=podman&risk=p90")
    job = form.request
    assert job is not None and form.error is None
    assert (job.cores, job.walltime_s, job.objective, job.memory_bytes) == (8, 3600, "cost", 4_000_000_000)
    assert job.risk == "p90" and parse_job(JOB).request.risk == "p50"  # type: ignore[union-attr]
    weighted = parse_job(JOB + "&objective=weighted&w_cost=0.5&w_co2=2").request
    assert weighted is not None and weighted.weights == Weights(1.0, 0.5, 0.0, 2.0)
    assert (job.input.size_bytes, job.input.site, job.output.site) == (10e9, "home", None)
    assert (job.container.containers_per_node, job.container.affinity, job.container.runtime) == (2, "cpu", "podman")
    again = parse_job(advice_query(form.values))
    assert again.request == job
    assert parse_qs(advice_query({"cores": 8, "walltime": "", "gpus": None})[1:]) == {
        "view": ["advice"],
        "cores": ["8"],
    }
    assert parse_job("?view=advice") == parse_job("?view=advice").__class__(None, None, {})


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("?view=advice&cores=x&walltime=60", "cores must be a number"),
        ("?view=advice&cores=2.5&walltime=60", "cores must be a whole number"),
        ("?view=advice&cores=4", "a job needs cores and a walltime"),
        ("?view=advice&cores=4&walltime=400d", "walltime must be at most 366 days"),
        ("?view=advice&cores=4&walltime=soon", "walltime: invalid duration 'soon'"),
        ("?view=advice&cores=4&walltime=-5", "walltime: "),
        ("?view=advice&cores=4&walltime=60&objective=speed", "objective must be one of"),
        ("?view=advice&cores=4&walltime=60&affinity=numa", "affinity must be one of"),
        ("?view=advice&cores=4&walltime=60&risk=p99", "risk must be p50"),
        ("?view=advice&cores=4&walltime=60&w_cost=-1", "weight of cost must be a number from 0"),
        ("?view=advice&cores=4&walltime=60&objective=weighted&w_turnaround=0", "needs a weight above 0"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(advisor: Advisor, search: str, message: str) -> None:
    assert message in (parse_job(search).error or "")
    _links, summary, fig, table = render_advice(advisor, search)
    assert message in text(summary) and table is None and not fig.data
    assert advisor.log.recent(5) == []  # nothing asked


def test_every_site_is_ranked_with_stacked_stages_and_whiskers(advisor: Advisor) -> None:
    links, summary, fig, table = render_advice(advisor, JOB, advisor.twin)
    assert text(summary).startswith("Recommended: a.") and "3 of 3 sites can run it" in text(summary)
    stages = [t for t in fig.data if t.type == "bar"]
    assert [t.name for t in stages] == ["stage-in", "wait", "run", "stage-out"]
    assert fig.layout.barmode == "stack" and list(stages[0].y) == ["1. a", "2. b", "3. home"]
    assert stages[0].x[0] > 0 and stages[2].x[0] == pytest.approx(1.0)  # no history: the walltime asked
    whisker = next(t for t in fig.data if t.name == "turnaround p10–p90")
    total = sum(t.x[0] for t in stages)
    assert whisker.x[0] == pytest.approx(total) and whisker.error_x.array[0] >= 0
    rows = with_attr(table, ids.ADVICE_SITE_ATTR)
    assert list(rows) == ["a", "b", "home"]
    assert "EUR" in text(rows["a"]) and "10 GB in" in text(rows["a"]) and "queue 0 s ago" in text(rows["a"])
    assert list(with_attr(links, ids.ADVICE_ATTR)) == ["turnaround", "cost", "energy", "co2", "weighted"]
    hrefs = [str(getattr(c, "href", "")) for c in walk(links)]
    cost = next(h for h in hrefs if "objective=cost" in h)
    assert parse_job(cost).request.objective == "cost" and "cores=8" in cost  # type: ignore[union-attr]


def test_a_weighted_ranking_is_scored_with_the_weights_of_the_url(advisor: Advisor) -> None:
    search = JOB + "&objective=weighted&w_turnaround=1&w_cost=1"
    _l, summary, _f, table = render_advice(advisor, search)
    assert "ranked by weighted" in text(summary) and table is not None
    request = parse_job(search).request
    assert request is not None and request.weights == Weights(1.0, 1.0, 0.0, 0.0)
    same = advisor.preview(request)
    assert list(with_attr(table, ids.ADVICE_SITE_ATTR)) == [o.site for o in same.ranked]
    assert same.objective == "weighted" and same.ranked[0].score is not None


def test_an_answer_no_site_can_take_lists_every_reason(advisor: Advisor) -> None:
    _links, summary, fig, table = render_advice(advisor, "?view=advice&cores=100000&walltime=60")
    assert text(summary).startswith("No site can run this job.")
    rows = with_attr(table, ids.ADVICE_SITE_ATTR)
    assert all("excluded (capacity): needs 100000 cores" in text(r) for r in rows.values()) and len(rows) == 3
    notes = next(t for t in fig.data if t.type == "scatter" and t.mode == "text")
    assert list(notes.text) == ["  excluded: capacity"] * 3


def test_an_unknown_site_and_a_missing_advisor_say_so(advisor: Advisor) -> None:
    _l, summary, _f, table = render_advice(advisor, JOB.replace("input_site=home", "input_site=mars"))
    assert "No advice: no site named 'mars'" in text(summary) and table is None
    _l, summary, _f, table = render_advice(None, JOB)
    assert "No advisor in this service" in text(summary) and table is None
    assert "No advisor" in text(render_log(None))
    _l, summary, _f, _t = render_advice(advisor, "?view=advice")
    assert "Fill in the job" in text(summary)


def test_the_page_previews_and_the_log_lists_what_was_handed_out(advisor: Advisor) -> None:
    """The page's ranking is a preview (not booked, not logged); the log shows the answers the API
    and the hooks handed out, newest first, and the realised outcome once joined."""
    assert "No advice handed out yet" in text(render_log(advisor))
    render_advice(advisor, JOB)
    assert advisor.log.recent(5) == [] and len(advisor.ledger) == 0  # a render books and logs nothing
    job = parse_job(JOB).request
    assert job is not None
    handed = advisor.advise(job, "sbatch")
    advisor.clock.now += 5  # type: ignore[attr-defined]
    advisor.advise(parse_job(JOB + "&objective=cost").request, "api")  # type: ignore[arg-type]
    log = with_attr(render_log(advisor), ids.ADVICE_ID_ATTR)
    newest, oldest = list(log.values())
    assert "REST API" in text(newest) and "cost" in text(newest)
    assert "ctwin sbatch" in text(oldest) and "not reported" in text(oldest) and list(log)[1] == handed.advice_id
    advisor.report(handed.advice_id, "a", "7")
    assert "reported: a job 7" in text(with_attr(render_log(advisor), ids.ADVICE_ID_ATTR)[handed.advice_id])
    import polars as pl

    from telemetry.jobs import conform_jobs

    ended = {"site": "a", "job_id": "7", "user": "x", "state": "COMPLETED", "submit_s": int(WALL),
             "start_s": int(WALL) + 60, "end_s": int(WALL) + 3660, "req_walltime_s": 3600, "alloc_cores": 8,
             "observed_s": int(WALL) + 3700}  # fmt: skip
    assert advisor.log.observe("a", conform_jobs(pl.DataFrame([ended])).collect()) == 1
    joined = text(with_attr(render_log(advisor), ids.ADVICE_ID_ATTR)[handed.advice_id])
    assert "COMPLETED at a" in joined and "1 h" in joined and "+" in joined  # realised later than predicted


def test_a_replayed_sites_start_is_also_in_its_trace_clock() -> None:
    reader = continuum()
    replay = SiteOutcome("swf-replay", "hpc", True, "", start_at_s=NOW_S + 60)
    shown = _start(replay, {s.name: s for s in reader.sites()})
    assert shown.startswith("2027-01-15 08:01 UTC · trace ")
    from dashboards import fmt

    assert shown.endswith(" · trace " + fmt.utc(TRACE_TIME_S + 60 * REPLAY_SPEED).removesuffix(" UTC"))
    assert _start(SiteOutcome("hpc1", "hpc", True, "", start_at_s=NOW_S), {}) == fmt.utc(NOW_S)


def test_the_form_follows_the_url_and_offers_the_twins_sites() -> None:
    values, options = form_state(continuum(), JOB)
    assert values[0] == "8" and values[-2:] == ["turnaround", "p50"]
    assert [o["value"] for o in options[0]] == [s.name for s in continuum().sites()]


def test_callbacks_do_nothing_while_the_page_is_hidden(advisor: Advisor) -> None:
    app = create_dash(continuum(), advisor=advisor)
    advise = next(cb for key, cb in app.callback_map.items() if f"{ids.ADVICE_LOG}.children" in key)
    hidden = asyncio.run(advise["callback"].__wrapped__("?site=hpc1"))
    assert hidden == (dash.no_update,) * 6 and advisor.log.recent(1) == []
    shown = asyncio.run(advise["callback"].__wrapped__(JOB))
    assert text(shown[1]).startswith("Recommended: a.") and advisor.log.recent(5) == [] and len(advisor.ledger) == 0


def test_the_skeleton_has_every_field_and_starts_hidden() -> None:
    from dashboards.advice import layout

    tree = layout()
    found = {getattr(c, "id", None) for c in walk(tree)}
    assert {f"{ids.ADVICE_FIELD}-{k}" for k in KEYS} <= found
    assert {ids.ADVICE_SUBMIT, ids.ADVICE_GRAPH, ids.ADVICE_RANKING, ids.ADVICE_LOG, ids.ADVICE_SUMMARY} <= found
    assert getattr(tree, "style", None) == {"display": "none"} and "Recent advice" in text(tree)
