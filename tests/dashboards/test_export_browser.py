"""The export page in a real headless Chromium against a real service (replayed KTH site, DuckDB
store): choose jobs of the replayed site as CSV by clicking, see the preview follow the URL,
download the zip, open the dataset with polars and check its manifest's new fields.
Set CTWIN_SCREENSHOT_DIR to keep a picture of the page."""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from dashboards import ids
from dashboards.app import create_dash
from dashboards.export import ExportSource
from telemetry.export import TYPE_VOCABULARY
from telemetry.jobs import JOB_SCHEMA
from tests.dashboards.export_service import running_service
from tests.dashboards.test_overview_browser import _wait, click, driver, save_element_screenshot, serving  # noqa: F401

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    with running_service(tmp_path_factory.mktemp("export-browser")) as service:
        dash_app = create_dash(service.twin, export=ExportSource(service.store, service.salt))
        with serving(dash_app.server) as base:
            yield base + "/", service


def _click(d: Any, choice: str) -> None:
    click(d, f'#{ids.EXPORT_FORM} [{ids.EXPORT_ATTR}="{choice}"]')


def test_choose_preview_and_download_a_documented_dataset(
    driver: Any,  # noqa: F811
    live: tuple[str, Any],
    tmp_path: Path,
) -> None:
    from selenium.webdriver.common.by import By

    url, service = live
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    driver.get(url + "?view=export&range=all")
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, f"#{ids.EXPORT_FORM} [{ids.EXPORT_ATTR}]"), "the form")
    assert not driver.find_element(By.ID, ids.OVERVIEW_VIEW).is_displayed()
    _click(driver, "site=kth")
    _wait(driver, lambda d: "site=kth" in d.current_url, "the URL to carry the site")
    _click(driver, "format=csv")
    _wait(driver, lambda d: "format=csv" in d.current_url and "range=all" in d.current_url, "format in the URL")
    preview = f"#{ids.EXPORT_PREVIEW} [{ids.EXPORT_ATTR}='clock=kth']"
    _wait(driver, lambda d: d.find_elements(By.CSS_SELECTOR, preview), "the replay's clock in the preview")
    text = driver.find_element(By.ID, ids.EXPORT_PREVIEW).text
    assert "submit_s" in text and "unix_s" in text and "advice (chosen_site, job_id)" in text

    shots = Path(os.environ.get("CTWIN_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    save_element_screenshot(driver, ids.EXPORT_VIEW, shots / "export-view.png")
    assert (shots / "export-view.png").stat().st_size > 10_000

    driver.find_element(By.ID, ids.EXPORT_BUTTON).click()
    _wait(driver, lambda d: "Exported" in d.find_element(By.ID, ids.EXPORT_STATUS).text, "the export's status")
    _wait(driver, lambda d: [p for p in downloads.glob("*.zip")], "the downloaded zip", timeout=30)
    (zipped,) = downloads.glob("*.zip")
    assert not driver.find_element(By.ID, ids.EXPORT_PROGRESS).is_displayed()  # the bar goes when it is done
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(tmp_path / "out")
    (data,) = (tmp_path / "out").glob("*.csv")
    manifest = json.loads((tmp_path / "out" / (data.name + ".manifest.json")).read_text())
    jobs = pl.read_csv(data, schema_overrides=JOB_SCHEMA)
    assert jobs.height == manifest["rows"] > 0 and set(jobs["site"].unique()) == {"kth"}
    assert manifest["manifest_version"] == 2 and manifest["ctwin_version"]
    assert {c["type"] for c in manifest["schema"]} <= set(TYPE_VOCABULARY)
    assert {c["name"]: c["unit"] for c in manifest["schema"]}["req_cores"] == "cores"
    assert manifest["pseudonymisation"]["namespaces"] == {"user": "ctwin:user", "group": "ctwin:group"}
    assert manifest["time_bounds"]["trace"]["kth"]["start_s"] == jobs["submit_s"].min()
    assert manifest["clocks"]["replayed"][0]["speed"] == 3600
    assert jobs["user"].drop_nulls().str.starts_with("u_").all()
    assert service.store.jobs(site="kth").height >= jobs.height


SIGNED_IN_CONFIG = """
auth: {open_endpoints: ["/healthz", "/readyz"]}
sites:
  - name: kth-sp2
    kind: hpc
    collectors: [{type: replay, trace: KTH-SP2-1996-2.1-cln.swf.gz, interval: 1s, speed: 600, start_offset: 30d}]
"""


def _token(served: Any, name: str, *scopes: str) -> str:
    """A token made as an operator makes one: `ctwin token create` on the service's data dir."""
    import subprocess
    import sys

    args = ["token", "create", name, "-d", str(served.work / "data"), "--json"]
    for scope in scopes:
        args += ["--scope", scope]
    out = subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, check=True)
    return str(json.loads(out.stdout)["token"])


def _sign_in(d: Any, base: str, token: str) -> None:
    from selenium.webdriver.common.by import By

    d.delete_all_cookies()
    d.get(base + "?view=export&site=kth-sp2&range=all&format=csv")
    _wait(d, lambda x: "/login" in x.current_url, "the redirect to /login")
    field = d.find_element(By.NAME, "token")
    field.send_keys(token)
    field.submit()
    _wait(d, lambda x: x.find_elements(By.ID, ids.EXPORT_BUTTON) and "view=export" in x.current_url, "the page")


def test_served_twin_signed_in_exports_with_the_export_scope_only(
    driver: Any,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    """`ctwin serve` with its UI behind sign-in: a session of an export token downloads the dataset,
    a read-only session sees the page but is told why it cannot download."""
    from selenium.webdriver.common.by import By

    from tests.dashboards.served import served_twin

    work = tmp_path_factory.mktemp("export-served")
    downloads = work / "downloads"
    downloads.mkdir()
    with served_twin(SIGNED_IN_CONFIG, work) as served:
        analyst, viewer = _token(served, "analyst", "read", "export"), _token(served, "viewer", "read")
        try:
            driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
            _sign_in(driver, served.url, viewer)
            driver.find_element(By.ID, ids.EXPORT_BUTTON).click()
            _wait(driver, lambda d: "export scope" in d.find_element(By.ID, ids.EXPORT_STATUS).text, "the refusal")
            assert not list(downloads.glob("*.zip"))

            _sign_in(driver, served.url, analyst)
            driver.find_element(By.ID, ids.EXPORT_BUTTON).click()
            _wait(driver, lambda d: "Exported" in d.find_element(By.ID, ids.EXPORT_STATUS).text, "the export's status")
            _wait(driver, lambda d: list(downloads.glob("*.zip")), "the downloaded zip", timeout=30)
        finally:
            driver.delete_all_cookies()
    (zipped,) = downloads.glob("*.zip")
    with zipfile.ZipFile(zipped) as archive:
        archive.extractall(work / "out")
    (data,) = (work / "out").glob("*.csv")
    manifest = json.loads((work / "out" / (data.name + ".manifest.json")).read_text())
    jobs = pl.read_csv(data, schema_overrides=JOB_SCHEMA)
    assert jobs.height == manifest["rows"] > 0 and set(jobs["site"].unique()) == {"kth-sp2"}
    assert manifest["clocks"]["replayed"][0]["speed"] == 600
