"""GPU collector, held exactly to nvidia_gpu_exporter's golden output over a real H100 capture.

The golden `.metrics` files are read with the repo's own scrape path (PrometheusScrapeCollector,
prometheus_client's parser, only the HTTP transport mocked). The nvidia-smi path runs a real
subprocess: tests/fixtures/nvidia-smi/replay_nvidia_smi.py answers nvidia-smi's command line from
the capture. No GPU is faked: the NVML tests run the real nvidia-ml-py and, on this GPU-less
machine, check its failure paths; on a machine with a driver they read the real GPUs.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from collectors.base import CollectorError, Recorder, Unavailable
from collectors.gpu import FIELDS, GpuCollector, GpuConfig
from collectors.gpu_nvml import nvml_reason
from collectors.gpu_smi import exporter_name, field_of_header, parse_help_fields, parse_query_csv, parse_value
from collectors.prometheus_scrape import PrometheusScrapeCollector, PrometheusScrapeConfig
from telemetry.catalog import Metric, catalog
from telemetry.catalog import gpu as g
from tests.conftest import FIXTURES

DIR = FIXTURES / "nvidia-smi"
STEM = "linux-x86_64__nvidia-h100-80gb-hbm3__590.48.01"
CAPTURE = DIR / f"{STEM}.txt.gz"
REPLAY = DIR / "replay_nvidia_smi.py"
STATES = ("idle", "load")
UUID = "00000000-0000-0000-0000-000000000000"


def capture_section(title: str) -> str:
    sys.path.insert(0, str(DIR))
    try:
        from replay_nvidia_smi import sections  # the fixture's own section reader
    finally:
        sys.path.pop(0)
    with gzip.open(CAPTURE, "rt", encoding="utf-8") as f:
        return str(sections(f.read())[title])


def query_csv(state: str) -> str:
    return capture_section(f"{state} :: query-gpu (csv, what the exporter parses)")


class Golden:
    """The exporter's output for one state, parsed by our Prometheus scrape collector."""

    def __init__(self, state: str) -> None:
        body = (DIR / f"{STEM}__{state}.metrics").read_bytes()
        client = httpx.Client(transport=httpx.MockTransport(lambda _: httpx.Response(200, content=body)))
        rec = Recorder(strict=False)
        PrometheusScrapeCollector(PrometheusScrapeConfig(url="http://exporter.test:9835"), client=client).gather(rec)
        self.samples = rec.samples

    def per_gpu(self) -> dict[str, float]:
        """name → value of the per-GPU value series (labelled by uuid only)."""
        return {s.metric: s.value for s in self.samples if s.labels == {"uuid": UUID}}

    def info_labels(self) -> dict[str, str]:
        (info,) = [s for s in self.samples if s.metric == "nvidia_smi_gpu_info"]
        return dict(info.labels)


def replay(state: str, *extra: str) -> tuple[str, ...]:
    return (sys.executable, str(REPLAY), "--capture", str(CAPTURE), "--state", state, *extra)


def gather(config: GpuConfig) -> Recorder:
    rec = Recorder()  # strict: every label must be allowed by the catalog
    collector = GpuCollector(config)
    try:
        collector.gather(rec)
    finally:
        collector.close()
    return rec


# -- the parser: every field of the capture, against the exporter's whole golden output ------------


@pytest.mark.parametrize("state", STATES)
def test_parser_reproduces_every_family_the_exporter_derives_from_the_capture(state: str) -> None:
    ours: dict[str, float] = {}
    (row,) = parse_query_csv(query_csv(state))
    for qfield, (header, raw) in row.cells.items():
        name, scale = exporter_name(header)
        value = parse_value(qfield, raw, scale)
        if value is not None:
            assert name not in ours, f"two fields map to {name}"
            ours[name] = value
    golden = Golden(state).per_gpu()
    golden.pop("nvidia_smi_compute_apps")  # from --query-compute-apps, not --query-gpu
    assert len(golden) == 126
    assert ours == golden  # same 126 names, each value equal to the float


def test_value_rules_on_the_captures_own_spellings() -> None:
    (row,) = parse_query_csv(query_csv("idle"))
    raw = {q: v for q, (_, v) in row.cells.items()}
    assert raw["fan.speed"] == "[N/A]" and parse_value("fan.speed", raw["fan.speed"], 0.01) is None
    assert raw["power.management"] == "[Requested functionality has been deprecated]"
    assert parse_value("power.management", raw["power.management"]) is None
    assert raw["pstate"] == "P0" and parse_value("pstate", "P0") == 0.0
    assert parse_value("clocks_event_reasons.supported", raw["clocks_event_reasons.supported"]) == 511.0
    assert parse_value("timestamp", raw["timestamp"]) is None  # several numbers: not a value
    assert parse_value("fabric.state", raw["fabric.state"]) == 3.0  # "Completed", NVML's enum
    assert parse_value("fabric.state", "Something New") is None  # an unknown enum spelling is no number


