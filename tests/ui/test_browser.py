"""One walk through `ednaquery ui` in a real browser: Debian's headless chromium driven by chromium-driver.

The server is the real command (`ednaquery ui --port 0`) over a small indexed sweep. Screenshots of
each page go to test-output/ui/ (gitignored). `make browser` installs chromium when it is missing.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from ednaquery.cli import main

pytest.importorskip("starlette")
pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip("no chromium/chromedriver: `make browser` installs Debian's chromium and chromium-driver",
                allow_module_level=True)

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

SHOTS = Path(__file__).resolve().parents[2] / "test-output" / "ui"
WAIT = 15


@pytest.fixture(scope="module")
def server(sweep):
    """`ednaquery --store DB ui --port 0` in a subprocess; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "ednaquery.cli", "--store", sweep.db, "ui", "--port", "0"],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=os.environ.copy())
    url = None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and url is None:
        line = proc.stderr.readline()
        if not line and proc.poll() is not None:
            break
        m = re.search(r"(http://127\.0\.0\.1:\d+)/", line)
        url = m.group(1) if m else None
    if url is None:
        proc.kill()
        pytest.fail(f"ednaquery ui did not start: {proc.stderr.read()}")
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="module")
def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1300,1300"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=webdriver.ChromeService(CHROMEDRIVER), options=opts)
    SHOTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()


def wait_for(driver, what, timeout: float = WAIT):
    # the pages re-render live (a poll every 2 s): an element read mid-swap is simply read again
    return WebDriverWait(driver, timeout, poll_frequency=0.1,
                         ignored_exceptions=(StaleElementReferenceException,)).until(lambda d: what(d))


def click(driver, css: str) -> None:
    """Click the element ``css`` names, finding it again if a live re-render replaced it."""
    wait_for(driver, lambda d: d.find_element(By.CSS_SELECTOR, css).click() or True)


