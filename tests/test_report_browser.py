"""The run report opened in a real headless Chromium: scripts run without console errors, no
request leaves the page, every section is drawn, and the numbers on the page match the API.

Chromium and chromedriver come from the system packages (``make browser``, run by
``make test``). Without them these tests skip on a developer's machine and FAIL under CI
(``CI=true``), so a broken install is caught. Screenshots are written to the test's tmp folder
(and to ``$TORCHANN_SCREENSHOTS`` when set, which is how docs/report.png is made).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

import torchann
from torchann.api.tabular import train
from torchann.cli import app

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def _unavailable(why: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{why}: the browser tests must run under CI; `make browser` installs chromium")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _unavailable("selenium is not installed (it is in the test extra)")
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (os.path.exists(path) or shutil.which(Path(path).name)):
            _unavailable(f"{path} is missing")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium")
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900", "--hide-scrollbars"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER if os.path.exists(CHROMEDRIVER)
                                              else shutil.which("chromedriver")), options=options)
    # selenium waits 120 s per command; a full-page screenshot on a busy shared machine can take longer
    driver.command_executor._client_config.timeout = 600
    yield driver
    driver.quit()


def _open(driver, page: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get_log("browser"), driver.get_log("performance")  # start with empty logs
    driver.get(page.resolve().as_uri())
    WebDriverWait(driver, 10).until(lambda d: d.find_element("tag name", "body").get_attribute("data-ready") == "1")


def _assert_offline_and_clean(driver, page: Path) -> None:
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    requests = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            requests.append(message["params"]["request"]["url"])
    assert requests == [page.resolve().as_uri()]  # the page itself, nothing else
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0


def _curves_drawn(driver, history_keys: set[str]) -> None:
    by = "css selector"
    paths = driver.find_elements(by, ".lin-view svg.line path.series")
    names = {p.get_attribute("data-series") for p in paths}
    assert names >= {"training", "validation", "lr"}
    for p in paths:
        d = p.get_attribute("d")
        assert d.startswith("M") and d.count("L") >= 3  # a line through the epochs, not an empty path
    titles = [h.text for h in driver.find_elements(by, "#training .chartbox h4")]
    expected = [k for k in history_keys if not k.startswith("val_") and k not in ("epoch", "seconds", "time_left", "lr")]
    assert set(titles) == set(expected) | {"learning rate"}


def _hover_and_toggle(driver) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    box = driver.find_element("css selector", "#training .chartbox")
    svg = box.find_element("css selector", ".lin-view svg")
    ActionChains(driver).move_to_element(svg).perform()
    tip = box.find_element("css selector", ".tip").text
    assert tip.startswith("epoch ") and "training" in tip and "validation" in tip
    button = box.find_element("css selector", "[data-toggle=validation]")
    button.click()
    path = box.find_element("css selector", '.lin-view path[data-series="validation"]')
    assert not path.is_displayed()
    button.click()
    assert path.is_displayed()
    log_path = box.find_element("css selector", '.log-view path[data-series="training"]')
    assert not log_path.is_displayed()
    box.find_element("css selector", "input.logscale").click()  # the log-scale copy replaces the linear one
    assert log_path.is_displayed() and not svg.is_displayed() and log_path.get_attribute("d").count("L") >= 3


def _screenshot(driver, tmp_path: Path, name: str) -> Path:
    driver.execute_script("window.scrollTo(0, 0)")
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, min(int(height) + 40, 8000))
    shot = tmp_path / f"{name}.png"
    driver.save_screenshot(str(shot))
    driver.set_window_size(1280, 900)
    driver.execute_script("window.scrollTo(0, 0)")
    driver.save_screenshot(str(tmp_path / f"{name}-top.png"))
    target = os.environ.get("TORCHANN_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, Path(target) / shot.name)
        shutil.copy(tmp_path / f"{name}-top.png", Path(target) / f"{name}-top.png")
    assert shot.stat().st_size > 20_000  # a drawn page, not a blank one
    return shot


def test_regression_report_in_chromium(browser, tmp_path):
    rng = np.random.default_rng(0)
    n = 240
    x1, x2 = rng.normal(size=n), rng.normal(size=n)
    colour = rng.choice(["red", "green", "blue"], size=n)
    price = 3 * x1 - 2 * x2 + 1.5 * (colour == "red") + rng.normal(scale=0.1, size=n)
    x2[[3, 50]] = np.nan
    data = tmp_path / "houses.csv"
    lines = ["x1,x2,colour,price"] + [f"{a},{'' if np.isnan(b) else b},{c},{d}" for a, b, c, d in
                                       zip(x1, x2, colour, price)]
    data.write_text("\n".join(lines) + "\n")
    model = train(str(data), target="price", epochs=25, seed=0, fill_missing="mean", hidden=[16, 8], networks=1)
    run = model.save(tmp_path / "run")
    page = run / "report.html"
    assert page.stat().st_size < 400_000

    _open(browser, page)
    _assert_offline_and_clean(browser, page)
    _curves_drawn(browser, set(model.history.records[-1]))
    _hover_and_toggle(browser)
    by = "css selector"
    assert browser.find_element(by, "#summary-total").text == f"{model.summary().total_params:,}"
    assert browser.find_element(by, "#summary-trainable").text == f"{model.summary().trainable_params:,}"
    assert len(browser.find_elements(by, ".weights svg rect.bar")) > 0
    assert len(browser.find_elements(by, ".weights .chartbox")) == 3  # linear1, linear2, output weights
    assert len(browser.find_elements(by, "table.activations tbody tr")) == 2  # act1, act2
    val_rows = model.history.info["val_rows"]
    assert len(browser.find_elements(by, "svg.scatter")) == 2
    assert len(browser.find_elements(by, "svg.scatter")[0].find_elements(by, "circle.dot")) == val_rows
    importance = [r.find_elements(by, "td")[0].text for r in browser.find_elements(by, "table.importance tbody tr")]
    assert sorted(importance) == ["colour", "x1", "x2"]
    assert "x2" in browser.find_element(by, "#run").text and "mean" in browser.find_element(by, "#run").text
    _screenshot(browser, tmp_path, "report-regression")


def test_classification_report_in_chromium(browser, tmp_path):
    from typer.testing import CliRunner

    out = tmp_path / "iris"
    result = CliRunner().invoke(app, ["train", "sklearn:iris", "--epochs", "30", "--seed", "0",
                                      "--out", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    page = out / "report.html"
    model = torchann.load(out)
    _open(browser, page)
    _assert_offline_and_clean(browser, page)
    _curves_drawn(browser, set(model.history.records[-1]))
    by = "css selector"
    counts = [int(td.text) for td in browser.find_elements(by, "table.confusion td.count")]
    assert len(counts) == 9 and sum(counts) == model.history.info["val_rows"] == 30
    header = [th.text for th in browser.find_elements(by, "table.confusion thead th")][1:4]
    assert header == [str(c) for c in model.classes]
    assert browser.find_element(by, "#summary-total").text == f"{model.summary().total_params:,}"
    _screenshot(browser, tmp_path, "report-classification")
