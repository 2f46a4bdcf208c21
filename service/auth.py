"""API tokens with scopes: the store, the guards that check them, and the browser login.

A token reads `ctw_<id>_<secret>`. The id is public (listed, used to revoke); only a SHA-256 of
the secret is kept, in a JSON file the CLI writes and the running server re-reads when it changes,
so `ctwin token create|revoke` takes effect without a restart.

Three guards share one decision (`authorize`): `require_scope` for FastAPI routes (a Bearer token
only), `UiAuthMiddleware` for mounted ASGI apps (the Dash UI: a Bearer token or the browser's
session cookie), and the `/login` form that turns a pasted token into a server-side session
(service/sessions.py; the cookie holds a random session id, never the token).

    AuthError
    ├── TokenStoreError   the tokens file cannot be read or written (the message names it)
    ├── TokenLookupError  revoke: no token, or more than one, matches the id or name
    ├── TokenSpecError    create: bad name, scope or expiry (also a ValueError)
    └── ExposureError     serving beyond loopback while no token exists
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import html
import ipaddress
import json
import logging
import os
import re
import secrets
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from urllib.parse import parse_qs, quote, urlsplit

from fastapi import APIRouter, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.errors import ApiError, ErrorBody, error_body
from service.config import AuthConfig
from service.sessions import SessionStore

try:  # POSIX: serialise concurrent `ctwin token` writers; elsewhere last writer wins
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "AUTH_RESPONSES",
    "SCOPES",
    "AuthError",
    "Denial",
    "ExposureError",
    "ScopeName",
    "TokenInfo",
    "TokenLookupError",
    "TokenSpecError",
    "TokenStore",
    "TokenStoreError",
    "UiAuthMiddleware",
    "authorize",
    "bearer_from",
    "check_exposure",
    "guard_scope",
    "is_loopback",
    "login_router",
    "open_endpoints_for",
    "require_scope",
    "safe_next",
]

log = logging.getLogger(__name__)

ScopeName = Literal["read", "export", "advise", "ingest", "admin"]
SCOPES: tuple[ScopeName, ...] = get_args(ScopeName)
TOKEN_PREFIX = "ctw"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
_ID_RE = re.compile(r"^[0-9a-f]{4,32}$")
_MAX_TOKEN_CHARS = 512  # longer is never ours; don't hash attacker-sized input
_FILE_VERSION = 1


class AuthError(Exception):
    """Base of every access-control error."""


class TokenStoreError(AuthError):
    """The tokens file cannot be read or written."""


class TokenLookupError(AuthError):
    """No token, or several, match an id or name."""


class TokenSpecError(AuthError, ValueError):
    """A token cannot be created as asked (name, scope or expiry)."""


class ExposureError(AuthError):
    """The service would be reachable from the network with nothing to guard it."""


class TokenInfo(BaseModel):
    """What is known about a token, never its secret; safe to print, log and return."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=_ID_RE.pattern)
    name: str
    scopes: tuple[ScopeName, ...]
    created_s: float
    expires_s: float | None = None
    revoked_s: float | None = None

    def allows(self, scope: ScopeName) -> bool:
        return "admin" in self.scopes or scope in self.scopes

    def status(self, now_s: float) -> Literal["active", "revoked", "expired"]:
        if self.revoked_s is not None:
            return "revoked"
        if self.expires_s is not None and now_s >= self.expires_s:
            return "expired"
        return "active"


class _StoredToken(TokenInfo):
    secret_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class _TokensFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: Literal[1]
    tokens: list[_StoredToken]


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode("utf-8")).digest()


