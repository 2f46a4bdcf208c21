"""Reading back what the InfluxDB mirror wrote, from a VictoriaMetrics (or any server with
VictoriaMetrics' `/api/v1/export` and `/api/v1/series`): raw samples, latest values, series.

Why only these: they are what proves the mirror holds the data, and what an operator checks
against the embedded store. The rest of the store contract (step downsampling and grouping,
retention, Parquet export, job history, the advice log) stays on the embedded DuckDB store,
which keeps serving the twin, the API and the Dash pages when `store.backend` is `influx`.
A real InfluxDB 2 would be read with Flux, which VictoriaMetrics does not speak (400), so there
is no Flux reader to test here. Timestamps come back in milliseconds (VictoriaMetrics' precision).
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import polars as pl

from telemetry.schema import canonical_labels
from telemetry.stores.base import QueryError, Selection

__all__ = ["VictoriaMetricsReads", "promql_selector"]

_SAMPLES = {"metric": pl.String, "labels": pl.String, "ts_ns": pl.Int64, "value": pl.Float64}
_MS = 1_000_000


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def promql_selector(selection: Selection) -> str:
    """`{__name__=~"a|b",k="v"}` for a selection (metric names as an anchored alternation)."""
    if selection.metrics:
        names = "|".join(_regex_literal(m) for m in selection.metrics)
        parts = [f"__name__=~{_quote(names)}"]
    else:
        parts = ['__name__=~".+"']
    parts.extend(f"{key}={_quote(value)}" for key, value in sorted(selection.labels.items()))
    return "{" + ",".join(parts) + "}"


def _regex_literal(text: str) -> str:
    return "".join("\\" + c if c in r".^$*+?()[]{}|\\" else c for c in text)


class VictoriaMetricsReads:
    """Raw-sample reads over VictoriaMetrics' HTTP API. Call `flush()` after writing to read
    your own writes at once (VictoriaMetrics makes new rows searchable within seconds otherwise)."""

    def __init__(self, url: str, timeout_s: float = 30.0) -> None:
        self._http = httpx.Client(base_url=url.rstrip("/"), timeout=timeout_s)

    def close(self) -> None:
        self._http.close()

    def flush(self) -> None:
        self._http.get("/internal/force_flush").raise_for_status()

    def query(self, selection: Selection, step_ns: int | None = None) -> pl.DataFrame:
        """Samples (metric, labels, ts_ns, value) sorted by series then time, in [start, end)."""
        if step_ns is not None:
            raise QueryError("downsampled queries are served by the embedded store, not the VictoriaMetrics read-back")
        rows: dict[str, list[object]] = {name: [] for name in _SAMPLES}
        for series in self._export(selection):
            labels = dict(series["metric"])
            metric = labels.pop("__name__")
            text = canonical_labels(labels)
            for ts_ms, value in zip(series["timestamps"], series["values"], strict=True):
                ts_ns = int(ts_ms) * _MS
                if selection.end_ns is not None and ts_ns >= selection.end_ns:
                    continue
                if selection.start_ns is not None and ts_ns < selection.start_ns:
                    continue
                rows["metric"].append(metric)
                rows["labels"].append(text)
                rows["ts_ns"].append(ts_ns)
                rows["value"].append(float(value))
        return pl.DataFrame(rows, schema=_SAMPLES).sort("metric", "labels", "ts_ns")

    def latest(self, selection: Selection) -> pl.DataFrame:
        """The newest sample of every matching series."""
        samples = self.query(selection)
        return samples.group_by("metric", "labels", maintain_order=True).last().select(list(_SAMPLES))

    def series(self, selection: Selection) -> pl.DataFrame:
        """Known series (metric, labels); the time range is ignored, as in the store contract.
        From the export, not `/api/v1/series`: that one searches VictoriaMetrics' per-day index
        and answers nothing for a range from 1970."""
        whole = Selection(metrics=selection.metrics, labels=selection.labels)
        return self.query(whole).select("metric", "labels").unique(maintain_order=True)

    def count(self, selection: Selection | None = None) -> int:
        return self.query(selection or Selection()).height

    # ------------------------------------------------------------ internals
    def _export(self, selection: Selection) -> list[dict[str, Any]]:
        start = "0" if selection.start_ns is None else f"{selection.start_ns / 1e9:.3f}"
        end = self._far_end() if selection.end_ns is None else f"{selection.end_ns / 1e9:.3f}"
        answer = self._http.post(
            "/api/v1/export", data={"match[]": promql_selector(selection), "start": start, "end": end}
        )
        self._check(answer)
        return [json.loads(line) for line in answer.text.splitlines() if line.strip()]

    @staticmethod
    def _far_end() -> str:
        return str(int(time.time()) + 365 * 86400)

    @staticmethod
    def _check(answer: httpx.Response) -> None:
        if answer.status_code >= 400:
            raise QueryError(f"VictoriaMetrics answered {answer.status_code}: {answer.text.strip()[:300]}")
