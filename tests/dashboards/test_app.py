"""`create_dash` over HTTP, in the three ways the service can serve it: on its own, mounted under a
prefix in a host app, and with its routes added to the host app itself."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from dashboards import ids
from dashboards.app import TITLE, create_dash
from tests.dashboards.twin_double import FakeReader, continuum


def _host() -> FastAPI:
    """A stand-in for the service's app: one API route of its own."""
    api = FastAPI()

    @api.get("/v1/ping")
    def ping() -> dict[str, bool]:
        return {"ok": True}

    return api


def drill_down(client: TestClient, prefix: str, site: str) -> dict[str, Any]:
    """Call the drill-down callback the way the browser does, through `prefix`; its outputs by id."""
    deps = client.get(prefix + "_dash-dependencies").json()
    spec = next(d for d in deps if ids.DRILL_HEAD in d["output"])
    outputs = [dict(zip(("id", "property"), o.rsplit(".", 1), strict=True)) for o in spec["output"][2:-2].split("...")]
    body = {
        "output": spec["output"],
        "outputs": outputs,
        "inputs": [
            {"id": ids.URL, "property": "search", "value": f"?site={site}"},
            {"id": ids.TICK, "property": "n_intervals", "value": 0},
        ],
        "changedPropIds": [f"{ids.URL}.search"],
        "state": [],
    }
    response = client.post(prefix + "_dash-update-component", json=body)
    assert response.status_code == 200, response.text
    return dict(response.json()["response"])


def hosts(answer: dict[str, Any]) -> list[str]:
    return [row["host"] for row in answer[ids.NODES_TABLE]["data"]]


def check_index(client: TestClient, prefix: str) -> None:
    """The page, its scripts and its stylesheet come from this server, under `prefix` (no CDN)."""
    page = client.get(prefix)
    assert page.status_code == 200
    assert f"<title>{TITLE}</title>" in page.text
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith(prefix) for s in sources), sources
    assert "https://" not in page.text and "http://" not in page.text
    assert client.get(prefix + "_dash-layout").status_code == 200
    css = next(s for s in sources if "/assets/" in s)
    assert client.get(css).status_code == 200
    scripts = [s for s in sources if s.endswith(".js")]
    assert all(client.get(s).status_code == 200 for s in scripts[:3])


@pytest.fixture
def standalone(reader: FakeReader) -> Iterator[TestClient]:
    with TestClient(create_dash(reader).server) as client:
        yield client


def test_standalone_at_the_root(standalone: TestClient) -> None:
    check_index(standalone, "/")
    assert hosts(drill_down(standalone, "/", "local")) == ["edge-a", "edge-b", "this-host"]
    assert standalone.get("/no/such/page").status_code == 404


@pytest.mark.parametrize("prefix", ["/ui/", "/"])
def test_mounted_in_a_host_app(reader: FakeReader, prefix: str) -> None:
    host = _host()
    host.mount(prefix.rstrip("/") or "/", create_dash(reader, url_prefix=prefix).server)
    with TestClient(host) as client:
        assert client.get("/v1/ping").json() == {"ok": True}
        check_index(client, prefix)
        assert "this-host" in hosts(drill_down(client, prefix, "local"))
        assert client.get("/v1/nope").status_code == 404


@pytest.mark.parametrize("prefix", ["/", "/ui/"])
def test_routes_on_the_host_app(reader: FakeReader, prefix: str) -> None:
    host = _host()
    create_dash(reader, server=host, url_prefix=prefix)
    with TestClient(host) as client:  # runs the lifespan, where Dash would add its catch-all
        assert client.get("/v1/ping").json() == {"ok": True}
        check_index(client, prefix)
        assert "this-host" in hosts(drill_down(client, prefix, "local"))
        missing = client.get("/v1/nope")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("application/json")
        assert list(client.get("/openapi.json").json()["paths"]) == ["/v1/ping"]


def test_each_app_has_its_own_reader() -> None:
    """No module-level app or reader: two apps in one process show their own twins."""
    first, second = continuum(), FakeReader()
    with TestClient(create_dash(first).server) as a, TestClient(create_dash(second).server) as b:
        assert "this-host" in hosts(drill_down(a, "/", "local"))
        assert "There is no site named 'local'" in str(drill_down(b, "/", "local"))
        assert hosts(drill_down(b, "/", "local")) == []


def test_prefix_is_normalised_and_server_checked(reader: FakeReader) -> None:
    assert create_dash(reader, url_prefix="ui").config.requests_pathname_prefix == "/ui/"
    with pytest.raises(TypeError):
        create_dash(reader, server=object())


def test_the_page_ships_the_basic_plotly_bundle_of_dash_s_plotly_version(standalone: TestClient) -> None:
    """dcc.Graph uses `window.Plotly` when a bundle defined it, so the vendored basic bundle (1.2 MB)
    replaces Dash's full one (4.8 MB) on the page; it must be the same plotly.js version
    (dashboards/assets/PROVENANCE.md)."""
    from plotly.offline import get_plotlyjs_version

    scripts = re.findall(r'<script[^>]*src="([^"]+)"', standalone.get("/").text)
    bundles = [s for s in scripts if "/assets/plotly-basic-" in s]
    assert len(bundles) == 1, scripts
    assert not any("plotly.min.js" in s for s in scripts)  # Dash's own: fetched only without window.Plotly
    body = standalone.get(bundles[0])
    assert body.status_code == 200
    assert f"plotly.js (basic - minified) v{get_plotlyjs_version()}" in body.text[:200]
    assert "window.Plotly = Plotly" in body.text[-200:]
