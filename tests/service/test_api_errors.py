"""The documented error body for every refusal of the app as `ctwin serve` builds it (the Dash twin
mounted at "/"): unknown paths, wrong methods, `/redoc`; access decided before a body is read; a
body not sent as JSON; the OpenAPI schema of durations; and every `/v1` route the README names
exists. The real app through its lifespan, on this host's node collector only."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from tests.conftest import ROOT

CONFIG = """
sites:
  - name: local
    kind: edge
    collectors: [{type: node, interval: 1s}]
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, dict[str, str]]]]:
    data = tmp_path_factory.mktemp("errors")
    loaded = parse_config(CONFIG)
    tokens = TokenStore(loaded.tokens_path(data))
    auth = {s: {"Authorization": f"Bearer {tokens.create(f't-{s}', [s])[1]}"} for s in ("read", "advise", "admin")}
    with TestClient(create_app(loaded, data, ui=True)) as client:
        yield client, auth


def _refusal(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"}, body
    assert body["error"]["status"] == status and body["error"]["code"] == code and body["error"]["message"]
    error: dict[str, Any] = body["error"]
    return error


@pytest.mark.parametrize("path", ["/v1/nothing-here", "/nothing", "/redoc", "/v1/sites/local/nothing", "/docs/x"])
def test_a_path_no_route_serves_is_404_in_the_error_body(served: Any, path: str) -> None:
    client, auth = served
    for headers in ({}, auth["admin"]):
        _refusal(client.get(path, headers=headers), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("DELETE", "/v1/advice/adv-00000000000-00000000", "GET"),
        ("PUT", "/v1/sites", "GET"),
        ("GET", "/v1/advice", "POST"),
        ("POST", "/healthz", "GET"),
    ],
)
def test_a_route_asked_with_a_method_it_does_not_take_is_405_with_allow(
    served: Any, method: str, path: str, allow: str
) -> None:
    client, auth = served
    answer = client.request(method, path, headers=auth["admin"])
    _refusal(answer, 405, "method_not_allowed")
    assert allow in answer.headers["allow"]


def test_the_ui_still_serves_its_routes_and_its_own_404s_use_the_error_body(served: Any) -> None:
    client, _ = served
    page = client.get("/")  # open on loopback
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert client.get("/_dash-layout").status_code == 200
    _refusal(client.get("/assets/no-such-file.js"), 404, "not_found")
    _refusal(client.post("/"), 405, "method_not_allowed")


def _body_routes(client: TestClient) -> list[tuple[str, str]]:
    """Every route taking a JSON body, as (method, path with its parameters filled in)."""
    paths = client.get("/openapi.json").json()["paths"]
    routes = [
        (method.upper(), re.sub(r"\{[^}]+\}", "x", path).replace("/sites/x/", "/sites/local/"))
        for path, methods in paths.items()
        for method, op in methods.items()
        if "application/json" in op.get("requestBody", {}).get("content", {})
    ]
    assert len(routes) >= 5, routes
    return routes


def test_no_or_a_bad_token_is_401_before_the_body_is_read(served: Any) -> None:
    client, _ = served
    bad = {"Authorization": "Bearer ctw_00000000_nonsense"}
    for method, path in _body_routes(client):
        for body, media in (("{bad", "application/json"), ("{bad", "text/plain"), ('{"cores": 1}', "text/plain")):
            sent = {"content": body, "headers": {"content-type": media}}
            missing = client.request(method, path, **sent)
            _refusal(missing, 401, "missing_token")
            assert missing.headers["www-authenticate"] == "Bearer"
            refused = client.request(method, path, content=body, headers={"content-type": media, **bad})
            _refusal(refused, 401, "invalid_token")


def test_scopes_are_still_checked_and_a_valid_token_gets_the_body_parsed(served: Any) -> None:
    client, auth = served
    json = {"content-type": "application/json"}
    denied = client.post("/v1/advice", content="{bad", headers={**json, **auth["read"]})
    _refusal(denied, 403, "insufficient_scope")
    parsed = client.post("/v1/advice", content="{bad", headers={**json, **auth["advise"]})
    assert "JSON decode error" in _refusal(parsed, 422, "invalid_request")["message"]
    good = client.post("/v1/advice", json={"cores": 1, "walltime": "1h"}, headers=auth["advise"])
    assert good.status_code == 200, good.text


