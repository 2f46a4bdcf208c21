"""A batch site's "Queue and forecast" section, rendered as a callback would, from the test reader
and from the real twin (build_twin): the pending jobs table, the Gantt figure, the forecast's past accuracy,
and every empty or failing state the section must survive."""

from __future__ import annotations

import json

import plotly.graph_objects as go
import polars as pl
import pytest
from dash import dcc
from dash.dash_table.DataTable import DataTable

from dashboards import fmt, ids
from dashboards.app import PAGES
from dashboards.figures import MAX_GANTT_JOBS, MAX_POINTS, TRACE_TYPES, error_cdf_figure, forecast_figure
from dashboards.overview import HIDDEN, SHOWN, layout, render_forecast, render_history, sized
from dashboards.pages import shell
from dashboards.parts import MAX_QUEUE_ROWS, QUEUE_PAGE_SIZE, queue_columns, queue_rows
from telemetry.jobs import conform_jobs
from telemetry.schema import Batch, Sample
from tests.dashboards.dom import text, walk
from tests.dashboards.twin_double import NOW_S, REPLAY_ERRORS_S, FakeReader, forecast_jobs, queue_forecast
from twin.live import Twin, build_twin
from twin.topology import CollectorSpec, SiteSpec, Topology

NOW = int(NOW_S)


