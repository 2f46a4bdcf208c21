"""The advice page's job form and its URL: which query keys make a job, how they are read (lenient
about blanks, strict about nonsense, each refusal a sentence for the page), and the link that
writes a form back into the URL. Pure functions of the query string, so a shared link is the job."""

from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import Any, Literal
from urllib.parse import urlencode

from dashboards.pages import query
from telemetry.schema import parse_duration
from twin.advice.containers import AFFINITIES
from twin.advice.request import ContainerSpec, DataSpec, JobRequest, Objective, Weights
from twin.view import TwinReader

__all__ = ["CHOICES", "FIELDS", "KEYS", "OBJECTIVES", "PLACEHOLDERS", "VIEW", "JobForm", "advice_query",
           "form_state", "parse_job"]  # fmt: skip

VIEW = "advice"
OBJECTIVES: tuple[Objective, ...] = ("turnaround", "cost", "energy", "co2", "weighted")
RISKS = ("p50", "p90")
RUNTIMES = ("apptainer", "podman", "docker", "charliecloud")
GB = 1e9
MAX_WALLTIME_S = 366 * 86400

FieldType = Literal["text", "number"]
FIELDS: tuple[tuple[str, str, FieldType], ...] = (
    ("cores", "cores", "number"),
    ("nodes", "nodes", "number"),
    ("gpus", "GPUs", "number"),
    ("walltime", "walltime (s, or 2h, 30m)", "text"),
    ("memory", "memory per node (GB)", "number"),
    ("input", "input (GB)", "number"),
    ("output", "output (GB)", "number"),
    ("image", "container image", "text"),
    ("containers", "containers per node", "number"),
    ("w_turnaround", "weight of turnaround", "number"),
    ("w_cost", "weight of cost", "number"),
    ("w_energy", "weight of energy", "number"),
    ("w_co2", "weight of CO2", "number"),
)
"""Free-typed form fields: (query key, label, input type)."""
PLACEHOLDERS = {"walltime": "e.g. 2h", "w_turnaround": "1", "w_cost": "0", "w_energy": "0", "w_co2": "0"}
"""What a blank field means."""
CHOICES: tuple[tuple[str, str], ...] = (
    ("input_site", "input lives at"),
    ("output_site", "output goes to"),
    ("runtime", "container runtime"),
    ("affinity", "affinity"),
    ("objective", "objective"),
    ("risk", "rank by"),
)
"""Dropdown form fields: (query key, label)."""
KEYS = tuple(k for k, _, _ in FIELDS) + tuple(k for k, _ in CHOICES)


@dataclass(frozen=True)
class JobForm:
    """What the URL asks: the job (None until it names one) or why it cannot be read."""

    request: JobRequest | None
    error: str | None
    values: dict[str, str]


