"""The review page as operators use it: a real `flywheel review` server over a real lake, driven
by headless Chromium through WebDriver; the pipeline refreshed in between for real."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pyarrow as pa
import pytest

from flywheel_assets.collector.server import start_collector
from flywheel_assets.curation.normalize import normalize_text
from flywheel_assets.governance.hashing import unit_interval
from flywheel_assets.privacy.pii import Detector
from flywheel_assets.review.queue import REASONS
from flywheel_assets.sample import write_sample_landing
from flywheel_assets.settings import open_lake
from flywheel_tests.support.cli import flywheel
from flywheel_tests.support.records import TEST_HASH_KEY, feedback, interaction, write_lines
from flywheel_tests.support.review import chrome, session_opener, start_review

pytestmark = pytest.mark.slow

ALICE = "alice-operator-token-0001"
PRODUCER = "producer-token-00000001"
PLANTED_EMAIL = "maria.planted@example.org"
PLANTED_PHONE = "+1 415 555 0199"
CORRECTION = "Open Settings, choose Billing, then Download invoice for the month you need."
ENV = {"FLYWHEEL_HASH_KEY": TEST_HASH_KEY}


def _trainable_prompt() -> str:
    """A prompt whose eval cases are not held out, so its correction may reach sft_set."""
    for n in range(100):
        prompt = f"How do I download invoice number {n} as a PDF? Mail it to {PLANTED_EMAIL}"
        redacted, _ = Detector().redact(prompt)
        normalized = normalize_text(pa.array([redacted]))[0].as_py()
        if unit_interval(normalized, TEST_HASH_KEY.encode(), "holdout") >= 0.5:
            return prompt
    raise AssertionError("no prompt outside the holdout")


PROMPT = _trainable_prompt()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("review")
    landing, lake = root / "landing", root / "lake"
    write_sample_landing(landing, n_interactions=300, seed=11)
    planted = interaction(
        "r-planted",
        prompt=PROMPT,
        response=f"I cannot help. Call {PLANTED_PHONE}.",
        user_id="maria@example.org",
    )
    write_lines(landing, "interactions/planted.jsonl", [planted])
    thumbs_down = feedback("f-planted", "r-planted", "thumbs_down", user_id="maria@example.org")
    write_lines(landing, "feedback/planted.jsonl", [thumbs_down])
    run = flywheel("run", "--landing", str(landing), "--lake", str(lake), env=ENV)
    assert run.returncode == 0, run.stderr
    review = start_review(
        lake=lake,
        landing=landing,
        operators=f"alice={ALICE}",
        producers=PRODUCER,
        log=root / "review.log",
    )
    yield {"root": root, "landing": landing, "lake": lake, "review": review}
    review.stop()


@pytest.fixture(scope="module")
def browser():
    driver = chrome()
    yield driver
    driver.quit()


def _sign_in(driver, review) -> None:
    driver.get(f"{review.url}/healthz")
    driver.delete_all_cookies()  # each test signs in afresh
    driver.get(f"{review.url}/queue")
    assert "/login" in driver.current_url  # not signed in: sent to the sign-in form
    _submit_and_wait(
        driver,
        lambda: _click(driver, "css selector", "form button[type=submit]"),
        before=lambda: driver.find_element("id", "token").send_keys(ALICE),
    )
    assert driver.current_url.startswith(f"{review.url}/queue")


def _click(driver, by: str, value: str) -> None:
    driver.find_element(by, value).click()


def _submit_and_wait(driver, action, before=None) -> None:
    """Run `action` (a click or a key that loads a page) and wait until the new page is loaded."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    def loaded(d) -> bool:
        # A new page has lost the marker the old one carried.
        try:
            return d.execute_script(
                "return window.__flywheelOld === undefined && document.readyState === 'complete'"
            )
        except WebDriverException:  # between two pages
            return False

    if before:
        before()
    driver.execute_script("window.__flywheelOld = true")
    action()
    WebDriverWait(driver, 20).until(loaded)


def test_producer_and_unknown_tokens_cannot_reach_the_review_pages(site):
    review = site["review"]
    for path in ("/queue", "/queue/r-planted", "/dashboard"):
        assert review.get(path, token=PRODUCER)[0] == 403, path
        assert review.get(path, token="not-a-token-at-all-0000")[0] == 401, path
        assert review.get(path)[0] == 303, path  # no session: to the sign-in page
    status, body = review.post("/login", {"token": PRODUCER, "next": "/queue"})
    assert status == 403 and "producer token" in body
    status, _ = review.post("/queue/r-planted", {"nonce": "n" * 16, "verdict": "good"})
    assert status == 303  # a form post without a session stores nothing
    assert review.get("/queue", token=ALICE)[0] == 200


