"""The what-if view (`?view=whatif`): change the continuum on paper — move a queued job, add or
drain nodes, take a site or a link down, change a link's bandwidth — and see, side by side with
today, every affected job's predicted start and the ranking of sites for a job.

The scenario is run by twin.whatif on copies of the cached queue bases (the live forecasts are
never touched), only the affected sites re-simulated. Everything chosen is in the query string
(`?view=whatif&change=move&job=42&from=a&to=b&cores=4&hours=1&gb=1`), so a link shows what its
sender saw. Nothing is simulated until a change is chosen, so the first render is only the form
and today's ranking (cached profiles). Job starts are in each site's own clock: trace time for a
replayed site, labelled so (dashboards.clocks).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import dash
import polars as pl
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import fmt, ids
from dashboards.clocks import clock_of
from dashboards.pages import HIDDEN, Page, Sources, query
from dashboards.parts import _attr, _table
from twin.advice.live import Advisor
from twin.advice.outcome import Advice, SiteOutcome
from twin.advice.request import DataSpec, JobRequest
from twin.errors import TwinError
from twin.whatif import Change, Comparison, LinkBandwidth, LinkDown, MoveJob, Nodes, SiteDown, WhatIf

__all__ = ["PAGE", "VIEW", "layout", "parse_change", "render", "whatif_query"]

VIEW = "whatif"
CHANGES = {
    "move": "move a queued job",
    "nodes": "add or drain nodes",
    "down": "take a site down",
    "link": "take a link down",
    "bandwidth": "change a link's bandwidth",
}
NODE_STEPS = (-16, -4, -1, 1, 4, 16)
GBPS = (0.1, 1.0, 10.0, 100.0)
CORES = (1, 4, 16, 64)
HOURS = (0.5, 1.0, 4.0, 24.0)
GBS = (0.0, 1.0, 100.0)
TYPICAL = {"cores": "4", "hours": "1", "gb": "1"}
"""The ranking's default job: 4 cores for an hour, 1 GB of input at the home site."""
MAX_JOB_CHOICES = 8
MAX_ROWS = 200
RANKING_KEYS = ("cores", "hours", "gb")
SCENARIO_KEYS = ("change", "job", "from", "to", "site", "add", "drain", "a", "b", "gbps")


def whatif_query(**params: Any) -> str:
    """The page's link for these parameters (unset and empty ones left out)."""
    clean = {k: v for k, v in params.items() if v not in (None, "")}
    return "?" + urlencode({"view": VIEW, **clean})


def layout() -> Component:
    return html.Section(
        [
            html.H2("What if…"),
            html.P(
                "Change the continuum on paper and compare with today: each affected job's predicted start, and"
                " where a job would be placed. Simulated on copies of the twin's queue forecasts; nothing live"
                " changes and nothing is booked.",
                className="muted",
            ),
            html.Nav(id=ids.WHATIF_FORM, className="choices whatif-form"),
            html.Div(id=ids.WHATIF_SUMMARY, className="whatif-summary"),
            html.H3("Affected jobs"),
            html.Div(id=ids.WHATIF_JOBS),
            html.H3("Ranking for a job"),
            html.Nav(id=ids.WHATIF_JOB_FORM, className="choices"),
            html.Div(id=ids.WHATIF_RANKING, className="whatif-side"),
        ],
        id=ids.WHATIF_VIEW,
        className="panel",
        style=HIDDEN,
    )


# ---------------------------------------------------------------------- the URL
def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None


def _float(text: str | None) -> float | None:
    try:
        value = float(text) if text is not None else None
    except ValueError:
        return None
    return value if value is not None and math.isfinite(value) else None


def parse_change(q: Mapping[str, str]) -> tuple[Change | None, str]:
    """The change the URL names, or None and what is still to choose (or what is wrong)."""
    kind = q.get("change")
    if kind is None:
        return None, "Choose a change above."
    if kind not in CHANGES:
        return None, f"Unknown change {kind!r}: choose one of {', '.join(CHANGES)}."
    if kind == "move":
        job, a, b = q.get("job"), q.get("from"), q.get("to")
        if not a:
            return None, "Choose the site to move a job from."
        if not job:
            return None, f"Choose a queued job at {a}."
        if not b:
            return None, f"Choose where job {job} moves to."
        return MoveJob(job, a, b), ""
    if kind == "nodes":
        site = q.get("site")
        if not site:
            return None, "Choose a batch site."
        add, drain = _int(q.get("add")), _int(q.get("drain"))
        if add is None and drain is None:
            return None, f"Choose how many nodes to add to or drain at {site}."
        return Nodes(site, add or 0, drain or 0), ""
    if kind == "down":
        site = q.get("site")
        return (SiteDown(site), "") if site else (None, "Choose the site to take down.")
    a, b = q.get("a"), q.get("b")
    if not a or not b:
        return None, "Choose a link."
    if kind == "link":
        return LinkDown(a, b), ""
    gbps = _float(q.get("gbps"))
    if gbps is None:
        return None, f"Choose the bandwidth of {a}–{b}." if "gbps" not in q else f"Not a bandwidth: {q['gbps']!r}."
    return LinkBandwidth(a, b, gbps), ""


