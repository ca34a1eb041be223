"""Chromium for the console's browser tests: Debian's `chromium`, driven by its
`chromium-driver` through Selenium (no browser or driver is downloaded; `.ci/run`
installs both). Headless, with the browser's console log kept, so a test can
see what the page's Content-Security-Policy blocked."""

from __future__ import annotations

import os
import shutil
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import (
    NoSuchElementException,
    StaleElementReferenceException,
    WebDriverException,
)
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from tests.support.waiting import wait_for

T = TypeVar("T")
Browser = webdriver.Chrome
CHROMIUM = os.environ.get("SWITCHBOARD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SWITCHBOARD_CHROMEDRIVER", "/usr/bin/chromedriver")


def chromium(width: int = 1280, height: int = 900) -> Browser:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        message = "chromium and chromium-driver are not installed (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI installs them itself (.ci/run): never skip there
        pytest.skip(message)
    options = Options()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
        f"--window-size={width},{height}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    return driver


def text_of(driver: Browser, css: str = "main") -> str:
    """The element's text; "" while the page is being replaced (or lacks it)."""
    try:
        return str(driver.find_element(By.CSS_SELECTOR, css).text)
    except (StaleElementReferenceException, NoSuchElementException):
        return ""
    except WebDriverException as exc:
        # The same race, as chromedriver reports it when the element was found
        # in the old page and read after the new one replaced it.
        if "does not belong to the document" in str(exc):
            return ""
        raise


def fill(driver: Browser, fields: dict[str, str], form: str = "form") -> None:
    for name, value in fields.items():
        field = driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
        field.clear()
        field.send_keys(value)


def browser_log(driver: Browser) -> list[dict[str, Any]]:
    """The browser's console messages since the last call (and forgets them)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries


def console_errors(driver: Browser) -> list[dict[str, Any]]:
    return [e for e in browser_log(driver) if e.get("level") == "SEVERE"]


def dev_login(driver: Browser, base: str, subject: str, scopes: str) -> None:
    driver.delete_all_cookies()
    driver.get(base + "/ui")
    assert driver.current_url.startswith(base + "/ui/login"), driver.current_url
    fill(driver, {"subject": subject, "scopes": scopes})
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait_for(lambda: driver.current_url == base + "/ui")
