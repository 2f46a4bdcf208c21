"""Features of a job as they were knowable when it was submitted, from job-history rows.

Every feature of job X is a function of what a scheduler could have seen at X's submit instant t
(strictly before t; events in the same second are treated as not yet seen, which also keeps a job
array's siblings out of each other's features):

- the user's runtime history uses only jobs that ENDED before t (their run time was known);
- queue state counts jobs submitted before t that had not started before t (a start at or after t
  was not knowable, so a job is waiting at t whatever its later start is);
- load counts jobs that started before t and had not ended before t.

Everything is computed with as-of joins over event streams sorted by time (O(n log n), lazy until
the caller collects), per site (and per user for the user's own features). `build_features` keeps
the input row order. tests/models/test_no_future_leak.py proves the causality on a real log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import polars as pl

from telemetry.jobs import JOB_SCHEMA, conform_jobs

__all__ = [
    "CATEGORICAL_FEATURES",
    "CONTEXT_FEATURES",
    "FEATURES",
    "ID_COLUMNS",
    "NUMERIC_FEATURES",
    "TARGETS",
    "build_features",
    "collect_features",
    "context_at",
    "feature_schema",
    "features_for",
    "hypothetical_features",
]

MEAN_LAST_K = 5
"""Window of `user_mean_last_s`: long enough to smooth one odd run, short enough to follow a change."""

ID_COLUMNS: tuple[str, ...] = ("site", "job_id", "user", "submit_s", "start_s", "end_s")
TARGETS: tuple[str, ...] = ("runtime_s", "wait_s")
"""Outcomes (never features): run time = end - start, queue wait = start - submit."""

NUMERIC_FEATURES: tuple[str, ...] = (
    # the request
    "req_walltime_s",
    "req_cores",
    "req_nodes",
    "req_mem_bytes",
    "gpus",
    "ranks_per_container",
    # when
    "hour_of_day",
    "day_of_week",
    # the user's history (jobs that ended before t)
    "user_last1_s",
    "user_last2_s",
    "user_last1_ratio",
    "user_last2_ratio",
    "user_last1_req_s",
    "user_mean_last_s",
    "user_log_ratio_mean",
    "user_ended",
    "ave2_s",
    "ave2_over_req",
    "user_last_log_gap",
    "req_over_last1_req",
    # the user's activity (jobs submitted before t)
    "user_submitted",
    "user_since_last_submit_s",
    "user_waiting_jobs",
    "user_running_cores",
    # the site at t
    "site_waiting_jobs",
    "site_waiting_cores",
    "site_waiting_work",
    "site_running_jobs",
    "site_running_cores",
    "site_running_left_work",
    "site_cores_seen",
)
CATEGORICAL_FEATURES: tuple[str, ...] = (
    "partition",
    "container_runtime",
    "container_image",
    "affinity",
    "interconnect",
)
FEATURES: tuple[str, ...] = NUMERIC_FEATURES + CATEGORICAL_FEATURES


def feature_schema() -> dict[str, str]:
    """Feature name → "numeric" | "categorical", as recorded in a model card."""
    return {name: "numeric" for name in NUMERIC_FEATURES} | {name: "categorical" for name in CATEGORICAL_FEATURES}


ENGINE: Literal["in-memory"] = "in-memory"
"""The polars engine features are collected with. Polars 2's default streaming engine takes 1.5-2×
as long on these sorts, windows and as-of joins (SDSC-BLUE, 232k jobs: 0.6-1.1 s against 0.41-0.49
s); the result is the same."""

_ROW = "_row"
_CORES = pl.coalesce("req_cores", "alloc_cores").cast(pl.Float64)
_REQ = pl.col("req_walltime_s").cast(pl.Float64)


def build_features(jobs: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """ID_COLUMNS + TARGETS + FEATURES for every job-history row, in the input order.

    A row without a submit time gets null history and state features (nothing is knowable
    about when it arrived)."""
    base = _base(jobs)
    return _with_request(base, _context(base))


def _base(jobs: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    return (
        conform_jobs(jobs)
        .with_row_index(_ROW)
        .with_columns(
            _CORES.alias("_cores"),
            pl.coalesce("start_s", "end_s").alias("_leave_s"),  # a job cancelled in the queue leaves at its end
        )
    )


def _context(base: pl.LazyFrame) -> pl.LazyFrame:
    """CONTEXT_FEATURES by row: what the history shows of the user and the site at each submit,
    whatever the job itself asks for."""
    queries = base.filter(pl.col("submit_s").is_not_null()).select(_ROW, "site", "user", "submit_s").sort("submit_s")
    return (
        queries.pipe(_join_history, base)
        .pipe(_join_submits, base)
        .pipe(_join_state, base)
        .with_columns(pl.col("site_running_cores").cum_max().over("site").alias("site_cores_seen"))
        .drop("site", "user", "submit_s")
    )


def _request_columns() -> list[pl.Expr]:
    """A job's own features (its request, when it was submitted) and its targets, from its row:
    the one place a request becomes features, for logged and for hypothetical jobs alike."""
    return [
        *(pl.col(c) for c in ID_COLUMNS),
        (pl.col("end_s") - pl.col("start_s")).cast(pl.Float64).alias("runtime_s"),
        (pl.col("start_s") - pl.col("submit_s")).cast(pl.Float64).alias("wait_s"),
        _REQ.alias("req_walltime_s"),
        _CORES.alias("req_cores"),
        pl.coalesce("req_nodes", "alloc_nodes").cast(pl.Float64).alias("req_nodes"),
        pl.col("req_mem_bytes").cast(pl.Float64),
        pl.col("gpus").cast(pl.Float64),
        pl.col("ranks_per_container").cast(pl.Float64),
        ((pl.col("submit_s") % 86_400) / 3600.0).alias("hour_of_day"),
        ((pl.col("submit_s") // 86_400 + 3) % 7).cast(pl.Float64).alias("day_of_week"),  # 0 = Monday (UTC)
        *(pl.col(name) for name in CATEGORICAL_FEATURES),
    ]


def _derive(frame: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame | pl.DataFrame:
    """The ratios between a request and its context that the trees cannot form themselves: is this
    the same request as last time, how steady is the user, how much of the request does the user
    usually use."""
    ave2 = (
        pl.when(pl.col("user_last2_s").is_not_null())
        .then(pl.min_horizontal(_REQ, ((pl.col("user_last1_s") + pl.col("user_last2_s")) / 2).floor()))
        .otherwise(_REQ)
    )
    derived = (
        (pl.col("ave2_s") / _REQ).alias("ave2_over_req"),
        (pl.col("user_last1_s") / pl.col("user_last2_s")).log().abs().alias("user_last_log_gap"),
        (_REQ / pl.col("user_last1_req_s")).alias("req_over_last1_req"),
    )
    return frame.with_columns(ave2.alias("ave2_s")).with_columns(derived).select(*ID_COLUMNS, *TARGETS, *FEATURES)


def _with_request(base: pl.LazyFrame, context: pl.LazyFrame) -> pl.LazyFrame:
    """Every row's own features beside its context (joined by row), and the ratios between them."""
    requests = base.select(_ROW, *_request_columns())
    out = requests.join(context, on=_ROW, how="left").sort(_ROW).drop(_ROW)
    derived = _derive(out)
    assert isinstance(derived, pl.LazyFrame)
    return derived