def notes(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def column_ids(columns: list[dict[str, object]]) -> list[object]:
    return [c["id"] for c in columns]


# --- a batch site with a queue -------------------------------------------------------------------


def test_a_batch_site_shows_its_pending_jobs_next_to_start_first(reader: FakeReader) -> None:
    out = render_forecast(reader, "?site=hpc1")
    assert out.section_style == SHOWN and out.queue_style == SHOWN
    assert len(out.rows) == 45
    # the double predicts job 1044 first, 1043 15 min later...: the table follows the prediction
    assert [r["job"] for r in out.rows[:3]] == ["1044", "1043", "1042"]
    assert out.rows[0] == {
        "job": "1044",
        "cpus": 4,
        "requested": "1 h",
        "waiting": "7 h 30 min",
        "start": "now",
        "scheduler": "in 1 h",
        "band": "–",
    }
    assert [r["start"] for r in out.rows[1:4]] == ["in 15 min", "in 30 min", "in 45 min"]
    assert out.rows[-1]["start"] == "in 11 h"
    summary = text(out.summary)
    assert "45 pending jobs, simulated forward on 4,096 CPUs" in summary
    assert "each user's last two jobs" in summary
    assert "site clock 2027-01-15 08:00 UTC" in summary and "120 running" in summary
    assert "forecast took 12 ms" in summary


def test_the_gantt_figure_draws_each_job_from_predicted_start_to_end_in_the_tables_order(reader: FakeReader) -> None:
    out = render_forecast(reader, "?site=hpc1")
    bars = [t for t in out.figure.data if t.type == "bar"]
    assert len(bars) == 1
    bar = bars[0]
    assert list(bar.y) == [r["job"] for r in out.rows]
    assert bar.orientation == "h" and out.figure.layout.yaxis.type == "category"
    assert bar.base[0] == 0 and bar.x[0] == pytest.approx(1.0)  # job 1044: now, for an hour
    assert bar.base[1] == pytest.approx(0.25)  # 1043 in 15 min
    assert out.figure.layout.uirevision == "forecast-hpc1"  # a refresh keeps the user's zoom
    assert bar.marker.cmax == 4096  # colour is the share of the site
    scheduler = [t for t in out.figure.data if t.name == "scheduler's estimate"]
    assert len(scheduler) == 1 and scheduler[0].x[0] == pytest.approx(1.0)
    json.loads(out.figure.to_json())


def test_relative_times_are_measured_on_the_sites_clock_not_the_wall_clock(reader: FakeReader) -> None:
    """A replayed site's clock is in 1996 or 2007: "waiting 54 years" would be the wall clock's answer."""
    out = render_forecast(reader, "?site=swf-replay")
    assert out.rows[0]["start"] == "now" and out.rows[0]["waiting"] == "2 h"
    assert "site clock 2007-01-28 16:00 UTC" in text(out.summary)
    assert column_ids(out.columns) == ["job", "cpus", "requested", "waiting", "start"]  # no scheduler in a replay


def test_past_accuracy_shows_the_shares_the_median_and_the_count(reader: FakeReader) -> None:
    out = render_forecast(reader, "?site=swf-replay")
    stats = text(out.accuracy)
    for part in (
        "25 % within ±1 min",
        "50 % within ±10 min",
        "75 % within ±1 h",
        "14 min median error",
        "8 forecasts scored",
        "50 % started later than forecast",
    ):
        assert part in stats, (part, stats)
    line = out.accuracy_figure.data[0]
    assert line.type == "scatter" and out.accuracy_figure.layout.xaxis.type == "log"
    assert sorted(line.x) == list(line.x) and line.x[0] == 30 and line.x[-1] == 90_000
    assert line.y[-1] == 1.0 and line.y[0] == pytest.approx(1 / 8)


def test_no_forecast_scored_yet_says_so(reader: FakeReader) -> None:
    out = render_forecast(reader, "?site=hpc1")
    assert "No forecast scored yet" in text(out.accuracy)
    assert not out.accuracy_figure.data and notes(out.accuracy_figure) == ["no forecast scored yet"]


def test_an_empty_queue_renders_without_a_table_or_bars(reader: FakeReader) -> None:
    reader.forecasts["hpc1"] = queue_forecast("hpc1", NOW, forecast_jobs(NOW, 0))
    out = render_forecast(reader, "?site=hpc1")
    assert out.section_style == SHOWN and out.queue_style == HIDDEN and out.rows == []
    assert "No pending jobs" in text(out.summary)
    assert not out.figure.data and notes(out.figure) == ["no pending jobs: nothing to forecast"]
    assert column_ids(out.columns) == ["job", "cpus", "requested", "waiting", "start"]


# --- when there is nothing to show ---------------------------------------------------------------


@pytest.mark.parametrize("search", [None, "?site=local", "?site=cloud-eu", "?site=grid", "?site=atlantis"])
def test_sites_without_a_batch_scheduler_are_never_forecast(reader: FakeReader, search: str | None) -> None:
    out = render_forecast(reader, search)
    assert out.section_style == HIDDEN and out.rows == []
    assert reader.forecast_calls == []


@pytest.mark.parametrize("missing", [None, LookupError("no batch state yet"), KeyError("hpc1")])
def test_a_batch_site_without_scheduler_state_hides_the_section(reader: FakeReader, missing: Exception | None) -> None:
    if missing is None:
        del reader.forecasts["hpc1"]  # the double then raises LookupError, like the twin before a collection
    else:
        reader.forecasts["hpc1"] = missing
    out = render_forecast(reader, "?site=hpc1")
    assert out.section_style == HIDDEN and out.rows == [] and not out.figure.data
    assert reader.forecast_calls == ["hpc1"]


def test_a_failing_forecast_is_shown_with_its_reason(reader: FakeReader) -> None:
    reader.forecasts["hpc1"] = ValueError("site 'hpc1': no CPUs in service, nothing can be forecast")
    out = render_forecast(reader, "?site=hpc1")
    assert out.section_style == SHOWN and out.queue_style == HIDDEN
    assert "forecast unavailable: ValueError: site 'hpc1': no CPUs in service" in text(out.summary)
    assert notes(out.figure)[0].startswith("forecast unavailable")


# --- the table's and the figure's details --------------------------------------------------------


def test_band_and_scheduler_columns_appear_only_when_the_forecast_has_them() -> None:
    plain = queue_forecast("s", NOW, forecast_jobs(NOW, 3))
    assert column_ids(queue_columns(plain)) == ["job", "cpus", "requested", "waiting", "start"]
    both = queue_forecast("s", NOW, forecast_jobs(NOW, 3, scheduler=True, band=True))
    assert column_ids(queue_columns(both))[-2:] == ["scheduler", "band"]
    rows = queue_rows(both)
    assert [r["band"] for r in rows] == ["now – in 10 min", "in 5 min – in 25 min", "in 20 min – in 40 min"]
    fig = forecast_figure(both.jobs, both.now_s)
    band = next(t for t in fig.data if t.name == "p10–p90 start")
    assert list(band.error_x.array) == pytest.approx([600 / 3600] * 3)
    assert list(band.error_x.arrayminus) == pytest.approx([0, 600 / 3600, 600 / 3600])  # no start before "now"


def test_a_job_the_site_cannot_run_is_listed_last_and_not_drawn() -> None:
    forecast = queue_forecast("s", NOW, forecast_jobs(NOW, 3, wide=1), corrections={"request_assumed": 2})
    rows = queue_rows(forecast)
    assert rows[-1]["job"] == "9000" and rows[-1]["start"] == "never: wider than the site"
    assert len(forecast_figure(forecast.jobs, NOW).data[0].y) == 3


def test_corrections_are_named_on_the_section(reader: FakeReader) -> None:
    reader.forecasts["hpc1"] = queue_forecast(
        "hpc1", NOW, forecast_jobs(NOW, 2), corrections={"wider_than_site": 2, "request_assumed": 1}
    )
    summary = text(render_forecast(reader, "?site=hpc1").summary)
    assert "Corrected to make the forecast possible: 2 wider than site, 1 request assumed." in summary


def test_a_long_queue_is_capped_on_the_wire_but_counted(reader: FakeReader) -> None:
    reader.forecasts["hpc1"] = queue_forecast("hpc1", NOW, forecast_jobs(NOW, 5000))
    out = render_forecast(reader, "?site=hpc1")
    assert len(out.rows) == MAX_QUEUE_ROWS and out.rows[0]["start"] == "now"
    assert "the table lists the next 1,000 to start" in text(out.summary)
    assert len(out.figure.data[0].y) == MAX_GANTT_JOBS
    assert out.figure.layout.title.text == "the next 200 of 5000 pending jobs"
    assert out.figure.layout.height <= 720
    assert len(out.figure.to_json()) < 100_000


def test_the_error_cdf_keeps_the_point_budget_and_takes_any_error() -> None:
    errors = [(-1) ** i * i * 7 for i in range(5000)]
    fig = error_cdf_figure(errors)
    line = fig.data[0]
    assert len(line.x) <= MAX_POINTS and line.y[-1] == 1.0 and line.x[-1] == 4999 * 7
    assert min(line.x) >= 1  # a zero error sits at 1 s on the log axis
    assert error_cdf_figure([]).data == () and error_cdf_figure([0]).data[0].x == (1.0,)


def test_the_section_figures_use_only_the_shipped_plotly_bundle() -> None:
    forecast = queue_forecast("s", NOW, forecast_jobs(NOW, 20, scheduler=True, band=True), errors=REPLAY_ERRORS_S)
    figures = [forecast_figure(forecast.jobs, NOW, processors=128), error_cdf_figure(forecast.recent_errors_s)]
    assert {t.type for f in figures for t in f.data} <= TRACE_TYPES


def test_the_layout_has_the_section_collapsed_with_an_unsortable_paged_table() -> None:
    parts = {c.id: c for c in walk(layout()) if getattr(c, "id", None)}
    assert parts[ids.FORECAST_SECTION].style == HIDDEN
    table = parts[ids.QUEUE_TABLE]
    assert isinstance(table, DataTable)
    assert table.page_size == QUEUE_PAGE_SIZE == 25 and table.sort_action == "none"
    assert {ids.FORECAST_GRAPH, ids.ACCURACY_GRAPH, ids.ACCURACY_STATS, ids.FORECAST_SUMMARY} <= parts.keys()


def test_every_drill_down_graph_is_given_its_figures_height(reader: FakeReader) -> None:
    """dcc.Graph's resize drops a figure's height and fills its container; the container therefore
    carries the height (see overview.sized), refreshed with every figure."""
    out = render_forecast(reader, "?site=hpc1")
    assert out.figure_style == {"height": f"{out.figure.layout.height}px"}
    assert out.accuracy_figure_style == {"height": f"{out.accuracy_figure.layout.height}px"}
    history = render_history(reader, "?site=hpc1", now_s=NOW_S)
    assert history.site_figure_style == {"height": f"{history.site_figure.layout.height}px"} != {"height": "260px"}
    assert history.hosts_figure_style == {"height": "260px"}  # the blank figure's
    overview_graphs = [c for c in walk(layout()) if isinstance(c, dcc.Graph) and c.id != ids.CONTINUUM]
    assert len(overview_graphs) == 4
    graphs = [c for c in walk(shell(PAGES)) if isinstance(c, dcc.Graph) and c.id != ids.CONTINUUM]  # every page's
    assert len(graphs) >= 6 and all(g.style == {"height": f"{g.figure.layout.height}px"} for g in graphs)
    assert sized(go.Figure()) == {}


@pytest.mark.parametrize(
    ("seconds", "spelled"),
    [
        (None, "–"),
        (0, "0 s"),
        (45, "45 s"),
        (90, "2 min"),
        (35 * 60, "35 min"),
        (3600, "1 h"),
        (2 * 3600 + 600, "2 h 10 min"),
        (86_400, "1 d"),
        (3 * 86_400 + 4 * 3600, "3 d 4 h"),
        (-600, "10 min"),
    ],
)
def test_durations_read_at_planning_precision(seconds: float | None, spelled: str) -> None:
    assert fmt.duration(seconds) == spelled


def test_starts_in_says_now_for_a_start_that_is_due() -> None:
    assert [fmt.starts_in(s) for s in (None, -30, 0, 0.5, 1, 2100)] == ["–", "now", "now", "now", "in 1 s", "in 35 min"]


# --- the real twin as the reader -----------------------------------------------------------------

S = 1_000_000_000
T0 = 846_000_000
"""A replay-like site clock (1996), far from the wall clock."""


def _batch_site_twin() -> Twin:
    topology = Topology(
        (
            SiteSpec("sp2", "hpc", collectors=(CollectorSpec("sp2/replay", "replay", 1.0),)),
            SiteSpec("edge", "edge", collectors=(CollectorSpec("edge/node", "node", 1.0),)),
        )
    )
    return build_twin(topology, clock=lambda: float(T0 + 10))


def _jobs(rows: list[dict[str, object]]) -> pl.DataFrame:
    return conform_jobs(pl.DataFrame([{"site": "sp2", "observed_s": T0, **r} for r in rows])).collect()


def test_the_live_twin_answers_queue_forecast_and_the_section_renders_it() -> None:
    twin = _batch_site_twin()
    with pytest.raises(LookupError):
        twin.queue_forecast("sp2")  # no batch state collected yet
    with pytest.raises(KeyError):
        twin.queue_forecast("atlantis")
    assert render_forecast(twin, "?site=sp2").section_style == HIDDEN
    samples = [
        Sample("batch_cpus", 8, {"site": "sp2", "state": "allocated"}, T0 * S),
        Sample("batch_cpus", 0, {"site": "sp2", "state": "idle"}, T0 * S),
        Sample("batch_nodes", 8, {"site": "sp2", "state": "allocated"}, T0 * S),
        Sample("batch_jobs", 1, {"site": "sp2", "state": "running", "partition": "batch"}, T0 * S),
        Sample("batch_jobs", 2, {"site": "sp2", "state": "pending", "partition": "batch"}, T0 * S),
    ]
    twin.state.write(Batch.from_samples(samples))
    running = {"job_id": "r", "user": "u", "state": "RUNNING", "submit_s": T0 - 900, "start_s": T0 - 600}
    twin.state.write_jobs(
        _jobs(
            [
                {**running, "req_walltime_s": 1800, "alloc_cores": 8},
                {
                    "job_id": "p1",
                    "user": "u",
                    "state": "PENDING",
                    "submit_s": T0 - 300,
                    "req_walltime_s": 600,
                    "req_cores": 8,
                },
                {
                    "job_id": "p2",
                    "user": "v",
                    "state": "PENDING",
                    "submit_s": T0 - 60,
                    "req_walltime_s": 60,
                    "req_cores": 4,
                },
            ]
        )
    )
    forecast = twin.queue_forecast("sp2", predictor="requested")
    assert (forecast.site, forecast.now_s, forecast.processors, forecast.predictor) == ("sp2", T0, 8, "requested")
    assert forecast.scored == 0 and forecast.recent_errors_s == () and forecast.within_1h is None
    starts = dict(forecast.jobs.select("job_id", "predicted_start_s").iter_rows())
    assert starts == {"p1": T0 + 1200, "p2": T0 + 1800}  # behind the running job's requested end
    assert not forecast.jobs["hypothetical"].any()

    out = render_forecast(twin, "?site=sp2")  # the twin is a TwinReader: the page renders it as is
    assert out.section_style == SHOWN and [r["job"] for r in out.rows] == ["p1", "p2"]
    assert [r["waiting"] for r in out.rows] == ["5 min", "60 s"]
    assert "site clock 1996-10-22" in text(out.summary)
    assert "No forecast scored yet" in text(out.accuracy)

    # p1 starts 5 min after its first forecast said (T0 + 1200): the forecast's error is scored
    twin.state.write_jobs(
        _jobs([{"job_id": "p1", "user": "u", "state": "RUNNING", "submit_s": T0 - 300, "start_s": T0 + 1500}])
    )
    scored = twin.queue_forecast("sp2")
    assert scored.scored == 1 and scored.recent_errors_s == (-300,)
    assert (scored.within_1min, scored.within_10min, scored.median_abs_error_s) == (0.0, 1.0, 300.0)
    assert "1 forecast scored" in text(render_forecast(twin, "?site=sp2").accuracy)


def test_the_learned_models_runtime_record_shows_when_it_has_one(reader: FakeReader) -> None:
    """Closing the loop (issue 6): the learned runtime model's scored predictions beside the forecast's."""
    from dataclasses import replace

    from dashboards.parts import accuracy_stats

    base = reader.queue_forecast("swf-replay")
    assert "runtime accuracy" not in text(accuracy_stats(base))
    scored = replace(base, runtime_scored=40, runtime_mean_accuracy=0.57, runtime_mae_s=3600.0)
    stats = text(accuracy_stats(scored))
    assert "57 % runtime accuracy (learned model)" in stats and "40 runtimes scored" in stats
