"""The web page in a real headless Chromium against a real server over a tiny demo workspace."""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
from test_demo_fixtures import build_tiny
from test_engine_fixtures import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason="no headless browser: install Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")

WAIT_S = 60
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui") / "workspace"
    build_tiny(root)
    with live_server(root, admin_key="test-admin-key") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*FLAGS, f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"]:
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def wait_for(driver, css: str, timeout: float = WAIT_S):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.find_elements(By.CSS_SELECTOR, css))


def tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#tabs [data-tab={name}]").click()


def test_page_loads_with_its_own_assets_only(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    assert browser.title == "roost"
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#tabs button")] == \
        ["Chat", "Search", "Timeline", "Dashboard"]
    sources = browser.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);")
    assert all(s.startswith(server) for s in sources), sources  # nothing from the internet
    errors = [e for e in browser.get_log("browser") if e["level"] == "SEVERE" and "favicon" not in e["message"]]
    assert errors == []


def test_chat_streams_a_reply(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    tab(browser, "chat")
    browser.find_element(By.ID, "chat-max").clear()
    browser.find_element(By.ID, "chat-max").send_keys("24")
    browser.find_element(By.ID, "chat-temp").clear()  # greedy: sampled, the tiny model may stop after one token
    browser.find_element(By.ID, "chat-temp").send_keys("0")
    browser.find_element(By.ID, "chat-input").send_keys("what are you cooking tonight?")
    browser.find_element(By.ID, "chat-send").click()
    [bubble] = wait_for(browser, ".msg.assistant[data-done]")
    assert "error" not in bubble.get_attribute("class"), bubble.text
    assert bubble.text.strip()
    assert int(bubble.get_attribute("data-chunks")) > 1  # the reply arrived in pieces, read off the stream
    assert [m.text for m in browser.find_elements(By.CSS_SELECTOR, ".msg.user")] == ["what are you cooking tonight?"]


def test_search_returns_results_with_explanations(server, browser):
    from selenium.webdriver.common.by import By

    word = next(w for w in httpx.get(server + "/timeline?n=1").json()["data"][0]["text"].split() if w.isalpha())
    browser.get(server + "/")
    tab(browser, "search")
    browser.find_element(By.ID, "search-q").send_keys(word)
    browser.find_element(By.CSS_SELECTOR, "#search .filters summary").click()
    browser.find_element(By.ID, "f-explain").click()
    browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    results = wait_for(browser, "#search-results li")
    assert any(word.lower() in r.text.lower() for r in results)
    assert all(r.find_element(By.CSS_SELECTOR, ".author").text.startswith("@") for r in results)  # handles, not ids
    assert browser.find_elements(By.CSS_SELECTOR, "#search-results .explain")
    assert "hybrid" in browser.find_element(By.ID, "search-status").text

    handle = results[0].find_element(By.CSS_SELECTOR, ".author").text  # "@name": the author filter takes it as shown
    browser.find_element(By.ID, "f-author").send_keys(handle)
    browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and not all(
            r.find_element(By.CSS_SELECTOR, ".author").text == handle for r in wait_for(browser, "#search-results li")):
        time.sleep(0.1)
    assert all(r.find_element(By.CSS_SELECTOR, ".author").text == handle
               for r in browser.find_elements(By.CSS_SELECTOR, "#search-results li"))

    since = browser.find_element(By.ID, "f-since")
    browser.execute_script("arguments[0].value = '2030-01-01'", since)  # no post that late: no results, no error
    browser.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    deadline = time.monotonic() + WAIT_S
    while browser.find_element(By.ID, "search-status").text == "Searching..." and time.monotonic() < deadline:
        time.sleep(0.1)
    assert browser.find_element(By.ID, "search-status").text.startswith("No posts match")


def test_timeline_shows_ads_with_reasons(server, browser):
    from selenium.webdriver.common.by import By

    before = httpx.get(server + "/ui/summary").json()["ads"]["impressions"]
    browser.get(server + "/")
    tab(browser, "timeline")
    ads = wait_for(browser, "#tl-feed .ad")
    posts = browser.find_elements(By.CSS_SELECTOR, "#tl-feed .post:not(.ad)")
    assert len(posts) == 16
    campaigns = [a.get_attribute("data-campaign") for a in ads]
    assert len(set(campaigns)) == len(campaigns), campaigns  # no campaign twice on one page
    first = ads[0]
    assert "sponsored" in first.text.lower() and first.find_element(By.CSS_SELECTOR, "a.cta").get_attribute("href") \
        .startswith(server + "/ads/click?t=")
    first.find_element(By.CSS_SELECTOR, "details summary").click()
    reasons = first.find_element(By.CSS_SELECTOR, "details ul").text
    assert "predicted click rate" in reasons and "per click, second price" in reasons
    after = httpx.get(server + "/ui/summary").json()["ads"]["impressions"]
    assert after >= before + len(ads)  # each ad shown is a logged impression


def test_dashboard_shows_training_index_and_spend(server, browser):
    from selenium.webdriver.common.by import By

    browser.get(server + "/")
    tab(browser, "dashboard")
    cards = wait_for(browser, "#dash-cards .card")
    labels = [c.find_element(By.CSS_SELECTOR, ".label").text.lower() for c in cards]
    assert {"model", "val loss", "search index", "ad spend"} <= set(labels)
    from selenium.webdriver.support.ui import WebDriverWait

    imgs = wait_for(browser, "#dash-runs img")
    assert len(imgs) == 2  # pretraining and chat fine-tuning, each with its loss.png
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    WebDriverWait(browser, WAIT_S).until(lambda d: all(d.execute_script(loaded, img) for img in imgs))
    assert len(browser.find_elements(By.CSS_SELECTOR, "#dash-ads table tr")) > 1


def test_dashboard_lists_every_campaign_a_page_at_a_time_sorted_by_any_column(server, browser):
    from selenium.webdriver.common.by import By

    total = httpx.get(server + "/ui/campaigns?limit=1").json()["total"]
    browser.get(server + "/")
    tab(browser, "dashboard")
    wait_for(browser, "#dash-ads table.campaigns tr[data-id]")
    heads = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#dash-ads th")]
    assert all(h.strip() for h in heads), heads  # every column headed
    assert {"spend ▼", "remaining", "pacing", "impressions", "clicks", "CTR", "predicted CTR"} <= set(heads), heads

    def rows(what: str) -> list[str]:  # read in one script: the table is replaced whole on every page
        return browser.execute_script(
            f"return [...document.querySelectorAll('#dash-ads tr[data-id]')].map(r => {what});")

    def ids() -> list[str]:
        return rows("r.dataset.id")

    def wait_change(before: list[str]) -> list[str]:
        deadline = time.monotonic() + WAIT_S
        while ids() == before and time.monotonic() < deadline:
            time.sleep(0.05)
        return ids()

    from selenium.webdriver.support.ui import Select

    before = ids()
    Select(browser.find_element(By.CSS_SELECTOR, "#dash-ads .pager select")).select_by_value("10")
    seen = wait_change(before)
    assert len(seen) == 10 < total  # more than one page
    while browser.find_elements(By.CSS_SELECTOR, "#dash-ads .pager .next:not([disabled])"):
        before = ids()
        browser.find_element(By.CSS_SELECTOR, "#dash-ads .pager .next").click()
        seen += wait_change(before)
    assert len(seen) == len(set(seen)) == total  # all campaigns, each once
    assert browser.find_element(By.CSS_SELECTOR, "#dash-ads .pager .range").text.endswith(f"of {total}")

    browser.find_element(By.CSS_SELECTOR, "#dash-ads th[data-sort=name]").click()
    wait_change(ids())
    names = rows("r.cells[0].textContent")
    expected = [c["name"] for c in httpx.get(server + "/ui/campaigns?sort=name&order=desc&limit=10").json()["data"]]
    assert [n.removesuffix(" (paused)") for n in names] == expected