def _request(q: Mapping[str, str], home: str) -> tuple[JobRequest, str]:
    """The ranking's job from the URL (a bad value falls back to the typical job's)."""
    cores = _int(q.get("cores")) or int(TYPICAL["cores"])
    hours = _float(q.get("hours"))
    hours = hours if hours is not None and 0 < hours <= 366 * 24 else float(TYPICAL["hours"])
    gb = _float(q.get("gb"))
    gb = gb if gb is not None and 0 <= gb <= 1e6 else float(TYPICAL["gb"])
    request = JobRequest(cores=max(1, cores), walltime_s=max(1, round(hours * 3600)), input=DataSpec(gb * 1e9))
    words = f"{request.cores} cores for {fmt.duration(request.walltime_s)}, {gb:g} GB of input at {home}"
    return request, words


# ---------------------------------------------------------------------- the form
def _link(label: str, href: str, selected: bool, key: str) -> Component:
    inner = html.Span(label, **_attr(ids.WHATIF_ATTR, key))  # dcc.Link takes no data-* attributes
    return dcc.Link(inner, href=href, className="range selected" if selected else "range")


def _choice(label: str, links: list[Component]) -> Component:
    return html.Span([html.Strong(label + " "), *links], className="choice")


def _batch_sites(advisor: Advisor) -> list[str]:
    out = []
    for spec in advisor.twin.topology.sites:
        try:
            advisor.twin.queues.base(spec.name)
        except LookupError:
            continue
        out.append(spec.name)
    return out


def _waiting_jobs(advisor: Advisor, site: str) -> list[str]:
    """The site's queued jobs that wait longest (worth moving), at most MAX_JOB_CHOICES."""
    try:
        jobs = advisor.twin.queues.base(site).forecast.jobs
    except LookupError:
        return []
    jobs = jobs.filter(~pl.col("hypothetical")).sort("predicted_wait_s", descending=True, nulls_last=True)
    return [str(j) for j in jobs["job_id"].head(MAX_JOB_CHOICES).to_list()]


def _form(advisor: Advisor, q: Mapping[str, str]) -> list[Component]:
    keep = {k: q[k] for k in RANKING_KEYS if k in q}
    kind = q.get("change")
    rows = [
        _choice(
            "change",
            [_link(w, whatif_query(change=k, **keep), k == kind, f"change={k}") for k, w in CHANGES.items()],
        )
    ]
    sites = [s.name for s in advisor.twin.topology.sites]
    batch = _batch_sites(advisor) if kind in ("move", "nodes") else []
    links = sorted({tuple(sorted((lk.a, lk.b))) for lk in advisor.twin.links()})
    here = {"change": kind, **keep}
    if kind == "move":
        a = q.get("from")
        rows.append(
            _choice("from", [_link(s, whatif_query(**here, **{"from": s}), s == a, f"from={s}") for s in batch])
        )
        if a:
            jobs = _waiting_jobs(advisor, a)
            chosen = [
                _link(j, whatif_query(**here, **{"from": a, "job": j}), j == q.get("job"), f"job={j}") for j in jobs
            ]
            rows.append(
                _choice("job (longest waits)", chosen or [html.Span(f"no job queued at {a}", className="muted")])
            )
        if a and q.get("job"):
            to = [s for s in batch if s != a]
            move = {**here, "from": a, "job": q["job"]}
            rows.append(_choice("to", [_link(s, whatif_query(**move, to=s), s == q.get("to"), f"to={s}") for s in to]))
    elif kind == "nodes":
        site = q.get("site")
        rows.append(_choice("site", [_link(s, whatif_query(**here, site=s), s == site, f"site={s}") for s in batch]))
        if site:
            steps = []
            for n in NODE_STEPS:
                key, value = ("add", n) if n > 0 else ("drain", -n)
                selected = q.get(key) == str(value)
                label = f"+{n}" if n > 0 else str(n)
                steps.append(_link(label, whatif_query(**here, site=site, **{key: value}), selected, f"{key}={value}"))
            rows.append(_choice("nodes", steps))
    elif kind == "down":
        site = q.get("site")
        rows.append(_choice("site", [_link(s, whatif_query(**here, site=s), s == site, f"site={s}") for s in sites]))
    elif kind in ("link", "bandwidth"):
        a, b = q.get("a"), q.get("b")
        pairs = [_link(f"{x}–{y}", whatif_query(**here, a=x, b=y), {x, y} == {a, b}, f"link={x}-{y}") for x, y in links]
        rows.append(_choice("link", pairs or [html.Span("no links configured", className="muted")]))
        if kind == "bandwidth" and a and b:
            rates = [
                _link(
                    f"{g:g} Gb/s",
                    whatif_query(**here, a=a, b=b, gbps=f"{g:g}"),
                    q.get("gbps") == f"{g:g}",
                    f"gbps={g:g}",
                )
                for g in GBPS
            ]
            rows.append(_choice("bandwidth", rates))
    return rows


