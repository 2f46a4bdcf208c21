"""The kube-scheduler extender's wire format (k8s.io/kube-scheduler/extender/v1), read tolerantly
and written exactly as Go's encoding/json writes it.

Reading (`parse_args`): the Go types carry no json tags, so the keys are the field names
(`Pod`, `Nodes`, `NodeNames`), and Go matches keys case-insensitively: any case is accepted here
too, for the top level and the NodeList (`items`). Both `Nodes` and `NodeNames` are always sent,
the unused one `null` (`nodeCacheCapable: true` sends names only). Unknown keys are ignored, as Go
ignores them, so Node objects may carry managedFields, annotations and anything a newer release adds.

Why a hand-rolled top level: with `nodeCacheCapable: false` the filter must send back the Node
objects that passed (1.20 and current releases both read `Nodes` then). Re-encoding 500 decoded
Nodes costs as much as decoding them; instead each item's exact source text is kept while it is
decoded (`json.JSONDecoder.raw_decode` on its span, C speed), and the answer splices those spans.
The scheduler gets back the very bytes it sent.

Writing: `filter_result` gives `{"Nodes":..,"NodeNames":[..],"FailedNodes":{..},
"FailedAndUnresolvableNodes":{..},"Error":".."}` (field order of the Go struct; 1.20 has no
FailedAndUnresolvableNodes and ignores it), `host_priorities` a bare `[{"Host":..,"Score":..}]`.
Both are tested byte-for-byte against the upstream test literals (tests/fixtures/k8s-extender/).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any

__all__ = [
    "MAX_EXTENDER_PRIORITY",
    "ExtenderArgs",
    "Node",
    "WireError",
    "filter_result",
    "host_priorities",
    "node_from_object",
    "parse_args",
    "raw_filter_result",
]

MAX_EXTENDER_PRIORITY = 10
"""extenderv1.MaxExtenderPriority: the scale of an extender's scores (0..10)."""

_DECODER = json.JSONDecoder()
_WS = re.compile(r"[ \t\n\r]*")


class WireError(ValueError):
    """The body is not an ExtenderArgs (→ 400 with this message)."""


@dataclass(frozen=True)
class Node:
    """What the extender reads of a Node; `raw` is its exact JSON text (None: sent by name only)."""

    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, Any], ...] = ()
    operating_system: str = ""
    raw: str | None = None
    by_name: bool = False
    """Only the name is known (NodeNames): labels, taints and OS are not."""


@dataclass(frozen=True)
class ExtenderArgs:
    pod: Mapping[str, Any]
    nodes: tuple[Node, ...]
    by_name: bool
    """True when the scheduler sent NodeNames (nodeCacheCapable: true): answer with names only."""


# ---------------------------------------------------------------------------------------- reading
def parse_args(body: bytes) -> ExtenderArgs:
    """An ExtenderArgs from the request body, or WireError saying what is wrong with it."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WireError(f"the body is not UTF-8 ({exc.reason} at byte {exc.start})") from None
    try:
        members, end = _object(text, _skip(text, 0), _top_value)
    except (ValueError, RecursionError, IndexError) as exc:
        raise WireError(f"the body is not JSON: {exc}") from None
    if text[_skip(text, end) :]:
        raise WireError("the body has data after its JSON object")
    pod = members.get("pod")
    if not isinstance(pod, dict):
        raise WireError("ExtenderArgs.Pod is missing or not an object")
    node_list = members.get("nodes")
    names = members.get("nodenames")
    if node_list is not None:
        if not isinstance(node_list, _NodeList):
            raise WireError("ExtenderArgs.Nodes must be a NodeList object or null")
        return ExtenderArgs(pod, node_list.nodes, by_name=False)
    if names is not None:
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise WireError("ExtenderArgs.NodeNames must be a list of strings or null")
        return ExtenderArgs(pod, tuple(Node(n, by_name=True) for n in names), by_name=True)
    raise WireError("ExtenderArgs has neither Nodes nor NodeNames")


@dataclass(frozen=True)
class _NodeList:
    nodes: tuple[Node, ...]


def _skip(text: str, pos: int) -> int:
    match = _WS.match(text, pos)
    return match.end() if match else pos


def _object(text: str, pos: int, value: Any) -> tuple[dict[str, Any], int]:
    """Members of the JSON object at `pos`, keys lower-cased (Go's case-insensitive match; a later
    duplicate wins, as in Go); `value(text, pos, key)` decodes each member's value."""
    if text[pos] != "{":
        raise ValueError(f"expected an object at char {pos}")
    members: dict[str, Any] = {}
    pos = _skip(text, pos + 1)
    if text[pos] == "}":
        return members, pos + 1
    while True:
        if text[pos] != '"':
            raise ValueError(f"expected a key at char {pos}")
        key, pos = scanstring(text, pos + 1)
        pos = _skip(text, pos)
        if text[pos] != ":":
            raise ValueError(f"expected ':' at char {pos}")
        lowered = key.lower()
        members[lowered], pos = value(text, _skip(text, pos + 1), lowered)
        pos = _skip(text, pos)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos] == "}":
            return members, pos + 1
        else:
            raise ValueError(f"expected ',' or '}}' at char {pos}")


