"""The dashboard in a real headless Chromium (Debian's ``chromium`` and ``chromium-driver``).

Run by ``make test-browser`` (not part of the default run: it needs a browser). The screenshot
goes to ``build/test-artifacts/dashboard.png``.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from roost import SyncClient
from tests.broker.gateway.conftest import WebBroker

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).resolve().parents[3] / "build" / "test-artifacts"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1200,900",
)


def _find(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"{name} is not installed (apt-get install chromium chromium-driver)")
    return path


@pytest.fixture
def browser() -> Iterator[webdriver.Chrome]:
    """A headless Chromium with a fresh profile, driven by chromedriver."""
    profile = tempfile.mkdtemp(prefix="roost-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = _find("chromium")
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(options=options, service=Service(_find("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _wait(driver: webdriver.Chrome, timeout: float, check: Callable[[Any], Any]) -> Any:
    return WebDriverWait(driver, timeout, poll_frequency=0.02).until(check)


def _cell(driver: webdriver.Chrome, css: str) -> str | None:
    found = driver.find_elements(By.CSS_SELECTOR, css)
    return found[0].text if found else None


def test_dashboard_follows_the_broker(web_broker: WebBroker, browser: webdriver.Chrome) -> None:
    """A state change shows on the page within 1 s; an event matching a pattern picked in the
    event panel shows; a lease grant appears in the lease table; the page's screenshot is
    saved."""
    browser.get(web_broker.url("/"))
    _wait(browser, 10, lambda d: _cell(d, "#status") == "live")
    value_css = 'tr[data-path="/lab/temp"] td.value'
    with SyncClient(server=web_broker.thread.address) as native:
        native.state_register("/lab/temp")
        native.state_changed("/lab/temp", 20.5)
        calls: list[tuple[Any, ...]] = []

        def reset(*args: Any) -> str:
            calls.append(args)
            return "done"

        native.action_register("/lab/reset", reset)
        _wait(browser, 10, lambda d: _cell(d, value_css) == "20.5")

        started = time.monotonic()
        native.state_changed("/lab/temp", {"celsius": 21})
        _wait(browser, 1.0, lambda d: _cell(d, value_css) == '{"celsius":21}')
        assert time.monotonic() - started < 1.0

        # Call an action from the page: the prompt takes the arguments as JSON.
        _wait(
            browser,
            5,
            lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-path="/lab/reset"] button'),
        )
        browser.find_element(By.CSS_SELECTOR, 'tr[data-path="/lab/reset"] button').click()
        prompt = _wait(browser, 5, lambda d: d.switch_to.alert)
        prompt.send_keys('[7, "x"]')
        prompt.accept()
        _wait(browser, 5, lambda d: _cell(d, 'tr[data-path="/lab/reset"] td.value') == '"done"')
        assert calls == [(7, "x")]

        # The event panel takes a pattern: a subtree listen, events created later included.
        browser.find_element(By.CSS_SELECTOR, "#listen-path").send_keys("/lab/**")
        browser.find_element(By.CSS_SELECTOR, "#listen-form button").click()
        router = web_broker.thread.broker.router
        web_broker.thread.wait_until(lambda: router.subtrees.count == 1)
        native.event_register("/lab/door/bell")({"ring": 2})
        _wait(browser, 5, lambda d: "/lab/door/bell" in (_cell(d, "#events") or ""))
        assert '{"ring":2}' in (_cell(browser, "#events") or "")

        lease = native.lease_acquire("lab/arm", name="alice")
        row = 'tr[data-resource="lab/arm"] td.holders'
        _wait(browser, 5, lambda d: _cell(d, row) == "alice")
        _wait(browser, 5, lambda d: "granted lab/arm alice" in (_cell(d, "#lease-events") or ""))
        _wait(browser, 5, lambda d: (_cell(d, "#fig-leases") or "").startswith("1 held"))
        # The gateway's own two (HTTP requests and the lease watcher), the page, native.
        assert _cell(browser, "#fig-connections") == "4"
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shot = ARTIFACTS / "dashboard.png"
        assert browser.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        lease.return_lease()
        _wait(browser, 5, lambda d: not d.find_elements(By.CSS_SELECTOR, row))


LOGIN_CONFIG = """
[users]
owner = "{hash}"
alice = "{hash}"

[[acl]]
user = "owner"
paths = ["/**"]
allow = ["all"]

[[acl]]
user = "alice"
paths = ["/lab/**"]
allow = ["all"]
"""


def test_dashboard_logs_in(browser: webdriver.Chrome) -> None:
    """Under access rules the page logs in from its form: as alice it shows /lab, which the
    anonymous page did not, and never /private."""
    from roost.broker.listeners import Listener
    from roost.protocol.values import Value
    from tests.broker.auth.authkit import PASSWORD, broker, settings

    auth = settings(LOGIN_CONFIG)
    with broker(auth, listeners=[Listener("127.0.0.1", 0)], http_port=0) as handle:
        gateway = handle.broker.gateway
        assert gateway is not None
        router = handle.broker.router

        def publish() -> None:
            now = handle.loop.time()
            router.publish_state("/lab/temp", Value.of(21), now)
            router.publish_state("/private/code", Value.of(1234), now)

        handle.call(publish)
        browser.get(f"http://127.0.0.1:{gateway.port}/")
        _wait(browser, 10, lambda d: _cell(d, "#status") == "live")
        lab = 'tr[data-path="/lab/temp"] td.value'
        # The anonymous page's walk has listed the tree: /meta shows, /lab does not.
        _wait(
            browser, 10, lambda d: d.find_elements(By.CSS_SELECTOR, 'tr[data-path="/meta/broker"]')
        )
        assert not browser.find_elements(By.CSS_SELECTOR, lab)
        browser.find_element(By.CSS_SELECTOR, "#login-open").click()
        browser.find_element(By.CSS_SELECTOR, "#login-user").send_keys("alice")
        browser.find_element(By.CSS_SELECTOR, "#login-password").send_keys(PASSWORD)
        browser.find_element(By.CSS_SELECTOR, "#login-form button").click()
        _wait(browser, 10, lambda d: _cell(d, "#status") == "live as alice")
        _wait(browser, 10, lambda d: _cell(d, lab) == "21")
        assert not browser.find_elements(By.CSS_SELECTOR, 'tr[data-path="/private/code"]')
