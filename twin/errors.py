"""What the twin refuses, as a small tree the service maps to HTTP in its one error handler.

    TwinError
    ├── UnknownSiteError      (also a KeyError: no site of that name)          → 404 not_found
    ├── NoBatchQueueError     (also a LookupError: no batch queue state there)  → 409 no_batch_queue
    ├── NoModelError          (also a LookupError: no learned model loaded)     → 409 no_model
    ├── UnknownAdviceError    (also a KeyError: no advice with that id)         → 404 not_found
    ├── AdviceConflictError   (an advice already reported with another job)    → 409 already_reported
    ├── UnknownJobError       (also a KeyError: no queued job of that id)      → 404 not_found
    ├── UnknownLinkError      (also a KeyError: no link between those sites)   → 404 not_found
    ├── InvalidJobError       (also a ValueError: a job the twin cannot place)  → 400 bad_job
    └── InvalidScenarioError  (also a ValueError: a what-if that cannot be)    → 422 invalid_scenario

Each keeps its builtin base, so callers that only know "KeyError: no such site" (the Dash pages)
keep working, and every message says what was wrong and, where it can, how to fix it.
"""

from __future__ import annotations

__all__ = [
    "AdviceConflictError",
    "InvalidJobError",
    "InvalidScenarioError",
    "NoBatchQueueError",
    "NoModelError",
    "TwinError",
    "UnknownAdviceError",
    "UnknownJobError",
    "UnknownLinkError",
    "UnknownSiteError",
]


class TwinError(Exception):
    """Base of every refusal of the twin; `code` is the stable word the API answers with."""

    code = "twin_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class UnknownSiteError(TwinError, KeyError):
    code = "not_found"

    def __init__(self, site: str, known: list[str] | None = None) -> None:
        names = f"; sites: {known}" if known is not None else ""
        super().__init__(f"no site named {site!r}{names}")
        self.site = site


class NoBatchQueueError(TwinError, LookupError):
    code = "no_batch_queue"


class NoModelError(TwinError, LookupError):
    code = "no_model"


class UnknownAdviceError(TwinError, KeyError):
    code = "not_found"


class AdviceConflictError(TwinError):
    """A second, different report of where an advised job ran: the first one is kept."""

    code = "already_reported"


class InvalidJobError(TwinError, ValueError):
    code = "bad_job"


class UnknownJobError(TwinError, KeyError):
    code = "not_found"


class UnknownLinkError(TwinError, KeyError):
    code = "not_found"


class InvalidScenarioError(TwinError, ValueError):
    """A what-if change that cannot be applied (a running job moved, every node drained...)."""

    code = "invalid_scenario"
