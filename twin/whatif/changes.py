"""The changes a what-if applies to the twin: typed, validated, and readable as one line each."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Change", "LinkBandwidth", "LinkDown", "MoveJob", "Nodes", "SiteDown", "describe"]


@dataclass(frozen=True)
class MoveJob:
    """A queued job leaves `from_site` and is submitted at `to_site` now."""

    job: str
    from_site: str
    to_site: str


@dataclass(frozen=True)
class Nodes:
    """Add nodes to a batch site, or drain some (they take no new job and leave when theirs end)."""

    site: str
    add: int = 0
    drain: int = 0


@dataclass(frozen=True)
class SiteDown:
    site: str


@dataclass(frozen=True)
class LinkDown:
    a: str
    b: str


@dataclass(frozen=True)
class LinkBandwidth:
    a: str
    b: str
    gbps: float


Change = MoveJob | Nodes | SiteDown | LinkDown | LinkBandwidth


def describe(change: Change) -> str:
    """One line a person reads: what the scenario does."""
    match change:
        case MoveJob(job, a, b):
            return f"move queued job {job} from {a} to {b}"
        case Nodes(site, add, drain):
            return f"add {add} node(s) to {site}" if add else f"drain {drain} node(s) at {site}"
        case SiteDown(site):
            return f"take {site} down"
        case LinkDown(a, b):
            return f"take the link {a}–{b} down"
        case LinkBandwidth(a, b, gbps):
            return f"set the link {a}–{b} to {gbps:g} Gb/s"
    raise TypeError(f"not a what-if change: {change!r}")
