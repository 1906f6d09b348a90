"""The MLflow journey a user takes, in a real browser: the link a sweep prints opens the
collapse curves in MLflow's own UI, served by a real ``mlflow server``, one line per arm.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs them). Outside CI a
machine without them skips the browser test with the reason; in CI (``CI=true``) their absence
fails it. ``SCCL_SCREENSHOTS=DIR`` copies the screenshots there (the README's come from
``SCCL_SCREENSHOTS=docs/img``)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest

from conftest import REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


def _browser(tmp_path: Path):
    if not (CHROMIUM and CHROMEDRIVER):
        why = "the browser test needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1600,1200", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path / 'chrome'}"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _chart_card(driver, title: str, timeout: float = 120.0):
    """The chart card whose title is `title`, once its plot is drawn."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + timeout
    while time.time() < deadline:
        for el in driver.find_elements(By.XPATH, f"//*[normalize-space(text())='{title}']"):
            card = el
            for _ in range(12):
                card = card.find_element(By.XPATH, "..")
                if card.find_elements(By.CSS_SELECTOR, ".js-plotly-plot"):
                    return card
        time.sleep(0.5)
    raise AssertionError(f"no chart titled {title!r} within {timeout:.0f} s")


def _legend(card, metric: str) -> list[str]:
    """Run names in the card's legend ('iterative (quality/fid)' -> 'iterative')."""
    suffix = f" ({metric})"
    return sorted(line[: -len(suffix)] for line in card.text.splitlines() if line.endswith(suffix))


@pytest.mark.slow
def test_printed_link_opens_one_collapse_curve_per_arm(smoke_sweep, tmp_path):
    result = smoke_sweep.result
    arms = sorted(result.arms)
    assert result.chart_url.startswith(smoke_sweep.server.uri + "/#/experiments/")
    driver = _browser(tmp_path)
    try:
        driver.get(result.chart_url)
        card = _chart_card(driver, "quality/fid")
        deadline = time.time() + 60
        while _legend(card, "quality/fid") != arms and time.time() < deadline:
            time.sleep(0.5)
        assert _legend(card, "quality/fid") == arms, card.text  # one line per arm, nothing else
        traces = card.find_elements("css selector", ".js-plotly-plot .scatterlayer .trace")
        assert len(traces) >= len(arms)
        for metric in ("quality/fid_k", "quality/recall", "physics/phys_err_mm", "correction/acceptance_rate"):
            assert _legend(_chart_card(driver, metric), metric) == arms, metric
        assert "Collapse curves" in driver.find_element("tag name", "body").text
        time.sleep(1.0)  # let the last plot finish its transition before the picture
        shot = tmp_path / "mlflow-collapse-curves.png"
        driver.save_screenshot(str(shot))
    finally:
        driver.quit()
    assert shot.stat().st_size > 10_000
    if os.environ.get("SCCL_SCREENSHOTS"):
        out = Path(os.environ["SCCL_SCREENSHOTS"])
        out = out if out.is_absolute() else REPO / out
        out.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, out / shot.name)


def test_sccl_ui_prints_the_sweeps_link(smoke_sweep):
    """``sccl ui RUN_DIR`` and ``sccl ui`` (newest sweeps of the store) print the same link the
    run printed; against a tracking server they serve nothing themselves."""
    result = smoke_sweep.result
    uri = smoke_sweep.server.uri
    for args in (["ui", str(result.run_dir)], ["ui", "--tracking-uri", uri]):
        proc = subprocess.run([sys.executable, "-m", "sccl.loop.cli", *args], capture_output=True, text=True,
                              timeout=120, env={k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")})
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert result.chart_url in proc.stdout.split(), proc.stdout
    client = mlflow.MlflowClient(uri)
    exp = client.get_experiment_by_name(smoke_sweep.experiment)
    sweep_run = result.chart_url.split("viewStateShareKey=")[1].split("&")[0]
    assert f"mlflow.sharedViewState.{sweep_run}" in exp.tags


def test_sccl_ui_on_a_directory_that_is_no_run(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sccl.loop.cli", "ui", str(tmp_path)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "not a run directory" in proc.stderr and "Traceback" not in proc.stderr