CONTEXT_FEATURES: tuple[str, ...] = tuple(
    name for name in NUMERIC_FEATURES if name.startswith(("user_", "site_")) and name not in ("user_last_log_gap",)
)
"""Features a job's history gives it at its submit instant, independent of its own request."""


def context_at(jobs: pl.LazyFrame | pl.DataFrame, probes: pl.DataFrame) -> pl.DataFrame:
    """CONTEXT_FEATURES of hypothetical jobs `probes` (columns site, user, submit_s), as if each
    had been submitted at its submit_s after every job of `jobs` (probes do not see each other:
    events in the same second are not yet seen). One pass over the history serves every user a
    recommendation may ask for; `features_for(requests, contexts)` adds each request."""
    rows = pl.concat(
        [
            conform_jobs(jobs).collect(),
            conform_jobs(
                probes.select("site", "user", "submit_s").with_columns(pl.lit("PENDING").alias("state"))
            ).collect(),
        ]
    )
    n_history = rows.height - probes.height
    base = _base(rows)
    context = _context(base).filter(pl.col(_ROW) >= n_history).sort(_ROW)
    return (
        probes.select("site", "user", "submit_s")
        .with_columns(pl.int_range(n_history, n_history + probes.height, dtype=pl.UInt32).alias(_ROW))
        .join(context.collect(engine=ENGINE), on=_ROW, how="left")
        .drop(_ROW)
    )


