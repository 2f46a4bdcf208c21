"""Take the README's screenshots: every page of the Dash twin, served by a real `ctwin serve` on its
embedded default continuum (this machine, two replayed HPC sites, a cloud region), in headless
Chromium.

    .venv/bin/python scripts/screenshots.py [--out dashboards/screenshots] [--settle 40] [--width 1400]

It starts the service on a fresh data directory, lets the replays fill their queues for
`--settle` seconds, asks it for some placement advice (so the advice log and its page have rows),
then opens each page (`dashboards.app.PAGES`, plus the per-page query in `EXTRA`) and saves one
PNG per page of the whole page, however long. Needs `chromium` and `chromium-driver`
(scripts/install-system-deps.sh).
"""

from __future__ import annotations

import argparse
import base64
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboards.app import PAGES  # noqa: E402
from tests.browser import chromium  # noqa: E402

EXTRA: dict[str, str] = {
    "": "&site=kth-sp2&range=1h",
    "advice": "&cores=64&walltime=2h&input=20&input_site=kth-sp2",
    "whatif": "&change=nodes&site=kth-sp2&drain=32",
    "hosts": "&site=local&range=1h",
    "models": "&kind=runtime&range=24h",
    "export": "&table=jobs&site=kth-sp2&range=all",
}
"""Query added to a page's link so its picture shows something chosen (unknown keys are ignored)."""
JOBS = (
    {"cores": 64, "walltime": "2h", "input": {"size": "20GB", "site": "kth-sp2"}},
    {"cores": 8, "walltime": "30m"},
    {"cores": 256, "walltime": "6h", "objective": "cost"},
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(log: Path, deadline: float) -> str:
    while time.monotonic() < deadline:
        lines = log.read_text().splitlines()
        for i, line in enumerate(lines):
            if "first API token" in line and i + 1 < len(lines):
                return lines[i + 1].strip()
        time.sleep(0.2)
    raise SystemExit(f"ctwin serve printed no first token; its log:\n{log.read_text()[-2000:]}")


def _shoot(driver: object, path: Path) -> None:
    width, height = driver.execute_script(  # type: ignore[attr-defined]
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];"
    )
    clip = {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}
    png = driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True, "clip": clip})  # type: ignore[attr-defined]
    path.write_bytes(base64.b64decode(png["data"]))


def _train(tmp: Path) -> None:
    """A runtime and wait model trained by `ctwin train` on the first 3,000 jobs of the shipped KTH
    log, into the service's models directory (it picks them up within 2 s), so the models page
    shows real cards."""
    import gzip

    text = gzip.decompress((ROOT / "collectors" / "traces" / "KTH-SP2-1996-2.1-cln.swf.gz").read_bytes()).decode()
    lines = text.splitlines()
    body = [line for line in lines if line.strip() and not line.startswith(";")][:3000]
    log = tmp / "KTH-SP2-1996-2.1-cln.swf"
    log.write_text("\n".join([line for line in lines if line.startswith(";")] + body) + "\n")
    out = tmp / "data" / "models"
    command = [sys.executable, "-m", "service.cli", "train", "--log", str(log), "--out", str(out), "--json"]
    subprocess.run(command, check=True, capture_output=True, timeout=600, cwd=ROOT)
    print(f"trained a runtime and a wait model into {out}", flush=True)
    time.sleep(2.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "dashboards" / "screenshots")
    parser.add_argument("--settle", type=float, default=40.0, help="seconds of replay before the first picture")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--wait", type=float, default=8.0, help="seconds each page gets to draw")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="ctwin-shots-") as tmp:
        log = Path(tmp) / "serve.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "service.cli", "serve", "-d", str(Path(tmp) / "data"), "--port", str(port)],
                cwd=ROOT,
                stdout=out,
                stderr=out,
            )
        url = f"http://127.0.0.1:{port}"
        try:
            token = _token(log, time.monotonic() + 60)
            print(f"serving on {url}; letting the replays run {args.settle:.0f} s", flush=True)
            time.sleep(args.settle)
            _train(Path(tmp))
            auth = {"Authorization": f"Bearer {token}"}
            for job in JOBS:
                answer = httpx.post(f"{url}/v1/advice", json=job, headers=auth, timeout=60)
                print(f"advice for {job}: {answer.status_code} {answer.json().get('recommended', answer.text)}")
            with chromium(f"--window-size={args.width},1200", logging_prefs={"browser": "SEVERE"}) as driver:
                for page in PAGES:
                    name = page.view or "overview"
                    driver.get(url + "/" + page.href + EXTRA.get(page.view, ""))
                    time.sleep(args.wait)
                    path = args.out / f"{name}.png"
                    _shoot(driver, path)
                    print(f"{name}: {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)


if __name__ == "__main__":
    main()
