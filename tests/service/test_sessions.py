"""Browser sessions (service/sessions.py): what another server on 127.0.0.1 receives from a signed-in
client, and each way a session ends: idle, lifetime, the token's expiry, revocation by the CLI in
another process, sign-out, a replaced token, and the store's bound."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth import TokenInfo, TokenStore, TokenStoreError, authorize
from service.config import parse_config
from service.sessions import SessionStore, cookie_name_for
from tests.conftest import free_port


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# ---------------------------------------------------------------------------- the leak, reproduced
@contextmanager
def uvicorn_serving(app: object) -> Iterator[str]:
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))  # type: ignore[arg-type]
    thread = threading.Thread(target=server.run, name="service-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextmanager
def cookie_recorder() -> Iterator[tuple[str, list[str]]]:
    """Another HTTP server on 127.0.0.1 (any port: a notebook, a test server): records the Cookie
    header of every request it gets."""
    received: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            received.append(self.headers.get("Cookie", ""))
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, name="cookie-recorder", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()


CONFIG = """
auth: {open_endpoints: ["/healthz", "/readyz"]}
sites:
  - {name: local, kind: edge, collectors: []}
"""


def test_another_local_server_never_receives_a_usable_token(tmp_path: Path) -> None:
    """Cookies are not kept apart by port: a client signed in to the service sends its cookies to
    every server on 127.0.0.1. What it sends must be neither the token nor usable as one."""
    loaded = parse_config(CONFIG)
    tokens = TokenStore(loaded.tokens_path(tmp_path))
    admin, token = tokens.create("root", ["admin"])
    app = create_app(loaded, tmp_path, collect=False, ui=False)
    with uvicorn_serving(app) as service, cookie_recorder() as (other, received):
        client = httpx.Client(follow_redirects=False)  # a cookie jar keyed by host, as a browser's
        res = client.post(f"{service}/login", data={"token": token, "next": "/"})
        assert res.status_code == 303, res.text
        client.get(f"{other}/anything")
        assert received and received[0], "the client did not send its cookies to the other port"
        sent = received[0]
        secret = token.split("_", 2)[2]
        assert token not in sent and secret not in sent
        values = [part.partition("=")[2] for part in sent.split("; ")]
        names = [part.partition("=")[0] for part in sent.split("; ")]
        assert names == [app.state.sessions.cookie_name]
        outsider = httpx.Client()  # what the other server can do with what it got
        for value in values:
            assert outsider.get(f"{service}/v1/sites", headers={"Authorization": f"Bearer {value}"}).status_code == 401
            for cookie_name in names:
                replayed = outsider.get(f"{service}/v1/export/jobs", cookies={cookie_name: value})
                assert replayed.status_code == 401  # the API takes no cookie, whatever it holds
        assert admin.scopes == ("admin",)
        client.close()
        outsider.close()


# ---------------------------------------------------------------------------- how a session ends
@pytest.fixture
def store(tmp_path: Path) -> TokenStore:
    return TokenStore(tmp_path / "tokens.json", check_interval_s=0)


def test_a_session_grants_read_and_export_at_most_and_is_bound_to_its_token(store: TokenStore) -> None:
    info, _ = store.create("root", ["admin", "export"])
    sessions = SessionStore(store)
    session_id, max_age = sessions.create(info)
    principal = sessions.resolve(session_id)
    assert principal is not None and principal.id == info.id and principal.name == "root"
    assert principal.scopes == ("read", "export")  # the Export page's download; never admin
    assert principal.allows("export") and not principal.allows("admin") and not principal.allows("advise")
    viewer, _ = store.create("viewer", ["read"])
    seen = sessions.resolve(sessions.create(viewer)[0])
    assert seen is not None and seen.scopes == ("read",) and not seen.allows("export")
    assert max_age == 24 * 3600
    assert sessions.resolve(session_id + "x") is None and sessions.resolve("") is None
    assert sessions.resolve("a" * 10_000) is None
    exporter, _ = store.create("exporter", ["export"])
    with pytest.raises(ValueError, match="none of the session scopes"):
        sessions.create(exporter)


def test_idle_and_absolute_lifetimes(store: TokenStore) -> None:
    clock = Clock()
    info, _ = store.create("viewer", ["read"])
    sessions = SessionStore(store, idle_s=600, max_age_s=3600, clock=clock)
    idle, _ = sessions.create(info)
    busy, max_age = sessions.create(info)
    assert max_age == 3600
    for _ in range(5):  # used every 9 minutes: busy stays, idle (never used) ends at 10 minutes
        clock.now += 540
        assert sessions.resolve(busy) is not None
    assert sessions.resolve(idle) is None
    clock.now += 900 - 1  # 59:59 after sign-in
    assert sessions.resolve(busy) is None  # idle for 15 min
    fresh, _ = sessions.create(info)
    for _ in range(6):
        clock.now += 599
    assert sessions.resolve(fresh) is None  # used within every idle window, but past the hour
    assert len(sessions) == 0


def test_never_outlives_its_token(tmp_path: Path) -> None:
    clock = Clock()
    store = TokenStore(tmp_path / "tokens.json", check_interval_s=0, clock=clock)
    info, _ = store.create("short", ["read"], expires_in_s=120)
    sessions = SessionStore(store, clock=clock)
    session_id, max_age = sessions.create(info)
    assert max_age == 120  # the cookie itself ends with the token
    clock.now += 119
    assert sessions.resolve(session_id) is not None
    clock.now += 1
    assert sessions.resolve(session_id) is None


def test_revoked_by_the_cli_in_another_process_within_a_second(tmp_path: Path) -> None:
    path = tmp_path / "tokens.json"
    info, _ = TokenStore(path).create("viewer", ["read"])  # `ctwin token create`
    server = TokenStore(path)  # what `ctwin serve` holds: re-reads the file at most once a second
    sessions = SessionStore(server)
    session_id, _ = sessions.create(info)
    assert sessions.resolve(session_id) is not None
    TokenStore(path).revoke("viewer")  # `ctwin token revoke viewer`
    time.sleep(1.05)
    assert sessions.resolve(session_id) is None
    assert len(sessions) == 0  # and it is gone, not merely refused


def test_a_replaced_token_with_the_same_id_does_not_inherit_sessions(store: TokenStore, tmp_path: Path) -> None:
    info, _ = store.create("viewer", ["read"])
    sessions = SessionStore(store)
    session_id, _ = sessions.create(info)
    impostor = info.model_copy(update={"created_s": info.created_s + 1})
    assert sessions.resolve(session_id) is not None
    sessions.tokens = _FixedTokens(impostor)  # type: ignore[assignment]
    assert sessions.resolve(session_id) is None


class _FixedTokens:
    def __init__(self, info: TokenInfo) -> None:
        self.info = info

    def active(self, token_id: str) -> TokenInfo | None:
        return self.info if token_id == self.info.id else None


def test_the_store_is_bounded(store: TokenStore) -> None:
    clock = Clock()
    info, _ = store.create("viewer", ["read"])
    sessions = SessionStore(store, max_sessions=3, clock=clock)
    ids = []
    for _ in range(5):
        clock.now += 1
        ids.append(sessions.create(info)[0])
    assert len(sessions) == 3
    assert [sessions.resolve(i) is not None for i in ids] == [False, False, True, True, True]  # oldest dropped


def test_an_unreadable_token_file_fails_closed(store: TokenStore) -> None:
    info, _ = store.create("viewer", ["read"])
    sessions = SessionStore(store)
    session_id, _ = sessions.create(info)
    store.path.write_text("garbage")
    with pytest.raises(TokenStoreError):
        sessions.resolve(session_id)
    denial = authorize("read", store, {}, {sessions.cookie_name: session_id}, sessions)
    assert not isinstance(denial, TokenInfo) and denial.status == 503


def test_the_cookie_name_is_per_install(tmp_path: Path) -> None:
    a, b = cookie_name_for(tmp_path / "a" / "tokens.json"), cookie_name_for(tmp_path / "b" / "tokens.json")
    assert a != b and a.startswith("ctwin_session_") and len(a) == len("ctwin_session_") + 8
    assert cookie_name_for(tmp_path / "a" / "tokens.json") == a  # stable across restarts


def test_the_served_app_signs_in_and_out_with_the_configured_lifetimes(tmp_path: Path) -> None:
    loaded = parse_config(CONFIG.replace("auth: {", "auth: {session_idle: 10m, session_max_age: 2h, "))
    _, token = TokenStore(loaded.tokens_path(tmp_path)).create("viewer", ["read"])
    app = create_app(loaded, tmp_path, collect=False, ui=False)
    sessions: SessionStore = app.state.sessions
    assert (sessions.idle_s, sessions.max_age_s) == (600, 7200)
    with TestClient(app, follow_redirects=False) as client:
        res = client.post("/login", data={"token": token})
        assert "Max-Age=7200" in res.headers["set-cookie"]
        assert len(sessions) == 1
        client.post("/login", data={"token": token})  # signing in again replaces, never piles up
        assert len(sessions) == 1
        client.post("/logout")
        assert len(sessions) == 0
