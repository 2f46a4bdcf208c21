"""Property-based API check: schemathesis generates requests from the app's own OpenAPI schema
(valid and invalid ones) and checks every answer: never a 500, status codes, content types and
bodies as the schema documents them. Runs against the real service over HTTP (uvicorn, store,
twin, collectors), so the app's lifespan runs exactly once, as in production.

(schemathesis' pytest plugin does not load under pytest 9 here, so each operation is driven with
hypothesis directly through the operation's own strategies.)"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
import uvicorn
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import positive_data_acceptance

from service.app import create_app
from service.auth import TokenStore
from service.config import parse_config
from telemetry.serve_target import INGEST_MEDIA_TYPE
from tests.conftest import free_port

CONFIG = """
sites:
  - name: local
    kind: edge
    collectors: [{type: node, interval: 0.5s}]
  - name: kth
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.5s, start_offset: 30d}]
links:
  - {between: [local, kth], bandwidth_gbps: 10}
"""


@schemathesis.serializer(INGEST_MEDIA_TYPE)
def _arrow_stream(ctx: Any, value: Any) -> bytes:
    """The ingest routes' bodies (documented as binary Arrow IPC streams) as generated: arbitrary
    bytes, which the route must refuse with its documented 422, never a 500."""
    return value if isinstance(value, bytes) else str(value).encode()


def _operations() -> list[str]:
    """Every documented operation, from an app built on a throw-away data dir (the composition
    opens its store: a fixed path would be shared with any other test run on the machine)."""
    with tempfile.TemporaryDirectory(prefix="ctwin-openapi-") as data:
        app = create_app(parse_config(CONFIG), data, collect=False, ui=False)
        paths = app.openapi()["paths"]
        app.state.service.stop()
    return [f"{method.upper()} {path}" for path, methods in paths.items() for method in methods]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, str]]:
    data: Path = tmp_path_factory.mktemp("schemathesis")
    loaded = parse_config(CONFIG)
    token = TokenStore(loaded.tokens_path(data)).create("fuzz", ["admin"])[1]
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(create_app(loaded, data, ui=False), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    time.sleep(1.0)  # a collection or two, so the twin and the store have data
    try:
        yield schemathesis.openapi.from_url(f"{base}/openapi.json"), token
    finally:
        server.should_exit = True
        thread.join(30)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
@pytest.mark.parametrize("label", _operations())
def test_operation_answers_every_generated_request_as_documented(
    live: tuple[Any, str], label: str, mode: GenerationMode
) -> None:
    api, token = live
    operation = api.find_operation_by_label(label)
    assert operation is not None, label
    headers = {"Authorization": f"Bearer {token}"}

    if mode is GenerationMode.NEGATIVE and not operation.query and not operation.path_parameters:
        pytest.skip("no parameters: there is no invalid request to make")

    # Every check runs, except that a schema-valid request may get a documented 400 when it is
    # valid in form only: times like "2026-02-31" or before 1970, end before start. OpenAPI cannot
    # express those rules; the 400 says which one was broken.
    @given(operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case: schemathesis.Case) -> None:
        # Where the generated case carries a credential, ours replaces it. Bearer being the only
        # scheme, a negative case may leave the (required) header out on purpose: then none is sent.
        carried = any(name.lower() == "authorization" for name in case.headers or {})
        sent = headers if carried or mode is GenerationMode.POSITIVE else None
        case.call_and_validate(headers=sent, excluded_checks=[positive_data_acceptance])

    check()