def test_header_rules() -> None:
    assert exporter_name("power.draw [W]") == ("nvidia_smi_power_draw_watts", 1.0)
    assert exporter_name("encoder.stats.sessionCount") == ("nvidia_smi_encoder_stats_session_count", 1.0)
    assert exporter_name("clocks_event_reasons_counters.sync_boost [us]") == (
        "nvidia_smi_clocks_event_reasons_counters_sync_boost_seconds",
        1e-6,
    )
    assert field_of_header("memory.used [MiB]") == "memory.used"
    with pytest.raises(ValueError, match="field count mismatch"):
        parse_query_csv("uuid, name\nGPU-1, x\n", ["uuid"])
    with pytest.raises(ValueError, match="row 1 has 3 columns"):
        parse_query_csv("uuid, name\nGPU-1, x, y\n")


def test_our_table_spells_each_field_as_the_exporter_does_and_the_driver_knows_it() -> None:
    (row,) = parse_query_csv(query_csv("idle"))
    known = parse_help_fields(capture_section("capabilities :: help-query-gpu"))
    assert len(known) > 216 and "clocks_throttle_reasons.active" in known  # aliases count
    for qfield, metric in FIELDS:
        assert qfield in known, qfield
        header = row.cells[qfield][0]
        assert exporter_name(header)[0] == metric.name, (qfield, header)
        assert catalog.get(metric.name) is metric
    assert len({m.name for _, m in FIELDS}) == len(FIELDS)


# -- the collector over nvidia-smi: a real subprocess replaying the capture ----------------------


@pytest.mark.parametrize("state", STATES)
def test_collector_emits_exactly_the_exporters_values(state: str) -> None:
    rec = gather(GpuConfig(backend="nvidia-smi", command=replay(state)))
    golden = Golden(state)
    want = golden.per_gpu()
    labels = {"uuid": UUID, "index": "0", "name": "NVIDIA H100 80GB HBM3"}
    values = [s for s in rec.samples if s.metric != g.GPU_INFO.name]
    assert values and all(s.labels == labels for s in values)
    assert {s.metric: s.value for s in values} == {m.name: want[m.name] for _, m in FIELDS if m.name in want}
    # Every field of our table has a value on this H100 but the fan speed: a passive board says [N/A].
    assert {m.name for _, m in FIELDS} - {s.metric for s in values} == {g.FAN_SPEED.name}
    assert len(values) == len(FIELDS) - 1
    (info,) = [s for s in rec.samples if s.metric == g.GPU_INFO.name]
    assert info.value == 1.0
    assert info.labels == golden.info_labels()  # the exporter's identity labels, value for value


def test_load_differs_from_idle_where_the_gpu_worked() -> None:
    idle = {s.metric: s.value for s in gather(GpuConfig(backend="nvidia-smi", command=replay("idle"))).samples}
    load = {s.metric: s.value for s in gather(GpuConfig(backend="nvidia-smi", command=replay("load"))).samples}
    assert (idle[g.UTIL_GPU.name], load[g.UTIL_GPU.name]) == (0.0, 1.0)
    assert (idle[g.POWER_DRAW.name], load[g.POWER_DRAW.name]) == (69.85, 631.95)
    assert load[g.MEMORY_USED.name] == 19818 * 1048576


def test_an_older_driver_is_asked_only_the_fields_it_lists() -> None:
    # The replay plays a driver without clocks_event_reasons.active: absent from --help-query-gpu,
    # refused by --query-gpu. Asking for it would fail the whole query.
    rec = gather(GpuConfig(backend="nvidia-smi", command=replay("idle", "--drop", "clocks_event_reasons.active")))
    assert g.EVENT_REASONS_ACTIVE.name not in rec.names()
    assert rec.get(g.TEMP_GPU, uuid=UUID) == 41.0


def test_nvidia_smi_failing_is_the_collectors_error_with_its_words() -> None:
    collector = GpuCollector(GpuConfig(backend="nvidia-smi", command=replay("idle", "--exit", "9")))
    with pytest.raises(CollectorError, match=r"exit status 9: Failed to initialize NVML: Driver/library version"):
        collector.gather(Recorder())