def test_operator_tokens_cannot_post_interactions(site, tmp_path):
    collector = start_collector(tmp_path / "landing", PRODUCER)
    try:
        status, body = collector.post("/v1/interactions", interaction("r-x"), token=ALICE)
        assert status == 401, body
        assert collector.post("/v1/interactions", interaction("r-y"))[0] == 202
    finally:
        collector.stop()


def test_no_page_shows_what_redaction_removed(site):
    review, opener = site["review"], session_opener()
    assert review.post("/login", {"token": ALICE, "next": "/queue"}, opener=opener)[0] == 200
    raw = open_lake(str(site["lake"])).read("raw_logs", columns=["request_id", "prompt"])
    assert (
        PLANTED_EMAIL in raw.to_pydict()["prompt"][raw["request_id"].to_pylist().index("r-planted")]
    )
    pages = [review.get(p, opener=opener)[1] for p in ("/queue", "/queue/r-planted", "/dashboard")]
    pages += [review.get(f"/queue?reason={r}", opener=opener)[1] for r in REASONS]
    for body in pages:
        for secret in (PLANTED_EMAIL, PLANTED_PHONE, "maria@example.org"):
            assert secret not in body
    assert "[EMAIL]" in pages[1] and "[PHONE]" in pages[1]


def test_filters_counts_and_paging_agree_with_the_table(site):
    review = site["review"]
    queue = open_lake(str(site["lake"])).read("review_queue", columns=["request_id", "reason"])
    reasons = queue["reason"].to_pylist()
    expected = sum("negative_without_correction" in r.split(",") for r in reasons)
    status, body = review.get("/queue?reason=negative_without_correction", token=ALICE)
    assert status == 200
    assert int(re.search(r'id="total">(\d+)<', body).group(1)) == expected
    counted = re.search(
        r'data-reason="negative_without_correction"[^>]*>.*?class="count">(\d+)<', body, re.S
    )
    assert int(counted.group(1)) == expected
    seen, page = [], 1
    while True:
        _, body = review.get(f"/queue?sort=newest&page_no={page}", token=ALICE)
        ids = re.findall(r'<tr data-request-id="([^"]+)"', body)
        seen += ids
        if 'rel="next"' not in body:
            break
        page += 1
    assert sorted(seen) == sorted(queue["request_id"].to_pylist())
    assert review.get("/queue?reason=nonsense", token=ALICE)[0] == 400


def test_a_double_submit_stores_one_annotation(site):
    review = site["review"]
    _, body = review.get("/queue/r-planted", token=ALICE)
    nonce = re.search(r'name="nonce" value="([^"]+)"', body).group(1)
    form = {"nonce": nonce, "verdict": "bad", "correction": "", "tags": "double"}
    first = review.post("/queue/r-planted", {**form, "correction": "first"}, token=ALICE)
    second = review.post("/queue/r-planted", {**form, "correction": "first"}, token=ALICE)
    assert first[0] == second[0] == 303
    status, body = review.post(
        "/queue/r-planted", {**form, "nonce": "", "verdict": ""}, token=ALICE
    )
    assert status == 422 and "choose accept or reject" in body
    review.stop()  # publishes the spool
    site["review"] = start_review(
        lake=site["lake"],
        landing=site["landing"],
        operators=f"alice={ALICE}",
        producers=PRODUCER,
        log=site["root"] / "review.log",
    )
    published = sorted((site["landing"] / "annotations").rglob("review-*.jsonl"))
    records = [json.loads(line) for f in published for line in f.read_text().splitlines()]
    stored = [a for a in records if a["tags"] == ["double"]]
    assert len(stored) == 1 and stored[0]["operator"] == "alice"