def rows(driver, table: str) -> list[str]:
    """The ids of a table's rows, read in one script call (never half of an old and a new table)."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map((tr) => tr.dataset.id)", f"#{table} tbody tr")


def cli_ids(db: str, *query: str) -> list[str]:
    out = CliRunner().invoke(main, ["--store", db, "find", *query, "--format", "ids"])
    assert out.exit_code == 0, out.output
    return out.output.split()


def test_walk_search_run_compare_brush_and_traversal(sweep, server, browser):
    d = browser
    # search lr<1e-3: the table's rows are `ednaquery find`'s, in its order
    d.get(server + "/")
    q = wait_for(d, lambda d: d.find_element(By.ID, "q"))
    q.send_keys("optim")  # keys from the catalogue are offered as you type
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#suggest:not([hidden]) div[data-key="optimizer.lr"]'))
    d.save_screenshot(str(SHOTS / "0-autocomplete.png"))
    q.clear()
    q.send_keys("lr<1e-3")
    click(d, "#form button[type=submit]")
    expected = cli_ids(sweep.db, "lr<1e-3")
    wait_for(d, lambda d: rows(d, "results") == expected)
    assert len(expected) == 3  # the 3 runs (a run folder's own config.yaml is part of its run)
    d.save_screenshot(str(SHOTS / "1-search.png"))

    # a click on a column's header sorts by it (the store's sort, as --sort), a second click descending
    click(d, '#results th[data-col="optimizer.lr"]')
    wait_for(d, lambda d: rows(d, "results") == cli_ids(sweep.db, "lr<1e-3", "--sort", "lr"))
    click(d, '#results th[data-col="optimizer.lr"]')
    wait_for(d, lambda d: rows(d, "results") == cli_ids(sweep.db, "lr<1e-3", "--sort=-lr"))
    assert "sort=-optimizer.lr" in d.current_url

    # columns are chosen (a built-in one hidden) and resized by dragging a header's edge
    click(d, 'input.show-col[value="path"]')
    wait_for(d, lambda d: not d.find_elements(By.CSS_SELECTOR, '#results th[data-col="path"]'))
    click(d, 'input.show-col[value="path"]')
    th = wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, '#results th[data-col="optimizer.lr"]'))
    before = th.size["width"]
    grip = th.find_element(By.CSS_SELECTOR, ".grip")
    ActionChains(d).click_and_hold(grip).move_by_offset(80, 0).release().perform()
    lr_header = '#results th[data-col="optimizer.lr"]'
    wait_for(d, lambda d: d.find_element(By.CSS_SELECTOR, lr_header).size["width"] >= before + 60)
    assert "sort=-optimizer.lr" in d.current_url  # resizing did not sort

    # a syntax error shows the query with a caret under the bad token
    q = d.find_element(By.ID, "q")
    q.clear()
    q.send_keys("lr<< model=vit")
    click(d, "#form button[type=submit]")
    err = wait_for(d, lambda d: d.find_elements(By.ID, "syntax-error"))[0]
    assert err.text.splitlines()[:2] == ["lr<< model=vit", "   ^"]
    d.save_screenshot(str(SHOTS / "2-syntax-error.png"))

    # open a run: its curve has one point per epoch
    d.get(server + "/?q=" + "lr%3C1e-3&kind=run")
    run_ids = wait_for(d, lambda d: (r := rows(d, "results")) and len(r) == 3 and r)
    click(d, f'#results tr[data-id="{run_ids[0]}"] td.id a')
    chart = wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#curves [data-metric="val_acc"][data-points]'))[0]
    assert chart.get_attribute("data-points") == "5"
    assert d.find_elements(By.CSS_SELECTOR, '#curves [data-metric="val_acc"] canvas')
    wait_for(d, lambda d: d.execute_script(
        "const i = document.querySelector('#images img'); return i && i.complete && i.naturalWidth > 0"))
    d.save_screenshot(str(SHOTS / "3-run.png"))

    # pick 3 runs and compare: the overlay has 3 series
    d.get(server + "/?q=" + "lr%3C1e-3&kind=run")
    wait_for(d, lambda d: len(rows(d, "results")) == 3)
    click(d, "#clear-picked")
    for run in run_ids:
        click(d, f'#results input.pick[data-id="{run}"]')
    wait_for(d, lambda d: d.find_element(By.ID, "compare-picked").text == "Compare picked (3)")
    click(d, "#compare-picked")
    overlay = wait_for(d, lambda d: (o := d.find_element(By.ID, "overlay")).get_attribute("data-series") == "3" and o)
    assert overlay.get_attribute("data-points") == "5,5,5"
    assert sorted(rows(d, "runs")) == sorted(run_ids)

    # the diff shows only the keys that differ
    wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#diff tbody tr[data-key]"))
    diff_keys = {tr.get_attribute("data-key") for tr in d.find_elements(By.CSS_SELECTOR, "#diff tbody tr")}
    assert {"model.name", "optimizer.lr"} <= diff_keys
    assert all(k in ("model.name", "optimizer.lr") or k.startswith("metrics.") for k in diff_keys), diff_keys
    d.save_screenshot(str(SHOTS / "4-compare.png"))

    # brush the optimizer.lr axis around its top value: the runs table keeps only that run
    axis = d.find_element(By.CSS_SELECTOR, '#pc-svg g.axis[data-key="optimizer.lr"] rect.hit')
    box = axis.rect
    top_offset = -box["height"] / 2 + 2  # from the hit area's centre to just under its top (lr 5e-4)
    ActionChains(d).move_to_element_with_offset(axis, 0, top_offset).click_and_hold() \
        .move_by_offset(0, box["height"] * 0.25).release().perform()
    wait_for(d, lambda d: rows(d, "runs") == [run_ids[2]])  # lr 1e-4, 3e-4, 5e-4: the top is the third
    assert d.find_element(By.ID, "overlay").get_attribute("data-series") == "1"
    d.save_screenshot(str(SHOTS / "5-brushed.png"))

    # path traversal gives 404, in the browser and on the raw request line
    d.get(server + f"/api/file/{sweep.ids[0]}/..%2F..%2Fsecret.txt")
    assert "top secret" not in d.page_source and "no such file" in d.page_source
    host, port = server.removeprefix("http://").split(":")
    for raw in (f"/api/file/{sweep.ids[0]}/../../secret.txt", f"/api/file/{sweep.ids[0]}/link_out.txt"):
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request("GET", raw)
        resp = conn.getresponse()
        assert resp.status == 404 and b"top secret" not in resp.read(), raw
        conn.close()


def test_new_epochs_and_runs_appear_without_a_reload(sweep, server, browser):
    d = browser
    run = sweep.ids[5]
    d.get(server + f"/run/{run}")
    chart = wait_for(d, lambda d: d.find_elements(By.CSS_SELECTOR, '#curves [data-metric="val_acc"][data-points]'))[0]
    assert chart.get_attribute("data-points") == "5"
    d.execute_script("window.__same_page = true")
    folder = sweep.root / "runs" / run
    with open(folder / "metrics.jsonl", "a") as fh:
        fh.write('{"scope": "epoch", "epoch": 6, "step": 60, "train_loss": 0.2, "val_acc": 0.9}\n')
    (folder / "summary.json").unlink()  # the run is "running" again: metrics come from metrics.jsonl
    assert CliRunner().invoke(main, ["--store", sweep.db, "index", str(sweep.root / "runs")]).exit_code == 0
    wait_for(d, lambda d: (c := d.find_elements(By.CSS_SELECTOR, '#curves [data-metric="val_acc"]'))
             and c[0].get_attribute("data-points") == "6")
    assert d.execute_script("return window.__same_page === true")  # no reload happened
    d.save_screenshot(str(SHOTS / "6-live-run.png"))


def test_hostile_values_show_as_text(sweep, server, browser):
    d = browser
    hostile = '<img src=x onerror="document.title=\'pwned\'"><script>document.title="pwned"</script>'
    folder = sweep.root / "runs" / "20261204-130000-bad0"
    folder.mkdir()
    (folder / "run.json").write_text(json.dumps({"format": "ednaquery-run", "run_id": folder.name,
                                                 "status": "completed"}))
    (folder / "config.yaml").write_text(yaml.safe_dump({"model": {"name": hostile}, "optimizer": {"lr": 0.05}}))
    assert CliRunner().invoke(main, ["--store", sweep.db, "index", str(sweep.root / "runs")]).exit_code == 0
    for page, url in (("search", "/?q=lr%3E0.02&cols=model.name"), ("run", f"/run/{folder.name}"),
                      ("compare", "/compare?q=lr%3E0.005")):
        d.get(server + url)
        try:
            wait_for(d, lambda d: hostile in d.find_element(By.TAG_NAME, "body").text)
        finally:
            d.save_screenshot(str(SHOTS / f"7-hostile-value-{page}.png"))
        assert d.title != "pwned" and not d.find_elements(By.CSS_SELECTOR, "main img[src=x]")


def test_add_a_tag_and_find_it(sweep, server, browser):
    d = browser
    run = sweep.ids[3]
    d.get(server + f"/run/{run}")
    box = wait_for(d, lambda d: d.find_elements(By.ID, "tag-input"))[0]
    box.send_keys("+best-so-far")
    click(d, "#tag-apply")
    wait_for(d, lambda d: "best-so-far" in d.find_element(By.ID, "tags").text)
    d.save_screenshot(str(SHOTS / "8-tagged.png"))
    d.get(server + "/?q=tags%3Dbest-so-far")
    wait_for(d, lambda d: rows(d, "results") == [run])
    assert "best-so-far" in d.find_element(By.CSS_SELECTOR, f'#results tr[data-id="{run}"]').text
    d.save_screenshot(str(SHOTS / "9-search-by-tag.png"))
