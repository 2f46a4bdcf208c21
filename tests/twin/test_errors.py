"""The twin's refusals keep their builtin bases (callers that catch KeyError / LookupError keep
working) and map to one HTTP status each in the service's handler."""

from __future__ import annotations

import pytest

from service.api.errors import twin_status
from twin.errors import (
    InvalidJobError,
    InvalidScenarioError,
    NoBatchQueueError,
    NoModelError,
    UnknownAdviceError,
    UnknownJobError,
    UnknownLinkError,
    UnknownSiteError,
)
from twin.live import build_twin
from twin.topology import SiteSpec, Topology


def test_an_unknown_site_is_a_key_error_with_the_known_names() -> None:
    twin = build_twin(Topology((SiteSpec("a", "hpc"), SiteSpec("b", "cloud"))))
    with pytest.raises(KeyError) as caught:
        twin.site("zz")
    assert isinstance(caught.value, UnknownSiteError)
    assert str(caught.value) == "no site named 'zz'; sites: ['a', 'b']"


def test_forecasts_say_which_input_is_missing() -> None:
    twin = build_twin(Topology((SiteSpec("a", "hpc"),)))
    with pytest.raises(NoBatchQueueError, match="no batch scheduler state"):
        twin.forecast("a")


@pytest.mark.parametrize(
    ("error", "status", "code"),
    [
        (UnknownSiteError("x"), 404, "not_found"),
        (UnknownAdviceError("no advice adv-1"), 404, "not_found"),
        (NoBatchQueueError("no queue"), 409, "no_batch_queue"),
        (NoModelError("no model"), 409, "no_model"),
        (InvalidJobError("too wide"), 400, "bad_job"),
        (UnknownJobError("no job 7"), 404, "not_found"),
        (UnknownLinkError("no link a-b"), 404, "not_found"),
        (InvalidScenarioError("drains every node"), 422, "invalid_scenario"),
    ],
)
def test_each_refusal_has_one_status(error: Exception, status: int, code: str) -> None:
    assert twin_status(error) == status  # type: ignore[arg-type]
    assert error.code == code  # type: ignore[attr-defined]
