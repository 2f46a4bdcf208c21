"""Placement advice on a replayed continuum: the multi-site protocol of the grid-scheduling
literature (Ernemann et al., CCGrid 2002 / Grid 2004; Sabin et al., JSSPP 2003) on the shared SWF
logs, with the advice engine (twin.advice.rank) as one of the placement policies.

Sites (bench/continuum_sim.py: HPC_SITES, CLOUD, LINKS). Four batch sites, each replaying one shared
log (the SC'15 strong filter, bench/sim_common.load_log) as its local load on one processor-
granular partition of the header's MaxProcs, under EASY planning and backfilling with the users'
requested times (`Policy.easy()`, `RequestedTime()`): KTH-SP2 100 processors, speed 1.0, 0.020
EUR/core-h; SDSC-SP2 128, 1.5, 0.025; CTC-SP2 338, 1.0, 0.020; SDSC-BLUE 1152, 2.0, 0.030 (speeds
by machine generation; prices rise with speed but less than it, so a faster site is cheaper per
unit of work). CEA-Curie (80,640) is too big to share with; METACENTRUM has no requested times and
NASA-iPSC no queue, so neither can be replayed under EASY. Users are prefixed with their site's
name. In the cloud scenario a fifth site, `cloud`: no local load, a quota of 256 cores, speed 1.5,
0.050 EUR/core-h plus 0.09 EUR/GB egress; a job sent there enters it after its stage-in and a
provisioning delay drawn lognormal (median 90 s, sigma 0.765: p10 34 s, p90 240 s; the engine is
configured with exactly these quantiles), and waits only if the quota is full. Links, a full mesh
(Gb/s, ms): SDSC-SP2–SDSC-BLUE 10/10 (one campus), CTC–SDSC-* 2.5/40, KTH–CTC 1/60, KTH–SDSC-* 1/80,
cloud–CTC 5/15, cloud–SDSC-* 5/35, cloud–KTH 2/50. Stage-in and stage-out take
`TransferPlanner.route(...).seconds(size).p50` (latency + size / bandwidth; no other traffic), for
every policy alike.

Windows. Window k of every log starts k × 30 days after that log's first submit (aligned on
relative time; k = 1, 3, 5, 7, 9, the first `--windows` of them: the first 30 days of each log, its
start-up, are skipped, and every other slot keeps the windows apart). Each window simulates 33 days:
3 days of warm-up, whose jobs all stay home and are not measured (so every policy starts measuring
from the same loaded queues), then the 30 measured days; every job is run to completion. Each site's
jobs from the window's start on are taken until they carry load × capacity × 33 days of work
(Σ procs × run), and their submit offsets are multiplied by one factor per site and window so they
arrive within the 33 days: every site's offered load equals the scenario's load (the table of
factors is in the results page). Each site's AVE2 history starts with the log's jobs that ended
(submit + run) before the window's log start. The same windows, scaled arrivals, movable flags,
input sizes, provisioning delays and speeds serve every policy (paired runs).

Jobs. Per (seed, window, site), three random streams, each drawn in log order (a job keeps its
draws whatever the load): movable when a uniform draw is below the share m (so the movable jobs at
10 % are among those at 20 %), an input of 10 MB–100 GB log-uniform living at home, an output of
10 % of it staged back home after a moved job ends. A non-movable job always runs home. A movable
job is placed at its arrival t by the policy, which reads every site's `Simulator.state()` at t (all
sites advanced together on one clock with `run(until=t)`). Sent to another site d, it enters d's
queue at t + stage-in (+ the provisioning delay at the cloud), runs run × speed_home / speed_d and
asks ceil(req × speed_home / speed_d): requests are scaled as the runs are, so no job is killed for
having moved to a slower site (the strong filter caps runs at the request), and a faster site's
scheduler plans with the shorter limit the user would give it. A job wider than a site cannot go
there. Turnaround = end − t (+ the stage-out for a moved job).

Policies (bench/continuum_sim.py):
- Local: stay home. Random: uniformly among the sites wide enough. RoundRobin: the next site wide
  enough, one counter for all jobs. LeastQueued: fewest waiting jobs. LeastWork: least requested
  processor-seconds waiting or still running (remaining limit), over the site's processors. Ties go
  home, then to the lower site index.
- EarliestStart: each site's own backfill estimate from requested times (what `sbatch -M` does):
  the start of the job queued now, with its request there, in `forecast_run(state, Policy.easy(),
  RequestedTime(), extra=[job], plan="requested")` — computed by `requested_start`, the same
  simulation stopped once the job has started (equality checked in the tests); the earliest start
  wins, speed and data ignored (at the cloud: now + the median provisioning delay if the quota has
  room).
- ctwin: the engine itself, with only what it could know at t. Per batch site a `Candidate` whose
  `QueueInputs` profile is `FreeProfile.of(forecast_run(state, Policy.easy(), Ave2(),
  plan="requested").occupancy["p50"], capacity, t)`: the queue planned with requested times, each
  running and waiting job running for its user's AVE2 at that site (the site's own History). The
  cloud: a `SiteSpec` of kind cloud with `Placement(provisioning, quota_cores, pricing)`, its
  quota a profile like a batch site's (`Candidate.quota`: the instances running and queued there,
  AVE2 each, and the bookings), so a full quota is a wait for room, then for the instance. The job's run time from
  `guess_runtimes` over `RuntimeSource`s wrapping each simulator's History (no learned model: AVE2,
  translated by the sites' `Placement.speed`); `evaluate` every site with the job as it would be
  submitted there (its request there as `walltime_s`, input and output at home), then `rank` with
  `home=` its home site and the default `AdvicePolicy()` (stay-home rule on). `guess_runtimes` is
  called once with the home request, as the service calls it; where it falls back to "the request
  (no history)" (a site that has seen the user fewer than twice) that is read as the request at
  that site (`--guess`, see GuessMode in continuum_sim). A moved job is booked in a
  `HerdingLedger` (site clock, the default 600 s TTL) at its predicted start and run, as
  twin.advice.live books advice, until it enters the destination queue; the other policies see a
  moved job only once it is queued there.
- Oracle: per job in arrival order, the site with the least realised turnaround given every job's
  actual run time and the cloud's actual delay: each site's EASY replayed from its state with the
  job queued at its arrival there (`clairvoyant_start`) + run + stage-out. A bound, not a policy:
  it does not know later arrivals (which EASY may let pass a waiting job), so it can be beaten.
- Oracle[social] (exploration only, `--policies`): the Oracle's knowledge, and the delay the job
  causes the jobs already waiting counted too (`SocialOracle`): whether any placement rule gets far
  below EarliestStart here even knowing every run time.

Cost (forecasts per site per movable job are what the grid costs; the default grid is 90 runs of
eight policies, about an hour on this 2-core VM shared with others, ~45 min when it is quiet; the
results page gives each policy's seconds). Shortcuts, each exact and checked in
tests/bench/test_continuum.py: EarliestStart's and the Oracle's replays stop once the job has
started; a site that cannot beat the best turnaround (or start) found so far even with no wait is
not replayed or forecast (the choice, and ctwin's recommendation, cannot change: such a site
cannot rank first); ctwin reuses a site's previous forecast when the site had no event since and
that forecast starts or ends nothing up to now (the same simulation event for event);
`continuum_sim.site_state` is `Simulator.state()` without walking the started slots of the queue.

Metrics over the measured jobs of each run: AWRT (weight = processors × run time at home, so the
weights are the same under every policy), mean / median / p95 turnaround, AVEbsld (tau = 10 s, the
run time at home as the reference) of all jobs and of the local (non-movable) jobs alone, share of
the movable jobs moved, cost (EUR: cores × hours where the job ran × that site's price, + cloud
egress of the output) and energy (kWh: the engine's Green Algorithms formula with the default
`Energy`: 12 W per core, 2 GiB per core at 0.3725 W/GB, PUE 1.56), regret = AWRT / Oracle's − 1, and
the herding indicator: the peak number of waiting jobs at the site the policy sent the most jobs to,
over Local's peak at that site (at least 1). Each cell is the median over windows × seeds [IQR];
ratios are medians of the paired per-run ratios.

Targets (the issue): ctwin's AWRT below every heuristic's in every scenario (median paired ratio <
1); at m = 20 %, load 0.85: ≥ 15 % below EarliestStart's and ≤ 1.15 × Oracle's; in every scenario,
local jobs' AVEbsld ≤ 1.05 × Local's and the herding indicator ≤ EarliestStart's. Sanity (printed,
not counted): EarliestStart's AWRT gain over Local. ratio = ctwin AWRT ÷ Oracle AWRT at m = 20 %,
load 0.85 (median of the paired ratios), target 1.15, lower is better; PASS only if every target
holds. Exploration options, off by default: `--stay-home off`, `--guess home|per-site`,
`--policies`, and scenarios such as 0.85/100 (every job movable, the literature's setting).

    .venv/bin/python bench/advice_continuum.py            # the default grid, 2 workers
    .venv/bin/python bench/advice_continuum.py --quick    # a smoke run of a few minutes (report in /tmp)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _common import machine_note, result_line, write_report
from continuum_sim import (
    CLOUD,
    DAY_S,
    HPC_SITES,
    LINKS,
    PROVISIONING,
    Continuum,
    Ctwin,
    EarliestStart,
    LeastQueued,
    LeastWork,
    Local,
    LogWindow,
    Oracle,
    PlacementPolicy,
    RandomSite,
    RoundRobin,
    SiteConf,
    SocialOracle,
    build_workload,
    herding,
    log_window,
    run_metrics,
)
from sim_common import load_log

from twin.advice.rank import AdvicePolicy
from twin.sim import Job, queue_order

NAME = "advice_continuum"
TARGET = 1.15
OUT = Path(__file__).resolve().parent / "results" / "advice_continuum.md"
SLOTS = (1, 3, 5, 7, 9, 2, 4, 6, 8)
WARM_S = 3 * DAY_S
SPAN_S = 33 * DAY_S
POLICIES = ("Local", "Random", "RoundRobin", "LeastQueued", "LeastWork", "EarliestStart", "ctwin", "Oracle")
VARIANTS = {
    "ctwin[stay-home off]": {"stay_home": False},
    "ctwin[guess home]": {"guess": "home"},
    "ctwin[guess per-site]": {"guess": "per-site"},
    "ctwin[stay-home off, guess per-site]": {"stay_home": False, "guess": "per-site"},
    "ctwin[risk p90]": {"risk": "p90"},
}
"""Exploration only (`--policies`): ctwin with one harness option changed, run beside the others on
the same windows (paired); never counted in the targets."""
BOUNDS = ("Oracle[social]",)
"""Exploration only (`--policies`): other bounds, never counted in the targets."""
ORDER = (*POLICIES[:-1], *VARIANTS, POLICIES[-1], *BOUNDS)
HEURISTICS = ("Local", "Random", "RoundRobin", "LeastQueued", "LeastWork", "EarliestStart")
DEFAULT_SCENARIOS = ("0.85/20", "0.70/20", "0.95/20", "0.85/10", "0.85/50", "0.85/20/cloud")
TARGET_SCENARIO = "0.85/20"


@dataclass(frozen=True)
class Scenario:
    name: str
    load: float
    movable: float
    cloud: bool

    @classmethod
    def parse(cls, text: str) -> Scenario:
        """LOAD/M[/cloud], M in percent: 0.85/20, 0.85/20/cloud."""
        parts = text.split("/")
        if len(parts) not in (2, 3) or (len(parts) == 3 and parts[2] != "cloud"):
            raise argparse.ArgumentTypeError(f"scenario {text!r}: expected LOAD/M or LOAD/M/cloud, e.g. 0.85/20")
        load, share = float(parts[0]), float(parts[1]) / 100.0
        if not (0 < load < 1.5 and 0 < share <= 1):
            raise argparse.ArgumentTypeError(f"scenario {text!r}: load in (0, 1.5), M in (0, 100]")
        return cls(
            f"{load:.2f}/{round(share * 100)}" + ("/cloud" if len(parts) == 3 else ""), load, share, len(parts) == 3
        )

    def sites(self) -> tuple[SiteConf, ...]:
        return (*HPC_SITES, CLOUD) if self.cloud else HPC_SITES

    @property
    def label(self) -> str:
        return f"load {self.load:.2f}, m = {self.movable:.0%}" + (", with the cloud" if self.cloud else "")


# ------------------------------------------------------------------------------------------ one run
_LOGS: dict[str, list[Job]] = {}


def _logs() -> dict[str, list[Job]]:
    if not _LOGS:
        for s in HPC_SITES:
            assert s.log is not None
            log = load_log(s.log)
            if log.site.partitions[0].processors != s.capacity:
                raise SystemExit(f"{s.log}: {log.site.partitions[0].processors} processors, expected {s.capacity}")
            _LOGS[s.name] = sorted(log.jobs, key=queue_order)
    return _LOGS


def windows_of(scenario: Scenario, slot: int) -> list[LogWindow]:
    logs = _logs()
    return [log_window(s, logs[s.name], slot, scenario.load, SPAN_S) for s in HPC_SITES]


def make_policy(
    name: str, sites: Sequence[SiteConf], cont: Continuum, seed: int, opts: dict[str, Any]
) -> PlacementPolicy:
    if name == "Local":
        return Local()
    if name == "Random":
        return RandomSite(seed)
    if name == "RoundRobin":
        return RoundRobin()
    if name == "LeastQueued":
        return LeastQueued()
    if name == "LeastWork":
        return LeastWork()
    if name == "EarliestStart":
        return EarliestStart()
    if name == "ctwin":
        return Ctwin(sites, cont.planner, AdvicePolicy(stay_home=opts["stay_home"]), guess=opts["guess"])
    if name == "Oracle":
        return Oracle()
    if name == "Oracle[social]":
        return SocialOracle()
    if name in VARIANTS:
        o = {**opts, **VARIANTS[name]}
        policy = Ctwin(
            sites, cont.planner, AdvicePolicy(stay_home=o["stay_home"]), guess=o["guess"], risk=o.get("risk", "p50")
        )
        policy.name = name
        return policy
    raise ValueError(name)


def run_task(task: tuple[Scenario, int, int, tuple[str, ...], dict[str, Any]]) -> dict[str, Any]:
    """Every policy on one (scenario, window, seed): per-policy metrics, seconds and diagnostics."""
    scenario, slot, seed, policies, opts = task
    started = time.perf_counter()
    wins = windows_of(scenario, slot)
    sites = scenario.sites()
    histories = [w.history for w in wins] + ([[]] if scenario.cloud else [])
    workload = build_workload([w.jobs for w in wins], scenario.movable, seed, slot, WARM_S)
    cont = Continuum(sites, histories)
    home = np.array([j.home for j in workload], np.int64)
    outs, metrics, seconds, extra = {}, {}, {}, {}
    for name in ("Local", *(p for p in policies if p != "Local")):
        t0 = time.perf_counter()
        policy = make_policy(name, sites, cont, seed, opts)
        out = cont.run(workload, policy, WARM_S)
        seconds[name] = time.perf_counter() - t0
        outs[name] = out
        metrics[name] = run_metrics(workload, out, sites)
        if isinstance(policy, Ctwin):
            dec = policy.decisions
            stayed = [d for d in dec if d.stayed_home]
            extra[name] = {
                "decisions": len(dec),
                "stayed_home": len(stayed) / max(1, len(dec)),
                "best_not_home": sum(d.best != workload[d.key].home for d in dec) / max(1, len(dec)),
                "stayed_gain_h": float(np.median([d.gain_s for d in stayed])) / 3600 if stayed else float("nan"),
                "stayed_width_h": float(np.median([d.width_s for d in stayed])) / 3600 if stayed else float("nan"),
                "forecasts_reused": policy.forecasts_reused / max(1, policy.forecasts_reused + policy.forecasts_run),
                "sites_skipped": policy.pruned / max(1, len(dec) * (len(sites) - 1)),
            }
    for name, out in outs.items():
        metrics[name]["herding"] = herding(out, outs["Local"], home)
        dest = out.dest[out.dest != home]
        metrics[name]["top_site"] = float(np.bincount(dest).argmax()) if dest.size else -1.0
    if "Oracle" in metrics:
        for name in metrics:
            metrics[name]["regret"] = metrics[name]["awrt_h"] / metrics["Oracle"]["awrt_h"] - 1.0
    return {
        "scenario": scenario.name,
        "slot": slot,
        "seed": seed,
        "metrics": metrics,
        "seconds": seconds,
        "extra": extra,
        "windows": [
            {
                "site": w.site,
                "jobs": len(w.jobs),
                "factor": w.factor,
                "covered_d": w.covered_s / DAY_S,
                "offered": w.offered,
            }
            for w in wins
        ],
        "total_s": time.perf_counter() - started,
    }


# ------------------------------------------------------------------------------------------ summary
def _q(values: Sequence[float]) -> tuple[float, float, float]:
    a = np.asarray(values, np.float64)
    return float(np.median(a)), float(np.percentile(a, 25)), float(np.percentile(a, 75))


def paired(runs: list[dict[str, Any]], a: str, b: str, key: str = "awrt_h") -> list[float]:
    return [r["metrics"][a][key] / r["metrics"][b][key] for r in runs if a in r["metrics"] and b in r["metrics"]]


def scenario_table(runs: list[dict[str, Any]], policies: Sequence[str]) -> list[str]:
    head = (
        "| policy | AWRT h: median [IQR] | AWRT ÷ Local | turnaround h: mean / median / p95 | AVEbsld all / local "
        "| moved (of movable) | cost EUR | energy kWh | regret vs Oracle | herding |"
    )
    lines = [head, "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for p in policies:
        if p not in runs[0]["metrics"]:
            continue
        m = [r["metrics"][p] for r in runs]

        def med(key: str, m: list[dict[str, float]] = m) -> float:
            return float(np.median([x[key] for x in m]))

        awrt, lo, hi = _q([x["awrt_h"] for x in m])
        rel = _q(paired(runs, p, "Local"))
        regret = f"{med('regret'):+.1%}" if "regret" in m[0] else "—"
        name = f"**{p}**" if p == "ctwin" else p
        lines.append(
            f"| {name} | {awrt:.2f} [{lo:.2f}–{hi:.2f}] | {rel[0]:.3f} [{rel[1]:.3f}–{rel[2]:.3f}] "
            f"| {med('mean_h'):.2f} / {med('median_h'):.2f} / {med('p95_h'):.1f} "
            f"| {med('bsld'):.1f} / {med('bsld_local'):.1f} | {med('moved'):.0%} | {med('cost'):,.0f} "
            f"| {med('kwh'):,.0f} | {regret} | {med('herding'):.2f} |"
        )
    return lines


@dataclass
class Verdict:
    what: str
    ok: bool | None
    """None: not evaluated (a policy or the scenario missing)."""
    detail: str

    def line(self) -> str:
        word = "n/a" if self.ok is None else ("PASS" if self.ok else "FAIL")
        return f"{word}: {self.what} — {self.detail}"


def verdicts(by_scenario: dict[str, list[dict[str, Any]]]) -> tuple[list[Verdict], float | None]:
    out: list[Verdict] = []
    ratio: float | None = None
    have = lambda runs, *ps: runs and all(p in runs[0]["metrics"] for p in ps)  # noqa: E731
    for name, runs in by_scenario.items():
        if not have(runs, "ctwin"):
            continue
        worse = []
        for h in HEURISTICS:
            if have(runs, h):
                r = float(np.median(paired(runs, "ctwin", h)))
                if r >= 1.0:
                    worse.append(f"{h} {r:.3f}")
        detail = "ctwin ÷ heuristic ≥ 1 for " + ", ".join(worse) if worse else "all paired ratios < 1"
        out.append(Verdict(f"[{name}] ctwin AWRT below every heuristic", not worse, detail))
        if have(runs, "Local"):
            r = float(np.median(paired(runs, "ctwin", "Local", "bsld_local")))
            out.append(Verdict(f"[{name}] local jobs' AVEbsld ≤ 1.05 × Local's", r <= 1.05, f"ratio {r:.3f}"))
        if have(runs, "EarliestStart"):
            c = float(np.median([x["metrics"]["ctwin"]["herding"] for x in runs]))
            e = float(np.median([x["metrics"]["EarliestStart"]["herding"] for x in runs]))
            out.append(Verdict(f"[{name}] herding ≤ EarliestStart's", c <= e, f"ctwin {c:.2f}, EarliestStart {e:.2f}"))
    runs = by_scenario.get(TARGET_SCENARIO, [])
    if have(runs, "ctwin", "EarliestStart"):
        r = float(np.median(paired(runs, "ctwin", "EarliestStart")))
        out.append(Verdict(f"[{TARGET_SCENARIO}] ctwin AWRT ≥ 15 % below EarliestStart's", r <= 0.85,
                           f"ctwin ÷ EarliestStart {r:.3f} (needs ≤ 0.850)"))  # fmt: skip
    if have(runs, "ctwin", "Oracle"):
        ratio = float(np.median(paired(runs, "ctwin", "Oracle")))
        out.append(Verdict(f"[{TARGET_SCENARIO}] ctwin AWRT ≤ 1.15 × Oracle's", ratio <= TARGET, f"ratio {ratio:.3f}"))
    return out, ratio


# ------------------------------------------------------------------------------------------ plot
_TOP = 1.3
"""The plot's y-axis ends here; a bar above it is labelled with its value."""


