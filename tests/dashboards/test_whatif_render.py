"""The what-if view's component tree over a real twin (two sites replaying KTH SP2, a cloud site)
and its real Advisor: each change from the URL, the affected jobs in their site's clock, the two
rankings side by side, and clear messages for what cannot be."""

from __future__ import annotations

import dash
import pytest

from dashboards import ids
from dashboards.pages import Sources
from dashboards.whatif import PAGE, parse_change, render
from tests.dashboards.dom import text, walk, with_attr
from tests.twin.whatif_helpers import Replayed, replayed
from twin.whatif import LinkBandwidth, MoveJob, Nodes


@pytest.fixture(scope="module")
def r() -> Replayed:
    return replayed()


def _rows(node: object) -> dict[str, str]:
    return {k: text(v) for k, v in with_attr(node, ids.WHATIF_JOB_ATTR).items()}


def test_no_change_yet_shows_the_form_and_todays_ranking_for_a_typical_job(r: Replayed) -> None:
    form, summary, jobs, job_form, ranking = render(r.advisor, "?view=whatif")
    assert set(with_attr(form, ids.WHATIF_ATTR)) == {
        f"change={k}" for k in ("move", "nodes", "down", "link", "bandwidth")
    }
    assert text(summary) == "Choose a change above." and "no job's start moves" in text(jobs)
    assert "Ranking for 4 cores for 1 h, 1 GB of input at kth" in text(job_form)
    ranked = with_attr(ranking, ids.WHATIF_SITE_ATTR)
    assert set(ranked) == {"today:kth", "today:kth2", "today:cloud"}


def test_a_move_lists_the_affected_jobs_in_the_trace_clock_and_both_rankings(r: Replayed) -> None:
    base = r.twin.queues.base("kth")
    job = str(base.forecast.jobs.sort("predicted_wait_s", descending=True, nulls_last=True)["job_id"][0])
    search = f"?view=whatif&change=move&from=kth&job={job}&to=kth2"
    form, summary, jobs, _job_form, ranking = render(r.advisor, search)
    choices = with_attr(form, ids.WHATIF_ATTR)
    assert {"from=kth", "from=kth2", f"job={job}", "to=kth2"} <= set(choices)
    assert "to=kth" not in choices  # not back to where it is
    assert text(summary).startswith(f"Scenario: move queued job {job} from kth to kth2.")
    rows = _rows(jobs)
    assert job in rows and rows[job].startswith(f"{job} kth → kth2") and "moved from kth" in rows[job]
    assert all("trace time" in row for row in rows.values())  # a replayed site's starts, labelled
    assert any("earlier" in row for row in rows.values())
    ranked = with_attr(ranking, ids.WHATIF_SITE_ATTR)
    assert {k.split(":")[0] for k in ranked} == {"today", "scenario"}
    assert "Under the scenario" in text(ranking)


def test_a_cloud_site_down_moves_no_queue_and_says_why(r: Replayed) -> None:
    _form, summary, jobs, _, ranking = render(r.advisor, "?view=whatif&change=down&site=cloud")
    assert "0 job(s) affected" in text(summary) and "a site without a batch queue has no queued jobs" in text(jobs)
    assert "excluded: down" in text(with_attr(ranking, ids.WHATIF_SITE_ATTR)["scenario:cloud"])


def test_a_drain_delays_and_says_so(r: Replayed) -> None:
    _form, summary, jobs, _, _ = render(r.advisor, "?view=whatif&change=nodes&site=kth2&drain=16")
    assert "drain 16 node(s) at kth2" in text(summary) and "0 start earlier" in text(summary)
    assert "a node is counted as 1 core" in text(summary)
    assert _rows(jobs) and all(" later " in row for row in _rows(jobs).values())


def test_a_site_down_is_excluded_with_its_reason_and_a_slower_link_lengthens_stage_in(r: Replayed) -> None:
    _, _, _, _, ranking = render(r.advisor, "?view=whatif&change=down&site=kth2")
    after = with_attr(ranking, ids.WHATIF_SITE_ATTR)
    assert "excluded: down: taken down in this what-if" in text(after["scenario:kth2"])
    assert "excluded" not in text(after["today:kth2"])
    _, _, jobs, _, ranking = render(r.advisor, "?view=whatif&change=bandwidth&a=kth&b=kth2&gbps=0.1&gb=100")
    assert "a link only moves data" in text(jobs)
    after = with_attr(ranking, ids.WHATIF_SITE_ATTR)
    assert text(after["today:kth2"]) != text(after["scenario:kth2"])
    changed = [c for c in walk(ranking) if getattr(c, "className", None) == "changed"]
    assert changed  # the rows the scenario moved are marked


@pytest.mark.parametrize(
    ("search", "says"),
    [
        (
            "?view=whatif&change=move&from=kth&job=nope&to=kth2",
            "This what-if cannot be run: no job 'nope' in the queue of kth",
        ),
        ("?view=whatif&change=down&site=atlantis", "no site named 'atlantis'"),
        ("?view=whatif&change=link&a=kth2&b=kth2", "no link between 'kth2' and 'kth2'"),
        ("?view=whatif&change=nodes&site=kth&drain=500", "leaves kth no CPU"),
        ("?view=whatif&change=bandwidth&a=kth&b=kth2&gbps=fast", "Not a bandwidth: 'fast'"),
        ("?view=whatif&change=teleport", "Unknown change 'teleport'"),
        ("?view=whatif&change=move&from=cloud&job=1&to=kth", "cannot move a job from cloud"),
    ],
)
def test_bad_input_is_a_message_not_a_traceback(r: Replayed, search: str, says: str) -> None:
    _form, summary, *_ = render(r.advisor, search)
    assert says in text(summary)


def test_without_an_advisor_the_page_says_why() -> None:
    _form, summary, _, _, ranking = render(None, "?view=whatif&change=down&site=a")
    assert "No placement advisor in this service" in text(summary) and "No placement advisor" in text(ranking)


def test_the_url_is_parsed_leniently() -> None:
    assert parse_change({"change": "move", "job": "7", "from": "a", "to": "b"}) == (MoveJob("7", "a", "b"), "")
    assert parse_change({"change": "nodes", "site": "a", "add": "4"}) == (Nodes("a", 4, 0), "")
    assert parse_change({"change": "bandwidth", "a": "x", "b": "y", "gbps": "2.5"}) == (
        LinkBandwidth("x", "y", 2.5),
        "",
    )
    assert parse_change({"change": "move", "from": "a"})[1] == "Choose a queued job at a."
    assert parse_change({"change": "nodes", "site": "a", "add": "-3"})[0] is None


def test_the_callback_answers_nothing_while_the_page_is_hidden(r: Replayed) -> None:
    app = dash.Dash(__name__)
    PAGE.register(app, Sources(reader=r.twin, advisor=r.advisor))
    callback = next(iter(app.callback_map.values()))["callback"]
    import asyncio

    hidden = asyncio.run(callback.__wrapped__("?view=containers"))
    assert hidden == (dash.no_update,) * 5
    shown = asyncio.run(callback.__wrapped__("?view=whatif"))
    assert text(shown[1]) == "Choose a change above."
