"""Access control: the token store on a real file, the route dependency, the UI guard and the login
page on small FastAPI apps served by TestClient, and the refusal to serve unguarded."""

from __future__ import annotations

import hashlib
import logging
import re
import stat
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import pytest
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from starlette.responses import PlainTextResponse
from starlette.types import Receive, Scope, Send

from service.api.errors import ApiError, error_body
from service.auth import (
    SCOPES,
    ExposureError,
    TokenInfo,
    TokenLookupError,
    TokenSpecError,
    TokenStore,
    TokenStoreError,
    UiAuthMiddleware,
    check_exposure,
    is_loopback,
    login_router,
    open_endpoints_for,
    require_scope,
    safe_next,
)
from service.config import AuthConfig
from service.sessions import SessionStore

TOKEN_RE = re.compile(r"^ctw_[0-9a-f]{8}_[A-Za-z0-9_-]{43}$")


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "data" / "tokens.json"


@pytest.fixture
def store(path: Path) -> TokenStore:
    return TokenStore(path, check_interval_s=0)


# ---------------------------------------------------------------------------- the store
def test_create_then_verify(store: TokenStore) -> None:
    info, token = store.create("ci", ["export", "read"])
    assert TOKEN_RE.match(token)
    assert token.split("_")[1] == info.id
    assert info.scopes == ("read", "export")  # canonical order, duplicates dropped
    assert store.verify(token) == info
    assert store.list() == [info]
    assert store.count_active() == 1


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "ctw_",
        "Bearer x",
        "ctw_zzzzzzzz_" + "a" * 43,
        "xyz_0011aabb_" + "a" * 43,
        "ctw_0011aabb_short",
        "ctw_" * 200,
    ],
)
def test_malformed_tokens_are_refused(store: TokenStore, bad: str) -> None:
    store.create("ci", ["read"])
    assert store.verify(bad) is None


