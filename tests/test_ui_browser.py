"""The web page in a real headless Chromium against a real server over a tiny demo workspace.

The page's checks run at a desktop width and a phone's (1400 and 420 px): at both,
the header (every tab and the key box) stays on screen and nothing scrolls
sideways. Every wait is an explicit wait for what the page shows; no sleeps. The
routes the page needs are checked over HTTP too (those run without a browser).
"""

from __future__ import annotations

import shutil

import httpx
import pytest
from test_demo_fixtures import build_tiny
from test_engine_fixtures import live_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
WAIT_S = 60
WIDTHS = [1400, 420]
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1400,900",
]
NONSENSE = "zqxjkvwpf"  # a word in no post


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui") / "workspace"
    build_tiny(root)
    with live_server(root, admin_key="test-admin-key") as (url, _):
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not (CHROMIUM and CHROMEDRIVER):
        pytest.skip(
            "no headless browser: install Debian's chromium and chromium-driver "
            "(apt-get install chromium chromium-driver)"
        )
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


@pytest.fixture(params=WIDTHS, ids=lambda w: f"{w}px")
def width(request) -> int:
    return request.param


def until(driver, check, timeout: float = WAIT_S):
    """Wait until ``check(driver)`` is truthy (a selenium exception counts as not yet) and return it."""
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, ignored_exceptions=[StaleElementReferenceException]).until(check)


def wait_for(driver, css: str, timeout: float = WAIT_S):
    from selenium.webdriver.common.by import By

    return until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, css), timeout)


def open_page(driver, server: str, width: int, path: str = "/") -> None:
    """A fresh load of ``path`` at ``width`` px; the console log holds only this page's messages."""
    driver.set_window_size(width, 900)
    driver.get("about:blank")  # a fresh document: "/#tab" after "/" would only change the fragment
    driver.get_log("browser")
    driver.get(server + path)
    assert driver.execute_script("return innerWidth") == width


def tab(driver, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.CSS_SELECTOR, f"#tabs [data-tab={name}]").click()


def submit_search(driver) -> None:
    """Submit the search form and wait for its answer (the status leaves "Searching...")."""
    from selenium.webdriver.common.by import By

    driver.execute_script("document.getElementById('search-status').textContent = ''")
    driver.find_element(By.CSS_SELECTOR, "#search-form button[type=submit]").click()
    until(driver, lambda d: d.find_element(By.ID, "search-status").text not in ("", "Searching..."))


def texts(driver, css: str) -> list[str]:
    """The text of every element ``css`` selects, read in one script (one round trip, not one per element)."""
    return driver.execute_script(f"return [...document.querySelectorAll({css!r})].map(e => e.textContent);")


def resources(driver) -> list[str]:
    """The page's address and every resource it loaded (the tests assert all came from the server)."""
    return driver.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name).concat([location.href]);"
    )


def console_errors(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def assert_fits(driver) -> None:
    """Nothing scrolls sideways, and every tab and the key box are on screen."""
    width, scroll = driver.execute_script("return [innerWidth, document.documentElement.scrollWidth]")
    assert scroll <= width, f"the page is {scroll} px wide in a {width} px window"
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('#tabs button'), document.getElementById('api-key')]"
        ".map(e => { const r = e.getBoundingClientRect(); return [e.textContent || e.id, r.left, r.right, r.width]; })"
    )
    for name, left, right, w in boxes:
        assert w > 0 and left >= 0 and right <= width, (name, left, right, width)


# ---- over HTTP ---------------------------------------------------------------------------------