def plot(by_scenario: dict[str, list[dict[str, Any]]], policies: Sequence[str], out_png: Path) -> list[Path]:
    """AWRT ÷ Local per policy per scenario (median of paired ratios, IQR whiskers): HTML always,
    PNG with kaleido (as models/report.py) or else headless Chromium."""
    import plotly.graph_objects as go

    fig = go.Figure()
    names = list(by_scenario)
    for p in policies:
        if p == "Local":
            continue
        med, lo, hi = [], [], []
        for s in names:
            runs = by_scenario[s]
            if p not in runs[0]["metrics"]:
                med.append(None)
                lo.append(0)
                hi.append(0)
                continue
            m, a, b = _q(paired(runs, p, "Local"))
            med.append(m)
            lo.append(m - a)
            hi.append(b - m)
        clipped = [f"{m:.2f} ↑" if m is not None and m > _TOP else "" for m in med]
        for i, m in enumerate(med):  # a bar past the axis is drawn up to it, labelled with its value
            if m is not None and m > _TOP:
                med[i], lo[i], hi[i] = _TOP, 0.0, 0.0
        fig.add_trace(
            go.Bar(
                x=names,
                y=med,
                name=p,
                text=clipped,
                textposition="inside",
                insidetextanchor="end",
                textangle=-90,
                error_y={"type": "data", "symmetric": False, "array": hi, "arrayminus": lo},
            )
        )
    fig.add_hline(y=1.0, line_dash="dot", annotation_text="Local")
    fig.update_layout(
        title="AWRT relative to Local (median of paired runs, IQR whiskers; bars above 1.3 labelled)",
        template="plotly_white",
        barmode="group",
        width=1200,
        height=600,
        yaxis_title="AWRT ÷ Local's",
        xaxis_title="scenario (load / movable %)",
    )
    fig.update_yaxes(range=[0.6, _TOP])
    html = out_png.with_suffix(".html")
    fig.write_html(html, include_plotlyjs="cdn", config={"displayModeBar": False})
    written = [html]
    if _png(fig, out_png):
        written.append(out_png)
    return written