@pytest.mark.parametrize("media", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_not_sent_as_json_is_415_naming_application_json(served: Any, media: str | None) -> None:
    client, auth = served
    headers = {**auth["admin"], **({"content-type": media} if media else {})}
    for method, path in _body_routes(client):
        answer = client.request(method, path, content='{"cores": 1, "walltime": "1h"}', headers=headers)
        error = _refusal(answer, 415, "unsupported_media_type")
        assert "application/json" in error["message"] and (media or "without a Content-Type") in error["message"]


def test_json_with_parameters_or_a_json_suffix_is_still_json(served: Any) -> None:
    client, auth = served
    for media in ("application/json; charset=utf-8", "application/vnd.ctwin+json"):
        answer = client.post(
            "/v1/advice", content='{"cores": 1, "walltime": "1h"}', headers={**auth["advise"], "content-type": media}
        )
        assert answer.status_code == 200, (media, answer.text)


def test_the_openapi_schema_documents_415_on_every_route_taking_a_body(served: Any) -> None:
    client, _ = served
    spec = client.get("/openapi.json").json()
    for method, path in _body_routes(client):
        template = next(p for p in spec["paths"] if re.fullmatch(re.sub(r"\{[^}]+\}", "[^/]+", p), path))
        assert "415" in spec["paths"][template][method.lower()]["responses"], (method, template)
    assert "415" not in spec["paths"]["/v1/sites"]["get"]["responses"]


# ---------------------------------------------------------------------- durations
def test_a_walltime_in_the_openapi_schema_is_a_number_or_a_duration_string(served: Any) -> None:
    """The schema says what the routes take (seconds, or "2h"), with an example, not `number` alone."""
    client, _ = served
    spec = client.get("/openapi.json").json()
    for path in ("/v1/advice", "/v1/sites/{site}/whatif"):
        ref = spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        walltime = spec["components"]["schemas"][ref.rsplit("/", 1)[1]]["properties"]["walltime"]
        text = str(walltime)
        assert "'type': 'number'" in text and "'type': 'string'" in text and "'2h'" in text, (path, walltime)


# ---------------------------------------------------------------------- the README's routes
README = ROOT / "README.md"
MENTION = re.compile(r"(?:\b(GET|POST|PUT|PATCH|DELETE) )?(?<![\w/.])(/v1/[\w{}./*-]*)")
"""`/v1/...` as the README writes a route, optionally after its method; the path ends where a query
string, a backtick or a space begins. `/k8s/extender/v1/filter` is not one (served outside the app)."""

NOT_ROUTES: frozenset[str] = frozenset()
"""Mentions that name no route on purpose (an example of a typo answered 404); none today."""


def readme_mentions(text: str) -> list[tuple[str | None, str]]:
    """Each (method or None, path) the text names; `{param}` kept, what follows an ellipsis or a
    sentence's full stop cut (`{"job": {...as /v1/advice...}}` names `/v1/advice`)."""
    out = []
    for m in MENTION.finditer(text):
        path = m.group(2).split("...")[0].rstrip(".")
        while path.count("}") > path.count("{"):
            path = path[:-1]
        out.append((m.group(1), path))
    return out


def unknown_routes(mentions: list[tuple[str | None, str]], routes: list[tuple[re.Pattern[str], set[str]]]) -> list[str]:
    """The mentions no route serves: a path (its `{param}`s filled in) that no route's pattern
    matches, with the method when one is named; `/v1/export/*` stands for the routes under it."""
    missing = []
    for method, path in mentions:
        if path in NOT_ROUTES:
            continue
        if path.endswith("*"):
            prefix = path.rstrip("*")
            found = any(pattern.pattern.startswith(f"^{prefix}") for pattern, _ in routes)
        else:
            concrete = re.sub(r"\{[^}]+\}", "x", path)
            found = any(pattern.match(concrete) and (method is None or method in ms) for pattern, ms in routes)
        if not found:
            missing.append(f"{method + ' ' if method else ''}{path}")
    return missing


def _app_routes(client: TestClient) -> list[tuple[re.Pattern[str], set[str]]]:
    app = client.app
    out = []
    for route in iter_route_contexts(app.routes):
        regex = getattr(route, "path_regex", None)
        if regex is not None and route.methods:
            out.append((regex, set(route.methods)))
    return out


def test_every_v1_route_the_readme_names_is_served(served: Any) -> None:
    client, _ = served
    routes = _app_routes(client)
    mentions = readme_mentions(README.read_text(encoding="utf-8"))
    assert len(mentions) >= 30 and ("POST", "/v1/advice/{id}/outcome") in mentions
    assert unknown_routes(mentions, routes) == []


def test_the_readme_check_catches_a_route_that_is_not_there(served: Any) -> None:
    client, _ = served
    routes = _app_routes(client)
    text = (
        "report it (`POST /v1/advice/{id}/report`), `GET /v1/sites/{site}` and `/v1/sites/kth/jobs`, "
        "`DELETE /v1/advice/{id}`, `/v1/export/*`, {...as /v1/advice...}}, `/v1/jobs` and not `/k8s/extender/v1/filter`"
    )
    assert readme_mentions(text)[-2:] == [(None, "/v1/advice"), (None, "/v1/jobs")]
    assert unknown_routes(readme_mentions(text), routes) == [
        "POST /v1/advice/{id}/report",
        "DELETE /v1/advice/{id}",
        "/v1/jobs",
    ]
