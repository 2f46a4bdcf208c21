"""`/docs` (Swagger UI) served from files installed with the service, not a CDN; no `/redoc`.

Why: FastAPI's own pages load Swagger UI's and ReDoc's JavaScript and CSS from cdn.jsdelivr.net
and a favicon from fastapi.tiangolo.com, so where the service runs without internet access (an HPC
login node, an air-gapped site) `/docs` was a blank page. The files come from the
`fastapi-offline` wheel (Swagger UI 5 and a favicon; only its `static/` folder is used) and are
served under `/docs/static`. Swagger UI's online validator is off (it would send the schema out).
ReDoc is left out: even served locally it always loads its "API docs by Redocly" logo from
cdn.redoc.ly, and Swagger UI already shows every route. tests/service/test_docs_offline.py renders
`/docs` in a Chromium that resolves no host but 127.0.0.1 and checks that no request leaves.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_URL", "install_offline_docs", "static_dir"]

STATIC_URL = "/docs/static"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"


def static_dir() -> Path:
    """Where the installed Swagger UI and ReDoc files are."""
    return Path(str(files("fastapi_offline") / "static"))


def install_offline_docs(app: FastAPI) -> None:
    """Add `/docs`, `/docs/oauth2-redirect` and their files to an app created with
    `docs_url=None, redoc_url=None` (call it before mounting anything at "/")."""
    app.mount(STATIC_URL, StaticFiles(directory=static_dir()), name="docs-static")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} — API",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},
        )

    @app.get(OAUTH2_REDIRECT_URL, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