def _number(q: dict[str, str], key: str, label: str, *, lo: float, hi: float, integer: bool) -> float | None:
    raw = q.get(key, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{label} must be a number, not {raw!r}") from None
    if not math.isfinite(value) or not lo <= value <= hi or (integer and value != int(value)):
        kind = "a whole number" if integer else "a number"
        raise ValueError(f"{label} must be {kind} from {lo:g} to {hi:g}, not {raw!r}")
    return value


def _walltime(raw: str) -> float | None:
    """Seconds, or "2h", "30m" as the API takes them (telemetry.schema.parse_duration)."""
    if not raw.strip():
        return None
    try:
        seconds = parse_duration(raw.strip())
    except ValueError as exc:
        raise ValueError(f"walltime: {exc}") from None
    if seconds > MAX_WALLTIME_S:
        raise ValueError(f"walltime must be at most 366 days, not {raw!r}")
    return seconds


def parse_job(search: str | None) -> JobForm:
    """The job the query string names (lenient about blanks, strict about nonsense)."""
    q = query(search)
    values = {k: q[k] for k in KEYS if k in q}
    if "cores" not in q and "walltime" not in q:
        return JobForm(None, None, values)
    try:
        cores = _number(q, "cores", "cores", lo=1, hi=10_000_000, integer=True)
        walltime = _walltime(q.get("walltime", ""))
        if cores is None or walltime is None:
            raise ValueError("a job needs cores and a walltime (seconds)")
        nodes = _number(q, "nodes", "nodes", lo=1, hi=1_000_000, integer=True)
        gpus = _number(q, "gpus", "GPUs", lo=0, hi=100_000, integer=True)
        memory = _number(q, "memory", "memory", lo=0, hi=1e6, integer=False)
        size_in = _number(q, "input", "input size", lo=0, hi=1e9, integer=False)
        size_out = _number(q, "output", "output size", lo=0, hi=1e9, integer=False)
        containers = _number(q, "containers", "containers per node", lo=1, hi=1024, integer=True)
        affinity = q.get("affinity") or None
        if affinity is not None and affinity not in AFFINITIES:
            raise ValueError(f"affinity must be one of {', '.join(AFFINITIES)}, not {affinity!r}")
        objective = q.get("objective") or "turnaround"
        if objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, not {objective!r}")
        weights = Weights(
            *(
                default if (w := _number(q, f"w_{name}", f"weight of {name}", lo=0, hi=1000, integer=False)) is None
                else w
                for name, default in (("turnaround", 1.0), ("cost", 0.0), ("energy", 0.0), ("co2", 0.0))
            )
        )  # fmt: skip
        if objective == "weighted" and not any(astuple(weights)):
            raise ValueError("objective weighted needs a weight above 0 on at least one measure")
        risk = q.get("risk") or "p50"
        if risk not in RISKS:
            raise ValueError(f"risk must be p50 (the median outcome) or p90 (risk-averse), not {risk!r}")
        container = ContainerSpec(
            runtime=q.get("runtime") or None,
            image=(q.get("image") or "").strip()[:512] or None,
            containers_per_node=None if containers is None else int(containers),
            affinity=affinity,
        )
    except ValueError as exc:
        return JobForm(None, str(exc), values)
    request = JobRequest(
        cores=int(cores),
        walltime_s=max(1, math.ceil(walltime)),
        nodes=None if nodes is None else int(nodes),
        gpus=0 if gpus is None else int(gpus),
        memory_bytes=None if memory is None else int(memory * GB),
        input=DataSpec((size_in or 0.0) * GB, q.get("input_site") or None),
        output=DataSpec((size_out or 0.0) * GB, q.get("output_site") or None),
        container=container,
        objective=objective,
        risk=risk,  # type: ignore[arg-type]
        weights=weights,
    )
    return JobForm(request, None, values)


def advice_query(values: dict[str, Any]) -> str:
    """The page's link for these form values (blanks left out, so the link stays short)."""
    kept = {k: str(values[k]).strip() for k in KEYS if values.get(k) not in (None, "")}
    return "?" + urlencode({"view": VIEW, **{k: v for k, v in kept.items() if v}})


def form_state(reader: TwinReader, search: str | None) -> tuple[list[Any], list[Any]]:
    """The form as the URL says (values), and the dropdowns' choices (options)."""
    values = query(search)
    sites = [{"label": s.name, "value": s.name} for s in reader.sites()]
    options = {
        "input_site": sites,
        "output_site": sites,
        "runtime": [{"label": r, "value": r} for r in RUNTIMES],
        "affinity": [{"label": a, "value": a} for a in AFFINITIES],
        "objective": [{"label": o, "value": o} for o in OBJECTIVES],
        "risk": [{"label": "the median (p50)", "value": "p50"}, {"label": "the p90 (risk-averse)", "value": "p90"}],
    }
    defaults = {"objective": "turnaround", "risk": "p50"}
    shown = [values.get(k, defaults.get(k)) for k in KEYS]
    return shown, [options[k] for k, _ in CHOICES]
