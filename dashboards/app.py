"""The Dash app factory: the overview page on Dash's FastAPI backend, bound to one `TwinReader`.

Two ways to serve it, both tested (tests/dashboards/test_app.py):

- Routes on the service's own app: `create_dash(reader, server=api, url_prefix="/")`; Dash adds
  its routes (`/`, `/_dash-*`, `/assets`) to `api`.
- Mounted: `dash_app = create_dash(reader, url_prefix="/ui/")` then
  `api.mount("/ui", dash_app.server)` (mount last when the prefix is "/"). `url_prefix` must be
  the mount path: it is where the browser sends its requests.
"""

from __future__ import annotations

from typing import Any

import dash
from dash.backends._fastapi import FastAPIDashServer
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from dashboards import advice as advice_page
from dashboards import containers, export, hosts, ids, models, overview, whatif
from dashboards.export import ExportSource
from dashboards.pages import AdviceSummary, Page, Sources, register_shell, shell
from twin.advice.containers import ContainerEffects
from twin.advice.live import Advisor
from twin.queues import ModelSource
from twin.view import TwinReader

__all__ = ["PAGES", "TITLE", "create_dash"]

PAGES: tuple[Page, ...] = (
    overview.PAGE,
    advice_page.PAGE,
    whatif.PAGE,
    hosts.PAGE,
    models.PAGE,
    export.PAGE,
    containers.PAGE,
)
"""Every page, in the header's order."""

TITLE = "Continuum Twin"


class _Backend(FastAPIDashServer):
    """Dash's FastAPI backend without its startup catch-all route and without WebSockets.

    On startup Dash 4.4 adds `GET {path:path}` to the app it runs on, answering every unknown path
    (`/v1/typo` included) with the Dash page and a 200. On the service's app that would break the
    API's 404s and its JSON error bodies. The overview routes by query string, so it needs none.

    Its WebSocket callbacks are off: with the capability on, Dash adds a `_dash-ws-callback`
    endpoint and puts its URL in every page's config, and the renderer opens (and keeps retrying)
    a WebSocket to it even though no callback uses it. The service serves no WebSocket at all
    (`ctwin serve` runs uvicorn with `ws="none"`), so every page logged uvicorn's "No supported
    WebSocket library detected" a few times a minute. The twin's callbacks are plain HTTP.
    """

    websocket_capability = False

    def _setup_catchall(self) -> None:
        return None


class _AppRelativePath:
    """Present a mounted Dash app with paths relative to its mount point.

    Starlette keeps the full path in `scope["path"]` for mounted apps, while Dash 4.4's FastAPI
    backend matches its own routes against the full path; under `Mount` it would find none. Served
    at the root (empty `root_path`) this does nothing.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        root = scope.get("root_path", "")
        path = scope.get("path", "")
        if root and scope["type"] in ("http", "websocket") and path.startswith(root):
            scope = {**scope, "path": path[len(root) :] or "/", "root_path": ""}
        await self.app(scope, receive, send)


def _normalise(prefix: str) -> str:
    return "/" + prefix.strip("/") + "/" if prefix.strip("/") else "/"


def create_dash(
    reader: TwinReader,
    *,
    server: Any = True,
    url_prefix: str = "/",
    advice: AdviceSummary | None = None,
    containers: ContainerEffects | None = None,
    advisor: Advisor | None = None,
    models: ModelSource | None = None,
    export: ExportSource | None = None,
) -> dash.Dash:
    """A new Dash app showing `reader`'s twin (no import-time app, so each service instance and each
    test gets its own).

    `advice`: a site's advice by scheduler hook (the advice log's summary), shown under each site.
    `containers`: the container-effect model behind the containers view (`?view=containers`).
    `advisor`, `models`: placement advice and the learned-model registry, for the pages that show them.
    `export`: the store and salt the export page writes datasets from (`?view=export`).
    `server`: True for an app of its own (serve or mount `dash_app.server`), or the service's
    FastAPI app to add the routes to. `url_prefix`: the path the page is reached at. Assets and
    scripts are served from this process (no CDN: the service may run without internet); plotly.js
    is the basic bundle in `assets/`, which `dcc.Graph` picks up as `window.Plotly` instead of
    fetching Dash's full one (assets/PROVENANCE.md).
    """
    prefix = _normalise(url_prefix)
    if server is True:
        host: FastAPI | None = None
        target = FastAPI(title=TITLE, openapi_url=None, docs_url=None, redoc_url=None)
    elif isinstance(server, FastAPI):
        host = target = server
    else:
        raise TypeError(f"server must be True or a FastAPI app, not {type(server).__name__}")
    app = dash.Dash(
        __name__,
        backend=_Backend,
        server=False,
        title=TITLE,
        update_title="",  # keep the tab title while callbacks run
        serve_locally=True,
        # No gzip here: Starlette's GZipMiddleware recompresses every response at level 9, on the
        # process that also reads the store; measured on loopback it slowed the cold first render
        # (bench/dash_render.py at 50 hosts: 1.31 s → 1.58 s median). Across a slow link, let the
        # reverse proxy compress (and cache) the static scripts instead.
        compress=False,
        requests_pathname_prefix=prefix,
        # Mounted, the app sees paths relative to the mount point (see _AppRelativePath).
        routes_pathname_prefix=prefix if host is not None else "/",
    )
    sources = Sources(
        reader=reader, advice=advice, containers=containers, advisor=advisor, models=models, export=export
    )
    app.layout = shell(PAGES, before=overview.clocks(), summary_id=ids.SUMMARY)
    register_shell(app, PAGES)
    for page in PAGES:
        page.register(app, sources)
    app.init_app(target)
    if host is None:
        target.add_middleware(_AppRelativePath)
    return app