def _png(fig: Any, path: Path) -> bool:
    try:
        import kaleido  # noqa: F401

        fig.write_image(path)
        return True
    except Exception:  # kaleido missing or unable to render: try the system's Chromium
        pass
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        page = Path(tmp) / "plot.html"
        fig.write_html(page, include_plotlyjs=True, full_html=True, config={"displayModeBar": False})
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--virtual-time-budget=5000"]
        cmd = [chromium, *flags, f"--screenshot={path}", "--window-size=1200,600", page.as_uri()]
        try:
            subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        except (subprocess.SubprocessError, OSError):
            return False
    return path.is_file()


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scenarios", nargs="+", type=Scenario.parse, help=f"LOAD/M[/cloud] (default {DEFAULT_SCENARIOS})"
    )
    parser.add_argument("--windows", type=int, default=5, help="windows per scenario (slots 1, 3, 5, 7, 9, ...)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per window")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="smoke run: the target scenario, 2 windows, 1 seed")
    parser.add_argument("--policies", nargs="+", choices=ORDER, default=list(POLICIES), help="Local always runs")
    parser.add_argument("--stay-home", choices=("on", "off"), default="on", help="exploration: ctwin's stay-home rule")
    parser.add_argument("--guess", choices=("site-limit", "home", "per-site"), default="site-limit",
                        help="exploration: how ctwin asks guess_runtimes (see continuum_sim.GuessMode)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument("--from-json", type=Path, help="rebuild the report from a previous run's .json, no runs")
    args = parser.parse_args()
    scenarios = args.scenarios or [Scenario.parse(s) for s in DEFAULT_SCENARIOS]
    windows, seeds = args.windows, args.seeds
    if args.quick:
        scenarios, windows, seeds = [Scenario.parse(TARGET_SCENARIO)], 2, 1
        if args.out == OUT:  # a smoke run never replaces the benchmark's results page
            args.out = Path(tempfile.gettempdir()) / "advice_continuum_quick" / OUT.name
    if windows > len(SLOTS):
        parser.error(f"at most {len(SLOTS)} windows")
    policies = tuple(p for p in ORDER if p in args.policies or p == "Local")
    opts = {"stay_home": args.stay_home == "on", "guess": args.guess}
    tasks = [(s, slot, seed, policies, opts) for s in scenarios for slot in SLOTS[:windows] for seed in range(seeds)]
    tasks.sort(key=lambda t: -t[0].movable * t[0].load ** 4 * (1.25 if t[0].cloud else 1.0))  # longest first
    started = time.perf_counter()
    if args.from_json:
        results = json.loads(args.from_json.read_text())
        names = {r["scenario"] for r in results}
        chosen = [s for s in scenarios if s.name in names] or [Scenario.parse(n) for n in sorted(names)]
        finish(args, results, chosen, policies, windows, seeds, float(results[0].get("elapsed_s", 0.0)))
        return
    _logs()  # read once, before the workers fork
    print(f"{len(tasks)} runs ({len(scenarios)} scenarios × {windows} windows × {seeds} seeds), "
          f"{len(policies)} policies each, {args.workers} workers", flush=True)  # fmt: skip
    results: list[dict[str, Any]] = []

    partial = args.out.with_suffix(".partial.json")
    partial.parent.mkdir(parents=True, exist_ok=True)

    def report(r: dict[str, Any]) -> None:
        results.append(r)
        partial.write_text(json.dumps(results, default=float) + "\n")  # --from-json reads it if stopped
        el = time.perf_counter() - started
        m = r["metrics"]
        awrt = " ".join(f"{p} {m[p]['awrt_h']:.2f}" for p in policies)
        print(f"[{len(results)}/{len(tasks)}] {el / 60:5.1f} min  {r['scenario']} window {r['slot']} seed {r['seed']} "
              f"({r['total_s']:.0f} s)  AWRT h: {awrt}", flush=True)  # fmt: skip

    if args.workers > 1:
        with multiprocessing.get_context("fork").Pool(args.workers) as pool:
            for r in pool.imap_unordered(run_task, tasks):
                report(r)
    else:
        for t in tasks:
            report(run_task(t))
    elapsed = time.perf_counter() - started
    note = machine_note()
    for r in results:
        r.update(elapsed_s=elapsed, command=" ".join(sys.argv[1:]), machine=note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1, default=float) + "\n")
    partial.unlink(missing_ok=True)
    finish(args, results, scenarios, policies, windows, seeds, elapsed)


