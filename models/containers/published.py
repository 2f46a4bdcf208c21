"""The published container-configuration runs (Liu & Guitart, BSC: MLPerf-inference LoadGen on
ResNet50 / TF-Serving under Kubernetes) as one typed table, read straight from the shipped tarball.

Why a table of runs and not a feature frame: the model learns the effect of a configuration
relative to a reference configuration of the same application, so the loader keeps every factor
the run's folder name and its LoadGen `cmdline` state, and the learner decides what to compare.

A run's configuration comes from its folder name; the `cmdline` LoadGen recorded must agree with it
(scenario, client batch). A file whose name does not follow the pattern, whose JSON is broken, or
whose cmdline contradicts its name is reported as a `RunProblem` naming the file; the rest is kept.
"""

from __future__ import annotations

import json
import re
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import polars as pl

__all__ = [
    "PUBLISHED_RUNS",
    "RUN_SCHEMA",
    "PublishedRuns",
    "RunProblem",
    "load_published_runs",
]

PUBLISHED_RUNS = Path(__file__).with_name("peiniliu-inference-scanflow-results.tar.gz")
"""The shipped copy (see PROVENANCE.md beside it)."""

NODE_CPUS = 32
NODE_MEMORY_GIB = 128
"""Each run's node: every container gets NODE_CPUS / containers CPUs (PROVENANCE.md)."""

SCENARIOS = {"O": "Offline", "S": "Server", "MS": "MultiStream", "SS": "SingleStream"}
ENVS = ("none", "cpumem", "cpumemory")

RUN_SCHEMA: dict[str, pl.DataType] = {
    "path": pl.String(),  # inside the tarball
    "experiment": pl.String(),  # top folder: exp1, exp3, output-exp15, ...
    "application": pl.String(),  # model served: resnet50
    "backend": pl.String(),  # tfserving
    "env": pl.String(),  # none | cpumem | cpumemory
    "cpu_affinity": pl.Boolean(),  # kubelet CPU manager pinning (cpumem, cpumemory)
    "memory_affinity": pl.Boolean(),  # memory-affinity script (cpumemory, more than one container)
    "hosts": pl.Int64(),
    "containers": pl.Int64(),  # per node
    "cpus_per_container": pl.Float64(),
    "memory_gib_per_container": pl.Float64(),
    "server_batch": pl.Int64(),
    "scenario": pl.String(),  # Offline | Server | MultiStream | SingleStream
    "load": pl.Int64(),  # the name's sixth field: Offline the client batch, MultiStream samples per query
    "client_batch": pl.Int64(),  # LoadGen max_batchsize
    "samples_per_query": pl.Int64(),  # MultiStream
    "target_qps": pl.Float64(),  # LoadGen's qps setting (Server: the offered load)
    "extra": pl.Int64(),  # the eighth name field some folders carry (null otherwise)
    "rep": pl.Int64(),
    "client_threads": pl.Int64(),
    "qps": pl.Float64(),
    "latency_mean_s": pl.Float64(),
    "latency_p50_s": pl.Float64(),
    "latency_p90_s": pl.Float64(),
    "latency_p99_s": pl.Float64(),
    "queries": pl.Int64(),
    "took_s": pl.Float64(),
    "time_s": pl.Int64(),  # when the run ended (Unix seconds)
}

_NAME = re.compile(
    r"^(?P<env>[a-z]+)-(?P<bench>[a-z0-9]+)-(?P<containers>\d+)-(?P<server_batch>\d+)-"
    r"(?P<scenario>O|S|MS|SS)-(?P<load>\d+)(?:-(?P<extra>\d+))?-(?P<rep>\d+)$"
)
_CMD_FIELD = re.compile(r"(\w+)=('(?:[^'\\]|\\.)*'|[^,()]+)")