def _job_form(q: Mapping[str, str]) -> list[Component]:
    scenario = {k: q[k] for k in SCENARIO_KEYS if k in q}
    current = {k: q.get(k, v) for k, v in TYPICAL.items()}

    def row(key: str, label: str, values: tuple[float, ...], unit: str) -> Component:
        links = []
        for v in values:
            text = f"{v:g}"
            href = whatif_query(**scenario, **{**current, key: text})
            links.append(_link(f"{text}{unit}", href, current[key] == text, f"{key}={text}"))
        return _choice(label, links)

    return [row("cores", "cores", CORES, ""), row("hours", "walltime", HOURS, " h"), row("gb", "input", GBS, " GB")]


# ---------------------------------------------------------------------- the results
def _clock_names(advisor: Advisor, sites: tuple[str, ...]) -> dict[str, str]:
    """Each site's clock for its job starts (a forecast is always in the site's own clock)."""
    views = {v.name: v for v in advisor.twin.current.sites()}
    out = {}
    for site in sites:
        view = views.get(site)
        clock = clock_of(view)
        out[site] = ("trace time" if clock.speed is None else clock.name) if clock.replay else "UTC"
    return out


def _instant(ts: int | None) -> str:
    if ts is None:
        return "does not start"
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M")


def _shift(s: int | None, today: int | None) -> tuple[str, str]:
    if s is None:
        return ("never starts" if today is not None else "—"), "later"
    if s == 0:
        return "same", ""
    return (f"{fmt.duration(s)} later", "later") if s > 0 else (f"{fmt.duration(-s)} earlier", "earlier")


def _jobs_table(out: Comparison, clocks: Mapping[str, str]) -> Component:
    if not out.sites:
        return html.P(
            "No batch queue changes in this scenario, so no job's start moves (a link only moves data; a site"
            " without a batch queue has no queued jobs).",
            className="muted",
        )
    if not out.jobs:
        return html.P(f"No job's predicted start moves at {', '.join(out.sites)}.", className="muted")
    rows = []
    for s in out.jobs[:MAX_ROWS]:
        shift, cls = _shift(s.shift_s, s.today_start_s)
        where = s.site if s.site == s.from_site else f"{s.from_site} → {s.site}"
        clock = clocks.get(s.site, "UTC")
        if s.from_site != s.site and clocks.get(s.from_site) != clock:
            clock = f"{clocks.get(s.from_site, 'UTC')} → {clock}"
        rows.append(
            html.Tr(
                [
                    html.Td(s.job_id),
                    html.Td(where),
                    html.Td(_instant(s.today_start_s), className="num"),
                    html.Td(_instant(s.scenario_start_s), className="num"),
                    html.Td(shift, className=f"num {cls}".strip()),
                    html.Td(clock, className="muted"),
                    html.Td(s.note, className="muted"),
                ],
                **_attr(ids.WHATIF_JOB_ATTR, s.job_id),
            )
        )
    head = ("job", "site", "predicted start today", "under the scenario", "shift", "clock", "")
    table = _table(head, rows, numeric=head[2:5], className="grid", id=ids.WHATIF_JOBS_TABLE)
    more = out.affected - min(len(out.jobs), MAX_ROWS)
    tail = [html.P(f"… and {more} more, smaller shifts.", className="muted")] if more > 0 else []
    return html.Div([table, *tail])


def _outcome_cells(o: SiteOutcome) -> list[Component]:
    if not o.feasible:
        return [html.Td(f"excluded: {o.reason}", colSpan=3, className="muted")]
    turnaround = o.turnaround_s.p50 if o.turnaround_s else None
    wait = o.wait_s.p50 if o.wait_s else None
    stage = o.stage_in_s.p50 if o.stage_in_s else None
    return [
        html.Td(fmt.duration(turnaround), className="num"),
        html.Td(fmt.duration(wait), className="num"),
        html.Td(fmt.duration(stage), className="num"),
    ]


