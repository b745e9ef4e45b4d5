"""The reviewer page and the pools page in real headless Chromium (Debian's chromium, driven by Playwright),
against a real `laari serve` process: paste a text, see the suggestion, accept it, find the row in the database."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

import httpx
import pytest

from tests.service_fixtures import REVIEWER_KEY, TEXT_DIGITAL, TEXT_WELLBEING, lexical_registry, live_server  # noqa: F401

CHROMIUM = os.environ.get("LAARI_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]

from playwright import sync_api  # noqa: E402  (a test dependency: a missing one must fail, not skip)
expect = sync_api.expect
if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
    raise RuntimeError(f"{CHROMIUM} not found: install Debian's chromium package (make test does, from "
                       "scripts/apt-packages.txt) or point LAARI_CHROMIUM at a Chromium binary")


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, live_server):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, locale="fi-FI")
    p = context.new_page()
    p.requests, p.errors = [], []
    p.on("request", lambda r: p.requests.append(r.url))
    p.on("console", lambda m: p.errors.append(m.text) if m.type == "error" else None)
    p.on("pageerror", lambda e: p.errors.append(str(e)))
    yield p
    context.close()
    outside = [u for u in p.requests if not u.startswith(live_server.url) and not u.startswith("data:")]
    assert not outside, f"the page fetched from outside the server: {outside}"
    assert not p.errors, f"errors in the page: {p.errors}"


def _feedback_row(path: Path, row_id: int):
    con = sqlite3.connect(path)
    try:
        return con.execute("SELECT decision, laari, tags, text, title, project_id, model_version FROM feedback "
                           "WHERE id = ?", (row_id,)).fetchone()
    finally:
        con.close()


def test_paste_predict_accept_and_correct(page, live_server, tmp_path):
    url = live_server.url
    page.goto(url + "/")
    page.wait_for_selector("body[data-ready='1']")
    assert page.locator("#predict-btn").inner_text() == "Ehdota laari"

    page.fill("#title", "Jaksava kotihoito")
    page.fill("#project-id", "WEB-1")
    page.fill("#description", TEXT_WELLBEING)
    page.click("#predict-btn")
    page.wait_for_selector("#result:not([hidden])")
    page.wait_for_selector("#result-laari-id:not(:empty)")

    expected = httpx.post(url + "/v1/predict", json={"id": "WEB-1", "title": "Jaksava kotihoito",
                                                     "description": TEXT_WELLBEING}).json()
    assert page.inner_text("#result-laari-id") == expected["laari"]
    bars = page.locator("#result-bars .bar")
    assert bars.count() == len(expected["laari_scores"])
    assert bars.first.get_attribute("data-laari") == max(expected["laari_scores"], key=expected["laari_scores"].get)
    assert page.locator("#result-bars .bar.second").count() == 1  # the runner-up is marked
    assert f"{100 * expected['explanation']['margin']:.0f}" in page.inner_text("#result-runner-up")
    assert page.inner_text("#result-fit-verdict").strip() in {"tyypillinen", "rajatapaus", "poikkeava"}
    assert page.locator("#result-text mark.term").count() >= 1  # deciding words highlighted in the text
    if expected["explanation"]["sentences"]:
        assert page.locator("#result-text mark.sent").count() >= 1
    assert page.locator("#result-similar li").count() == len(expected["explanation"]["similar"])
    page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
    if os.environ.get("LAARI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["LAARI_SCREENSHOTS"], "review.png"), full_page=True)

    # accept without a key: a clear message, nothing stored
    page.click("#accept-btn")
    page.wait_for_selector("#feedback-status.error")
    assert "API" in page.inner_text("#feedback-status")
    page.errors[:] = [e for e in page.errors if "status of 401" not in e]  # the browser logs the refusal

    page.fill("#api-key", REVIEWER_KEY)
    page.dispatch_event("#api-key", "change")
    page.fill("#reviewer", "AK")
    page.click("#accept-btn")
    page.wait_for_selector("#feedback-status.ok")
    row_id = int(page.get_attribute("#feedback-status", "data-feedback-id"))
    decision, laari, tags, text, title, project_id, version = _feedback_row(live_server.feedback_path, row_id)
    assert (decision, laari, text, title, project_id) == ("accept", expected["laari"], TEXT_WELLBEING,
                                                          "Jaksava kotihoito", "WEB-1")
    assert version == expected["model_version"]

    # correct: another laari and one tag
    other = next(l for l in expected["laari_scores"] if l != expected["laari"])
    page.click("#correct-btn")
    page.select_option("#correct-laari", other)
    for box in page.locator("#correct-tags input").all():
        box.uncheck()
    page.check("#tag-johtaminen")
    page.click("#save-correction-btn")
    expect(page.locator("#feedback-status")).not_to_have_attribute("data-feedback-id", str(row_id))
    expect(page.locator("#feedback-status")).to_have_class("ok")
    new_id = int(page.get_attribute("#feedback-status", "data-feedback-id"))
    decision, laari, tags, *_ = _feedback_row(live_server.feedback_path, new_id)
    assert (decision, laari, tags) == ("correct", other, '["johtaminen"]')

    # English on a click, the result redrawn in English
    page.click("#lang-toggle")
    assert page.locator("#predict-btn").inner_text() == "Suggest a laari"
    assert page.locator("html").get_attribute("lang") == "en"
    assert page.inner_text("#result-fit-verdict").strip() in {"typical", "borderline", "outlier"}


def test_upload_a_text_file(page, live_server):
    page.goto(live_server.url + "/")
    page.wait_for_selector("body[data-ready='1']")
    page.set_input_files("#file", files=[{"name": "tekoalyhanke.txt", "mimeType": "text/plain",
                                          "buffer": TEXT_DIGITAL.encode("utf-8")}])
    expect(page.locator("#description")).to_have_value(TEXT_DIGITAL)
    assert page.input_value("#title") == "tekoalyhanke"


def test_pools_page_draws_the_map(page, live_server, tmp_path):
    page.goto(live_server.url + "/pools")
    page.wait_for_selector("body[data-ready='1']")
    pools = httpx.get(live_server.url + "/v1/laarit").json()
    points = httpx.get(live_server.url + "/v1/laarit/map").json()["points"]
    assert page.locator("#pools-table tbody tr").count() == len(pools["laarit"])
    first = pools["laarit"][0]
    row = page.locator(f"#pools-table tr[data-laari='{first['id']}']")
    assert str(first["size"]) in row.inner_text() and first["assessment"][0] in row.inner_text()
    assert f"{first['cohesion']:.3f}" in row.inner_text()
    assert page.locator("#map circle").count() == len(points)
    colours = {c.get_attribute("fill") for c in page.locator("#map circle").all()}
    assert len(colours) == len({p["laari"] for p in points})  # one colour per laari
    assert page.locator("#map .centroids rect").count() == len(pools["laarit"]) + 1
    page.screenshot(path=str(tmp_path / "pools.png"), full_page=True)
    if os.environ.get("LAARI_SCREENSHOTS"):
        page.screenshot(path=os.path.join(os.environ["LAARI_SCREENSHOTS"], "pools.png"), full_page=True)