def test_a_hung_nvidia_smi_is_killed_at_the_timeout(tmp_path: Path) -> None:
    hang = tmp_path / "nvidia-smi"
    hang.write_text("#!/bin/sh\nsleep 30\n")
    hang.chmod(0o755)
    collector = GpuCollector(GpuConfig(backend="nvidia-smi", command=(str(hang),), timeout_s=0.5))
    with pytest.raises(CollectorError, match=r"no answer within 0.5s, killed"):
        collector.gather(Recorder())


def test_config_rejects_unknown_keys_and_an_empty_command() -> None:
    with pytest.raises(ValidationError, match="comand"):
        GpuConfig.model_validate({"comand": ["nvidia-smi"]})
    with pytest.raises(ValidationError):
        GpuConfig.model_validate({"command": []})
    with pytest.raises(ValidationError):
        GpuConfig.model_validate({"backend": "dcgm"})
    with pytest.raises(ValidationError, match="nodes"):
        GpuConfig.model_validate({"slurm": {"nodes": "gpu01"}})


def test_every_gpu_metric_is_in_the_catalog_with_the_gpu_labels() -> None:
    names = {m.name for m in catalog if m.name.startswith("nvidia_smi_")}
    mapped = {m.name for _, m in FIELDS} | {g.GPU_INFO.name, g.ENERGY.name, g.XID_ERRORS.name}
    assert names == mapped
    for name in names:
        metric: Metric = catalog.get(name)
        assert {"uuid", "index", "name", "hpc_job", "pod"} <= set(metric.labels)


# -- NVML: the real nvidia-ml-py; without a driver here, its failure paths ------------------------

NO_DRIVER = nvml_reason()
needs_no_driver = pytest.mark.skipif(NO_DRIVER is None, reason="this machine has a working NVIDIA driver")


@needs_no_driver
def test_nvml_says_the_library_is_missing() -> None:
    assert NO_DRIVER == "libnvidia-ml.so not found"  # nvidia-ml-py is installed (dev extra); the driver is not
    with pytest.raises(Unavailable, match=r"^NVML unavailable: libnvidia-ml.so not found$"):
        GpuCollector(GpuConfig(backend="nvml")).gather(Recorder())
    assert GpuCollector(GpuConfig(backend="nvml")).availability() == "NVML unavailable: libnvidia-ml.so not found"


@needs_no_driver
def test_auto_falls_back_from_nvml_to_nvidia_smi() -> None:
    collector = GpuCollector(GpuConfig(command=replay("load")))
    assert collector.availability() is None
    rec = Recorder()
    collector.gather(rec)
    assert collector.backend_name == "nvidia-smi"
    assert rec.get(g.POWER_DRAW, uuid=UUID) == 631.95


@needs_no_driver
def test_neither_nvml_nor_nvidia_smi_is_unavailable_with_both_reasons() -> None:
    config = GpuConfig(command=("nvidia-smi-not-installed",))
    why = "no NVIDIA driver: libnvidia-ml.so not found and nvidia-smi-not-installed not on PATH"
    assert GpuCollector(config).availability() == why
    with pytest.raises(Unavailable) as err:
        GpuCollector(config).gather(Recorder())
    assert str(err.value) == why


def test_without_nvidia_ml_py_the_import_guard_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # what `import pynvml` does when it is not installed
    reason = nvml_reason()
    assert reason is not None and "nvidia-ml-py not installed" in reason


@pytest.mark.skipif(NO_DRIVER is not None, reason=f"no NVIDIA driver here ({NO_DRIVER})")
def test_nvml_reads_the_real_gpus() -> None:
    rec = gather(GpuConfig(backend="nvml"))
    infos = [s for s in rec.samples if s.metric == g.GPU_INFO.name]
    assert infos, "a driver but no GPU"
    assert all(len(s.labels["uuid"]) == 36 and not s.labels["uuid"].startswith("gpu-") for s in infos)
    assert {g.MEMORY_TOTAL.name, g.POWER_DRAW.name, g.TEMP_GPU.name} <= rec.names()


@needs_no_driver
def test_ctwin_plugins_says_why_there_is_no_gpu_here() -> None:
    ctwin = Path(sys.executable).with_name("ctwin")
    res = subprocess.run([str(ctwin), "plugins", "--json"], capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 0, res.stderr
    rows: Mapping[str, dict[str, object]] = {r["name"]: r for r in json.loads(res.stdout)}
    gpu = rows["gpu"]
    if Path("/usr/bin/nvidia-smi").exists():  # pragma: no cover - a driverless host with the tool
        pytest.skip("nvidia-smi installed here")
    assert gpu["available"] is False
    assert gpu["reason"] == "no NVIDIA driver: libnvidia-ml.so not found and nvidia-smi not on PATH"