def _key(o: SiteOutcome) -> tuple[object, ...]:
    """What a ranking row shows, to the second: a row whose key moved is marked."""
    bands = (o.turnaround_s, o.wait_s, o.stage_in_s)
    return (o.feasible, o.reason if not o.feasible else "", *(round(b.p50) if b else None for b in bands))


def _ranking(title: str, advice: Advice, other: Advice | None, side: str) -> Component:
    before = {o.site: o for o in other.ranked} if other is not None else {}
    rows = []
    feasible = 0
    for o in advice.ranked:
        feasible += o.feasible
        then = before.get(o.site)
        changed = then is not None and _key(then) != _key(o)
        mark = "★ " if o.site == advice.recommended else ""
        rows.append(
            html.Tr(
                [
                    html.Td(str(feasible) if o.feasible else "–", className="num"),
                    html.Td(mark + o.site),
                    *_outcome_cells(o),
                ],
                className="changed" if changed else None,
                **_attr(ids.WHATIF_SITE_ATTR, f"{side}:{o.site}"),
            )
        )
    head = ("#", "site", "turnaround", "wait", "stage-in")
    return html.Div(
        [
            html.H4(title),
            html.P(f"★ {advice.recommended}" if advice.recommended else "no site can run it", className="muted"),
            _table(head, rows, numeric=("#", "turnaround", "wait", "stage-in"), className="grid"),
            html.P(advice.summary, className="muted"),
        ],
        className="whatif-col",
        id=f"{ids.WHATIF_RANKING}-{side}",
    )


def render(advisor: Advisor | None, search: str | None) -> tuple[list[Component], Any, Any, list[Component], Any]:
    """(form, summary, affected jobs, the ranking's job form, the rankings) for the URL."""
    q = query(search)
    if advisor is None:
        why = html.P("No placement advisor in this service: nothing to simulate.", className="muted")
        return [], why, html.P("—", className="muted"), [], why
    change, missing = parse_change(q)
    form = _form(advisor, q)
    request, words = _request(q, advisor.policy.default_home)
    job_form = [html.Span(f"Ranking for {words}.", className="muted"), *_job_form(q)]
    if change is None:
        try:
            today = advisor.preview(request)
        except TwinError as exc:
            return form, html.P(str(exc), className="error"), html.P("—"), job_form, html.P(str(exc), className="error")
        note = html.P(missing, className="muted" if missing.startswith("Choose") else "error")
        jobs = html.P("No change chosen yet: no job's start moves.", className="muted")
        return form, note, jobs, job_form, [_ranking("Today", today, None, "today")]
    try:
        out = WhatIf(advisor).run([change], request, limit=MAX_ROWS)
    except TwinError as exc:
        message = html.P(f"This what-if cannot be run: {exc}", className="error", id=ids.WHATIF_ERROR)
        return form, message, html.P("—", className="muted"), job_form, html.P("—", className="muted")
    later = f"{out.later} later or never" if out.later else "none later"
    summary = [
        html.Strong("Scenario: " + "; ".join(out.described) + ". "),
        html.Span(
            f"{out.affected} job(s) affected"
            + (f" at {', '.join(out.sites)}" if out.sites else "")
            + f": {out.earlier} start earlier, {later}."
        ),
        *(html.P(note, className="muted") for note in out.notes),
    ]
    assert out.today is not None and out.scenario is not None
    ranking = [
        _ranking("Today", out.today, None, "today"),
        _ranking("Under the scenario", out.scenario, out.today, "scenario"),
    ]
    return form, summary, _jobs_table(out, _clock_names(advisor, out.sites)), job_form, ranking


def register(app: dash.Dash, sources: Sources) -> None:
    @app.callback(
        Output(ids.WHATIF_FORM, "children"),
        Output(ids.WHATIF_SUMMARY, "children"),
        Output(ids.WHATIF_JOBS, "children"),
        Output(ids.WHATIF_JOB_FORM, "children"),
        Output(ids.WHATIF_RANKING, "children"),
        Input(ids.URL, "search"),
    )
    async def _render(search: str | None) -> Any:
        if not PAGE.shown(search):
            return (dash.no_update,) * 5
        return await asyncio.to_thread(render, sources.advisor, search)


PAGE = Page(view=VIEW, label="What-if", section_id=ids.WHATIF_VIEW, layout=layout, register=register)
