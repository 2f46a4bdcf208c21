"""Our own HPCC runs: the hpccoutf.txt parser on real outputs, the committed runs table, the
grid's command lines, the effect table, and one tiny real campaign (bare and over a veth pair)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from models.containers.hpcc import (
    FIGURES,
    HPCC_SCHEMA,
    MEASURED_ON,
    HpccOutputError,
    hpcc_figures,
    load_hpcc_runs,
)
from models.containers.hpcc_effects import factor_effects, split_half_effects
from tests.conftest import FIXTURES, ROOT, need_binary, servers_required

sys.path.insert(0, str(ROOT))

from bench.hpcc_grid import (
    Config,
    Launch,
    Veth,
    grid,
    host_facts,
    hpccinf,
    job_argv,
    launch_argv,
    rankfile,
)

HPCC = FIXTURES / "hpcc"


def _fixture(name: str) -> str:
    return (HPCC / name).read_text()


# ---------------------------------------------------------------------------------------- parser
def test_one_rank_has_no_communication_figures() -> None:
    row = hpcc_figures(_fixture("1rank-none-tcp-lo-charliecloud.txt"), "1rank.txt")
    assert row["ranks"] == 1 and row["problem_n"] == 500
    assert row["hpl_tflops"] == pytest.approx(0.00285199)
    assert row["avg_ping_pong_latency_us"] is None and row["random_ring_bandwidth_gbs"] is None
    assert set(row) == {"ranks", "problem_n", *FIGURES.values()}


def test_four_ranks_over_veth() -> None:
    row = hpcc_figures(_fixture("4rank-core-tcp-veth-bwrap-host.txt"), "4rank.txt")
    assert row["ranks"] == 4
    assert row["max_ping_pong_latency_us"] >= row["avg_ping_pong_latency_us"] > 0
    assert all(row[c] is not None and row[c] > 0 for c in FIGURES.values())


def test_a_killed_run_names_the_file() -> None:
    with pytest.raises(HpccOutputError, match=r"killed\.txt: no 'Begin of Summary section\.' line"):
        hpcc_figures(_fixture("killed.txt"), "killed.txt")


def test_a_summary_cut_short_is_truncated() -> None:
    text = _fixture("2rank-core-sm-bwrap-private.txt")
    cut = text[: text.index("StarFFT_Gflops")]
    with pytest.raises(HpccOutputError, match=r"cut\.txt: summary section not closed.*truncated"):
        hpcc_figures(cut, "cut.txt")


def test_a_failed_check_is_refused() -> None:
    text = _fixture("2rank-core-sm-bwrap-private.txt").replace("\nSuccess=1\n", "\nSuccess=0\n")
    with pytest.raises(HpccOutputError, match="Success='0'"):
        hpcc_figures(text, "failed.txt")


def test_a_garbled_figure_is_refused() -> None:
    text = _fixture("2rank-core-sm-bwrap-private.txt")
    start = text.index("HPL_Tflops=")
    text = text[:start] + "HPL_Tflops=fast" + text[text.index("\n", start) :]
    with pytest.raises(HpccOutputError, match="HPL_Tflops='fast' is not a number"):
        hpcc_figures(text, "garbled.txt")


# ------------------------------------------------------------------------------- committed runs
@pytest.fixture(scope="module")
def runs() -> pl.DataFrame:
    return load_hpcc_runs()


def test_committed_runs_cover_the_grid_five_times(runs: pl.DataFrame) -> None:
    runnable, skipped = grid()
    assert runs.schema == pl.Schema(HPCC_SCHEMA)
    assert runs["measured_on"].unique().to_list() == [MEASURED_ON]
    counts = runs.group_by("ranks", "binding", "transport", "runtime").len()
    seen = {(r["ranks"], r["binding"], r["transport"], r["runtime"]): r["len"] for r in counts.iter_rows(named=True)}
    assert set(seen) == {(c.ranks, c.binding, c.transport, c.runtime) for c in runnable}
    assert min(seen.values()) >= 5
    assert not {(c.ranks, c.binding, c.transport, c.runtime) for c, _ in skipped} & set(seen)
    assert runs["run_id"].is_unique().all()
    assert runs.filter(pl.col("ranks") > 1)["avg_ping_pong_latency_us"].null_count() == 0
    assert (runs["load1_start"] >= 0).all() and runs["cpu_pressure_some_avg10_start"].is_not_null().all()


def test_a_file_with_other_columns_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "runs.csv"
    bad.write_text("run_id,ranks,speed\nx,1,2\n")
    with pytest.raises(ValueError, match=r"unknown: \['speed'\]"):
        load_hpcc_runs(bad)


def test_a_missing_file_says_how_to_make_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"bench/hpcc_runs\.py"):
        load_hpcc_runs(tmp_path / "none.csv")


# ---------------------------------------------------------------------------------------- grid
def test_infeasible_combinations_have_reasons() -> None:
    runnable, skipped = grid()
    assert len(runnable) + len(skipped) == 3 * 2 * 3 * 5
    reasons = {(c.ranks, c.transport, c.runtime): why for c, why in skipped}
    assert "span two network namespaces" in reasons[(1, "tcp-veth", "bare")]
    assert "only loopback" in reasons[(2, "tcp-veth", "bwrap-private")]
    assert "only loopback" in reasons[(4, "tcp-veth", "crun-private")]
    assert len(runnable) == 72


def test_hpccinf_sets_n_and_a_square_process_grid() -> None:
    example = (FIXTURES / "hpcc" / "_hpccinf.txt").read_text()
    lines = hpccinf(example, 700, 4).splitlines()
    assert lines[5].split() == ["700", "Ns"] and lines[10].split() == ["2", "Ps"] and lines[11].split() == ["2", "Qs"]
    assert hpccinf(example, 700, 2).splitlines()[10:12] == ["1            Ps", "2            Qs"]
    with pytest.raises(ValueError, match="line 6"):
        hpccinf("\n".join(["x"] * 12), 700, 2)


def test_rankfile_spreads_ranks_over_namespaces_and_cores() -> None:
    lines = rankfile(4, 2).splitlines()
    assert lines == [
        "rank 0=10.78.0.1 slot=0",
        "rank 1=10.78.0.2 slot=1",
        "rank 2=10.78.0.1 slot=1",
        "rank 3=10.78.0.2 slot=0",
    ]


def test_command_lines(tmp_path: Path) -> None:
    launch = Launch(tmp_path, 2, Veth("nsa", "nsb"), tmp_path / "img")
    private = launch_argv(Config(4, "core", "tcp-lo", "bwrap-private"), launch)
    assert private[:5] == ["bwrap", "--dev-bind", "/", "/", "--unshare-net"] and "mpirun" in private
    assert private[private.index("mpi_yield_when_idle") + 1] == "1"
    veth = launch_argv(Config(2, "core", "tcp-veth", "charliecloud"), launch)
    assert veth[:4] == ["ip", "netns", "exec", "nsa"] and "--rankfile" in veth and "ch-run" in veth
    assert veth[veth.index("mpi_yield_when_idle") + 1] == "0"
    sm = launch_argv(Config(2, "none", "sm", "charliecloud"), launch)
    assert "btl_vader_single_copy_mechanism" in sm and sm[sm.index("--bind-to") + 1] == "none"
    with pytest.raises(ValueError, match="veth"):
        launch_argv(Config(2, "core", "tcp-veth", "bare"), Launch(tmp_path, 2))
    crun = launch_argv(Config(4, "core", "sm", "crun-private"), Launch(tmp_path, 2, bundle=tmp_path / "b"), name="c1")
    assert crun[:2] == ["unshare", "--mount"] and crun[-1].endswith(f"run --bundle {tmp_path / 'b'} c1")
    assert "mount -t cgroup2" in crun[-1]  # crun refuses the host's hybrid cgroup layout
    inner = job_argv(Config(4, "core", "sm", "crun-private"), launch)
    assert inner[0] == "mpirun" and inner[-1] == "/usr/bin/hpcc"
    with pytest.raises(ValueError, match="bundle"):
        launch_argv(Config(2, "core", "sm", "crun-private"), Launch(tmp_path, 2))


def test_host_facts_from_a_captured_proc() -> None:
    facts = host_facts(HPCC / "proc")
    assert facts == {
        "load1_start": 7.76,
        "cpu_pressure_some_avg10_start": 94.51,
        "memory_pressure_some_avg10_start": 0.0,
    }


# -------------------------------------------------------------------------------------- effects
def _toy(tcp_factor: float) -> pl.DataFrame:
    rows = []
    for rep in range(4):
        for transport, factor in (("sm", 1.0), ("tcp-lo", tcp_factor)):
            for binding, b in (("core", 1.0), ("none", 0.5)):
                config = {"ranks": 2, "binding": binding, "transport": transport, "runtime": "bare"}
                rows.append({"campaign": "toy", **config, "rep": rep, "m": 10.0 * factor * b * (1 + 0.01 * rep)})
    return pl.DataFrame(rows)


def test_factor_effects_are_matched_ratios() -> None:
    table = factor_effects(_toy(0.25), "m")
    got = {(r["factor"], r["level"]): (r["ratio"], r["pairs"]) for r in table.iter_rows(named=True)}
    assert got[("transport", "tcp-lo")] == (pytest.approx(0.25), 2)
    assert got[("binding", "none")] == (pytest.approx(0.5), 2)
    assert ("ranks", "2") not in got  # no 1-rank reference in the toy


def test_split_halves_agree_on_a_clear_effect() -> None:
    table = split_half_effects(_toy(0.25), "m")
    assert table["same_sign"].all() and table["same_order"].all()
    assert table.filter(pl.col("level") == "tcp-lo")["ratio_odd"].item() == pytest.approx(0.25)


def test_committed_runs_give_an_effect_for_every_factor(runs: pl.DataFrame) -> None:
    table = factor_effects(runs, "avg_ping_pong_latency_us")
    assert set(table["factor"]) == {"binding", "transport", "runtime"}  # 1 rank has no latency
    assert set(factor_effects(runs, "hpl_tflops")["factor"]) == {"ranks", "binding", "transport", "runtime"}


# ------------------------------------------------------------------------------- one real run
def test_a_tiny_real_campaign(tmp_path: Path) -> None:
    """hpcc under Open MPI on this machine: 1 and 2 ranks over vader, 2 ranks over a veth pair."""
    need_binary("hpcc", "apt-get install hpcc openmpi-bin (scripts/install-system-deps.sh test)")
    need_binary("mpirun", "apt-get install openmpi-bin")
    need_binary("ip", "apt-get install iproute2")
    if os.geteuid() != 0:
        if servers_required():
            pytest.fail("network namespaces need root; CTWIN_REQUIRE_SERVERS is set, so this is a failure")
        pytest.skip("network namespaces need root")
    out = tmp_path / "runs.csv"
    argv = [sys.executable, str(ROOT / "bench" / "hpcc_runs.py"), "--out", str(out), "--reps", "1", "--n", "200",
            "--ranks", "1", "2", "--bindings", "core", "--transports", "sm", "tcp-veth", "--runtimes", "bare",
            "--infeasible", str(tmp_path / "inf.csv"), "--failures", str(tmp_path / "fail.csv")]  # fmt: skip
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1].startswith("hpcc_runs: ratio=")
    runs = load_hpcc_runs(out)
    assert sorted(zip(runs["ranks"], runs["transport"], strict=True)) == [(1, "sm"), (2, "sm"), (2, "tcp-veth")]
    veth = runs.filter(pl.col("transport") == "tcp-veth").row(0, named=True)
    assert veth["hosts"] == 2 and veth["avg_ping_pong_latency_us"] > 0 and veth["problem_n"] == 200
    assert "one rank cannot span" in (tmp_path / "inf.csv").read_text()
    again = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    assert "3 already in" in again.stdout and load_hpcc_runs(out).height == 3  # resumed: nothing rerun
