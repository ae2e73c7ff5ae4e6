"""The dashboard in a real headless Chromium, against a real server: choose a user, read their activity
and recommendations, record a view, and see the recommendations move at once."""

import os
import threading
import time
from pathlib import Path

import pytest
import uvicorn

from penchant.serve import Settings, create_app
from penchant.serve.testing import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail("/usr/bin/chromium is missing in CI (make test installs it)")
        pytest.skip("Chromium not installed (apt-get install chromium fonts-wqy-microhei)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def server(transformer_run, tmp_path):
    """A real uvicorn server on a free loopback port, in a thread of this process."""
    settings = Settings(
        run_dir=transformer_run, db_url=f"sqlite:///{tmp_path / 'events.db'}", open_access=True
    )
    port = free_port()
    instance = uvicorn.Server(
        uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)


def test_dashboard_shows_a_user_and_reflects_a_new_event(browser, server, tmp_path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requested, problems = [], []
    page.on("request", lambda r: requested.append(r.url))
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)

    # An item added after training, with a Chinese title (a font must render it), that the user has
    # just looked at: shown in the activity, skipped by the model, which cannot score it.
    page.request.post(f"{server}/items", data={"item_id": "cn-1", "title": "千与千寻"})
    page.request.post(
        f"{server}/events", data={"user_id": "u000", "item_id": "cn-1", "timestamp": time.time() - 60}
    )

    page.goto(server)
    assert "transformer model" in page.locator("#model").inner_text(timeout=15000)
    page.fill("#user-id", "u000")
    page.click("#user-form button[type=submit]")
    page.wait_for_function(
        "document.querySelector('#status').textContent === 'User u000'"
    )  # both sections loaded

    activity = page.locator("#activity-rows tr")
    assert activity.count() == 20
    titles = activity.locator("td.title").all_inner_texts()
    assert titles[0] == "千与千寻" and all(t.startswith("Title ") for t in titles[1:])  # titles, not bare IDs
    recs = page.locator("#recs li")
    assert recs.count() == 10
    top = recs.first.get_attribute("data-item-id")
    assert recs.first.locator(".title").inner_text() == f"Title {int(top[1:])}"

    # Record a view of the top recommendation: the activity shows it first, and since the model
    # learned the cycle, the new top recommendation is the item after it.
    recs.first.locator("button.record").click()
    page.wait_for_function("document.querySelector('#status').textContent.startsWith('Recorded a view')")
    assert activity.first.locator("td.title").inner_text() == f"Title {int(top[1:])}"
    assert page.locator("#recs li").first.get_attribute("data-item-id") == f"m{(int(top[1:]) + 1) % 20:02d}"

    # Everything came from this server: no CDN, no other host.
    assert requested and all(url.startswith(server) for url in requested)
    assert problems == []
    page.screenshot(path=str(tmp_path / "dashboard.png"), full_page=True)


def test_dashboard_reports_errors_in_words(browser, server):
    page = browser.new_page()
    page.goto(f"{server}/#user=" + "x" * 300)  # longer than a user ID may be
    page.wait_for_function("document.querySelector('#status').classList.contains('error')")
    assert page.locator("#status").inner_text().startswith("user_id: ")