def test_timeline_pages_through_every_post_with_a_cursor(server):
    live = httpx.get(server + "/ui/summary").json()["index"]["live_posts"]
    seen, cursor = [], None
    while True:
        page = httpx.get(server + "/timeline", params={"n": 100, **({"cursor": cursor} if cursor else {})}).json()
        seen += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len({p["id"] for p in seen}) == live  # every post once
    assert [p["created_at"] for p in seen] == sorted((p["created_at"] for p in seen), reverse=True)
    first = httpx.get(server + "/timeline", params={"n": 30}).json()["data"]
    assert [p["id"] for p in first] == [p["id"] for p in seen[:30]]

    author = httpx.get(server + "/ui/users", params={"n": 1}).json()["data"][0]
    by_id = httpx.get(server + "/timeline", params={"user_id": author["id"], "n": 2}).json()
    by_handle = httpx.get(server + "/timeline", params={"user_id": "@" + author["username"], "n": 2}).json()
    assert by_id["data"] == by_handle["data"] and {p["author"] for p in by_id["data"]} == {author["id"]}
    rest = httpx.get(
        server + "/timeline", params={"user_id": author["id"], "n": 100, "cursor": by_id["next_cursor"]}
    ).json()
    assert len(by_id["data"]) + len(rest["data"]) == author["posts"] and rest["next_cursor"] is None

    bad = ["abc", "99999999999", "9" * 19, "\u0663", "-1", ""]  # no post, past int64, an Arabic-Indic 3, ...
    for params, status, param in [({"cursor": c}, 400, "cursor") for c in bad] + [
        ({"user_id": "@nobody-at-all"}, 404, "user_id")
    ]:
        r = httpx.get(server + "/timeline", params=params)
        assert r.status_code == status and r.json()["error"]["param"] == param, r.text


def test_favicon_docs_files_and_the_served_models_run(server):
    icon = httpx.get(server + "/favicon.ico")
    assert icon.status_code == 200 and icon.content[:4] == b"\x00\x00\x01\x00"  # an ICO file
    assert icon.headers["content-type"] == "image/vnd.microsoft.icon"
    docs = httpx.get(server + "/docs")
    assert docs.status_code == 200 and "/static/docs/swagger-ui-bundle.js" in docs.text and "cdn" not in docs.text
    for name in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert httpx.get(f"{server}/static/docs/{name}").status_code == 200
    for bad in ("/static/docs/index.html", "/static/docs/..%2F__init__.py", "/redoc"):
        assert httpx.get(server + bad).status_code == 404, bad
    model = httpx.get(server + "/ui/summary").json()["model"]
    assert (model["stage"], model["run"]) == ("sft", "sft")  # the tiny demo serves its SFT model


def test_served_run_names_the_stage_and_run_of_each_kind_of_model(tmp_path):
    from roost.server.ui import served_run

    ckpt = tmp_path / "checkpoints" / "sft" / "step-000005"
    ckpt.mkdir(parents=True)
    (ckpt / "meta.json").write_text('{"run": "sft"}')
    assert served_run({"source": "roost sft"}) == ("sft", "sft")
    assert served_run({"source": "roost train"}) == ("pretraining", "pretrain")
    assert served_run({"source": f"roost export {ckpt}"}) == ("sft", "sft")  # the checkpoint's own run
    assert served_run({"source": f"roost export {tmp_path / 'gone'}"}) == ("exported", None)
    assert served_run({"source": "roost import some/llama"}) == ("imported", None)


# ---- in the browser ----------------------------------------------------------------------------


def test_page_loads_with_its_own_assets_only_and_fits(server, browser, width):
    from selenium.webdriver.common.by import By

    open_page(browser, server, width)
    assert browser.title == "roost"
    assert [b.text for b in browser.find_elements(By.CSS_SELECTOR, "#tabs button")] == [
        "Chat",
        "Search",
        "Timeline",
        "Dashboard",
    ]
    assert browser.find_element(By.CSS_SELECTOR, "link[rel=icon]").get_attribute("href") == server + "/favicon.ico"
    assert all(s.startswith(server) for s in resources(browser))  # nothing from the internet
    assert console_errors(browser) == []
    assert_fits(browser)


