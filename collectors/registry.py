"""Name → collector class. An explicit table, not discovery by naming convention: what ships is
what is listed here."""

from __future__ import annotations

from collectors.base import Collector

_REGISTRY: dict[str, type[Collector]] = {}


def register(cls: type[Collector]) -> type[Collector]:
    if cls.name in _REGISTRY:
        raise ValueError(f"collector {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def get(name: str) -> type[Collector]:
    _load_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown collector {name!r}; known: {', '.join(sorted(_REGISTRY))}") from None


def names() -> list[str]:
    _load_builtins()
    return sorted(_REGISTRY)


def _load_builtins() -> None:
    # Imported here, once, so each module's @register runs; the list is the catalogue of built-ins.
    from collectors import builtins  # noqa: F401