@dataclass(frozen=True)
class RunProblem:
    """One results file that could not be used, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass(frozen=True)
class PublishedRuns:
    runs: pl.DataFrame
    problems: tuple[RunProblem, ...]


def load_published_runs(source: str | Path = PUBLISHED_RUNS) -> PublishedRuns:
    """Every usable run of `source` (the tarball, or a folder holding the same tree)."""
    rows: list[dict[str, Any]] = []
    problems: list[RunProblem] = []
    for path, raw in _results_files(Path(source)):
        try:
            rows.append(parse_run(path, raw))
        except RunFormatError as exc:
            problems.append(RunProblem(path, str(exc)))
    runs = pl.DataFrame(rows, schema=RUN_SCHEMA, orient="row") if rows else pl.DataFrame(schema=RUN_SCHEMA)
    return PublishedRuns(runs.sort("path"), tuple(sorted(problems, key=lambda p: p.path)))


class RunFormatError(ValueError):
    """A results file that says something other than the pattern expects."""


def parse_run(path: str, raw: bytes) -> dict[str, Any]:
    """One row of RUN_SCHEMA from one `results.json` and its path."""
    parts = PurePosixPath(path).parts
    folder = parts[-2] if len(parts) >= 2 else ""
    match = _NAME.match(folder)
    if match is None:
        raise RunFormatError(
            f"folder name {folder!r} is not {{env}}-{{bench}}-{{containers}}-{{server_batch}}-{{scenario}}-"
            "{load}-{rep}: its configuration is unknown"
        )
    name = match.groupdict()
    if name["env"] not in ENVS:
        raise RunFormatError(f"unknown environment {name['env']!r} (known: {', '.join(ENVS)})")
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RunFormatError(f"not JSON: {exc}") from None
    scenario = SCENARIOS[name["scenario"]]
    result = doc.get(f"TestScenario.{scenario}") if isinstance(doc, dict) else None
    if not isinstance(result, dict):
        raise RunFormatError(f"no TestScenario.{scenario} result, as the name's scenario {name['scenario']!r} says")
    cmd = _cmdline(doc.get("cmdline"))
    if cmd.get("scenario") not in (None, scenario):
        raise RunFormatError(f"cmdline scenario {cmd['scenario']!r} contradicts the name's {scenario!r}")
    load = int(name["load"])
    client_batch = _int(cmd.get("max_batchsize"))
    if scenario == "Offline" and client_batch not in (None, load):
        raise RunFormatError(f"cmdline max_batchsize={client_batch} contradicts the name's client batch {load}")
    samples_per_query = _int(cmd.get("samples_per_query"))
    if scenario == "MultiStream" and samples_per_query not in (None, load):
        raise RunFormatError(f"cmdline samples_per_query={samples_per_query} contradicts the name's {load}")
    containers = int(name["containers"])
    if containers < 1:
        raise RunFormatError("0 containers")
    percentiles = result.get("percentiles") or {}
    experiment = parts[0] if len(parts) > 2 else ""
    return {
        "path": path,
        "experiment": experiment,
        "application": cmd.get("model_name", name["bench"]),
        "backend": cmd.get("backend", doc.get("runtime")),
        "env": name["env"],
        "cpu_affinity": name["env"] != "none",
        "memory_affinity": name["env"] == "cpumemory" and containers > 1,
        "hosts": 4 if experiment.startswith("exp3") else 1,
        "containers": containers,
        "cpus_per_container": NODE_CPUS / containers,
        "memory_gib_per_container": NODE_MEMORY_GIB / containers,
        "server_batch": int(name["server_batch"]),
        "scenario": scenario,
        "load": load,
        "client_batch": load if client_batch is None and scenario == "Offline" else client_batch,
        "samples_per_query": samples_per_query,
        "target_qps": _float_text(cmd.get("qps")),
        "extra": int(name["extra"]) if name["extra"] else None,
        "rep": int(name["rep"]),
        "client_threads": _int(cmd.get("threads")),
        "qps": _number(result, "qps"),
        "latency_mean_s": _number(result, "mean"),
        "latency_p50_s": _float(percentiles.get("50.0")),
        "latency_p90_s": _float(percentiles.get("90.0")),
        "latency_p99_s": _float(percentiles.get("99.0")),
        "queries": _int(result.get("count")),
        "took_s": _float(result.get("took")),
        "time_s": _int(doc.get("time")),
    }


def _results_files(source: Path) -> Iterator[tuple[str, bytes]]:
    if source.is_dir():
        for file in sorted(source.rglob("results.json")):
            yield file.relative_to(source).as_posix(), file.read_bytes()
        return
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such tarball or folder of published runs")
    with tarfile.open(source, "r:*") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith("/results.json"):
                handle = tar.extractfile(member)
                if handle is not None:
                    yield member.name.removeprefix("./"), handle.read()


def _cmdline(text: Any) -> dict[str, str]:
    """LoadGen's `Namespace(a=1, b='x', ...)` repr as strings (quotes removed)."""
    if not isinstance(text, str):
        return {}
    return {key: value.strip().strip("'") for key, value in _CMD_FIELD.findall(text) if value.strip() != "None"}


def _number(result: dict[str, Any], key: str) -> float:
    value = _float(result.get(key))
    if value is None or value <= 0:
        raise RunFormatError(f"{key} is {result.get(key)!r}, not a positive number")
    return value


def _float(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float_text(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None