def finish(
    args: argparse.Namespace,
    results: list[dict[str, Any]],
    scenarios: Sequence[Scenario],
    policies: Sequence[str],
    windows: int,
    seeds: int,
    elapsed: float,
) -> None:
    """Summary, targets, plot and results page of a finished grid."""
    raw = args.out.with_suffix(".json")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    policies = [p for p in ORDER if p in results[0]["metrics"]]
    windows = len({r["slot"] for r in results})
    seeds = len({r["seed"] for r in results})
    note = results[0].get("machine", machine_note())
    by_scenario = {s.name: sorted((r for r in results if r["scenario"] == s.name), key=lambda r: (r["slot"], r["seed"]))
                   for s in scenarios}  # fmt: skip
    lines = body(by_scenario, scenarios, policies, args, windows, seeds, elapsed)
    checks, ratio = verdicts(by_scenario)
    ok = all(v.ok is not False for v in checks)
    last = result_line(NAME, ratio if ratio is not None else float("nan"), TARGET, lower_is_better=True)
    if ratio is None or not ok:
        last = last.replace("PASS", "FAIL")
    verdict_lines = ["## Targets", "", *(f"- {v.line()}" for v in checks)]
    plots = plot(by_scenario, policies, args.out.with_suffix(".png"))
    figure = [f"![AWRT relative to Local]({args.out.with_suffix('.png').name})"] if len(plots) > 1 else []
    command = str(results[0].get("command", ""))
    title = "Placement advice on a replayed continuum: ctwin vs the grid-scheduling heuristics"
    if any(flag in command for flag in ("--policies", "--stay-home", "--guess", "--scenarios", "--windows", "--seeds")):
        title = f"Exploration, not the benchmark's grid ({command}): {title}"
    write_report(
        args.out,
        title,
        [*lines, "", *verdict_lines, "", *figure, "", f"Every run's numbers: `{raw.name}`.", "", note],
        last,
    )
    print("\n".join(["", *verdict_lines, "", note, f"plots: {', '.join(str(p) for p in plots)}"]))
    print(last)