def _split(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token string, else None."""
    if len(token) > _MAX_TOKEN_CHARS:
        return None
    prefix, _, rest = token.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix != TOKEN_PREFIX or not _ID_RE.match(token_id) or len(secret) < 16:
        return None
    return token_id, secret


_FileSig = tuple[int, int, int, int]


class TokenStore:
    """Tokens kept in one JSON file (mode 0600, replaced atomically on every change).

    Only SHA-256 of each secret is stored. A slow password hash (bcrypt, argon2) exists to make
    guessing low-entropy *passwords* expensive; our secrets are 256 random bits that nobody can
    enumerate, so a fast hash loses nothing and keeps per-request verification in microseconds.

    `verify` stats the file at most every `check_interval_s` and reloads it when it changed, so
    another process (the CLI) can create and revoke tokens under a running server. Thread-safe.
    """

    def __init__(
        self, path: str | Path, *, check_interval_s: float = 1.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.path = Path(path)
        self._check_interval_s = check_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._records: dict[str, tuple[TokenInfo, bytes]] = {}
        self._sig: _FileSig | None = None
        self._checked = 0.0
        self._error: TokenStoreError | None = None
        with self._lock:
            self._refresh(force=True)

    # ------------------------------------------------------------------ public
    def create(self, name: str, scopes: Iterable[str], expires_in_s: float | None = None) -> tuple[TokenInfo, str]:
        """A new token: its info and the token string, which exists nowhere else afterwards."""
        if not NAME_RE.match(name):
            raise TokenSpecError(
                f"invalid token name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-', starting with "
                "a letter or digit"
            )
        wanted = list(dict.fromkeys(scopes))
        unknown = [s for s in wanted if s not in SCOPES]
        if unknown or not wanted:
            what = f"unknown scope {', '.join(map(repr, unknown))}" if unknown else "no scope given"
            raise TokenSpecError(f"{what}: valid scopes are {', '.join(SCOPES)}")
        if expires_in_s is not None and expires_in_s <= 0:
            raise TokenSpecError(f"expiry must be in the future, got {expires_in_s} s")
        secret = secrets.token_urlsafe(32)
        with self._lock, self._exclusive():
            self._refresh(force=True)
            token_id = secrets.token_hex(4)
            while token_id in self._records:
                token_id = secrets.token_hex(4)
            now = round(self._clock(), 3)
            info = TokenInfo(
                id=token_id,
                name=name,
                scopes=tuple(s for s in SCOPES if s in wanted),
                created_s=now,
                expires_s=None if expires_in_s is None else round(now + expires_in_s, 3),
            )
            self._records[token_id] = (info, _digest(secret))
            self._write()
        return info, f"{TOKEN_PREFIX}_{token_id}_{secret}"

    def list(self) -> list[TokenInfo]:
        """Every token ever created (revoked and expired ones too), oldest first."""
        with self._lock:
            self._refresh()
            return sorted((info for info, _ in self._records.values()), key=lambda i: (i.created_s, i.id))

    def revoke(self, id_or_name: str) -> TokenInfo:
        """Revoke by id, or by name when exactly one unrevoked token has it."""
        with self._lock, self._exclusive():
            self._refresh(force=True)
            info = self._find(id_or_name)
            if info.revoked_s is None:
                info = info.model_copy(update={"revoked_s": round(self._clock(), 3)})
                self._records[info.id] = (info, self._records[info.id][1])
                self._write()
            return info

    def active(self, token_id: str) -> TokenInfo | None:
        """The info of the token with this id if it is unrevoked and unexpired (a session's check).

        Raises TokenStoreError when the tokens file is unreadable: callers fail closed."""
        with self._lock:
            self._refresh()
            record = self._records.get(token_id)
        if record is None or record[0].status(self._clock()) != "active":
            return None
        return record[0]

    def verify(self, token: str) -> TokenInfo | None:
        """The token's info if it is well-formed, known, unrevoked and unexpired; else None.

        Raises TokenStoreError when the tokens file is unreadable: callers fail closed."""
        parts = _split(token)
        if parts is None:
            return None
        token_id, secret = parts
        with self._lock:
            self._refresh()
            record = self._records.get(token_id)
        if record is None or not hmac.compare_digest(_digest(secret), record[1]):
            return None
        return record[0] if record[0].status(self._clock()) == "active" else None

    def count_active(self) -> int:
        with self._lock:
            self._refresh()
            now = self._clock()
            return sum(info.status(now) == "active" for info, _ in self._records.values())

    # ------------------------------------------------------------------ internals
    def _find(self, id_or_name: str) -> TokenInfo:
        if id_or_name in self._records:
            return self._records[id_or_name][0]
        named = [info for info, _ in self._records.values() if info.name == id_or_name]
        live = [info for info in named if info.revoked_s is None]
        if len(live) == 1:
            return live[0]
        if len(live) > 1:
            ids = ", ".join(info.id for info in live)
            raise TokenLookupError(f"{len(live)} tokens are named {id_or_name!r} (ids {ids}): revoke one by its id")
        if named:
            return named[-1]  # already revoked: revoking again is a no-op
        raise TokenLookupError(f"no token has the id or name {id_or_name!r}; `ctwin token list` shows them")

    def _stat(self) -> _FileSig | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise TokenStoreError(f"{self.path}: cannot read the tokens file: {exc.strerror}") from None
        return (st.st_mtime_ns, st.st_size, st.st_ino, st.st_ctime_ns)

    def _refresh(self, force: bool = False) -> None:
        """Reload the file if it changed (checked at most every check_interval_s unless forced)."""
        now = time.monotonic()
        if not force and now - self._checked < self._check_interval_s:
            if self._error is not None:
                raise self._error
            return
        self._checked = now
        try:
            sig = self._stat()
            if sig != self._sig or self._error is not None or force:
                self._records = self._read() if sig is not None else {}
                self._sig = sig
            self._error = None
        except TokenStoreError as exc:
            self._records, self._sig, self._error = {}, None, exc  # fail closed until it is fixed
            raise

    def _read(self) -> dict[str, tuple[TokenInfo, bytes]]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise TokenStoreError(f"{self.path}: cannot read the tokens file: {exc.strerror}") from None
        try:
            parsed = _TokensFile.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(top level)'}: {e['msg']}" for e in exc.errors()[:3]
            )
            raise TokenStoreError(
                f"{self.path}: not a valid tokens file ({problems}); restore it, or delete it to revoke every token"
            ) from None
        records: dict[str, tuple[TokenInfo, bytes]] = {}
        for entry in parsed.tokens:
            if entry.id in records:
                raise TokenStoreError(f"{self.path}: token id {entry.id!r} appears twice; restore the file")
            info = TokenInfo.model_validate(entry.model_dump(exclude={"secret_sha256"}))
            records[entry.id] = (info, bytes.fromhex(entry.secret_sha256))
        return records

    def _write(self) -> None:
        """Temp file (0600) + fsync + rename: readers see the old file or the new one, never half."""
        doc = {
            "version": _FILE_VERSION,
            "tokens": [
                {**info.model_dump(mode="json"), "secret_sha256": digest.hex()}
                for info, digest in self._records.values()
            ],
        }
        data = (json.dumps(doc, indent=2) + "\n").encode("utf-8")
        tmp = self.path.with_name(f".{self.path.name}.{secrets.token_hex(4)}.tmp")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
            with contextlib.suppress(OSError):  # persist the rename; not every filesystem allows it
                dir_fd = os.open(self.path.parent, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise TokenStoreError(f"{self.path}: cannot write the tokens file: {exc.strerror}") from None
        self._sig = self._stat()
        self._checked = time.monotonic()

    @contextlib.contextmanager
    def _exclusive(self) -> Iterator[None]:
        """Hold an inter-process lock so two CLI writers cannot lose each other's change."""
        if fcntl is None:
            yield
            return
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TokenStoreError(f"{lock_path}: cannot open the lock file: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the lock


# ---------------------------------------------------------------------- the decision
@dataclass(frozen=True)
class Denial:
    """Why a request is refused; says nothing about the data, or about which check failed."""

    status: int
    code: str
    message: str
    scope: ScopeName | None = None

    def headers(self) -> dict[str, str]:
        if self.status == 401:
            return {"WWW-Authenticate": "Bearer" if self.code == "missing_token" else 'Bearer error="invalid_token"'}
        if self.status == 403:
            return {"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{self.scope}"'}
        return {}

    def api_error(self) -> ApiError:
        return ApiError(self.status, self.code, self.message, headers=self.headers() or None)

    def response(self) -> JSONResponse:
        return JSONResponse(error_body(self.status, self.code, self.message), self.status, headers=self.headers())


def bearer_from(headers: Mapping[str, str]) -> str | None:
    """The token of `Authorization: Bearer <token>`, if sent."""
    scheme, _, credentials = (headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return None


def authorize(
    scope: ScopeName,
    tokens: TokenStore,
    headers: Mapping[str, str],
    cookies: Mapping[str, str] | None = None,
    sessions: SessionStore | None = None,
) -> TokenInfo | Denial:
    """The one access decision: the verified token (or session), or the refusal to send.

    A Bearer token wins; only without one, and only where the caller passes `sessions` (the UI
    guard), is the session cookie looked at. A session's principal carries the session's scopes."""
    token = bearer_from(headers)
    session_id = cookies.get(sessions.cookie_name) if sessions is not None and cookies and token is None else None
    if token is None and not session_id:
        return Denial(
            401,
            "missing_token",
            "an API token is required: send `Authorization: Bearer <token>` "
            "(an admin creates one with `ctwin token create`)",
        )
    try:
        if token is not None:
            info = tokens.verify(token)
        else:
            assert sessions is not None and session_id is not None
            info = sessions.resolve(session_id)
    except TokenStoreError as exc:
        log.error("refusing requests: %s", exc)
        return Denial(503, "auth_unavailable", "the token store cannot be read; see the server log")
    if info is None and token is None:
        return Denial(401, "invalid_session", "the session expired, was ended or its token revoked: sign in again")
    if info is None:
        return Denial(401, "invalid_token", "the token is malformed, unknown, revoked or expired")
    if not info.allows(scope):
        return Denial(403, "insufficient_scope", f"this needs a token with the {scope!r} scope", scope)
    return info


# ---------------------------------------------------------------------- FastAPI routes
_BEARER = HTTPBearer(auto_error=False, description="`ctwin token create NAME --scope read`")

AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No token, or a malformed, unknown, revoked or expired one"},
    403: {"model": ErrorBody, "description": "The token lacks the scope this route needs"},
}
"""Pass as `responses=` on guarded routers so the OpenAPI schema documents the refusals."""


def require_scope(scope: ScopeName) -> Callable[..., Awaitable[TokenInfo]]:
    """A route dependency that admits only tokens with `scope` and puts the token on `request.state.token`.

    The store is `request.app.state.tokens`. The dependency is async: it only touches memory,
    plus one stat per second, so a thread-pool hop per request would cost more than it saves."""
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}: valid scopes are {', '.join(SCOPES)}")

    async def dependency(
        request: Request,
        # declared so /docs offers its Authorize button; `authorize` reads the same header. No
        # cookie: the API takes tokens, the browser session is for the UI alone
        _bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)] = None,
    ) -> TokenInfo:
        result = authorize(scope, request.app.state.tokens, request.headers)
        if isinstance(result, Denial):
            raise result.api_error()
        request.state.token = result
        return result

    _GUARD_SCOPES[dependency] = scope
    return dependency


_GUARD_SCOPES: weakref.WeakKeyDictionary[Callable[..., Any], ScopeName] = weakref.WeakKeyDictionary()


def guard_scope(call: Callable[..., Any] | None) -> ScopeName | None:
    """The scope a `require_scope` dependency admits (None for any other callable), so a route can
    decide access before it reads its body (service/api/routing.py)."""
    if call is None:
        return None
    try:
        return _GUARD_SCOPES.get(call)
    except TypeError:  # not weak-referenceable, so not one of ours
        return None


# ---------------------------------------------------------------------- ASGI guard
class UiAuthMiddleware:
    """Guards a mounted ASGI app (the Dash UI, or `/metrics` when it is not open).

    Browsers asking for a page are sent to `/login?next=<where they were going>`; everything else
    (Dash's JSON callbacks, scrapers, scripts) gets the JSON error body. `tokens` and `sessions`
    default to `scope["app"].state.tokens` / `.sessions`, so the guard can be built before them."""

    def __init__(
        self,
        app: ASGIApp,
        tokens: TokenStore | None = None,
        enabled: bool = True,
        *,
        sessions: SessionStore | None = None,
        scope: ScopeName = "read",
        login_path: str = "/login",
    ) -> None:
        self.app = app
        self.tokens = tokens
        self.sessions = sessions
        self.enabled = enabled
        self.scope = scope
        self.login_path = login_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not self.enabled or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        conn = HTTPConnection(scope)
        tokens = self.tokens if self.tokens is not None else conn.app.state.tokens
        sessions = self.sessions if self.sessions is not None else getattr(conn.app.state, "sessions", None)
        result = authorize(self.scope, tokens, conn.headers, conn.cookies, sessions)
        if not isinstance(result, Denial):
            scope.setdefault("state", {})["token"] = result
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        response: Response = result.response()
        wants_page = scope.get("method") in ("GET", "HEAD") and "text/html" in conn.headers.get("accept", "")
        if wants_page and result.status != 503:
            target = scope["path"] + (
                f"?{scope['query_string'].decode('latin-1')}" if scope.get("query_string") else ""
            )
            response = RedirectResponse(f"{self.login_path}?next={quote(target, safe='/')}", status_code=303)
        await response(scope, receive, send)


# ---------------------------------------------------------------------- /login
login_router = APIRouter(include_in_schema=False)

_MAX_FORM_BYTES = 16 * 1024
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Continuum Twin — sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem}}
input[type=password]{{width:100%;padding:.5rem;font-family:monospace}}.err{{color:#b00020}}</style></head>
<body><h1>Continuum Twin</h1>
<p>Paste an API token with the <code>read</code> scope. An administrator creates one with
<code>ctwin token create NAME --scope read</code>.</p>{error}
<form method="post" action=""><input type="hidden" name="next" value="{next}">
<p><input type="password" name="token" autocomplete="off" autofocus required placeholder="ctw_…"></p>
<p><button type="submit">Sign in</button></p></form></body></html>
"""
_NO_STORE = {"Cache-Control": "no-store"}
_LEGACY_COOKIE = "ctwin_token"  # before sessions, the raw token itself (30 days): cleared at sign-in and out


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else "/": the login never redirects elsewhere."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/"
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return "/"
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else "/"


def _page(next_target: str, error: str = "", status: int = 200) -> HTMLResponse:
    message = f'<p class="err">{html.escape(error)}</p>' if error else ""
    return HTMLResponse(
        _PAGE.format(error=message, next=html.escape(next_target, quote=True)), status, headers=_NO_STORE
    )


@login_router.get("/login")
async def login_form(next: str = "/") -> HTMLResponse:
    return _page(safe_next(next))


def _sessions(request: Request) -> SessionStore:
    sessions = getattr(request.app.state, "sessions", None)
    if not isinstance(sessions, SessionStore):
        raise RuntimeError("the app has no session store: set app.state.sessions = SessionStore(tokens)")
    return sessions


def _cookie_path(request: Request) -> str:
    """The service's own path: "/", or its prefix when it is mounted behind one (root_path)."""
    return str(request.scope.get("root_path") or "").rstrip("/") + "/"


@login_router.post("/login")
async def login_submit(request: Request) -> Response:
    """Verify a pasted token and start a server-side session for it; the browser gets only the
    session's random id, in an HttpOnly, SameSite=Strict cookie named for this install.

    The urlencoded body is parsed here rather than with `Form(...)`, which would add a
    dependency (python-multipart) for two fields."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > _MAX_FORM_BYTES:
            return _page("/", "The form is too large.", 413)
    try:
        fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True, max_num_fields=8)
    except ValueError:
        return _page("/", "The form could not be read.", 400)
    target = safe_next((fields.get("next") or [request.query_params.get("next", "/")])[0])
    token = (fields.get("token") or [""])[0].strip()
    result = authorize("read", request.app.state.tokens, {"authorization": f"Bearer {token}"}, {})
    if isinstance(result, Denial):
        text = {
            401: "That token is not valid: it is malformed, unknown, revoked or expired.",
            403: "That token lacks the read scope the dashboard needs.",
        }.get(result.status, "Sign-in is unavailable: the token store cannot be read.")
        return _page(target, text, result.status)
    sessions = _sessions(request)
    sessions.delete(request.cookies.get(sessions.cookie_name, ""))  # a sign-in never keeps an old id
    session_id, max_age = sessions.create(result)
    response = RedirectResponse(target, status_code=303, headers=_NO_STORE)
    response.set_cookie(
        sessions.cookie_name,
        session_id,
        max_age=max_age,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(_LEGACY_COOKIE, path="/")
    return response


@login_router.post("/logout")
async def logout(request: Request) -> Response:
    """End the session on the server (a copied cookie dies with it), then in the browser."""
    sessions = _sessions(request)
    sessions.delete(request.cookies.get(sessions.cookie_name, ""))
    response = RedirectResponse("/login", status_code=303, headers=_NO_STORE)
    response.delete_cookie(
        sessions.cookie_name,
        path=_cookie_path(request),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(_LEGACY_COOKIE, path="/")
    return response


# ---------------------------------------------------------------------- exposure
DEFAULT_OPEN_BEYOND_LOOPBACK = ("/healthz", "/readyz")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (and IPv4-mapped loopback) and `localhost`; False for 0.0.0.0, :: and names."""
    name = host.strip().strip("[]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


def open_endpoints_for(auth: AuthConfig, listen_host: str) -> frozenset[str]:
    """Endpoints served without a token: as configured, else all three on loopback and only the
    probes (which say nothing about the data) beyond it, where `/metrics` would expose values."""
    if "open_endpoints" in auth.model_fields_set or is_loopback(listen_host):
        return frozenset(auth.open_endpoints)
    return frozenset(DEFAULT_OPEN_BEYOND_LOOPBACK)


def check_exposure(listen_host: str, tokens: TokenStore, open_endpoints: Iterable[str] = ()) -> None:
    """Refuse to serve beyond loopback while no active token exists: nobody could use the API,
    and anything left open would be open to the network. Call before binding."""
    if is_loopback(listen_host):
        return
    try:
        active = tokens.count_active()
    except TokenStoreError as exc:
        raise ExposureError(f"refusing to serve on {listen_host}: {exc}") from None
    if active == 0:
        raise ExposureError(
            f"refusing to serve on {listen_host}: it is reachable from the network and no active API token "
            f"exists in {tokens.path}. Create one first: `ctwin token create --scope admin NAME` "
            "(or listen on 127.0.0.1)."
        )
    if "/metrics" in set(open_endpoints):
        log.warning(
            "/metrics is served without a token on %s: anyone who can reach it sees the latest node values; "
            "remove it from auth.open_endpoints to require a token",
            listen_host,
        )
