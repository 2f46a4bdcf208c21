"""telemetry.redact: what is masked, what is kept, and the log filter."""

from __future__ import annotations

import io
import logging

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from telemetry.redact import RedactingFilter, install_log_redaction, redact


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:secret@127.0.0.1:9100/metrics", "http://user:***@127.0.0.1:9100/metrics"),
        ("https://ghp_0123456789@github.com/x.git", "https://***@github.com/x.git"),  # a bare user is a token
        ("http://u:p@ss@host/x", "http://u:***@host/x"),  # an unescaped @ in the password
        ("http://h/metrics?token=abc&x=1", "http://h/metrics?token=***&x=1"),
        ("http://h/?a=1&access_token=abc;api_key=def", "http://h/?a=1&access_token=***;api_key=***"),
        ("s3://b/o?X-Amz-Signature=abc&X-Amz-Credential=def", "s3://b/o?X-Amz-Signature=***&X-Amz-Credential=***"),
        ("?password=hunter2&passwd=x&pwd=y&secret=z&auth=w", "?password=***&passwd=***&pwd=***&secret=***&auth=***"),
        ("Authorization: Bearer abc.def", "Authorization: Bearer ***"),
        ("authorization=Basic dXNlcjpwYXNz", "authorization=Basic ***"),
        (
            "{'Authorization': 'Bearer abc', 'Accept': 'text/plain'}",
            "{'Authorization': 'Bearer ***', 'Accept': 'text/plain'}",
        ),
        ('{"X-SLURM-USER-TOKEN": "abc"}', '{"X-SLURM-USER-TOKEN": "***"}'),
        ("Cookie: ctwin_session_1=abc", "Cookie: ***"),
        ("sent bearer abc to the server", "sent bearer *** to the server"),
        ("token ctw_0011aabb_" + "s" * 43 + " refused", "token ctw_0011aabb_*** refused"),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjE3MDB9.c2lnbmF0dXJl ok", "jwt *** ok"),
    ],
)
def test_masks_credentials(text: str, expected: str) -> None:
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "http://127.0.0.1:9100/metrics: ConnectError: [Errno 111] Connection refused",
        "http://h/metrics?site=a&limit=10",
        "squeue --json: exit status 1: slurm_load_jobs error: Unable to contact slurm controller",
        "mail admin@example.org about http://h/x",
        "",
    ],
)
def test_keeps_what_carries_no_credential(text: str) -> None:
    assert redact(text) == text


def test_takes_anything() -> None:
    assert redact(ValueError("http://a:b@h/")) == "http://a:***@h/"
    assert redact(None) == "None"


# what a URL's userinfo can hold unescaped: printable ASCII but the delimiters
password = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters="/?#@&;'\"<>:"), min_size=6, max_size=30
)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(user=st.from_regex(r"[a-z]{1,8}", fullmatch=True), secret=password, before=st.text(), after=st.text())
def test_a_url_password_never_survives(user: str, secret: str, before: str, after: str) -> None:
    text = f"{before} http://{user}:{secret}@host:1/p?token={secret} {after}"
    out = redact(text)
    assert f":{secret}@" not in out and f"token={secret}" not in out
    assert redact(out) == out  # idempotent


def test_the_log_filter_redacts_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    logger = logging.getLogger("tests.redact")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        install_log_redaction(logger)
        install_log_redaction(logger)  # once is enough
        assert sum(isinstance(f, RedactingFilter) for f in handler.filters) == 1
        logger.warning("scrape of %s failed", "http://u:secret@h/?token=abc")
        try:
            raise RuntimeError("Authorization: Bearer abc")
        except RuntimeError:
            logger.exception("boom")
    finally:
        logger.removeHandler(handler)
    text = stream.getvalue()
    assert "scrape of http://u:***@h/?token=*** failed" in text
    assert "RuntimeError: Authorization: Bearer ***" in text
    assert "secret" not in text and "abc" not in text
