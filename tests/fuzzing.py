"""Hypothesis strategies for the fuzz tests: mutations of real captured documents, plus arbitrary input.

Why mutations of real captures: random text almost never gets past a parser's first check, while a
real document with one field of the wrong type, a truncation or a flipped byte reaches the code
that converts values, which is where the surprises are. Every strategy is seeded from files in
tests/fixtures (see their PROVENANCE.md).

The fuzz tests share one settings profile: deterministic (`derandomize=True`: the same examples on
every run, no example database), no deadline (CI machines are shared), and few enough examples to
take seconds per parser.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

__all__ = ["FUZZ", "byte_mutations", "json_mutations", "text_mutations", "weird_values"]

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None)

_HUGE = (2**31, 2**32 - 1, 2**53 + 1, 2**63, 2**64, 2**64 + 1, 10**30, -(2**63) - 1)

weird_values: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from(
        [None, True, False, 0, -1, -2, "", "x", "12", "-1", "1e3", "NaN", "\u00fcn\u00efc\u00f8d\u00e9", [], {}]
    ),
    st.sampled_from(_HUGE),
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 0.5, -0.0]),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.lists(st.integers() | st.text(max_size=5), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers() | st.none() | st.text(max_size=5), max_size=3),
    st.fixed_dictionaries({"set": st.booleans(), "infinite": st.booleans(), "number": st.integers() | st.floats()}),
    st.recursive(st.none(), lambda inner: st.lists(inner, max_size=1), max_leaves=60),  # deep nesting
)


def _paths(doc: Any, prefix: tuple[Any, ...] = (), limit: int = 4000) -> list[tuple[Any, ...]]:
    """Every path to a value in a JSON document (keys and list indexes), breadth first, bounded."""
    out: list[tuple[Any, ...]] = []
    frontier: list[tuple[tuple[Any, ...], Any]] = [(prefix, doc)]
    while frontier and len(out) < limit:
        path, node = frontier.pop(0)
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            out.append((*path, key))
            frontier.append(((*path, key), child))
    return out


def _mutate(doc: Any, path: tuple[Any, ...], action: str, value: Any) -> Any:
    """A deep copy of `doc` with the value at `path` replaced, deleted, or given a sibling key."""
    copy = json.loads(json.dumps(doc))
    parent = copy
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if action == "replace":
        parent[last] = value
    elif action == "delete":
        del parent[last]
    elif isinstance(parent, dict):
        parent[f"unexpected_{last}"] = value
    else:
        parent.append(value)
    return copy


def json_mutations(documents: Sequence[Any], max_mutations: int = 3) -> st.SearchStrategy[Any]:
    """One of `documents` (decoded JSON) with 1..max_mutations values replaced by weird ones,
    deleted, or joined by an unexpected key or list item."""
    indexed = [(doc, _paths(doc)) for doc in documents]

    @st.composite
    def build(draw: Callable[..., Any]) -> Any:
        doc, paths = draw(st.sampled_from(indexed))
        for _ in range(draw(st.integers(1, max_mutations))):
            if not paths:
                break
            path = draw(st.sampled_from(paths))
            action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
            try:
                doc = _mutate(doc, path, action, draw(weird_values))
            except (KeyError, IndexError, TypeError):  # an earlier mutation removed the path
                continue
        return doc

    return build()


def byte_mutations(blobs: Sequence[bytes]) -> st.SearchStrategy[bytes]:
    """One of `blobs` truncated, with bytes flipped, inserted or deleted, or spliced with another."""

    @st.composite
    def build(draw: Callable[..., Any]) -> bytes:
        data = bytearray(draw(st.sampled_from(list(blobs))))
        for _ in range(draw(st.integers(1, 4))):
            kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "splice"]))
            at = draw(st.integers(0, len(data))) if data else 0
            if kind == "truncate":
                del data[at:]
            elif kind == "flip" and at < len(data):
                data[at] ^= 1 << draw(st.integers(0, 7))
            elif kind == "insert":
                odd = st.sampled_from([b"\x00", b"\xff\xfe", b"\r", b"-1", b"9" * 30, b"nan", b"\xc3("])
                data[at:at] = draw(st.binary(min_size=1, max_size=8) | odd)
            elif kind == "delete":
                del data[at : at + draw(st.integers(1, 16))]
            elif kind == "splice":
                other = draw(st.sampled_from(list(blobs)))
                start = draw(st.integers(0, len(other)))
                data[at:] = other[start : start + draw(st.integers(0, 2000))]
        return bytes(data)

    return build()


def text_mutations(texts: Sequence[str]) -> st.SearchStrategy[str]:
    """`byte_mutations` of UTF-8 texts, decoded back with replacement characters."""
    return byte_mutations([t.encode("utf-8") for t in texts]).map(lambda b: b.decode("utf-8", "replace"))
