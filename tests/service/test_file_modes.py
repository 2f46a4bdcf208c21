"""The data dir is owner-only (issue 13, item 10): it holds the job history with real user names,
token hashes and the pseudonym salt. Real runs of `ctwin serve`, `ctwin run` and `ctwin export`,
started with the common umask 022, then the mode of every path in the data dir."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from service.auth import TokenStore
from telemetry.filemodes import tighten
from telemetry.stores.duckdb_store import DuckDBStore
from tests.conftest import free_port

CONFIG = """
data_dir: {data}
serve: {{port: {port}}}
sites:
  - name: kth
    kind: hpc
    collectors:
      - {{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 0.2s, speed: 21600, start_offset: 30d}}
"""


def _umask_022() -> None:
    os.umask(0o022)  # what most shells give: files 0644, directories 0755


def ctwin(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=_umask_022,
    )


def modes(root: Path) -> Iterator[tuple[str, int, bool]]:
    """(path relative to root, permission bits, is a directory) of root and everything under it;
    a file that vanishes while listed (the WAL at a checkpoint) is skipped."""
    for path in [root, *root.rglob("*")]:
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            continue
        yield str(path.relative_to(root)), stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode)


def not_private(root: Path) -> list[str]:
    return [f"{name} {mode:04o}" for name, mode, is_dir in modes(root) if mode != (0o700 if is_dir else 0o600)]


def _ready(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


def test_serve_then_export_keep_every_file_in_the_data_dir_owner_only(tmp_path: Path) -> None:
    data, port = tmp_path / "data", free_port()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(data=data, port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-ui", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_umask_022,
    )
    try:
        deadline = time.monotonic() + 60
        while not (_ready(port) and (data / "ctwin.duckdb.wal").exists()) and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.2)
        time.sleep(1.0)  # a few more appends while serving
        running = {name for name, _, _ in modes(data)}
        assert {"ctwin.duckdb", "ctwin.duckdb.wal", "tokens.json", "pseudonym.salt"} <= running
        assert not_private(data) == []
    finally:
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 0, stderr
    assert not_private(data) == []

    out = tmp_path / "out"
    out.mkdir(mode=0o700)  # export writes into a directory that exists (it creates none)
    for args in (("jobs", "-o", str(out / "jobs.parquet")), ("samples", "-o", str(out / "samples.csv"))):
        res = ctwin("export", *args, "--data-dir", str(data))  # samples: written by DuckDB's COPY
        assert res.returncode == 0, res.stderr
    exported = sorted(name for name, _, is_dir in modes(out) if not is_dir)
    assert exported == ["jobs.parquet", "jobs.parquet.manifest.json", "samples.csv", "samples.csv.manifest.json"]
    assert not_private(out) == []
    assert not_private(data) == []


def test_a_data_dir_an_older_version_left_open_is_tightened_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "models").mkdir(parents=True)
    DuckDBStore(data / "ctwin.duckdb").close()
    TokenStore(data / "tokens.json").create("old", ["read"])
    (data / "pseudonym.salt").write_text("0123456789abcdef0123\n")
    (data / "models" / "runtime-1.skops").write_bytes(b"model")
    (data / "notes.txt").write_text("not ctwin's\n")
    for path, mode in [(data, 0o755), (data / "models", 0o755), *((p, 0o644) for p in data.rglob("*") if p.is_file())]:
        path.chmod(mode)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(CONFIG.format(data=data, port=free_port()))

    res = ctwin("run", "--for", "1", "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    assert not_private(data) == ["notes.txt 0644"]  # ctwin's own files only
    assert f"{data} was mode 0755, open to other users; now 0700" in res.stderr
    assert f"{data / 'ctwin.duckdb'} was mode 0644" in res.stderr


def test_the_store_keeps_its_files_private_without_the_ctwin_umask(tmp_path: Path) -> None:
    """A library caller (create_app under a test, an embedding service) keeps its own umask."""
    old = os.umask(0o022)
    try:
        store = DuckDBStore(tmp_path / "new" / "s.duckdb")
        store.close()
        (tmp_path / "new" / "s.duckdb").chmod(0o644)
        DuckDBStore(tmp_path / "new" / "s.duckdb").close()  # reopened: tightened again
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "new").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "new" / "s.duckdb").stat().st_mode) == 0o600


def test_tightening_leaves_shared_directories_symlinks_and_private_paths_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # like /tmp
    target = tmp_path / "target"
    target.write_text("x")
    target.chmod(0o644)
    (tmp_path / "link").symlink_to(target)
    private = tmp_path / "private"
    private.write_text("x")
    private.chmod(0o600)
    assert [tighten(p) for p in (shared, tmp_path / "link", private, tmp_path / "missing")] == [False] * 4
    assert stat.S_IMODE(shared.stat().st_mode) == 0o1777 and stat.S_IMODE(target.stat().st_mode) == 0o644
    assert tighten(target) and stat.S_IMODE(target.stat().st_mode) == 0o600