def features_for(requests: pl.DataFrame, contexts: pl.DataFrame) -> pl.DataFrame:
    """FEATURES of hypothetical jobs: `requests` are job-history rows (what each job asks for,
    submit_s = when) and `contexts` one row of CONTEXT_FEATURES per request, in the same order
    (from `context_at`). Eager and side by side (no join): a recommendation asks for tens of rows,
    where a lazy plan's set-up would cost more than the rows."""
    if requests.height != contexts.height:
        raise ValueError(f"{requests.height} requests but {contexts.height} contexts")
    rows = requests if requests.schema == JOB_SCHEMA else conform_jobs(requests).collect()
    own = rows.select(_request_columns())
    frame = pl.concat([own, contexts.select(CONTEXT_FEATURES)], how="horizontal")
    derived = _derive(frame)
    assert isinstance(derived, pl.DataFrame)
    return derived.select(FEATURES)


_REQUEST_NUMERIC = ("req_walltime_s", "req_cores", "req_nodes", "req_mem_bytes", "gpus", "ranks_per_container")


def hypothetical_features(
    request: Mapping[str, Sequence[Any]], submit_s: Sequence[int], contexts: np.ndarray
) -> pl.DataFrame:
    """`features_for` for requests given as plain columns (JOB_SCHEMA names: req_walltime_s,
    req_cores, req_nodes, req_mem_bytes, gpus, ranks_per_container and the categorical ones; a
    missing column is null) and their context rows as a float matrix in CONTEXT_FEATURES order.
    The same frame, built without a polars plan: placement advice asks for a few rows per answer,
    where the plans' set-up was most of the cost (tests/models/test_hypothetical_features.py
    holds the two equal)."""
    n = contexts.shape[0]
    none = [None] * n
    columns: dict[str, Any] = {
        name: pl.Series(name, request.get(name, none), pl.Float64, strict=False) for name in _REQUEST_NUMERIC
    }
    submit = np.asarray(submit_s, dtype=np.int64)
    columns["hour_of_day"] = (submit % 86_400) / 3600.0
    columns["day_of_week"] = ((submit // 86_400 + 3) % 7).astype(np.float64)
    context = {name: contexts[:, j] for j, name in enumerate(CONTEXT_FEATURES)}
    req = columns["req_walltime_s"].to_numpy()  # nulls as NaN
    last1, last2 = context["user_last1_s"], context["user_last2_s"]
    with np.errstate(divide="ignore", invalid="ignore"):
        ave2 = np.fmin(req, np.floor((last1 + last2) / 2))  # NaN history: the request, as _derive
        derived = {
            "ave2_s": ave2,
            "ave2_over_req": ave2 / req,
            "user_last_log_gap": np.abs(np.log(last1 / last2)),
            "req_over_last1_req": req / context["user_last1_req_s"],
        }
    for name in NUMERIC_FEATURES:
        if name not in columns:
            columns[name] = derived[name] if name in derived else context[name]
    for name in CATEGORICAL_FEATURES:
        columns[name] = pl.Series(name, request.get(name, none), pl.String)
    return pl.DataFrame({name: columns[name] for name in FEATURES})


def collect_features(jobs: pl.LazyFrame | pl.DataFrame) -> pl.DataFrame:
    """`build_features(jobs)`, collected with `ENGINE`."""
    return build_features(jobs).collect(engine=ENGINE)


def _join_history(queries: pl.LazyFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """The user's completed jobs, as of the last completion strictly before submit."""
    run = (pl.col("end_s") - pl.col("start_s")).cast(pl.Float64)
    ratio = run / _REQ
    by = ("site", "user")
    done = (
        base.filter(pl.col("end_s").is_not_null() & pl.col("start_s").is_not_null())
        .select("site", "user", "end_s", _ROW, run.alias("_run"), ratio.alias("_ratio"), _REQ.alias("_req"))
        .sort("end_s", _ROW)
        .with_columns(
            pl.col("_run").alias("user_last1_s"),
            pl.col("_run").shift(1).over(by).alias("user_last2_s"),
            pl.col("_ratio").alias("user_last1_ratio"),
            pl.col("_ratio").shift(1).over(by).alias("user_last2_ratio"),
            pl.col("_req").alias("user_last1_req_s"),
            pl.col("_run").rolling_mean(MEAN_LAST_K, min_samples=1).over(by).alias("user_mean_last_s"),
            pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(by).cast(pl.Float64).alias("user_ended"),
            pl.col("_ratio").clip(1e-6).log().cum_sum().over(by).alias("_log_ratio_sum"),
        )
        .with_columns((pl.col("_log_ratio_sum") / pl.col("user_ended")).alias("user_log_ratio_mean"))
        .drop(_ROW, "_run", "_ratio", "_req", "_log_ratio_sum")
    )
    return queries.join_asof(
        done,
        left_on="submit_s",
        right_on="end_s",
        by=list(by),
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).drop("end_s")


def _join_submits(queries: pl.LazyFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """How many jobs the user submitted before, and how long ago the last one."""
    by = ("site", "user")
    submits = (
        base.filter(pl.col("submit_s").is_not_null())
        .select("site", "user", pl.col("submit_s").alias("_prev_submit_s"), _ROW)
        .sort("_prev_submit_s", _ROW)
        .with_columns(pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(by).cast(pl.Float64).alias("user_submitted"))
        .drop(_ROW)
    )
    return (
        queries.join_asof(
            submits,
            left_on="submit_s",
            right_on="_prev_submit_s",
            by=list(by),
            strategy="backward",
            allow_exact_matches=False,
            check_sortedness=False,
        )
        .with_columns(
            pl.col("user_submitted").fill_null(0.0),
            (pl.col("submit_s") - pl.col("_prev_submit_s")).cast(pl.Float64).alias("user_since_last_submit_s"),
        )
        .drop("_prev_submit_s")
    )


_STATE = ("_wj", "_wc", "_ww", "_rj", "_rc", "_rw")
"""Per-event deltas: waiting jobs, cores and requested work; running jobs, cores, cores×(start+req)."""
_STATE_FEATURES = {
    "site_wj": "site_waiting_jobs",
    "site_wc": "site_waiting_cores",
    "site_ww": "site_waiting_work",
    "site_rj": "site_running_jobs",
    "site_rc": "site_running_cores",
    "user_wj": "user_waiting_jobs",
    "user_rc": "user_running_cores",
}
"""Running sums → feature names; site_rw becomes site_running_left_work at the submit instant."""


def _join_state(queries: pl.LazyFrame, base: pl.LazyFrame) -> pl.LazyFrame:
    """Waiting and running jobs of the site, and of the user there, at submit.

    One stream of +/- events in time order: waiting +1 at submit and -1 when the job left the
    queue (start, or end if it never started); running +1 at start and -1 at end. Cumulative sums
    per site (per site and user) as of the last event strictly before t give the state at t; an
    as-of join takes the LAST row of equal times, so events in the same second count together.
    The requested work still ahead of a running job is cores × (start + requested - t), summed as
    Σ cores×(start+req) - t × Σ cores.
    """
    cores = pl.col("_cores").fill_null(1.0)
    request = _REQ.fill_null(0.0)
    submit, leave, start, end = (pl.col(c) for c in ("submit_s", "_leave_s", "start_s", "end_s"))
    one, zero = pl.lit(1.0), pl.lit(0.0)
    running_work = cores * (start.cast(pl.Float64) + request)

    def events(time: pl.Expr, when: pl.Expr, *values: pl.Expr) -> pl.LazyFrame:
        deltas = (value.alias(name) for value, name in zip(values, _STATE, strict=True))
        return base.filter(when).select("site", "user", time.alias("_t"), *deltas)

    started = start.is_not_null()
    stream = pl.concat(
        [
            events(submit, submit.is_not_null(), one, cores, cores * request, zero, zero, zero),
            events(leave, submit.is_not_null() & leave.is_not_null(), -one, -cores, -cores * request, zero, zero, zero),
            events(start, started, zero, zero, zero, one, cores, running_work),
            events(end, started & end.is_not_null(), zero, zero, zero, -one, -cores, -running_work),
        ]
    ).sort("_t")
    site = stream.select("site", "_t", *(pl.col(c).cum_sum().over("site").alias(f"site{c}") for c in _STATE))
    user = stream.select(
        "site", "user", "_t", *(pl.col(c).cum_sum().over("site", "user").alias(f"user{c}") for c in ("_wj", "_rc"))
    )
    as_of = {"left_on": "submit_s", "right_on": "_t", "strategy": "backward", "allow_exact_matches": False}
    joined = (
        queries.join_asof(site, by="site", check_sortedness=False, **as_of)  # type: ignore[arg-type]
        .drop("_t")
        .join_asof(user, by=["site", "user"], check_sortedness=False, **as_of)  # type: ignore[arg-type]
        .drop("_t")
    )
    sums = [*_STATE_FEATURES, "site_rw"]
    joined = joined.with_columns(pl.col(c).fill_null(0.0) for c in sums)
    left_work = pl.col("site_rw") - pl.col("submit_s").cast(pl.Float64) * pl.col("site_rc")
    return joined.with_columns(left_work.alias("site_running_left_work")).rename(_STATE_FEATURES).drop("site_rw")