def test_api_docs_render_swagger_ui_from_local_files(server, browser, width):
    from selenium.webdriver.common.by import By

    open_page(browser, server, width, "/docs")
    paths = until(browser, lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")])
    assert {"/v1/chat/completions", "/search", "/timeline"} <= {p.replace("\u200b", "") for p in paths}
    assert "roost" in browser.find_element(By.CSS_SELECTOR, ".swagger-ui .info .title").text
    assert all(s.startswith(server) for s in resources(browser))
    assert console_errors(browser) == []
    assert browser.execute_script("return document.documentElement.scrollWidth <= innerWidth")


def test_chat_streams_a_reply(server, browser):
    from selenium.webdriver.common.by import By

    open_page(browser, server, 1400)
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


def test_search_returns_results_with_explanations_and_filters_by_handle(server, browser, width):
    from selenium.webdriver.common.by import By

    word = next(w for w in httpx.get(server + "/timeline?n=1").json()["data"][0]["text"].split() if w.isalpha())
    open_page(browser, server, width, "/#search")
    browser.find_element(By.ID, "search-q").send_keys(word)
    browser.find_element(By.CSS_SELECTOR, "#search .filters summary").click()
    browser.find_element(By.ID, "f-explain").click()
    submit_search(browser)
    assert any(word.lower() in t.lower() for t in texts(browser, "#search-results li .text"))
    authors = texts(browser, "#search-results li .author")
    assert authors and all(a.startswith("@") for a in authors)  # handles, not ids
    assert len(texts(browser, "#search-results .explain")) == len(authors)
    assert "hybrid" in browser.find_element(By.ID, "search-status").text
    assert not browser.find_element(By.ID, "search-empty").is_displayed()
    assert_fits(browser)

    browser.find_element(By.ID, "f-author").send_keys(authors[0])  # "@name": the author filter takes it as shown
    submit_search(browser)
    mine = texts(browser, "#search-results li .author")
    assert mine and set(mine) == {authors[0]}


def test_search_shows_a_no_match_state(server, browser, width):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    open_page(browser, server, width, "/#search")
    empty = browser.find_element(By.ID, "search-empty")
    browser.find_element(By.ID, "search-q").send_keys(NONSENSE)
    Select(browser.find_element(By.ID, "search-mode")).select_by_value("lexical")
    submit_search(browser)
    assert empty.is_displayed() and f"No posts match “{NONSENSE}”" in empty.text and "lexical" in empty.text
    assert texts(browser, "#search-results li") == []
    assert_fits(browser)

    # hybrid: the page shows what the server answered (the server's calibrated threshold decides)
    Select(browser.find_element(By.ID, "search-mode")).select_by_value("hybrid")
    submit_search(browser)
    served = httpx.get(server + "/search", params={"q": NONSENSE, "mode": "hybrid"}).json()["data"]
    assert len(texts(browser, "#search-results li")) == len(served)
    assert empty.is_displayed() == (not served)

    browser.find_element(By.CSS_SELECTOR, "#search .filters summary").click()
    since = browser.find_element(By.ID, "f-since")
    browser.execute_script("arguments[0].value = '2030-01-01'", since)  # no post that late: no results, no error
    submit_search(browser)
    assert empty.is_displayed() and "under these filters" in empty.text and "loosen the filters" in empty.text
    assert "error" not in browser.find_element(By.ID, "search-status").get_attribute("class")


def test_timeline_shows_ads_with_reasons_and_loads_more(server, browser, width):
    from selenium.webdriver.common.by import By

    def post_ids() -> list[str]:
        return browser.execute_script(
            "return [...document.querySelectorAll('#tl-feed .post:not(.ad)')].map(p => p.dataset.id);"
        )

    def campaigns() -> list[str]:
        return browser.execute_script(
            "return [...document.querySelectorAll('#tl-feed .ad')].map(a => a.dataset.campaign);"
        )

    before = httpx.get(server + "/ui/summary").json()["ads"]["impressions"]
    open_page(browser, server, width, "/#timeline")
    until(browser, lambda d: len(post_ids()) == 16 and d.find_element(By.ID, "tl-more").is_displayed())
    shown = campaigns()
    assert shown and len(set(shown)) == len(shown), shown  # no campaign twice on one page
    first = browser.find_element(By.CSS_SELECTOR, "#tl-feed .ad")
    assert "sponsored" in first.text.lower() and first.find_element(By.CSS_SELECTOR, "a.cta").get_attribute(
        "href"
    ).startswith(server + "/ads/click?t=")
    first.find_element(By.CSS_SELECTOR, "details summary").click()
    reasons = first.find_element(By.CSS_SELECTOR, "details ul").text
    assert "predicted click rate" in reasons and "per click, second price" in reasons
    after = httpx.get(server + "/ui/summary").json()["ads"]["impressions"]
    assert after >= before + len(shown)  # each ad shown is a logged impression

    browser.find_element(By.ID, "tl-more").click()
    until(browser, lambda d: len(post_ids()) == 32 and not d.find_element(By.ID, "tl-more").get_attribute("disabled"))
    expected = [p["id"] for p in httpx.get(server + "/timeline", params={"n": 32}).json()["data"]]
    assert post_ids() == expected  # the next 16, in order, none twice
    shown = campaigns()
    assert len(set(shown)) == len(shown), shown  # nor across pages
    assert browser.find_element(By.ID, "tl-status").text.startswith("32 posts")
    assert_fits(browser)


def test_dashboard_shows_the_served_models_val_loss_training_index_and_spend(server, browser, width):
    from selenium.webdriver.common.by import By

    summary = httpx.get(server + "/ui/summary").json()
    sft = next(r for r in summary["runs"] if r["name"] == "sft")
    open_page(browser, server, width, "/#dashboard")
    cards = wait_for(browser, "#dash-cards .card")
    labels = {c.find_element(By.CSS_SELECTOR, ".label").text.lower(): c for c in cards}
    assert {"model", "sft val loss", "search index", "ad spend"} <= set(labels), set(labels)
    loss = labels["sft val loss"]  # the served model is the SFT one: its own loss, not pretraining's
    assert loss.get_attribute("data-run") == "sft" and "run sft" in loss.text
    assert loss.find_element(By.CSS_SELECTOR, ".value").text == f"{sft['val_loss']:.3f}"

    imgs = wait_for(browser, "#dash-runs img")
    assert len(imgs) == 2  # pretraining and chat fine-tuning, each with its loss.png
    loaded = "return arguments[0].complete && arguments[0].naturalWidth > 0"
    until(browser, lambda d: all(d.execute_script(loaded, img) for img in imgs))
    wait_for(browser, "#dash-ads table.campaigns tr[data-id]")
    heads = texts(browser, "#dash-ads th")
    assert len(heads) == 11 and all(h.strip() for h in heads), heads  # every column headed
    assert_fits(browser)  # the campaign table scrolls inside its box, not the page


def test_dashboard_lists_every_campaign_a_page_at_a_time_sorted_by_any_column(server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    total = httpx.get(server + "/ui/campaigns?limit=1").json()["total"]
    open_page(browser, server, 1400, "/#dashboard")
    wait_for(browser, "#dash-ads table.campaigns tr[data-id]")
    heads = texts(browser, "#dash-ads th")
    assert {"spend ▼", "remaining", "pacing", "impressions", "clicks", "CTR", "predicted CTR"} <= set(heads), heads

    def rows(what: str) -> list[str]:  # read in one script: the table is replaced whole on every page
        return browser.execute_script(
            f"return [...document.querySelectorAll('#dash-ads tr[data-id]')].map(r => {what});"
        )

    def ids() -> list[str]:
        return rows("r.dataset.id")

    def wait_change(before: list[str]) -> list[str]:
        return until(browser, lambda d: (now := ids()) != before and now)

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

    before = ids()
    browser.find_element(By.CSS_SELECTOR, "#dash-ads th[data-sort=name]").click()
    wait_change(before)
    names = rows("r.cells[0].textContent")
    expected = [c["name"] for c in httpx.get(server + "/ui/campaigns?sort=name&order=desc&limit=10").json()["data"]]
    assert [n.removesuffix(" (paused)") for n in names] == expected