def _top_value(text: str, pos: int, key: str) -> tuple[Any, int]:
    if key == "nodes" and text.startswith("{", pos):
        members, end = _object(text, pos, _node_list_value)
        items = members.get("items")
        if items is not None and not isinstance(items, tuple):
            raise ValueError("Nodes.items must be a list")
        return _NodeList(items or ()), end
    value, end = _DECODER.raw_decode(text, pos)
    return value, end


def _node_list_value(text: str, pos: int, key: str) -> tuple[Any, int]:
    if key != "items" or not text.startswith("[", pos):
        return _DECODER.raw_decode(text, pos)
    nodes: list[Node] = []
    pos = _skip(text, pos + 1)
    if text[pos] == "]":
        return (), pos + 1
    while True:
        obj, end = _DECODER.raw_decode(text, pos)
        nodes.append(node_from_object(obj, text[pos:end]))
        pos = _skip(text, end)
        if text[pos] == ",":
            pos = _skip(text, pos + 1)
        elif text[pos] == "]":
            return tuple(nodes), pos + 1
        else:
            raise ValueError(f"expected ',' or ']' at char {pos}")


def node_from_object(obj: Any, raw: str | None = None) -> Node:
    """A Node from its decoded JSON object (ValueError if it is not a Node)."""
    if not isinstance(obj, dict):
        raise ValueError("a Nodes item is not an object")
    meta = _ci(obj, "metadata") or {}
    name = _ci(meta, "name") if isinstance(meta, dict) else None
    if not isinstance(name, str) or not name:
        raise ValueError("a Nodes item has no metadata.name")
    labels = _ci(meta, "labels") or {}
    spec = _ci(obj, "spec") or {}
    taints = _ci(spec, "taints") if isinstance(spec, dict) else None
    status = _ci(obj, "status") or {}
    info = _ci(status, "nodeInfo") if isinstance(status, dict) else None
    system = _ci(info, "operatingSystem") if isinstance(info, dict) else None
    return Node(
        name,
        labels if isinstance(labels, dict) else {},
        tuple(t for t in taints if isinstance(t, dict)) if isinstance(taints, list) else (),
        system if isinstance(system, str) else "",
        raw,
    )


def _ci(obj: Mapping[str, Any], key: str) -> Any:
    """obj[key], else the first key equal to it ignoring case (Go's decoder matches so)."""
    value = obj.get(key)
    if value is not None or key in obj:
        return value
    lowered = key.lower()
    return next((v for k, v in obj.items() if k.lower() == lowered), None)


# ---------------------------------------------------------------------------------------- writing
def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def filter_result(
    passed: Sequence[Node],
    failed: Mapping[str, str],
    *,
    by_name: bool,
    unresolvable: Mapping[str, str] | None = None,
    error: str = "",
) -> bytes:
    """An ExtenderFilterResult. With full Nodes in the request, `Nodes` holds the passing nodes'
    own bytes and `NodeNames` their names; with names only, `Nodes` is null."""
    if by_name:
        nodes = None
    else:
        raws = [n.raw if n.raw is not None else _dumps({"metadata": {"name": n.name}}) for n in passed]
        nodes = '{"metadata":{},"items":[' + ",".join(raws) + "]}"
    return raw_filter_result(nodes, [n.name for n in passed], failed, unresolvable or {}, error)


def raw_filter_result(
    nodes_json: str | None,
    names: Iterable[str] | None,
    failed: Mapping[str, str],
    unresolvable: Mapping[str, str],
    error: str,
) -> bytes:
    """An ExtenderFilterResult from `Nodes` already in JSON (None: null) and the other fields."""
    names_json = "null" if names is None else _dumps(list(names))
    return (
        f'{{"Nodes":{nodes_json or "null"},"NodeNames":{names_json},"FailedNodes":{_dumps(dict(failed))},'
        f'"FailedAndUnresolvableNodes":{_dumps(dict(unresolvable))},"Error":{_dumps(error)}}}'
    ).encode()


def host_priorities(scores: Iterable[tuple[str, int]]) -> bytes:
    """A HostPriorityList: `[{"Host":"node-a","Score":10},...]` (scores 0..MAX_EXTENDER_PRIORITY)."""
    return ("[" + ",".join(f'{{"Host":{_dumps(host)},"Score":{int(score)}}}' for host, score in scores) + "]").encode()
