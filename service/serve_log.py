"""What `ctwin serve` does with uvicorn's log: WebSocket upgrade requests said once, not per request.

Why: the service serves no WebSocket (uvicorn runs with `ws="none"`, the Dash twin's callbacks
are plain HTTP), so a request asking for one is answered as plain HTTP. uvicorn still logs two
warnings for each such request, the second telling the operator to install a WebSocket library,
which is the wrong advice here; a browser tab left open on a page of an older version, or a
scanner, retries every few seconds (99 pairs in 13 minutes). The first request is logged once,
saying what happens; the rest are not.
"""

from __future__ import annotations

import logging

__all__ = ["UpgradeRequestsOnce", "quiet_websocket_upgrades"]

_UNSUPPORTED = "Unsupported upgrade request."
_NO_LIBRARY = "No supported WebSocket library detected"


class UpgradeRequestsOnce(logging.Filter):
    """On uvicorn's error logger: the first unsupported upgrade explained, later ones dropped."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = 0

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(_NO_LIBRARY):
            return False
        if message != _UNSUPPORTED:
            return True
        self.seen += 1
        if self.seen > 1:
            return False
        record.msg = (
            "Unsupported upgrade request: a client asked for a WebSocket; the service has no WebSocket"
            " endpoint and answers such requests as plain HTTP (logged once)"
        )
        record.args = None
        return True


def quiet_websocket_upgrades(logger: logging.Logger | None = None) -> UpgradeRequestsOnce:
    """Install the filter on uvicorn's error logger (it survives uvicorn's own logging config)."""
    target = logger if logger is not None else logging.getLogger("uvicorn.error")
    for existing in target.filters:
        if isinstance(existing, UpgradeRequestsOnce):
            return existing
    installed = UpgradeRequestsOnce()
    target.addFilter(installed)
    return installed
