"""Browser sessions: what the `/login` cookie stands for, kept on the server.

Why not the token itself in the cookie (as before): browsers do not keep cookies apart by port, so
every other server on 127.0.0.1 (a notebook, a test server, anything a user runs) received the
pasted token, admin included, for 30 days. Now the cookie carries only a random session id:

- the id is `secrets.token_urlsafe(32)`; the server keeps only its SHA-256, so neither a debug dump
  of this store nor a timing difference in the lookup yields a usable id;
- a session is bound to the token's id and creation time, and on every use the token is checked
  again in the TokenStore, which re-reads tokens.json at most once a second: a token revoked or
  expired by `ctwin token` in another process ends its sessions within a second;
- it grants `read` (what the dashboard needs), plus `export` when the token has it (the Export
  page's download), never more: a leaked cookie can show the dashboard and download what the
  token could export, never administer, advise or ingest, and the API (`/v1`) does not take it at
  all;
- it dies after `idle_s` unused (12 h) and at most `max_age_s` after sign-in (24 h), never later
  than the token's own expiry; `/logout` deletes it here, not only in the browser;
- the cookie's name carries a per-install suffix (a hash of the tokens file's path), so two
  services on one machine, or another application's `session` cookie, never collide with it.

Sessions live in memory, not on disk: the service is one process (its `/metrics` collectors need
that anyway), revocation already reaches it through the token file, and a restart signing every
browser out is the safe failure. Read-only replicas would need their own sign-in.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from service.auth import ScopeName, TokenInfo, TokenStore

__all__ = ["COOKIE_PREFIX", "SESSION_SCOPES", "SessionStore", "cookie_name_for"]

COOKIE_PREFIX = "ctwin_session_"
SESSION_SCOPES: tuple[ScopeName, ...] = ("read", "export")
"""What a session may do at most; `read` is required (the dashboard), `export` kept if the token has it."""
"""What a browser session can do, at most (and never more than its token)."""
DEFAULT_IDLE_S = 12 * 3600.0
DEFAULT_MAX_AGE_S = 24 * 3600.0
DEFAULT_MAX_SESSIONS = 10_000
_MAX_ID_CHARS = 128  # ours are 43; never hash attacker-sized input


def cookie_name_for(tokens_path: Path) -> str:
    """`ctwin_session_<8 hex>`, stable for one install (one tokens file), different across installs."""
    suffix = hashlib.sha256(str(tokens_path.resolve()).encode("utf-8")).hexdigest()[:8]
    return COOKIE_PREFIX + suffix


def _key(session_id: str) -> bytes:
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).digest()


@dataclass
class _Session:
    token_id: str
    token_created_s: float
    scopes: tuple[ScopeName, ...]
    created_s: float
    expires_s: float
    last_used_s: float


class SessionStore:
    """Server-side sessions over a TokenStore. Thread-safe; `clock` is injectable for tests."""

    def __init__(
        self,
        tokens: TokenStore,
        *,
        idle_s: float = DEFAULT_IDLE_S,
        max_age_s: float = DEFAULT_MAX_AGE_S,
        max_sessions: int = DEFAULT_MAX_SESSIONS,
        cookie_name: str | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if idle_s <= 0 or max_age_s <= 0 or max_sessions <= 0:
            raise ValueError("session idle time, lifetime and count must be positive")
        self.tokens = tokens
        self.idle_s = idle_s
        self.max_age_s = max_age_s
        self.max_sessions = max_sessions
        self.cookie_name = cookie_name or cookie_name_for(tokens.path)
        self._clock = clock
        self._lock = threading.Lock()
        self._sessions: dict[bytes, _Session] = {}

    def create(self, info: TokenInfo) -> tuple[str, int]:
        """A new session for a verified token: its id (for the cookie only) and the cookie's
        max-age in whole seconds (the session's absolute end)."""
        if not info.allows("read"):
            raise ValueError(f"token {info.id} has none of the session scopes {SESSION_SCOPES}")
        scopes = tuple(s for s in SESSION_SCOPES if info.allows(s))
        now = self._clock()
        expires = now + self.max_age_s
        if info.expires_s is not None:
            expires = min(expires, info.expires_s)
        session_id = secrets.token_urlsafe(32)
        session = _Session(info.id, info.created_s, scopes, now, expires, now)
        with self._lock:
            self._prune(now)
            while len(self._sessions) >= self.max_sessions:  # full of live sessions: drop the oldest
                oldest = min(self._sessions, key=lambda k: self._sessions[k].created_s)
                del self._sessions[oldest]
            self._sessions[_key(session_id)] = session
        return session_id, max(1, int(expires - now))

    def resolve(self, session_id: str) -> TokenInfo | None:
        """The session's principal (its token's info, scopes narrowed to the session's), or None
        when the id is unknown, the session idled out or ended, or its token is no longer active.

        Raises TokenStoreError when the tokens file is unreadable: callers fail closed."""
        if not session_id or len(session_id) > _MAX_ID_CHARS:
            return None
        key = _key(session_id)
        now = self._clock()
        with self._lock:
            session = self._sessions.get(key)
            if session is None:
                return None
            if now >= session.expires_s or now - session.last_used_s >= self.idle_s:
                del self._sessions[key]
                return None
        info = self.tokens.active(session.token_id)
        if info is None or info.created_s != session.token_created_s:  # revoked, expired, or replaced
            self.delete(session_id)
            return None
        with self._lock:
            session.last_used_s = max(session.last_used_s, now)
        return info.model_copy(update={"scopes": session.scopes})

    def delete(self, session_id: str) -> bool:
        """End a session (sign-out); False if there was none."""
        if not session_id or len(session_id) > _MAX_ID_CHARS:
            return False
        with self._lock:
            return self._sessions.pop(_key(session_id), None) is not None

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _prune(self, now: float) -> None:
        """Drop ended sessions (called under the lock on sign-in, so the store never grows stale)."""
        dead = [k for k, s in self._sessions.items() if now >= s.expires_s or now - s.last_used_s >= self.idle_s]
        for key in dead:
            del self._sessions[key]
