"""The informer's loop on the paths a healthy test apiserver does not take on demand: a 410 Gone
(as an ERROR event and as an HTTP status) relists, a BOOKMARK moves the resume point without an
event, a failure backs off and relists with a fresh client, and the clean end of a watch resumes
from the last resourceVersion without a relist. tests/k8s/test_informers.py runs the same code
against a real kube-apiserver.

The client here is a script of what a server would answer, one entry per call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from collectors.kube_api import KubeError
from service.hooks.extender_wire import Node
from service.hooks.informer import Informer
from service.hooks.k8s_sites import NodeSites


def _node(name: str, rv: str, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "resourceVersion": rv, "labels": labels}}


class _Script:
    """A KubeClient whose list and watch answers come from a shared script."""

    def __init__(self, script: list[Any], calls: list[tuple[str, str | None]], done: threading.Event) -> None:
        self.script, self.calls, self.done = script, calls, done

    def list(self, path: str, **selectors: Any) -> dict[str, Any]:
        self.calls.append(("list", None))
        return self._next("list")  # type: ignore[no-any-return]

    def watch(self, path: str, *, resource_version: str | None = None, **kw: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(("watch", resource_version))
        answer = self._next("watch")
        yield from answer

    def _next(self, verb: str) -> Any:
        if not self.script:
            self.done.set()
            raise ConnectionError("script over")
        want, answer = self.script.pop(0)
        assert want == verb, (want, verb, self.calls)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def interrupt(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_relist_on_410_bookmarks_backoff_and_resume() -> None:
    gone = {"type": "ERROR", "object": {"kind": "Status", "code": 410, "reason": "Expired", "message": "too old"}}
    script: list[Any] = [
        ("list", {"metadata": {"resourceVersion": "10"}, "items": [_node("a", "9")]}),
        ("watch", [{"type": "ADDED", "object": _node("b", "11")}, {"type": "BOOKMARK", "object": _node("", "15")}]),
        ("watch", [gone]),  # resumed from the bookmark's 15, then told it expired
        ("list", {"metadata": {"resourceVersion": "20"}, "items": [_node("a", "9"), _node("c", "19")]}),
        ("watch", KubeError(410, "Gone", "expired")),
        ("list", {"metadata": {"resourceVersion": "30"}, "items": [_node("c", "19")]}),
        ("watch", KubeError(500, "InternalError", "etcd is down")),  # → back off, fresh client, relist
        ("list", {"metadata": {"resourceVersion": "40"}, "items": [_node("c", "19")]}),
        ("watch", [{"type": "DELETED", "object": _node("c", "41")}]),
    ]
    calls: list[tuple[str, str | None]] = []
    done = threading.Event()
    clients: list[_Script] = []
    lists: list[list[str]] = []
    events: list[tuple[str, str]] = []

    def client() -> Any:
        clients.append(_Script(script, calls, done))
        return clients[-1]

    def on_list(items: Sequence[Mapping[str, Any]]) -> None:
        lists.append([i["metadata"]["name"] for i in items])

    def on_event(kind: str, obj: Mapping[str, Any]) -> None:
        events.append((kind, obj["metadata"]["name"]))

    informer = Informer("t", client, "/api/v1/nodes", on_list=on_list, on_event=on_event)
    informer.start()
    assert done.wait(30)
    informer.stop()
    assert calls[:9] == [
        ("list", None), ("watch", "10"), ("watch", "15"),
        ("list", None), ("watch", "20"),
        ("list", None), ("watch", "30"),
        ("list", None), ("watch", "40"),
    ]  # fmt: skip
    assert lists == [["a"], ["a", "c"], ["c"], ["c"]]
    assert events == [("ADDED", "b"), ("DELETED", "c")]  # no event for the bookmark
    assert (informer.relists, informer.errors >= 1, len(clients) >= 2) == (2, True, True)  # 500: a fresh client
    assert informer.synced.is_set() and informer.age_s() is not None


def test_names_only_nodes_map_through_the_lookup_and_unknown_names_are_counted() -> None:
    known = {"vk-1": Node("vk-1", {"virtual-node.interlink/type": "virtual-kubelet", "ctwin.io/site": "hpc"})}
    sites = NodeSites(["local", "hpc"], "local", {"pinned": "hpc"}, "ctwin.io/site", known.get)
    assert sites.site_of(Node("vk-1", by_name=True)) == "hpc"  # the cache's labels
    assert sites.site_of(Node("pinned", by_name=True)) == "hpc"  # the config, without the cache
    assert sites.unknown_names == 0
    assert sites.site_of(Node("new-node", by_name=True)) is None  # not in the cache (yet)
    assert sites.unknown_names == 1
    sites.site_of(Node("seen", {}, raw="{}"))  # a full body showed it: a plain node
    assert sites.site_of(Node("seen", by_name=True)) == "local" and sites.unknown_names == 1
    known["new-node"] = Node("new-node", {})  # the watch delivered it
    assert sites.site_of(Node("new-node", by_name=True)) == "local"