def sites_line() -> str:
    sites = "; ".join(
        f"{s.name} {s.capacity} cores, speed {s.speed}, {s.core_hour} EUR/core-h" for s in (*HPC_SITES, CLOUD)
    )
    prov = f"{PROVISIONING.p10_s:.0f}/{PROVISIONING.p50_s:.0f}/{PROVISIONING.p90_s:.0f} s"
    links = ", ".join(f"{a}–{b} {g:g}/{ms:g}" for a, b, g, ms in LINKS)
    return (
        f"Sites: {sites} (the cloud's cores are its quota; provisioning p10/p50/p90 {prov}; egress "
        f"{CLOUD.egress_per_gb} EUR/GB). Links (Gb/s, ms): {links}."
    )


def body(
    by_scenario: dict[str, list[dict[str, Any]]],
    scenarios: Sequence[Scenario],
    policies: Sequence[str],
    args: argparse.Namespace,
    windows: int,
    seeds: int,
    elapsed: float,
) -> list[str]:
    first = next(iter(r for runs in by_scenario.values() for r in runs), {})
    cmd = " ".join(["bench/advice_continuum.py", first.get("command", " ".join(sys.argv[1:]))]).strip()
    out = [
        f"Produced by `.venv/bin/python {cmd}` in {elapsed / 60:.1f} min ({args.workers} workers); the protocol and "
        "every choice are in the module docstring. Each cell: median over "
        f"{windows} windows × {seeds} seeds; ratios are medians of paired per-run ratios.",
        "",
        f"ctwin options: stay-home rule {args.stay_home}, runtime guesses `{args.guess}`.",
        "",
        sites_line(),
        "",
        "Choices (details in the docstring): windows k = 1, 3, 5, 7, 9 × 30 days after each log's first submit, "
        "3 days of warm-up (every job home, not measured) + 30 measured days, every job run to completion; each "
        "site's arrivals compressed or stretched by one factor so its offered load is the scenario's; movable "
        "flags, inputs (10 MB–100 GB log-uniform, output 10 %) and cloud delays drawn per job, the same for "
        "every policy; a moved job enters the destination queue after its stage-in, with run and request "
        "scaled by speed_home / speed_site; turnaround includes the stage-out; AWRT weight = processors × "
        "run at home; AVEbsld (tau 10 s) against the run at home; herding = peak waiting jobs at the policy's "
        "most-chosen site ÷ Local's peak there (at least 1). ctwin: `FreeProfile.of(forecast_run(state, "
        "Policy.easy(), Ave2(), plan='requested'))`, `guess_runtimes` with the home request, `evaluate` with "
        "the request at each site, `rank` with the default `AdvicePolicy()`, moved jobs booked in a "
        "`HerdingLedger` until queued. EarliestStart: the start of the job queued now in each site's "
        "requested-time forecast. Oracle: each site's EASY replayed with actual run times, the job queued "
        "at its arrival there; the least turnaround wins (greedy per job, not a bound).",
    ]
    for s in scenarios:
        runs = by_scenario[s.name]
        if not runs:
            continue
        out += ["", f"## {s.name}: {s.label}", ""]
        out += scenario_table(runs, policies)
        sanity = paired(runs, "EarliestStart", "Local") if "EarliestStart" in runs[0]["metrics"] else []
        notes = []
        if sanity:
            m, a, b = _q(sanity)
            notes.append(f"Sanity: EarliestStart vs Local AWRT {m - 1:+.1%} [{a - 1:+.1%} … {b - 1:+.1%}].")
        for key in runs[0]["extra"]:
            ex = [r["extra"][key] for r in runs]

            def med(k: str, ex: list[dict[str, float]] = ex) -> float:
                values = [e.get(k, float("nan")) for e in ex]
                return float(np.nanmedian(values)) if not all(np.isnan(values)) else float("nan")

            skipped = med("sites_skipped")
            notes.append(
                f"{key}: the engine's best site was not home for {med('best_not_home'):.0%} of the movable jobs; "
                f"the stay-home rule kept {med('stayed_home'):.0%} of the movable jobs home (median gain "
                f"{med('stayed_gain_h'):.2f} h against a band of {med('stayed_width_h'):.2f} h); queue forecasts "
                f"reused {med('forecasts_reused'):.0%}"
                + ("." if np.isnan(skipped) else f", sites skipped as unable to win {skipped:.0%}.")
            )
        secs = {p: float(np.median([r["seconds"][p] for r in runs])) for p in runs[0]["seconds"]}
        notes.append("Seconds per run (median): " + ", ".join(f"{p} {v:.1f}" for p, v in secs.items()) + ".")
        wins = {}
        for r in runs:
            if r["seed"] == runs[0]["seed"]:
                wins[r["slot"]] = ", ".join(
                    f"{w['site']} {w['jobs']:,} jobs ×{w['factor']:.2f} ({w['covered_d']:.0f} d of log)"
                    for w in r["windows"]
                )
        notes.append(
            "Windows (jobs, inter-arrival factor): "
            + "; ".join(f"slot {k}: {v}" for k, v in sorted(wins.items()))
            + "."
        )
        out += ["", *notes]
    return out


if __name__ == "__main__":
    main()
