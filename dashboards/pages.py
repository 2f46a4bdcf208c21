"""The twin's pages and the shell around them: one header with a link per page, one callback that
shows the page the URL names (`?view=NAME`; no `view` is the overview).

A page is a module-level `Page`: its view name, its nav label, the id of its top element, a
`layout()` building its static skeleton and a `register(app, sources)` wiring its callbacks.
Every page's skeleton is in the DOM from the first load, hidden unless chosen, so switching
pages is a query-string change (no reload, shareable as a link); a page's callbacks must answer
`dash.no_update` while it is hidden (`Page.shown(search)`), so a hidden page costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import dash
import polars as pl
from dash import Input, Output, dcc, html
from dash.development.base_component import Component

from dashboards import ids

if TYPE_CHECKING:
    from dashboards.export import ExportSource
    from twin.advice.containers import ContainerEffects
    from twin.advice.live import Advisor
    from twin.queues import ModelSource
    from twin.view import TwinReader

__all__ = ["HIDDEN", "SHOWN", "Page", "Sources", "query", "register_shell", "shell", "view_of"]

SHOWN: dict[str, str] = {}
HIDDEN = {"display": "none"}

AdviceSummary = Callable[[str], pl.DataFrame]
"""A site's advice by scheduler hook (the advice log's `summary`)."""


@dataclass(frozen=True)
class Sources:
    """What the pages read. Only `reader` is always there: a page whose source is missing says so
    (an empty state naming what is absent), it never fails."""

    reader: TwinReader
    advice: AdviceSummary | None = None
    """The advice log's per-site summary (the overview's advice panel)."""
    containers: ContainerEffects | None = None
    """The container-effect model (the containers page, and the advice form's container choice)."""
    advisor: Advisor | None = None
    """Placement advice: every site ranked for a job, the advice log, its outcomes."""
    models: ModelSource | None = None
    """The learned-model registry: each kind's current artefact."""
    export: ExportSource | None = None
    """The store and pseudonymisation salt behind the export page."""


def query(search: str | None) -> dict[str, str]:
    """The URL's query as a flat dict (the last value of a repeated key)."""
    parsed = parse_qs((search or "").lstrip("?"), keep_blank_values=False)
    return {k: v[-1] for k, v in parsed.items() if v}


def view_of(search: str | None) -> str:
    return query(search).get("view", "")


@dataclass(frozen=True)
class Page:
    view: str
    """The `?view=` value; "" for the overview."""
    label: str
    section_id: str
    layout: Callable[[], Component]
    register: Callable[[dash.Dash, Sources], None]

    @property
    def href(self) -> str:
        return f"?view={self.view}" if self.view else "?"

    def shown(self, search: str | None) -> bool:
        return view_of(search) == self.view


def shell(pages: Sequence[Page], *, before: Sequence[Component] = (), summary_id: str | None = None) -> Component:
    """The whole layout: `before` (locations, intervals), the header with one link per page, then
    every page's skeleton. The overview's is shown until the first callback answers (the others
    start hidden), so the first paint is the page most people open."""
    nav = html.Nav([dcc.Link(p.label, href=p.href, id=f"{ids.VIEWS}-{p.view or 'overview'}") for p in pages],
                   id=ids.VIEWS, className="views")  # fmt: skip
    head: list[Component] = [html.H1("Continuum Twin")]
    if summary_id is not None:
        head.append(html.Span(id=summary_id, className="muted"))
    head.append(nav)
    sections = []
    for page in pages:
        section = page.layout()
        section.style = SHOWN if not page.view else HIDDEN  # type: ignore[attr-defined]
        sections.append(section)
    return html.Div([*before, html.Header(head), *sections], className="ctwin")


def register_shell(app: dash.Dash, pages: Sequence[Page]) -> None:
    """One callback for which page is shown and which nav link is marked current."""
    known = {p.view for p in pages}

    @app.callback(
        *[Output(p.section_id, "style") for p in pages],
        *[Output(f"{ids.VIEWS}-{p.view or 'overview'}", "className") for p in pages],
        Input(ids.URL, "search"),
    )
    def _show(search: str | None) -> tuple[Any, ...]:
        view = view_of(search)
        view = view if view in known else ""  # a hand-edited ?view= shows the overview, not a blank page
        styles = [SHOWN if p.view == view else HIDDEN for p in pages]
        marks = ["current" if p.view == view else "" for p in pages]
        return (*styles, *marks)
