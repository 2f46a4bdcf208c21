"""The advice log: every answer kept, the caller's report of where it ran the job, and the outcome
joined when that job ends — so the advice's own error and regret are measured, not assumed.

- `record` keeps each answer (telemetry.advice.ADVICE_SCHEMA) as it is handed out; a writer thread
  appends what was recorded to the store every `flush_every_s` (one transaction for all of them:
  a store append per answer cost more than the answer), and every read flushes first, so a
  caller never misses its own answer. `close` writes the rest.
- `report(advice_id, site, job_id)` notes what the caller did; if the job has already ended (it is
  in the store's job history), the outcome is joined at once.
- `observe` is a job observer of the live state: when a reported job reaches a final state, its
  realised wait and run are joined to the advice (realised − predicted at the chosen site) with
  the regret: how much longer the realised turnaround was than the best other site's predicted
  one (0 when none was predicted shorter).
Reports waiting for their job survive a restart (they are read back from the store).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import polars as pl

from telemetry.advice import ADVICE_SCHEMA, SUMMARY_SCHEMA, summary_sql
from telemetry.stores.base import Store
from twin.advice.outcome import Advice
from twin.advice.request import JobRequest
from twin.advice.serialise import advice_to_dict, request_to_dict
from twin.errors import AdviceConflictError, InvalidJobError, UnknownAdviceError

__all__ = ["OUTCOME_SCHEMA", "AdviceLog", "AdviceStats"]

log = logging.getLogger(__name__)

TERMINAL = frozenset({"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED",
                      "BOOT_FAIL", "DEADLINE"})  # fmt: skip


OUTCOME_SCHEMA: dict[str, pl.DataType] = {
    "ts_s": pl.Float64(),  # wall clock, unix s: when the outcome was joined
    "site": pl.String(),  # where the job ran
    "kind": pl.String(),  # runtime, wait or advice (turnaround)
    "predicted_s": pl.Float64(),  # the answer's p50 at that site
    "realised_s": pl.Float64(),
    "regret_s": pl.Float64(),  # advice rows only
}


@dataclass(frozen=True)
class AdviceStats:
    advised: dict[str, int]
    """Answers handed out since start, by recommended site ("none": no site could run the job)."""
    joined: int
    turnaround_abs_error_s: float | None
    """Mean |realised − predicted p50| turnaround at the chosen site, over the joined outcomes."""
    regret_s: float | None


class AdviceLog:
    def __init__(
        self,
        store: Store | None,
        clock: Callable[[], float] = time.time,
        *,
        flush_every_s: float = 0.25,
        max_unwritten: int = 50_000,
    ) -> None:
        self.store = store
        self.clock = clock
        self.flush_every_s = flush_every_s
        self._lock = threading.Lock()
        self._unwritten: list[tuple[Advice, JobRequest, str]] = []
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self.max_unwritten = max_unwritten
        self.dropped = 0
        """Answers never stored: the store refused writes while more than max_unwritten waited."""
        self._failing_since: float | None = None
        self._report_lock = threading.Lock()
        self._waiting: dict[tuple[str, str], str] = {}
        """(site, job_id) → advice_id of reported jobs whose outcome is not joined yet."""
        self._memory: dict[str, dict[str, Any]] = {}
        """Rows by id when there is no store (tests, benchmarks)."""
        self._advised: Counter[str] = Counter()
        self._errors: list[float] = []
        self._regrets: list[float] = []
        if store is not None:
            for row in store.advice(reported_unjoined=True).iter_rows(named=True):
                self._waiting[(row["chosen_site"], row["job_id"])] = row["advice_id"]

    # ------------------------------------------------------------------ writing
    def record(self, advice: Advice, request: JobRequest, hook: str = "api") -> None:
        """Keep the answer (`hook`: how it was handed out, telemetry.advice.HOOKS); it is turned
        into its row by the writer (off the request path)."""
        with self._lock:
            self._advised[advice.recommended or "none"] += 1
            if self.store is not None:
                self._unwritten.append((advice, request, hook))
                if len(self._unwritten) > self.max_unwritten:  # the store refuses: memory stays bounded
                    del self._unwritten[0]
                    self.dropped += 1
                return
        self._memory[advice.advice_id] = _row(advice, request, hook)

    def flush(self) -> int:
        """Write the answers recorded since the last flush; returns how many."""
        with self._write_lock:
            with self._lock:
                pending, self._unwritten = self._unwritten, []
            if pending and self.store is not None:
                rows = []
                for advice, request, hook in pending:
                    rows.append(_row(advice, request, hook))
                    time.sleep(0)  # hand the GIL to a waiting request between rows, not after all of them
                try:
                    self.store.append_advice(pl.DataFrame(rows, schema=ADVICE_SCHEMA))
                except Exception:
                    with self._lock:  # kept for the next try: an answer is never silently lost
                        self._unwritten[:0] = pending
                    raise
            return len(pending)

    def start(self) -> None:
        """The writer thread (a log without it writes on every read and on close)."""
        if self._writer is None and self.store is not None:
            self._writer = threading.Thread(target=self._write_loop, name="advice-log", daemon=True)
            self._writer.start()

    def _write_loop(self) -> None:
        while not self._stop.wait(self.flush_every_s):
            try:
                self.flush()
            except Exception as exc:  # once per episode, not a traceback every quarter second
                if self._failing_since is None:
                    self._failing_since = self.clock()
                    log.warning("writing the advice log failed (%s); the answers wait in memory and are retried", exc)
                continue
            if self._failing_since is not None:
                log.info(
                    "the advice log is written again after %.0f s (%d answers dropped meanwhile)",
                    self.clock() - self._failing_since,
                    self.dropped,
                )
                self._failing_since = None

    def close(self) -> None:
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=5)
            self._writer = None
        self.flush()

    def get(self, advice_id: str) -> dict[str, Any]:
        """The stored row, JSON columns decoded. UnknownAdviceError."""
        self.flush()
        if self.store is not None:
            rows = self.store.advice(advice_id)
            if rows.height == 0:
                raise UnknownAdviceError(f"no advice {advice_id!r}")
            row = rows.row(0, named=True)
        elif advice_id in self._memory:
            row = dict(self._memory[advice_id])
        else:
            raise UnknownAdviceError(f"no advice {advice_id!r}")
        return _decoded(row)

    def report(self, advice_id: str, site: str, job_id: str, stage_in_s: float | None = None) -> dict[str, Any]:
        """The caller ran the advised job at `site` as `job_id` (stage_in_s: how long its data
        really took to move, when it knows). Returns the row, joined if the job has ended.
        One job per advice: the same report again returns the row as it is (a retry after a lost
        answer must not fail), a different one is refused with AdviceConflictError and the first
        is kept (an outcome joined to one job must not be moved to another)."""
        with self._report_lock:  # two reports at once: one is first, the other sees it
            return self._report(advice_id, site, job_id, stage_in_s)

    def _report(self, advice_id: str, site: str, job_id: str, stage_in_s: float | None) -> dict[str, Any]:
        row = self.get(advice_id)
        if row.get("job_id") is not None:
            earlier = (row.get("outcome") or {}).get("reported_stage_in_s")
            same_stage_in = stage_in_s is None or earlier == stage_in_s
            if row["chosen_site"] == site and row["job_id"] == job_id and same_stage_in:
                return row
            told = f"job {row['job_id']} at {row['chosen_site']}"
            if earlier is not None:
                told += f" (stage-in {earlier:g} s)"
            raise AdviceConflictError(
                f"advice {advice_id} was already reported as {told}; a report of job {job_id} at {site}"
                + (f" (stage-in {stage_in_s:g} s)" if stage_in_s is not None else "")
                + " cannot replace it"
            )
        sites = {s["site"] for s in row["ranked"]}
        if site not in sites:
            raise InvalidJobError(f"advice {advice_id} did not consider site {site!r} (it ranked {sorted(sites)})")
        fields: dict[str, object] = {"chosen_site": site, "job_id": job_id, "reported_s": self.clock()}
        if stage_in_s is not None:
            fields["outcome"] = json.dumps({"reported_stage_in_s": stage_in_s})
        self._update(advice_id, fields)
        with self._lock:
            self._waiting[(site, job_id)] = advice_id
        if self.store is not None:
            done = self.store.jobs(site=site).filter(
                (pl.col("job_id") == job_id) & pl.col("state").is_in(list(TERMINAL))
            )
            if done.height:
                self.observe(site, done)
        return self.get(advice_id)

    def _update(self, advice_id: str, fields: dict[str, object]) -> None:
        if self.store is not None:
            if not self.store.update_advice(advice_id, fields):
                raise UnknownAdviceError(f"no advice {advice_id!r}")
        else:
            self._memory[advice_id].update(fields)

    # ------------------------------------------------------------------ the join
    def observe(self, site: str, rows: pl.DataFrame) -> int:
        """Join the outcome of every reported job among `rows` that has ended; returns how many."""
        with self._lock:
            if not any(key[0] == site for key in self._waiting):
                return 0
            wanted = {job for (s, job) in self._waiting if s == site}
        ended = rows.filter(
            pl.col("job_id").cast(pl.String).is_in(list(wanted))
            & pl.col("state").is_in(list(TERMINAL))
            & pl.col("start_s").is_not_null()
            & pl.col("end_s").is_not_null()
        )
        n = 0
        for job in ended.iter_rows(named=True):
            with self._lock:
                advice_id = self._waiting.pop((site, str(job["job_id"])), None)
            if advice_id is None:
                continue
            self._join(advice_id, job)
            n += 1
        return n

    def _join(self, advice_id: str, job: dict[str, Any]) -> None:
        row = self.get(advice_id)
        earlier = row.get("outcome") or {}
        ranked = {s["site"]: s for s in row["ranked"]}
        chosen = ranked.get(row["chosen_site"], {})
        predicted = {k: (chosen.get(k) or {}).get("p50") for k in ("stage_in_s", "wait_s", "run_s", "stage_out_s")}
        wait = float(job["start_s"] - job["submit_s"]) if job.get("submit_s") is not None else None
        run = float(job["end_s"] - job["start_s"])
        stage_in = earlier.get("reported_stage_in_s", predicted["stage_in_s"])
        parts = [stage_in, wait, run, predicted["stage_out_s"]]
        turnaround = sum(p for p in parts if p is not None) if wait is not None else None
        predicted_turnaround = (chosen.get("turnaround_s") or {}).get("p50")
        alternatives = [
            s["turnaround_s"]["p50"]
            for name, s in ranked.items()
            if name != row["chosen_site"] and s.get("feasible") and s.get("turnaround_s")
        ]
        regret = None
        if turnaround is not None:
            regret = max(0.0, turnaround - min(alternatives)) if alternatives else 0.0
        outcome = {
            **earlier,
            "state": job["state"],
            "submit_s": job.get("submit_s"),
            "start_s": job["start_s"],
            "end_s": job["end_s"],
            "realised": {"stage_in_s": stage_in, "wait_s": wait, "run_s": run, "turnaround_s": turnaround},
            "predicted": {**predicted, "turnaround_s": predicted_turnaround},
            "error_s": {
                "wait_s": None if wait is None or predicted["wait_s"] is None else wait - predicted["wait_s"],
                "run_s": None if predicted["run_s"] is None else run - predicted["run_s"],
                "turnaround_s": None
                if turnaround is None or predicted_turnaround is None
                else turnaround - predicted_turnaround,
            },
            "regret_s": regret,
            "followed_advice": row["chosen_site"] == row["recommended"],
        }
        self._update(advice_id, {"outcome": json.dumps(outcome), "joined_s": self.clock()})
        error = outcome["error_s"]["turnaround_s"]
        with self._lock:
            if error is not None:
                self._errors.append(abs(error))
            if regret is not None:
                self._regrets.append(regret)

    def summary(self, site: str) -> pl.DataFrame:
        """Per hook, the answers that recommended `site` and how they turned out
        (telemetry.advice.SUMMARY_SCHEMA): what the Dash twin shows under each site."""
        self.flush()
        if self.store is not None:
            return self.store.advice_summary(site)
        import duckdb  # the same SQL over the rows kept in memory (no store: tests, benchmarks)

        rows = pl.DataFrame(list(self._memory.values()), schema=ADVICE_SCHEMA)  # noqa: F841 (read by DuckDB)
        result = pl.from_arrow(duckdb.connect().sql(summary_sql("rows"), params=[site]).to_arrow_table())
        assert isinstance(result, pl.DataFrame)
        return result.cast(SUMMARY_SCHEMA) if result.width else pl.DataFrame(schema=SUMMARY_SCHEMA)  # type: ignore[arg-type]

    def outcomes(self, since_s: float | None = None, *, lookback_s: float = 30 * 86400) -> pl.DataFrame:
        """Realised vs predicted, one row per joined answer and quantity (OUTCOME_SCHEMA): kind
        "runtime" (run), "wait" and "advice" (turnaround, with its regret), `ts_s` the wall instant
        the outcome was joined. Joined at or after `since_s`; only answers created up to
        `lookback_s` before it are read (a job runs for less than that), so the store is not scanned."""
        self.flush()
        if self.store is not None:
            created_from = None if since_s is None else since_s - lookback_s
            rows = self.store.advice(created_from_s=created_from).filter(pl.col("joined_s").is_not_null())
            joined = rows.select("joined_s", "chosen_site", "outcome").iter_rows()
        else:
            with self._lock:
                kept = list(self._memory.values())
            joined = ((r["joined_s"], r["chosen_site"], r["outcome"]) for r in kept if r.get("joined_s") is not None)
        out: list[tuple[float, str, str, float, float, float | None]] = []
        for joined_s, site, text in joined:
            if since_s is not None and joined_s < since_s:
                continue
            outcome = json.loads(text) if isinstance(text, str) else (text or {})
            realised, predicted = outcome.get("realised") or {}, outcome.get("predicted") or {}
            for kind, key in (("runtime", "run_s"), ("wait", "wait_s"), ("advice", "turnaround_s")):
                r, p = realised.get(key), predicted.get(key)
                if r is not None and p is not None:
                    out.append(
                        (
                            float(joined_s),
                            site,
                            kind,
                            float(p),
                            float(r),
                            outcome.get("regret_s") if kind == "advice" else None,
                        )
                    )
        return pl.DataFrame(out, schema=OUTCOME_SCHEMA, orient="row").sort("ts_s", maintain_order=True)

    def sent_to(self, sites: Collection[str], created_from_s: float) -> list[dict[str, Any]]:
        """The answers given since `created_from_s` (wall clock) whose job went to one of `sites`
        (where the caller reported it ran, else the recommendation), oldest first, JSON columns
        decoded (as `get`): what a restarted advisor reads back to hold a cloud's quota again.
        Only those rows are decoded, not every answer of the period."""
        self.flush()
        if self.store is not None:
            frame = self.store.advice(created_from_s=created_from_s)
        else:
            with self._lock:
                kept = [dict(r) for r in self._memory.values() if r["created_s"] >= created_from_s]
            frame = pl.DataFrame(kept, schema=ADVICE_SCHEMA).sort("created_s", "advice_id")
        went = pl.coalesce("chosen_site", "recommended").is_in(list(sites))
        return [_decoded(row) for row in frame.filter(went).iter_rows(named=True)]

    def recent(self, limit: int = 20, *, window_s: float = 7 * 86400.0) -> list[dict[str, Any]]:
        """The last `limit` answers, newest first, JSON columns decoded (as `get`): what the Dash
        advice page lists with their realised outcomes. From a store it reads the last `window_s`
        first (the advice table grows without bound) and the whole table only if that is short."""
        if limit < 1:
            return []
        self.flush()
        if self.store is not None:
            frame = self.store.advice(created_from_s=self.clock() - window_s)
            if frame.height < limit:
                frame = self.store.advice()
            rows = list(frame.tail(limit).iter_rows(named=True))
        else:
            with self._lock:
                kept = [dict(r) for r in self._memory.values()]
            rows = sorted(kept, key=lambda r: (r["created_s"], r["advice_id"]))[-limit:]
        rows.reverse()
        return [_decoded(row) for row in rows]

    def stats(self) -> AdviceStats:
        with self._lock:
            errors, regrets = list(self._errors), list(self._regrets)
            advised = dict(self._advised)
        return AdviceStats(
            advised,
            len(errors),
            sum(errors) / len(errors) if errors else None,
            sum(regrets) / len(regrets) if regrets else None,
        )


def _decoded(row: dict[str, Any]) -> dict[str, Any]:
    """A log row with its JSON columns decoded."""
    for key in ("request", "ranked", "data_ages", "outcome"):
        if isinstance(row.get(key), str):
            row[key] = json.loads(row[key])
    return row


def _row(advice: Advice, request: JobRequest, hook: str = "api") -> dict[str, Any]:
    """An answer as its advice-log row (telemetry.advice.ADVICE_SCHEMA)."""
    body = advice_to_dict(advice)
    return {
        "advice_id": advice.advice_id,
        "created_s": advice.created_s,
        "user": request.user,
        "home": advice.home,
        "recommended": advice.recommended,
        "objective": advice.objective,
        "request": json.dumps(request_to_dict(request)),
        "ranked": json.dumps(body["sites"]),
        "data_ages": json.dumps({o["site"]: o["data_age_s"] for o in body["sites"]}),
        "hook": hook,
    }
