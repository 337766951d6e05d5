"""Headless Chromium (Debian's `chromium` and `chromium-driver`) driven by Selenium, with axe-core
(axe-selenium-python) for the accessibility check and a screenshot helper.

`browser()` starts one Chromium; it fails (SELFCARE_REQUIRE_PEERS=1) or skips when Chromium,
chromedriver or Selenium is missing. Window sizes are the two the docs show: a phone (390×844) and
a laptop (1280×800).
"""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import peers

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PHONE = (390, 844)
LAPTOP = (1280, 800)
SIZES = {"phone": PHONE, "laptop": LAPTOP}
BLOCKING = ("serious", "critical")  # axe-core impacts a page may not have


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver; scripts/install-deps does)"
    try:
        import axe_selenium_python  # noqa: F401
        import selenium  # noqa: F401
    except ImportError as error:
        return f"{error.name} is missing (pip install selenium axe-selenium-python)"
    return None


def require() -> None:
    why = missing()
    if why is None:
        return
    if peers.required():
        pytest.fail(f"Chromium is required (SELFCARE_REQUIRE_PEERS=1): {why}")
    pytest.skip(why)


@contextmanager
def browser(size: tuple[int, int] = PHONE):
    require()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--no-first-run", "--disable-extensions", f"--window-size={size[0]},{size[1]}"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def resize(driver, size: tuple[int, int]) -> None:
    """The viewport (not the window) at `size`: headless windows have no chrome, but say so exactly."""
    driver.set_window_size(*size)
    width, height = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(size[0] * 2 - width, size[1] * 2 - height)


def screenshot(driver, directory: Path, name: str) -> list[Path]:
    """The page at each of SIZES as `<name>-<size>.png`, viewport-sized (what a screen of that size
    shows before scrolling: chromedriver's screenshot, not the full height); the window is left a phone."""
    directory.mkdir(parents=True, exist_ok=True)
    saved = []
    for label, size in SIZES.items():
        resize(driver, size)
        path = directory / f"{name}-{label}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    resize(driver, PHONE)
    return saved


# axe-selenium-python 2.1.6 ships axe-core 3.1 (2018), whose `autocomplete-valid` rule predates the
# HTML standard's `one-time-code` token (what lets a phone offer the code from the SMS) and calls it
# a serious violation. Teach it the token; everything else in the rule stays as it is.
KNOWN_AUTOCOMPLETE = ("one-time-code",)
_TEACH_AXE = """
const terms = axe.commons.text.autocomplete.standaloneTerms;
for (const term of arguments[0]) { if (!terms.includes(term)) terms.push(term); }
return terms.includes(arguments[0][0]);
"""


def serious_violations(driver) -> list[dict]:
    """axe-core's violations of impact serious or critical on the current page."""
    from axe_selenium_python import Axe

    axe = Axe(driver)
    axe.inject()
    assert driver.execute_script(_TEACH_AXE, list(KNOWN_AUTOCOMPLETE)), "axe-core's autocomplete terms moved"
    results = axe.run()
    return [v for v in results["violations"] if v.get("impact") in BLOCKING]


def describe(violations: list[dict]) -> str:
    return "; ".join(f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
                     for v in violations)


def screenshot_dir(default: Path) -> Path:
    """$SELFCARE_SCREENSHOTS, else `default` (the run's own directory)."""
    return Path(os.environ.get("SELFCARE_SCREENSHOTS") or default)
