"""One clock rule for every page: a live site in wall-clock UTC; a replayed site in its trace's
clock, labelled as such, on every chart and table of that site.

A replayed site's samples are stamped when they were collected (wall time), while its queue,
jobs and forecasts live in the trace's time (a 1996 log played at ×600 covers 60 trace hours in
one wall hour). Mixing the two put "last hour" next to forecasts minutes apart. `SiteClock`
maps a wall instant to the site's own clock, from the replay's last shown trace instant and its
speed (`SiteView.trace_wall_s`, `trace_speed`), so a chart converts its x values once and says
which clock it is in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go
import polars as pl

from twin.view import SiteView

__all__ = ["WALL", "SiteClock", "clock_of", "label_time_axis"]


@dataclass(frozen=True)
class SiteClock:
    """How to show instants of one site. `speed` None on a replay: the trace instant is known
    only at `wall_ref_s` (a chart then shows wall time, and says so)."""

    replay: bool
    wall_ref_s: float = 0.0
    trace_ref_s: float = 0.0
    speed: float | None = 1.0

    @property
    def mapped(self) -> bool:
        """Whether wall instants can be shown in this site's clock."""
        return not self.replay or self.speed is not None

    def at(self, wall_s: float) -> float:
        """The site's clock at wall instant `wall_s` (unix s)."""
        if not self.replay or self.speed is None:
            return wall_s
        return self.trace_ref_s + (wall_s - self.wall_ref_s) * self.speed

    def at_many(self, wall_s: np.ndarray) -> np.ndarray:
        if not self.replay or self.speed is None:
            return wall_s
        return self.trace_ref_s + (wall_s - self.wall_ref_s) * self.speed

    def frame(self, frame: pl.DataFrame, column: str = "ts_s") -> pl.DataFrame:
        """`frame` with its wall-clock `column` (unix s) in this clock."""
        if not self.replay or self.speed is None or column not in frame.columns:
            return frame
        mapped = self.trace_ref_s + (pl.col(column).cast(pl.Float64) - self.wall_ref_s) * self.speed
        return frame.with_columns(mapped.alias(column))

    def now(self, wall_now_s: float | None = None) -> float:
        return self.at(time.time() if wall_now_s is None else wall_now_s)

    @property
    def name(self) -> str:
        """The clock's name for axis titles and table headers."""
        if not self.replay:
            return "UTC"
        if self.speed is None:
            return "UTC (collection time; trace clock not yet known)"
        return f"trace time (replay ×{self.speed:,.0f})"

    def span_phrase(self, wall_span_s: float) -> str:
        """What a wall-clock span covers in this clock ("60 trace hours"), or "" on a live site."""
        if not self.replay or self.speed is None:
            return ""
        hours = wall_span_s * self.speed / 3600
        return f"{hours:,.0f} trace hours" if hours >= 2 else f"{hours * 60:,.0f} trace minutes"


WALL = SiteClock(replay=False)


def clock_of(site: SiteView | None) -> SiteClock:
    """`site`'s clock: WALL for a live site (or none)."""
    if site is None or not site.is_replay:
        return WALL
    if site.trace_time_s is None or site.trace_wall_s is None:
        return SiteClock(replay=True, speed=None)
    return SiteClock(replay=True, wall_ref_s=site.trace_wall_s, trace_ref_s=site.trace_time_s, speed=site.trace_speed)


def label_time_axis(figure: go.Figure, clock_name: str) -> None:
    """Name the clock under the bottom time axis of `figure` (the last x axis of stacked subplots,
    which share it); a figure without data (an empty state) is left as it is."""
    if not figure.data:
        return
    axes = sorted((k for k in figure.layout.to_plotly_json() if k.startswith("xaxis")), key=lambda k: int(k[5:] or 1))
    figure.layout[axes[-1] if axes else "xaxis"].title.text = clock_name