def test_wrong_secret_and_unknown_id_are_refused(store: TokenStore) -> None:
    info, token = store.create("ci", ["read"])
    assert store.verify(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    other_id = "0" * 8 if info.id != "0" * 8 else "1" * 8
    assert store.verify(token.replace(info.id, other_id)) is None


def test_only_a_hash_is_on_disk_with_mode_0600(store: TokenStore, path: Path) -> None:
    info, token = store.create("ci", ["read"])
    secret = token.split("_", 2)[2]
    text = path.read_text()
    assert secret not in text and token not in text
    assert hashlib.sha256(secret.encode()).hexdigest() in text
    assert info.id in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert "secret" not in "".join(TokenInfo.model_fields)  # nothing public can carry it


def test_revoke_by_id_and_by_name(store: TokenStore) -> None:
    a, token_a = store.create("alice", ["read"])
    _, token_b = store.create("bob", ["read"])
    assert store.revoke(a.id).revoked_s is not None
    assert store.verify(token_a) is None
    store.revoke("bob")
    assert store.verify(token_b) is None
    assert store.count_active() == 0
    assert store.revoke("bob").name == "bob"  # revoking twice is a no-op, not an error
    assert [i.name for i in store.list()] == ["alice", "bob"]  # revoked tokens stay listed


def test_revoke_unknown_or_ambiguous(store: TokenStore) -> None:
    with pytest.raises(TokenLookupError, match="no token has the id or name 'nobody'"):
        store.revoke("nobody")
    first, _ = store.create("ci", ["read"])
    second, _ = store.create("ci", ["export"])
    with pytest.raises(TokenLookupError, match="2 tokens are named 'ci'") as exc:
        store.revoke("ci")
    assert first.id in str(exc.value) and second.id in str(exc.value)
    store.revoke(first.id)
    assert store.revoke("ci").id == second.id  # now only one live token has the name


def test_expiry(path: Path) -> None:
    clock = Clock()
    store = TokenStore(path, check_interval_s=0, clock=clock)
    info, token = store.create("short", ["read"], expires_in_s=60)
    assert info.expires_s == pytest.approx(clock.now + 60)
    clock.now += 59
    assert store.verify(token) == info
    clock.now += 1
    assert store.verify(token) is None
    assert store.count_active() == 0
    assert info.status(clock.now) == "expired"


@pytest.mark.parametrize(
    ("name", "scopes", "expires", "match"),
    [
        ("ci", ["root"], None, "unknown scope 'root': valid scopes are read, export, advise, ingest, admin"),
        ("ci", [], None, "no scope given"),
        ("has space", ["read"], None, "invalid token name"),
        ("", ["read"], None, "invalid token name"),
        ("ci", ["read"], 0, "expiry must be in the future"),
    ],
)
def test_create_rejects_bad_requests(
    store: TokenStore, name: str, scopes: list[str], expires: float | None, match: str
) -> None:
    with pytest.raises(TokenSpecError, match=match):
        store.create(name, scopes, expires)
    assert store.list() == []


def test_admin_implies_every_scope(store: TokenStore) -> None:
    admin, _ = store.create("root", ["admin"])
    reader, _ = store.create("viewer", ["read"])
    assert all(admin.allows(s) for s in SCOPES)
    assert reader.allows("read") and not reader.allows("export") and not reader.allows("admin")


def test_another_instance_sees_creates_and_revokes(path: Path) -> None:
    server = TokenStore(path, check_interval_s=0)  # what `ctwin serve` holds
    cli = TokenStore(path)  # what `ctwin token` opens
    info, token = cli.create("ci", ["read"])
    assert server.verify(token) == info
    TokenStore(path).revoke("ci")
    assert server.verify(token) is None


def test_reload_is_rate_limited(path: Path) -> None:
    server = TokenStore(path, check_interval_s=3600)
    _, token = TokenStore(path).create("ci", ["read"])
    assert server.verify(token) is None  # not re-read yet: at most one stat per interval
    assert TokenStore(path, check_interval_s=3600).verify(token) is not None


def test_concurrent_writers_lose_nothing(path: Path) -> None:
    def create_five(worker: int) -> None:
        store = TokenStore(path)  # one instance per thread, as separate CLI processes would be
        for n in range(5):
            store.create(f"w{worker}-{n}", ["read"])

    threads = [threading.Thread(target=create_five, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(TokenStore(path).list()) == 40


def test_missing_file_is_an_empty_store(path: Path) -> None:
    store = TokenStore(path)
    assert store.list() == [] and store.count_active() == 0
    assert not path.exists()


@pytest.mark.parametrize("content", ["{not json", '{"version": 1, "tokens": [{"id": "x"}]}', "[]"])
def test_corrupt_file_is_a_clear_error(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(TokenStoreError, match=re.escape(str(path))):
        TokenStore(path)


def test_corrupted_under_a_running_server_fails_closed(path: Path) -> None:
    server = TokenStore(path, check_interval_s=0)
    _, token = server.create("ci", ["read"])
    path.write_text("garbage")
    with pytest.raises(TokenStoreError, match="not a valid tokens file"):
        server.verify(token)
    with pytest.raises(TokenStoreError):
        server.count_active()
    path.unlink()
    assert server.verify(token) is None  # recovers once the file is readable again


# ---------------------------------------------------------------------------- the route dependency
def api_app(store: TokenStore) -> FastAPI:
    app = FastAPI()
    app.state.tokens = store

    @app.exception_handler(ApiError)
    async def render(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(
            error_body(exc.status_code, exc.code, exc.message, exc.details), exc.status_code, headers=exc.headers
        )

    @app.get("/v1/sites")
    async def sites(token: Annotated[TokenInfo, Depends(require_scope("read"))], request: Request) -> dict[str, str]:
        assert request.state.token is token
        return {"sites": "secret-data", "caller": token.name}

    @app.get("/v1/admin", dependencies=[Depends(require_scope("admin"))])
    async def admin() -> dict[str, str]:
        return {"admin": "secret-data"}

    return app


@pytest.fixture
def api(store: TokenStore) -> Iterator[TestClient]:
    with TestClient(api_app(store)) as client:
        yield client


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_token_is_401_with_challenge(api: TestClient) -> None:
    res = api.get("/v1/sites")
    assert res.status_code == 401
    assert res.headers["www-authenticate"] == "Bearer"
    assert res.json()["error"]["code"] == "missing_token"
    assert "secret-data" not in res.text


@pytest.mark.parametrize("header", ["Bearer ctw_00000000_" + "x" * 43, "Bearer nonsense", "Basic dXNlcjpwYXNz"])
def test_wrong_token_is_401(api: TestClient, store: TokenStore, header: str) -> None:
    store.create("ci", ["read"])
    res = api.get("/v1/sites", headers={"Authorization": header})
    assert res.status_code == 401
    assert "www-authenticate" in res.headers
    assert "secret-data" not in res.text


def test_revoked_and_expired_tokens_are_401(api: TestClient, store: TokenStore) -> None:
    info, token = store.create("ci", ["read"])
    assert api.get("/v1/sites", headers=bearer(token)).status_code == 200
    store.revoke(info.id)
    res = api.get("/v1/sites", headers=bearer(token))
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "invalid_token"


def test_too_small_a_scope_is_403_naming_the_scope(api: TestClient, store: TokenStore) -> None:
    _, token = store.create("viewer", ["read", "export"])
    res = api.get("/v1/admin", headers=bearer(token))
    assert res.status_code == 403
    assert res.json()["error"] == {
        "status": 403,
        "code": "insufficient_scope",
        "message": "this needs a token with the 'admin' scope",
    }
    assert "secret-data" not in res.text


def test_right_scope_passes_and_admin_implies_read(api: TestClient, store: TokenStore) -> None:
    _, reader = store.create("viewer", ["read"])
    _, root = store.create("root", ["admin"])
    assert api.get("/v1/sites", headers=bearer(reader)).json() == {"sites": "secret-data", "caller": "viewer"}
    assert api.get("/v1/sites", headers=bearer(root)).json()["caller"] == "root"
    assert api.get("/v1/admin", headers=bearer(root)).status_code == 200


def test_the_api_takes_no_cookie(api: TestClient, store: TokenStore) -> None:
    _, token = store.create("browser", ["read"])
    sessions = SessionStore(store)
    session_id, _ = sessions.create(store.verify(token))  # type: ignore[arg-type]
    for name, value in (("ctwin_token", token), (sessions.cookie_name, session_id)):  # the old cookie, a session
        api.cookies.clear()
        api.cookies.set(name, value)
        res = api.get("/v1/sites")
        assert res.status_code == 401 and res.json()["error"]["code"] == "missing_token"


def test_unreadable_store_fails_closed_with_503(api: TestClient, store: TokenStore, path: Path) -> None:
    _, token = store.create("ci", ["read"])
    path.write_text("garbage")
    res = api.get("/v1/sites", headers=bearer(token))
    assert res.status_code == 503
    assert str(path) not in res.text and "secret-data" not in res.text


def test_openapi_documents_the_bearer_scheme(api: TestClient) -> None:
    schemes = api.get("/openapi.json").json()["components"]["securitySchemes"]
    assert [(s["type"], s["scheme"]) for s in schemes.values()] == [("http", "bearer")]


def test_unknown_scope_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown scope"):
        require_scope("root")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- the UI guard and /login
async def ui(scope: Scope, receive: Receive, send: Send) -> None:
    await PlainTextResponse("dashboard")(scope, receive, send)


def ui_app(store: TokenStore, enabled: bool = True, sessions: SessionStore | None = None) -> FastAPI:
    app = FastAPI()
    app.state.tokens = store
    app.state.sessions = sessions or SessionStore(store)
    app.include_router(login_router)
    app.mount("/ui", UiAuthMiddleware(ui, enabled=enabled))  # store found on app.state
    app.mount("/direct", UiAuthMiddleware(ui, store))
    return app


HTML = {"Accept": "text/html,application/xhtml+xml"}


def test_ui_redirects_browsers_to_login(store: TokenStore) -> None:
    client = TestClient(ui_app(store), follow_redirects=False)
    res = client.get("/ui/page", params={"x": "1"}, headers=HTML)
    assert res.status_code == 303
    assert res.headers["location"] == "/login?next=/ui/page%3Fx%3D1"
    assert client.get("/direct/", headers=HTML).status_code == 303


def test_ui_answers_json_to_non_browsers(store: TokenStore) -> None:
    client = TestClient(ui_app(store), follow_redirects=False)
    res = client.post("/ui/_dash-update-component", json={})
    assert res.status_code == 401
    assert res.json()["error"]["code"] == "missing_token"
    assert res.headers["www-authenticate"] == "Bearer"


def test_ui_admits_a_read_token_by_bearer_or_a_session(store: TokenStore) -> None:
    _, token = store.create("viewer", ["read"])
    _, exporter = store.create("exporter", ["export"])
    app = ui_app(store)
    client = TestClient(app, follow_redirects=False)
    assert client.get("/ui/", headers=bearer(token)).text == "dashboard"
    assert client.get("/ui/", headers=bearer(exporter)).status_code == 403
    client.cookies.set("ctwin_token", token)  # the old cookie (the raw token) opens nothing
    assert client.get("/ui/", headers=HTML).status_code == 303
    sessions: SessionStore = app.state.sessions
    client.cookies.set(sessions.cookie_name, sessions.create(store.verify(token))[0])  # type: ignore[arg-type]
    assert client.get("/ui/", headers=HTML).text == "dashboard"
    client.cookies.set(sessions.cookie_name, "made-up")
    res = client.get("/ui/_dash-update-component")
    assert res.status_code == 401 and res.json()["error"]["code"] == "invalid_session"


def test_ui_guard_can_be_disabled(store: TokenStore) -> None:
    client = TestClient(ui_app(store, enabled=False))
    assert client.get("/ui/").text == "dashboard"


def test_login_flow_sets_a_strict_httponly_session_cookie(store: TokenStore) -> None:
    _, token = store.create("viewer", ["read"])
    app = ui_app(store)
    client = TestClient(app, follow_redirects=False)
    form = client.get("/login", params={"next": "/ui/page"})
    assert form.status_code == 200 and 'name="token"' in form.text and 'value="/ui/page"' in form.text
    res = client.post("/login", data={"token": token, "next": "/ui/page"})
    assert res.status_code == 303
    assert res.headers["location"] == "/ui/page"
    cookie, legacy = res.headers.get_list("set-cookie")
    assert legacy.startswith('ctwin_token=""; expires=') and "Max-Age=0" in legacy  # the old raw-token cookie goes
    name, _, rest = cookie.partition("=")
    value = rest.split(";")[0]
    assert name == app.state.sessions.cookie_name and re.fullmatch(r"ctwin_session_[0-9a-f]{8}", name)
    assert (
        re.fullmatch(r"[A-Za-z0-9_-]{43}", value) and value not in token and token.split("_", 2)[2] not in cookie
    )  # the whole secret (it may hold "_")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/;" in cookie
    assert "Max-Age=86400" in cookie  # the session's absolute end, not the token's 30 days
    assert client.get("/ui/page", headers=HTML).text == "dashboard"
    assert len(app.state.sessions) == 1


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "/\\evil.example", "javascript:alert(1)", "ui", "/\t/x"]
)
def test_login_never_redirects_off_site(store: TokenStore, target: str) -> None:
    _, token = store.create("viewer", ["read"])
    client = TestClient(ui_app(store), follow_redirects=False)
    res = client.post("/login", data={"token": token, "next": target})
    assert res.status_code == 303
    assert res.headers["location"] == "/"
    assert safe_next(target) == "/"


def test_safe_next_keeps_local_paths() -> None:
    assert safe_next("/ui/page?site=a&x=1") == "/ui/page?site=a&x=1"
    assert safe_next(None) == "/"


def test_login_refuses_a_bad_token_with_the_form(store: TokenStore) -> None:
    _, exporter = store.create("exporter", ["export"])
    client = TestClient(ui_app(store), follow_redirects=False)
    res = client.post("/login", data={"token": "ctw_00000000_" + "x" * 43, "next": "/ui/"})
    assert res.status_code == 401
    assert "not valid" in res.text and 'name="token"' in res.text
    assert "set-cookie" not in res.headers
    assert client.post("/login", data={"token": exporter}).status_code == 403


def test_login_page_escapes_next(store: TokenStore) -> None:
    client = TestClient(ui_app(store))
    res = client.get("/login", params={"next": '/"><script>alert(1)</script>'})
    assert "<script>alert" not in res.text


def test_logout_ends_the_session_on_the_server(store: TokenStore) -> None:
    _, token = store.create("viewer", ["read"])
    app = ui_app(store)
    client = TestClient(app, follow_redirects=False)
    client.post("/login", data={"token": token, "next": "/ui/"})
    name = app.state.sessions.cookie_name
    copied = client.cookies[name]  # what someone who copied the cookie holds
    res = client.post("/logout")
    assert res.status_code == 303
    assert res.headers["set-cookie"].startswith(f'{name}=""')
    assert len(app.state.sessions) == 0
    thief = TestClient(app, follow_redirects=False, cookies={name: copied})
    assert thief.get("/ui/", headers=HTML).status_code == 303  # to /login: the copy died with the session


# ---------------------------------------------------------------------------- exposure
@pytest.mark.parametrize(
    "host", ["127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST.", "::ffff:127.0.0.1"]
)
def test_loopback_needs_no_token(store: TokenStore, host: str) -> None:
    assert is_loopback(host)
    check_exposure(host, store, ["/healthz", "/readyz", "/metrics"])


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "example.org", ""])
def test_network_address_without_a_token_refuses_to_start(store: TokenStore, host: str) -> None:
    assert not is_loopback(host)
    with pytest.raises(ExposureError, match=re.escape("ctwin token create --scope admin NAME")) as exc:
        check_exposure(host, store)
    assert "127.0.0.1" in str(exc.value)


def test_network_address_with_a_token_starts(store: TokenStore, caplog: pytest.LogCaptureFixture) -> None:
    info, _ = store.create("root", ["admin"])
    with caplog.at_level(logging.WARNING, logger="service.auth"):
        check_exposure("0.0.0.0", store, ["/healthz"])
        assert not caplog.records
        check_exposure("0.0.0.0", store, ["/healthz", "/metrics"])
    assert "/metrics is served without a token" in caplog.text
    store.revoke(info.id)
    with pytest.raises(ExposureError):
        check_exposure("0.0.0.0", store)


def test_open_endpoints_default_differs_beyond_loopback() -> None:
    assert open_endpoints_for(AuthConfig(), "127.0.0.1") == {"/healthz", "/readyz", "/metrics", "/"}
    assert open_endpoints_for(AuthConfig(), "0.0.0.0") == {"/healthz", "/readyz"}
    explicit = AuthConfig(open_endpoints=["/metrics"])
    assert open_endpoints_for(explicit, "0.0.0.0") == {"/metrics"}
