"""Redaction of credentials in text that is about to be logged, stored or shown.

Why here, in one function: an error message travels far. A collector's failure names its URL
(httpx puts the URL in its exceptions too), the pipeline keeps it in the collector's stats, the twin
copies it into the site's health, and from there it reaches `/v1/sites`, the Dash collectors table,
`ctwin collect` and the log. Config validation echoes values as well. So every place that records
or prints such a message passes it through `redact`, and none of them has to know what a secret
looks like.

What is replaced by `***` (the rest of the text is kept, so the message still says what failed):
- the password in a URL's userinfo (`http://user:***@host`); a userinfo without a password is often
  a token itself, so it goes whole (`https://***@host`);
- the value of a query or form parameter whose name contains token, passw, pwd, secret, key, auth,
  signature/sig, credential, session or jwt (`?token=***`, `&X-Amz-Signature=***`);
- the credentials of `Authorization`, `Proxy-Authorization`, `Cookie`, `X-*-Token` and `X-Api-Key`
  headers, in `Name: value` lines and in a dict's repr alike, and any `Bearer <credential>`;
- our own API tokens (`ctw_<id>_***`: the id stays, it is public) and JWTs (`eyJ…`).

Redaction is idempotent and never raises; it is a safety net, not a licence to put secrets in
messages: collectors should still name a URL without its credentials when they can.
"""

from __future__ import annotations

import logging
import re

__all__ = ["MASK", "RedactingFilter", "install_log_redaction", "redact"]

MASK = "***"

# scheme://userinfo@ : the userinfo runs to the LAST "@" before the authority ends, so a password
# holding an unescaped "@" (which httpx accepts) is masked whole.
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s'\"<>]*)@")
_SENSITIVE = r"(?:token|passw|pwd|secret|key|auth|sig|credential|session|jwt)"
_PARAM = re.compile(rf"(?P<name>[?&;][^=&#\s'\"]*?{_SENSITIVE}[^=&#\s'\"]*=)(?P<value>[^&;#\s'\"]*)", re.IGNORECASE)
_HEADER = re.compile(
    r"(?P<name>\b(?:proxy-)?authorization|\bcookie|\bx-[a-z0-9-]*token|\bx-api-key)"
    r"(?P<sep>['\"]?\s*[:=]\s*['\"]?)"
    r"(?P<scheme>(?:bearer|basic|digest|token|negotiate)\s+)?"
    r"(?P<value>[^\s'\",}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<scheme>\bbearer\s+)(?P<value>[A-Za-z0-9._~+/=-]+)", re.IGNORECASE)
_OUR_TOKEN = re.compile(r"\b(?P<id>ctw_[0-9a-f]{4,32}_)[A-Za-z0-9_-]{8,}")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")


def _userinfo(match: re.Match[str]) -> str:
    user, colon, _ = match.group("userinfo").partition(":")
    kept = f"{user}:{MASK}" if colon and user and user != MASK else MASK
    return f"{match.group('scheme')}{kept}@"


def redact(text: object) -> str:
    """`text` (anything; str() is taken) with every credential it carries replaced by `***`."""
    out = text if isinstance(text, str) else str(text)
    if not out:
        return out
    out = _USERINFO.sub(_userinfo, out)
    out = _PARAM.sub(lambda m: m.group("name") + MASK, out)
    out = _HEADER.sub(lambda m: m.group("name") + m.group("sep") + (m.group("scheme") or "") + MASK, out)
    out = _BEARER.sub(lambda m: m.group("scheme") + MASK, out)
    out = _OUR_TOKEN.sub(lambda m: m.group("id") + MASK, out)
    return _JWT.sub(MASK, out)


class RedactingFilter(logging.Filter):
    """A handler filter that redacts the formatted message and the traceback of every record.

    Installed on handlers (not loggers), so it sees what propagates from every library too. The
    record is rewritten in place: message and arguments are merged first (so a secret passed as a
    `%s` argument is caught), and a traceback is formatted and redacted into `exc_text`, which
    formatters print instead of formatting `exc_info` again."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> None:
    """Add a RedactingFilter to every handler of `logger` (default: the root logger), once."""
    target = logger if logger is not None else logging.getLogger()
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
