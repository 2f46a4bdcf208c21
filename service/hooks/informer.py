"""List, then watch, one kind of Kubernetes object in a background thread: client-go's reflector,
reduced to what ctwin's hooks need.

Why one stream instead of polling: a watch costs the API server one connection however many
objects change, where a GET per object per second grows with the cluster. The loop:

1. list `path` (with the selectors) and hand every item to `on_list`, which replaces what the
   owner knew; the list's resourceVersion is where the watch starts;
2. watch from there (`allowWatchBookmarks`): each ADDED/MODIFIED/DELETED goes to `on_event`, and
   each event, BOOKMARK included, moves the resume point to its object's resourceVersion; when the
   server ends the watch (its `timeoutSeconds`), watch again from that point, without a relist;
3. 410 Gone (the resume point fell out of the server's watch window; as an HTTP status or as an
   ERROR event carrying a Status) → relist (counted in `relists`); any other failure (connection
   refused, 5xx, a bad token) → back off (0.5 s doubling to 30 s, counted in `errors`) and relist,
   with a fresh client.

`last_contact_s` is when the server last showed the stream was current (a list, any event, the
clean end of a watch): its age says how stale the owner's view may be. `stop()` shuts the watch's
socket down (`KubeClient.interrupt`), so a blocked read ends at once instead of after the server's
timeout.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from collectors.kube_api import KubeClient, KubeError

__all__ = ["Informer"]

log = logging.getLogger(__name__)

_BACKOFF_FIRST_S = 0.5
_BACKOFF_MAX_S = 30.0


class _Expired(Exception):
    """The resume point is gone (410): relist."""


class Informer:
    def __init__(
        self,
        name: str,
        client: Callable[[], KubeClient],
        path: str,
        *,
        on_list: Callable[[Sequence[Mapping[str, Any]]], None],
        on_event: Callable[[str, Mapping[str, Any]], None],
        field_selector: str | None = None,
        label_selector: str | None = None,
        watch_timeout_s: int = 240,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self._client_factory = client
        self.path = path
        self.on_list = on_list
        self.on_event = on_event
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.watch_timeout_s = watch_timeout_s
        self.clock = clock
        self.synced = threading.Event()
        """Set once the first list has been handed over."""
        self.last_contact_s: float | None = None
        self.lists = 0
        self.relists = 0
        """Lists after the first because the resume point expired (410 Gone)."""
        self.errors = 0
        self._resource_version: str | None = None
        self._client: KubeClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ public
    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"k8s-informer-{self.name}", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        client = self._client
        if client is not None:
            client.interrupt()  # ends a read blocked on the watch stream
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    def age_s(self) -> float | None:
        """Seconds since the server last showed the stream current; None before the first list."""
        return None if self.last_contact_s is None else max(0.0, self.clock() - self.last_contact_s)

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        backoff = _BACKOFF_FIRST_S
        while not self._stop.is_set():
            try:
                if self._client is None:
                    self._client = self._client_factory()
                if self._resource_version is None:
                    self._list(self._client)
                self._watch(self._client)
                backoff = _BACKOFF_FIRST_S
            except _Expired:
                self.relists += 1
                self._resource_version = None
                log.info("k8s informer %s: resume point expired (410 Gone); relisting", self.name)
            except Exception as exc:
                if self._stop.is_set():
                    break
                self.errors += 1
                log.warning("k8s informer %s: %s; retrying in %.1f s", self.name, _describe(exc), backoff)
                self._reset()
                self._stop.wait(backoff)
                backoff = min(_BACKOFF_MAX_S, backoff * 2)
        self._reset()

    def _reset(self) -> None:
        client, self._client = self._client, None
        self._resource_version = None
        if client is not None:
            client.close()

    def _list(self, client: KubeClient) -> None:
        try:
            listed = client.list(self.path, label_selector=self.label_selector, field_selector=self.field_selector)
        except KubeError as exc:
            if exc.status == 410:
                raise _Expired from None
            raise
        items = listed.get("items") or []
        self.on_list(items)
        self._resource_version = str((listed.get("metadata") or {}).get("resourceVersion") or "") or None
        self.lists += 1
        self.last_contact_s = self.clock()
        self.synced.set()

    def _watch(self, client: KubeClient) -> None:
        try:
            events = client.watch(
                self.path,
                resource_version=self._resource_version,
                timeout_s=self.watch_timeout_s,
                label_selector=self.label_selector,
                field_selector=self.field_selector,
            )
            for event in events:
                if self._stop.is_set():
                    return
                kind, obj = str(event.get("type", "")), event.get("object") or {}
                if kind == "ERROR":
                    code = obj.get("code")
                    if code == 410:
                        raise _Expired
                    raise KubeError(int(code or 500), str(obj.get("reason", "")), str(obj.get("message", obj)))
                version = (obj.get("metadata") or {}).get("resourceVersion")
                if kind in ("ADDED", "MODIFIED", "DELETED"):
                    self.on_event(kind, obj)
                if version:
                    self._resource_version = str(version)
                self.last_contact_s = self.clock()
        except KubeError as exc:
            if exc.status == 410:
                raise _Expired from None
            raise
        self.last_contact_s = self.clock()  # the server ended the watch on time: it was current


def _describe(exc: Exception) -> str:
    return str(exc) if isinstance(exc, KubeError) else f"{type(exc).__name__}: {exc}"
