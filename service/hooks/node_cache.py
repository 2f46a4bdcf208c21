"""The cluster's nodes as ctwin's site mapping needs them, kept current by an informer.

Why: with `nodeCacheCapable: true` the kube-scheduler sends node names only (a few KB a cycle
instead of megabytes of Node objects), so the labels, taints and OS that tell a site's nodes and
interLink's virtual nodes apart must come from somewhere else. This cache lists `/api/v1/nodes`
once and then watches it (service.hooks.informer: resume, relist on 410, backoff, bookmarks), and
keeps per node only what the mapping reads plus capacity/allocatable (a few hundred bytes a node,
not the 5 KB of a full object with managedFields). Reads are a dict lookup under no lock (a relist
swaps in a new dict; an event sets or pops one key, each atomic for a reader).

A name it does not know (the informer has not listed yet, or the node is newer than the last event)
is the caller's to handle: service.hooks.k8s_sites falls back as for any unmapped node.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from collectors.kube_api import KubeClient
from service.hooks.extender_wire import Node, node_from_object
from service.hooks.informer import Informer

__all__ = ["CachedNode", "NodeCache"]

NODES_PATH = "/api/v1/nodes"


@dataclass(frozen=True)
class CachedNode:
    node: Node
    """Name, labels, taints, OS: what the site mapping reads."""
    capacity: Mapping[str, str] = field(default_factory=dict)
    allocatable: Mapping[str, str] = field(default_factory=dict)


def _cached(obj: Mapping[str, Any]) -> CachedNode:
    node = node_from_object(obj)
    status = obj.get("status") or {}
    return CachedNode(
        node,
        dict(status.get("capacity") or {}) if isinstance(status, dict) else {},
        dict(status.get("allocatable") or {}) if isinstance(status, dict) else {},
    )


class NodeCache:
    def __init__(self, client: Callable[[], KubeClient], *, watch_timeout_s: int = 240) -> None:
        self._nodes: dict[str, CachedNode] = {}
        self._lock = threading.Lock()  # writers only (the informer's thread, tests); readers take a reference
        self.informer = Informer(
            "nodes", client, NODES_PATH, on_list=self._replace, on_event=self._apply, watch_timeout_s=watch_timeout_s
        )

    def start(self) -> None:
        self.informer.start()

    def stop(self) -> None:
        self.informer.stop()

    # ------------------------------------------------------------------ reading
    def get(self, name: str) -> CachedNode | None:
        return self._nodes.get(name)

    def node(self, name: str) -> Node | None:
        """The Node the site mapping reads, or None when the cache does not know the name."""
        cached = self._nodes.get(name)
        return cached.node if cached is not None else None

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def synced(self) -> bool:
        return self.informer.synced.is_set()

    def age_s(self) -> float | None:
        return self.informer.age_s()

    # ------------------------------------------------------------------ the informer's callbacks
    def _replace(self, items: Sequence[Mapping[str, Any]]) -> None:
        fresh = {}
        for obj in items:
            try:
                cached = _cached(obj)
            except ValueError:
                continue  # not a Node (no name): nothing maps to it
            fresh[cached.node.name] = cached
        with self._lock:
            self._nodes = fresh

    def _apply(self, kind: str, obj: Mapping[str, Any]) -> None:
        try:
            cached = _cached(obj)
        except ValueError:
            return
        with self._lock:  # one key set or popped: atomic for a reader's dict lookup
            if kind == "DELETED":
                self._nodes.pop(cached.node.name, None)
            else:
                self._nodes[cached.node.name] = cached
