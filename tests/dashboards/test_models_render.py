"""The models page's component tree from real parts: a registry holding a really trained runtime
model, and a real Advisor whose answers were reported and joined to jobs that ended. The drift
rule fires on a real shift of the realised runtimes and stays quiet without one."""

from __future__ import annotations

import time
from typing import Any

import pytest

from dashboards import ids
from dashboards.models import chosen, render
from dashboards.models_accuracy import DRIFT_FACTOR, card_baseline, drift
from dashboards.pages import Sources
from models.artifacts import ModelRegistry
from tests.dashboards.dom import text, with_attr
from tests.dashboards.model_data import advised, trained_registry
from tests.dashboards.twin_double import continuum

NOW = time.time()
T0 = NOW - 20 * 3600


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> ModelRegistry:
    return trained_registry(tmp_path_factory.mktemp("models"))


def _steady(n: int = 40) -> list[tuple[float, float, float]]:
    """Jobs that ran close to what was asked for (the Advisor predicts the request, 2 h, here)."""
    return [(T0 + 60 + i * 1700, 30.0, 7000.0 + (i % 5) * 20) for i in range(n)]


def _shifted(n: int = 40) -> list[tuple[float, float, float]]:
    """The same until the last quarter of the window, then jobs far shorter than predicted."""
    return [(at, w, r if at < NOW - 6 * 3600 else 900.0 + (i % 5) * 20) for i, (at, w, r) in enumerate(_steady(n))]


def _page(
    registry: ModelRegistry | None, outcomes: list[tuple[float, float, float]] | None, search: str
) -> dict[str, Any]:
    advisor = advised(T0, outcomes)[0] if outcomes is not None else None
    return render(Sources(reader=continuum(), advisor=advisor, models=registry), search, now_s=NOW)


def test_the_runtime_card_shows_the_trained_artefact(registry: ModelRegistry) -> None:
    out = _page(registry, _steady(), "?view=models")
    cards = with_attr(out["cards"], ids.MODELS_ATTR)
    loaded = registry.current("runtime")
    assert loaded is not None
    runtime = text(cards["runtime"])
    assert loaded.card.artefact in runtime and loaded.card.artefact_sha256[:16] in runtime
    assert "3,000 jobs of KTH-SP2" in runtime and "RuntimeQuantileRegressor" in runtime
    assert "newest 20%, KTH-SP2" in runtime and "median |error|" in runtime
    assert "ctwin containers train" in text(cards["container_effect"])
    assert "No wait model trained yet" in text(cards["wait"]) and "ctwin train" in text(cards["wait"])


def test_steady_predictions_raise_no_alarm_and_draw_a_line_per_kind(registry: ModelRegistry) -> None:
    out = _page(registry, _steady(), "?view=models&kind=runtime&range=24h")
    assert [d.alarm for d in out["drifts"]] == [False, False, False, False]
    runtime = out["drifts"][0]
    assert runtime.baseline_from.startswith("card") and runtime.n_recent >= 5
    assert out["drifts"][1].baseline_from == "earlier window"  # the wait artefact does not make these predictions
    assert {t.name for t in out["accuracy"].data} == {"runtime model", "wait model", "advice (turnaround)"}
    scatter = out["scatter"]
    assert scatter.layout.xaxis.type == scatter.layout.yaxis.type == "log"
    assert len(scatter.data[0].x) == 40 and scatter.data[1].name.startswith("y = x")
    assert "40 reported jobs joined" in out["accuracy_note"]


def test_a_real_shift_fires_the_alarm_against_the_card_and_the_earlier_window(registry: ModelRegistry) -> None:
    out = _page(registry, _shifted(), "?view=models&kind=advice&range=24h")
    by_kind = {d.kind: d for d in out["drifts"]}
    assert by_kind["runtime"].alarm and by_kind["runtime"].baseline_from.startswith("card")
    assert by_kind["advice"].alarm and by_kind["advice"].baseline_from == "earlier window"
    assert not by_kind["wait"].alarm  # the waits did not change
    badges = with_attr(out["alarms"], ids.MODELS_ATTR)
    assert text(badges["runtime"]).startswith("DRIFT") and text(badges["wait"]).startswith("ok")
    assert f"{DRIFT_FACTOR}×" in text(out["alarms"])


def test_the_drift_rule_itself(registry: ModelRegistry) -> None:
    loaded = registry.current("runtime")
    base = card_baseline(loaded.card if loaded else None)
    assert base is not None and base > 0
    assert not drift("runtime", [base] * 10, base, "card").alarm
    assert not drift("runtime", [base * DRIFT_FACTOR * 0.99] * 10, base, "card").alarm  # just inside the bound
    assert drift("runtime", [base * DRIFT_FACTOR * 1.01] * 10, base, "card").alarm
    assert not drift("runtime", [base * 10] * 4, base, "card").alarm  # too few to say
    assert not drift("runtime", [base * 10] * 10, None, "earlier window").alarm  # nothing to compare with


def test_empty_states_say_why() -> None:
    out = _page(None, None, "?view=models&kind=wait&range=6h")
    assert "no model registry" in text(out["cards"]) and "ctwin train" in text(out["cards"])
    assert "No advisor" in out["accuracy_note"]
    assert "no finished job joined yet" in out["accuracy"].layout.annotations[0].text
    assert "no finished job joined yet" in out["scatter"].layout.annotations[0].text
    assert all(not d.alarm for d in out["drifts"])


def test_forecasts_show_the_trackers_errors(registry: ModelRegistry) -> None:
    out = _page(registry, _steady(), "?view=models&kind=forecast")
    errors = [e for s in ("hpc1", "swf-replay") for e in _errors(s)]
    assert f"{len(errors)} forecasts scored" in out["scatter_note"] and len(out["scatter"].data) == 1


def _errors(site: str) -> tuple[int, ...]:
    try:
        return continuum().queue_forecast(site).recent_errors_s
    except LookupError:
        return ()


def test_a_hand_edited_link_falls_back_to_the_defaults() -> None:
    assert chosen("?view=models&kind=bogus&range=99y") == ("runtime", "24h")
    assert chosen("?view=models&kind=wait&range=7d") == ("wait", "7d")


def test_the_callback_answers_nothing_while_the_page_is_hidden(registry: ModelRegistry) -> None:
    import asyncio

    import dash

    from dashboards.app import create_dash

    advisor, _ = advised(T0, _steady(10))
    app = create_dash(continuum(), advisor=advisor, models=registry)
    cb = next(cb for key, cb in app.callback_map.items() if f"{ids.MODELS_FORM}.children" in key)
    answer = cb["callback"].__wrapped__
    assert asyncio.run(answer("?view=containers")) == (dash.no_update,) * 9
    shown = asyncio.run(answer("?view=models&kind=wait"))
    assert len(shown) == 9 and "wait model predictions joined" in shown[6]


def test_forecast_drift_compares_each_site_with_its_own_past() -> None:
    """Two steady sites, one far less accurate: pooled in order they would look like a shift."""
    from dashboards.models import _forecast_drift

    steady = {"a": [60.0, -60.0] * 20, "b": [3600.0, -3600.0] * 20}
    assert not _forecast_drift(steady).alarm
    worse = {"a": [60.0] * 30 + [900.0] * 10, "b": [3600.0] * 40}
    assert _forecast_drift(worse).alarm and _forecast_drift(worse).baseline_from.endswith("at a")