def test_an_operator_corrects_an_item_in_the_browser_and_it_reaches_sft_set(site, browser):
    review = site["review"]
    _sign_in(browser, review)
    # Filter the queue by reason, then open the planted item.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "reason")).select_by_value("negative_without_correction")
    _submit_and_wait(browser, lambda: _click(browser, "id", "apply"))
    assert "reason=negative_without_correction" in browser.current_url
    rows = browser.find_elements("css selector", "tbody tr[data-request-id]")
    assert rows and all("negative_without_correction" in r.text for r in rows)
    # r-planted was reviewed by the double-submit test: it left the list.
    assert "r-planted" not in [r.get_attribute("data-request-id") for r in rows]
    target = rows[0].get_attribute("data-request-id")
    _submit_and_wait(browser, lambda: rows[0].find_element("tag name", "a").click())
    assert browser.find_element("tag name", "h1").text == target
    # Type a correction and submit it with the keyboard.
    from selenium.webdriver.common.keys import Keys

    box = browser.find_element("id", "correction")
    box.send_keys(CORRECTION)
    _screenshot(browser, "review_item.png")
    _submit_and_wait(browser, lambda: box.send_keys(Keys.CONTROL, Keys.ENTER))
    assert "Saved review-" in browser.page_source
    browser.get(f"{review.url}/queue?reason=negative_without_correction")
    listed = [
        r.get_attribute("data-request-id")
        for r in browser.find_elements("css selector", "tbody tr[data-request-id]")
    ]
    assert target not in listed

    # The next refresh drains it from the queue; the correction reaches eval_cases and sft_set.
    review.stop()
    run = flywheel("run", "--landing", str(site["landing"]), "--lake", str(site["lake"]), env=ENV)
    assert run.returncode == 0, run.stderr
    lake = open_lake(str(site["lake"]))
    queued = lake.read("review_queue", columns=["request_id"])["request_id"].to_pylist()
    assert target not in queued and "r-planted" not in queued
    cases = lake.read("eval_cases", columns=["source_request_id", "kind", "expected"]).to_pylist()
    assert {"source_request_id": target, "kind": "regression", "expected": CORRECTION} in cases
    sft = lake.read("sft_set", columns=["source_request_ids", "completion", "target_source"])
    planted = [r for r in sft.to_pylist() if "r-planted" in r["source_request_ids"]]
    assert [(r["completion"], r["target_source"]) for r in planted] == [
        ("first", "operator_correction")
    ]


def test_the_dashboard_draws_the_samples_figures(site, browser):
    review = site["review"]
    if review.process.poll() is not None:
        site["review"] = review = start_review(
            lake=site["lake"],
            landing=site["landing"],
            operators=f"alice={ALICE}",
            producers=PRODUCER,
            log=site["root"] / "review.log",
        )
    _sign_in(browser, review)
    browser.get(f"{review.url}/dashboard")
    # The points as the browser drew them, read from the rendered SVG.
    points = browser.execute_script(
        "return Array.from(document.querySelectorAll('#chart-positive-rate [data-series][data-y]'))"
        ".map(e => [e.getAttribute('data-series'), e.getAttribute('data-x'),"
        " e.getAttribute('data-y')])"
    )
    drawn = {(series, x): float(y) for series, x, y in points}
    assert len(drawn) == len(points)
    metrics = open_lake(str(site["lake"])).read(
        "feedback_metrics", columns=["day", "model_version", "positive_rate"]
    )
    expected = {
        (r["model_version"], r["day"].isoformat()): r["positive_rate"]
        for r in metrics.to_pylist()
        if r["positive_rate"] is not None  # a day without feedback has no rate to draw
    }
    assert drawn.keys() == expected.keys()
    for key, value in expected.items():
        assert drawn[key] == pytest.approx(value, abs=1e-6), key
    assert browser.find_element("css selector", "a[href$='/assets/feedback_metrics']")
    _screenshot(browser, "review_dashboard.png")
    # A narrow window still shows the queue's form controls, each with a label.
    browser.set_window_size(380, 800)
    browser.get(f"{review.url}/queue/{_first_queued(review)}")
    for control in browser.find_elements("css selector", "textarea, input[type=text], select"):
        label = browser.find_elements("css selector", f"label[for='{control.get_attribute('id')}']")
        assert label and label[0].is_displayed()
    browser.set_window_size(1280, 900)


def _first_queued(review) -> str:
    _, body = review.get("/queue", token=ALICE)
    return re.search(r'<tr data-request-id="([^"]+)"', body).group(1)


def _screenshot(browser, name: str, height: int = 1500) -> None:
    """With $FLYWHEEL_SCREENSHOTS set (docs/images), the page from its top, for the README."""
    folder = os.environ.get("FLYWHEEL_SCREENSHOTS")
    if folder:
        size = browser.get_window_size()
        browser.set_window_size(1280, height)
        browser.execute_script("window.scrollTo(0, 0)")
        browser.save_screenshot(str(Path(folder) / name))
        browser.set_window_size(size["width"], size["height"])
