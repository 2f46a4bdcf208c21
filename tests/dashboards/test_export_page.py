"""The export page's render on the Dash component tree, against a real service (replayed site,
DuckDB store): the form, the manifest preview (types, units, row estimate = the export's rows,
join keys, the replay's clock), bad URLs, empty states, and the zip the download builds."""

from __future__ import annotations

import base64
import io
import json
import math
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboards import ids
from dashboards.export import ExportSource, build, choice_of, download, render_preview
from dashboards.pages import Sources
from telemetry.export import replay_clocks
from tests.dashboards.dom import text, with_attr
from tests.dashboards.export_service import running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    with running_service(tmp_path_factory.mktemp("export-page")) as svc:
        yield svc


@pytest.fixture(scope="module")
def source(service: Any) -> ExportSource:
    return ExportSource(service.store, service.salt)


def test_the_preview_names_types_units_rows_joins_and_the_trace_clock(service: Any, source: ExportSource) -> None:
    form, preview = render_preview(service.twin, source, "?view=export&table=jobs&site=kth&range=all")
    choices = with_attr(form, ids.EXPORT_ATTR)
    assert {"table=jobs", "table=samples", "table=advice", "site=kth", "site=local", "format=csv"} <= set(choices)
    shown = text(preview)
    assert "submit_s int64 unix_s" in shown and "req_mem_bytes int64 bytes" in shown
    assert "advice (chosen_site, job_id) → jobs (site, job_id)" in shown
    marks = with_attr(preview, ids.EXPORT_ATTR)
    rows = next(int(k.split("=")[1]) for k in marks if k.startswith("rows="))
    assert rows == service.store.jobs(site="kth").height > 0
    assert "clock=kth" in marks and "× 3,600" in text(marks["clock=kth"])


def test_a_bad_url_says_what_it_did_not_understand(service: Any, source: ExportSource) -> None:
    _, preview = render_preview(service.twin, source, "?view=export&table=users&site=mars&range=1y&format=xls")
    shown = text(preview)
    for problem in ("unknown table 'users'", "no site 'mars'", "unknown range '1y'", "unknown format 'xls'"):
        assert problem in shown
    choice, _ = choice_of("?view=export&table=users", ["kth"])
    assert choice.table == "jobs" and choice.format == "parquet"


def test_empty_states_say_why(service: Any, source: ExportSource) -> None:
    _, preview = render_preview(service.twin, source, "?view=export&table=advice&range=1h")
    assert "0 rows: no advice given in this range" in text(preview)
    _, none = render_preview(service.twin, None, "?view=export")
    assert "No store behind this page" in text(none)


def test_the_download_is_a_zip_of_the_dataset_and_its_manifest(service: Any, source: ExportSource) -> None:
    sent, status = download(service.twin, source, "?view=export&table=samples&site=kth&range=1h&format=csv")
    archive = zipfile.ZipFile(io.BytesIO(base64.b64decode(sent["content"])))
    names = sorted(archive.namelist())
    data, manifest_name = names[0], names[1]
    assert manifest_name == data + ".manifest.json" and sent["filename"].endswith(".csv.zip")
    frame = pl.read_csv(archive.read(data))
    manifest = json.loads(archive.read(manifest_name))
    assert frame.height == manifest["rows"] > 0 and set(frame["site"].unique()) == {"kth"}
    assert manifest["time_bounds"]["resolved_from"] == {"start": "requested", "end": "requested"}
    assert "kth" in manifest["time_bounds"]["trace"] and manifest["clocks"]["replayed"][0]["site"] == "kth"
    assert f"Exported {manifest['rows']:,} rows" in status


def test_jobs_of_a_replayed_site_are_chosen_in_its_trace_clock(
    service: Any, source: ExportSource, tmp_path: Path
) -> None:
    clocks = replay_clocks(service.twin.sites())
    choice, _ = choice_of("?view=export&table=jobs&site=kth&range=7d", ["kth"])
    now = clocks[0].wall_origin_s
    path = build(source, choice, clocks, now, tmp_path)
    manifest = json.loads((tmp_path / (path.name + ".manifest.json")).read_text())
    trace = manifest["time_bounds"]["trace"]["kth"]
    # [start, end) on integer submit_s: both ends rounded up; 7 wall days = 7 × 3600 trace days back
    assert trace["end_s"] == math.ceil(clocks[0].trace_of(now))
    assert trace["start_s"] == math.ceil(clocks[0].trace_of(now - 7 * 86400))
    assert manifest["time_bounds"]["wall_utc"]["end_s"] == pytest.approx(now, abs=1)


def test_the_page_is_registered(service: Any, source: ExportSource) -> None:
    from dashboards.app import PAGES

    assert [p.label for p in PAGES if p.view == "export"] == ["Export"]
    assert Sources(reader=service.twin, export=source).export is source


def test_a_session_without_the_export_scope_is_refused() -> None:
    from dash.backends import _fastapi
    from starlette.requests import Request

    from dashboards.export import _caller_may_export
    from service.auth import TokenInfo

    def with_token(scopes: tuple[str, ...] | None) -> bool:
        state = {} if scopes is None else {"token": TokenInfo(id="a1b2c3d4", name="t", scopes=scopes, created_s=0.0)}
        request = Request({"type": "http", "method": "POST", "path": "/", "headers": [], "state": state})
        reset = _fastapi._current_request_var.set(request)  # type: ignore[arg-type]
        try:
            return _caller_may_export()
        finally:
            _fastapi._current_request_var.reset(reset)

    assert with_token(("read",)) is False
    assert with_token(("read", "export")) is True and with_token(("admin",)) is True
    assert with_token(None) is True  # the UI without auth (loopback): no token to check
    assert _caller_may_export() is False  # no request at all (not a callback): fail closed


def test_the_export_reports_progress_under_its_ticket(service: Any, source: ExportSource, tmp_path: Path) -> None:
    from dashboards.export import PROGRESS, progress_of

    seen: list[float] = []
    choice, _ = choice_of("?view=export&table=samples&site=local&range=1h", ["local"])
    build(source, choice, [], time.time(), tmp_path, seen.append)
    assert seen and seen[-1] == 1.0 and seen == sorted(seen)
    PROGRESS["t-1"] = 0.42
    try:
        assert progress_of("t-1") == ({}, "0.42", "Exporting… 42%")
    finally:
        del PROGRESS["t-1"]
    assert progress_of("t-1")[0] == {"display": "none"}  # no export running under it: no bar
    download(service.twin, source, "?view=export&table=jobs&site=kth", "t-2")
    assert "t-2" not in PROGRESS  # a finished export leaves nothing behind
