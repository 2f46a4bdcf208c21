"""Walk a Dash component tree the way a reader of the page would: elements, attributes, text."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from dash.development.base_component import Component


def walk(node: Any) -> Iterator[Component]:
    """Every component under `node` (a component, a list of them, or text), depth first."""
    if isinstance(node, Component):
        yield node
        yield from walk(getattr(node, "children", None))
    elif isinstance(node, list | tuple):
        for child in node:
            yield from walk(child)


def text(node: Any) -> str:
    """The visible text under `node`, pieces joined by spaces."""
    if isinstance(node, str | int | float):
        return str(node)
    if isinstance(node, Component):
        return text(getattr(node, "children", None))
    if isinstance(node, list | tuple):
        return " ".join(t for t in (text(c) for c in node) if t)
    return ""


def with_attr(node: Any, name: str) -> dict[str, Component]:
    """Components carrying the attribute `name` (e.g. data-site), keyed by its value."""
    return {c.to_plotly_json()["props"][name]: c for c in walk(node) if name in c.to_plotly_json()["props"]}
