"""The judging page in a real browser: Debian's headless Chromium driven by Selenium (chromedriver), real LFW
images served by a real uvicorn server. Answers by click and by keyboard, checks preloading, the progress bar,
the phone layout and the completion code, then exports and checks the stored judgments are exactly the clicks.

Chromium is required (``apt-get install chromium chromium-driver``; ``.ci/run`` installs it): without it this test
fails, it is not skipped.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import httpx
import pytest

from perface.annotations.schema import read_judgments
from perface.campaign import CampaignConfig, completion_code, export_judgments

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
TOKEN = "browser-test-token"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    missing = [str(p) for p in (CHROMIUM, CHROMEDRIVER) if not p.exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} not found: install Debian's browser with "
                    "'apt-get install chromium chromium-driver' (.ci/run does)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
                "--window-size=1280,900", f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def _wait(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _path_of(url: str, images: dict[str, str]) -> str:
    """``http://host/img/7?token=...`` -> the image's root-relative path."""
    return images[url.split("?")[0].rsplit("/img/", 1)[1]]


def test_judging_page_in_chromium(browser, tmp_path, data_root, lfw_paths, write_tasks, serve_thread):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    tasks = tmp_path / "tasks.csv"
    write_tasks(tasks, lfw_paths, 12)
    db = tmp_path / "campaign.sqlite"
    n = 5
    cfg = CampaignConfig(tasks=tasks, root=data_root, db=db, judgments_per_triplet=1, per_annotator=n,
                         catch_rate=0.2, token=TOKEN)
    annotator = "PROLIFIC-5f3a"
    with serve_thread(cfg) as server:
        store = server.campaign.store
        images = {str(i): p for i, p in store.query("SELECT id, path FROM images")}
        api = httpx.Client(base_url=server.url, headers={"X-PerFace-Token": TOKEN})

        def stored_count() -> int:
            return store.query("SELECT COUNT(*) FROM judgments j JOIN annotators a ON a.id = j.annotator "
                               "WHERE a.external_id = ?", (annotator,))[0][0]

        def loaded_resources() -> set[str]:
            entries = browser.execute_script(
                "return performance.getEntriesByType('resource').filter(e => e.responseEnd > 0).map(e => e.name)")
            return {e.split("?")[0].split(server.url, 1)[-1] for e in entries}

        browser.get(f"{server.url}/?PROLIFIC_PID={annotator}&STUDY_ID=s1&token={TOKEN}")
        start = _wait(lambda: (b := browser.find_element(By.ID, "start")).is_enabled() and b, what="start button")
        assert "Which face" in browser.find_element(By.ID, "instructions").text
        start.click()

        clicks = []
        how = ["click-left", "key-ArrowRight", "key-1", "key-2", "click-right"]
        shown_before = None
        for i in range(n):
            trial = _wait(lambda: (a := browser.find_element(By.ID, "trial").get_attribute("data-assignment"))
                          and a != shown_before and a, what=f"trial {i + 1}")
            shown_before = trial
            imgs = {k: browser.find_element(By.ID, f"{k}-img") for k in ("anchor", "left", "right")}
            _wait(lambda: all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0",
                                                     im) for im in imgs.values()), what="images shown")
            shown = {k: _path_of(im.get_attribute("src"), images) for k, im in imgs.items()}
            # Preloading: once the previous answer is stored, the page has fetched the next assignment's images
            # (all three) while this one is on screen.
            _wait(lambda: stored_count() == i, what=f"{i} answers stored")
            nxt = api.get("/api/next", params={"annotator": annotator}).json()["assignments"]
            assert str(nxt[0]["id"]) == trial
            if i < n - 1:
                assert len(nxt) == 2
                want = {nxt[1][k] for k in ("anchor", "left", "right")}
                _wait(lambda: want <= loaded_resources(), what="next triplet's images preloaded")
            else:
                assert len(nxt) == 1  # the session ends with this one
            if i == 0:
                browser.save_screenshot(str(tmp_path / "judging-page.png"))
                if os.environ.get("PERFACE_ANNOTATE_SCREENSHOT"):
                    shutil.copyfile(tmp_path / "judging-page.png", os.environ["PERFACE_ANNOTATE_SCREENSHOT"])
                faces = [browser.find_element(By.ID, k).rect for k in ("left", "right")]
                assert all(f["width"] >= 250 for f in faces)  # big enough to see detail
            if i == 1:  # phone width: anchor on top, the two candidates side by side below, nothing cut off
                browser.set_window_size(390, 844)
                width = browser.execute_script("return document.documentElement.clientWidth")
                rects = {k: browser.find_element(By.ID, f"{k}-img").rect for k in ("anchor", "left", "right")}
                assert rects["anchor"]["y"] + rects["anchor"]["height"] <= rects["left"]["y"] + 1
                assert abs(rects["left"]["y"] - rects["right"]["y"]) < 1
                assert rects["right"]["x"] + rects["right"]["width"] <= width
                assert rects["left"]["width"] >= 150
                browser.set_window_size(1280, 900)
            kind, _, what = how[i].partition("-")
            if kind == "click":
                browser.find_element(By.ID, what).click()
                side = what
            else:
                ActionChains(browser).send_keys(getattr(Keys, "ARROW_RIGHT") if what == "ArrowRight" else what).perform()
                side = {"ArrowRight": "right", "1": "left", "2": "right"}[what]
            clicks.append({"assignment": int(trial), "side": side, "anchor": shown["anchor"], "left": shown["left"],
                           "right": shown["right"], "chosen": shown[side]})
            count = browser.find_element(By.ID, "count").text
            assert count == f"{i + 1} / {n}", count
            bar = browser.execute_script("return parseFloat(document.getElementById('bar').style.width)")
            assert bar == pytest.approx(100 * (i + 1) / n), bar

        done = _wait(lambda: (d := browser.find_element(By.ID, "done")).is_displayed() and d, what="completion page")
        code = browser.find_element(By.ID, "code").text
        assert code == completion_code(store.secret, annotator)
        assert "Thank you" in done.text
        _wait(lambda: stored_count() == n, what="all answers stored")
        assert json.loads(browser.execute_script(
            f"return localStorage.getItem('perface-outbox:' + location.host + ':{annotator}')")) == []

        # An annotator id carrying markup is shown as text, never run.
        evil = '<img src=x onerror=alert(1)>"'
        browser.get(f"{server.url}/?annotator={httpx.QueryParams({'a': evil})['a']}&token={TOKEN}".replace(
            "<", "%3C").replace(">", "%3E").replace('"', "%22").replace(" ", "%20").replace("=x", "%3Dx"))
        _wait(lambda: browser.find_element(By.ID, "who").text, what="page with odd id")
        assert browser.find_element(By.ID, "who").text == evil
        assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"]').length") == 0
        with pytest.raises(NoAlertPresentException):
            browser.switch_to.alert.text
        api.close()

    # The stored judgments are exactly the clicks, with the left/right order undone.
    out = export_judgments(db, tmp_path / "judgments.csv")
    frames = [read_judgments(tmp_path / "judgments.csv")]
    if out["catch_out"]:
        frames.append(read_judgments(out["catch_out"]))
    rows = [r for f in frames for r in f.to_dict("records")]
    assert len(rows) == n and out["catch"] == 1  # one catch trial in the block of 5, kept apart
    for click in clicks:
        match = [r for r in rows if r["anchor"] == click["anchor"]
                 and {r["a"], r["b"]} == {click["left"], click["right"]}]
        assert len(match) == 1, click
        row = match[0]
        assert row[row["choice"]] == click["chosen"]
        assert row["annotator_id"] == annotator and row["response_ms"] > 0
    con = sqlite3.connect(db)
    try:
        sides = dict(con.execute("SELECT assignment, side FROM judgments"))
    finally:
        con.close()
    assert sides == {c["assignment"]: c["side"] for c in clicks}
    assert (tmp_path / "judging-page.png").stat().st_size > 10_000
