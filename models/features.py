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

import polars as pl

from telemetry.jobs import conform_jobs

__all__ = [
    "CATEGORICAL_FEATURES",
    "FEATURES",
    "ID_COLUMNS",
    "NUMERIC_FEATURES",
    "TARGETS",
    "build_features",
    "feature_schema",
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


_ROW = "_row"
_CORES = pl.coalesce("req_cores", "alloc_cores").cast(pl.Float64)
_REQ = pl.col("req_walltime_s").cast(pl.Float64)


def build_features(jobs: pl.LazyFrame | pl.DataFrame) -> pl.LazyFrame:
    """ID_COLUMNS + TARGETS + FEATURES for every job-history row, in the input order.

    A row without a submit time gets null history and state features (nothing is knowable
    about when it arrived)."""
    base = (
        conform_jobs(jobs)
        .with_row_index(_ROW)
        .with_columns(
            _CORES.alias("_cores"),
            pl.coalesce("start_s", "end_s").alias("_leave_s"),  # a job cancelled in the queue leaves at its end
        )
    )
    requests = base.select(
        _ROW,
        *ID_COLUMNS,
        (pl.col("end_s") - pl.col("start_s")).cast(pl.Float64).alias("runtime_s"),
        (pl.col("start_s") - pl.col("submit_s")).cast(pl.Float64).alias("wait_s"),
        _REQ.alias("req_walltime_s"),
        pl.col("_cores").alias("req_cores"),
        pl.coalesce("req_nodes", "alloc_nodes").cast(pl.Float64).alias("req_nodes"),
        pl.col("req_mem_bytes").cast(pl.Float64),
        pl.col("gpus").cast(pl.Float64),
        pl.col("ranks_per_container").cast(pl.Float64),
        ((pl.col("submit_s") % 86_400) / 3600.0).alias("hour_of_day"),
        ((pl.col("submit_s") // 86_400 + 3) % 7).cast(pl.Float64).alias("day_of_week"),  # 0 = Monday (UTC)
        *(pl.col(name) for name in CATEGORICAL_FEATURES),
    )
    queries = base.filter(pl.col("submit_s").is_not_null()).select(_ROW, "site", "user", "submit_s").sort("submit_s")
    joined = (
        queries.pipe(_join_history, base)
        .pipe(_join_submits, base)
        .pipe(_join_state, base, ("site",), "site")
        .pipe(_join_state, base, ("site", "user"), "user")
        .with_columns(pl.col("site_running_cores").cum_max().over("site").alias("site_cores_seen"))
        .drop("site", "user", "submit_s")
    )
    out = requests.join(joined, on=_ROW, how="left").sort(_ROW).drop(_ROW)
    ave2 = (
        pl.when(pl.col("user_last2_s").is_not_null())
        .then(pl.min_horizontal(_REQ, ((pl.col("user_last1_s") + pl.col("user_last2_s")) / 2).floor()))
        .otherwise(_REQ)
    )
    # Ratios the trees cannot form themselves: is this the same request as last time, how steady
    # is the user, how much of the request does the user usually use.
    derived = (
        (pl.col("ave2_s") / _REQ).alias("ave2_over_req"),
        (pl.col("user_last1_s") / pl.col("user_last2_s")).log().abs().alias("user_last_log_gap"),
        (_REQ / pl.col("user_last1_req_s")).alias("req_over_last1_req"),
    )
    return out.with_columns(ave2.alias("ave2_s")).with_columns(derived).select(*ID_COLUMNS, *TARGETS, *FEATURES)


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


def _join_state(queries: pl.LazyFrame, base: pl.LazyFrame, by: tuple[str, ...], prefix: str) -> pl.LazyFrame:
    """Waiting and running jobs of the group at submit: cumulative sums of +/- events before t.

    Waiting: +1 at submit, -1 when it left the queue (start, or end if it never started).
    Running: +1 at start, -1 at end. The requested work still ahead of a running job is
    cores × (start + requested - t), summed as Σ cores×(start+req) - t × Σ cores.
    """
    cores = pl.col("_cores").fill_null(1.0)
    cols = ("_wj", "_wc", "_ww", "_rj", "_rc", "_rw")
    zero = pl.lit(0.0)

    def events(time: pl.Expr, sign: float, waiting: bool, when: pl.Expr) -> pl.LazyFrame:
        work_w = cores * _REQ.fill_null(0.0)
        work_r = cores * (pl.col("start_s").cast(pl.Float64) + _REQ.fill_null(0.0))
        vals = (pl.lit(1.0), cores, work_w) if waiting else (pl.lit(1.0), cores, work_r)
        w = [(v * sign) if waiting else zero for v in vals]
        r = [zero if waiting else (v * sign) for v in vals]
        return base.filter(when).select(*by, time.alias("_t"), *(e.alias(c) for e, c in zip(w + r, cols, strict=True)))

    started = pl.col("start_s").is_not_null()
    stream = (
        pl.concat(
            [
                events(pl.col("submit_s"), 1.0, True, pl.col("submit_s").is_not_null()),
                events(
                    pl.col("_leave_s"), -1.0, True, pl.col("submit_s").is_not_null() & pl.col("_leave_s").is_not_null()
                ),
                events(pl.col("start_s"), 1.0, False, started),
                events(pl.col("end_s"), -1.0, False, started & pl.col("end_s").is_not_null()),
            ]
        )
        .group_by(*by, "_t")
        .agg(pl.col(c).sum() for c in cols)
        .sort("_t")
        .with_columns(pl.col(c).cum_sum().over(by) for c in cols)
    )
    names = {
        "_wj": f"{prefix}_waiting_jobs",
        "_wc": f"{prefix}_waiting_cores",
        "_ww": f"{prefix}_waiting_work",
        "_rj": f"{prefix}_running_jobs",
        "_rc": f"{prefix}_running_cores",
    }
    joined = queries.join_asof(
        stream,
        left_on="submit_s",
        right_on="_t",
        by=list(by),
        strategy="backward",
        allow_exact_matches=False,
        check_sortedness=False,
    ).with_columns(pl.col(c).fill_null(0.0) for c in cols)
    left_work = (pl.col("_rw") - pl.col("submit_s").cast(pl.Float64) * pl.col("_rc")).alias(
        f"{prefix}_running_left_work"
    )
    keep = {
        "site": ("_wj", "_wc", "_ww", "_rj", "_rc"),
        "user": ("_wj", "_rc"),
    }[prefix]
    extra = [left_work] if prefix == "site" else []
    return joined.with_columns(*extra, *(pl.col(c).alias(names[c]) for c in keep)).drop(*cols, "_t")
