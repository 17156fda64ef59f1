"""The auditors' page in a real browser: Debian's chromium, headless, driven by Selenium through
chromedriver, against a running daemon. An auditor signs in, searches by document id, opens the
packet's journey, switches language and downloads its evidence bundle, which then verifies.

Skipped where chromium and chromedriver are not installed (``make services`` installs them as
root); on CI (``CI`` set) their absence fails instead, so the test cannot silently stop running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path

import aiohttp
import pytest

from lgsp_adapter.audit.bundle import verify_bundle
from tests.agency_server import AgencyServer
from tests.conftest import EXAMPLES
from tests.test_exchange_embedded import (
    AUDITOR_TOKEN,
    COMMUNES,
    DEPARTMENT,
    PROVINCE,
    TOKEN,
    exchange,
    settled,
)

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
DOCUMENT_ID = "000.00.00.H56,2026/11/20,1234/UBND-KSTTHC"


def _browser_or_skip() -> None:
    if Path(CHROMEDRIVER).is_file() and Path(CHROMIUM).is_file():
        return
    reason = (
        "chromium and chromedriver are not installed (apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def browse(base: str, downloads: Path, profile: Path) -> dict[str, str]:
    """What an auditor does on the page; returns what they saw."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.wait import WebDriverWait

    def follow(element: WebElement) -> None:
        """Click and wait until the next page has loaded. The old page is marked and the mark
        must be gone; chromium answers some queries with errors while it swaps documents, so
        those are waited through rather than taken for failures."""
        driver.execute_script("window.lgspOldPage = true;")
        element.click()
        WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return window.lgspOldPage === undefined && document.readyState === 'complete';"
            )
        )

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where chromium's sandbox cannot start
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",  # this machine's network is closed
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    seen: dict[str, str] = {}
    try:
        driver.set_page_load_timeout(30)
        driver.implicitly_wait(5)
        driver.execute_cdp_cmd(
            "Page.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
        )
        driver.get(f"{base}/audit?lang=vi")
        seen["login_url"] = driver.current_url
        driver.find_element(By.ID, "token").send_keys(AUDITOR_TOKEN)
        follow(driver.find_element(By.ID, "sign-in"))
        driver.find_element(By.ID, "document_id").send_keys(DOCUMENT_ID)
        follow(driver.find_element(By.ID, "search-button"))
        seen["results"] = driver.find_element(By.ID, "results").text
        follow(driver.find_element(By.CSS_SELECTOR, "a.packet-link"))
        seen["packet_id"] = driver.find_element(By.ID, "packet-id").text
        seen["timeline_vi"] = driver.find_element(By.ID, "timeline").text
        follow(driver.find_element(By.LINK_TEXT, "English"))
        seen["timeline_en"] = driver.find_element(By.ID, "timeline").text
        driver.find_element(By.ID, "bundle-link").click()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            done = [p for p in downloads.iterdir() if p.suffix == ".json"]
            if done:
                seen["bundle"] = str(done[0])
                break
            time.sleep(0.2)
        driver.get(f"{base}/audit/checkpoints")
        seen["verification"] = driver.find_element(By.ID, "verification").text
    finally:
        driver.quit()
    return seen


@pytest.mark.asyncio
async def test_an_auditor_searches_opens_a_packet_and_downloads_its_bundle(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _browser_or_skip()
    # The page shows the last verification after 3 s; on a loaded CI machine, wait for it.
    monkeypatch.setattr("lgsp_adapter.http.audit_page.PAGE_WAIT_S", 30)
    servers = {code: AgencyServer() for code in (PROVINCE, DEPARTMENT, *COMMUNES)}
    async with exchange(tmp_path, servers) as (url, _):
        body = (EXAMPLES / "edoc-new-thanh-hoa.edxml").read_bytes()
        async with aiohttp.ClientSession() as session:
            answer = await session.post(
                f"{url}/v1/packets",
                data=body,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/xml"},
            )
            assert answer.status == 202
            packet_id = (await answer.json())["packet_id"]
        # Settled as the daemon records it: an agency's 200 comes a moment before the record,
        # and the page must show the deliveries.
        await settled(url, packet_id, timeout_s=20)
        downloads = tmp_path / "downloads"
        downloads.mkdir()
        seen = await asyncio.to_thread(browse, url, downloads, tmp_path / "profile")
    assert "/audit/login" in seen["login_url"]
    assert DOCUMENT_ID.split(",")[0] in seen["results"]
    assert seen["packet_id"] == packet_id
    assert "Đã tiếp nhận" in seen["timeline_vi"]
    assert "Đã giao" in seen["timeline_vi"]
    assert "delivered" in seen["timeline_en"]
    assert "bundle" in seen, "the bundle was not downloaded"
    check = verify_bundle(await asyncio.to_thread(Path(seen["bundle"]).read_bytes))
    assert check.subject == {"packet_id": packet_id}
    assert check.entries >= 7  # received; published and delivered to each of 3 recipients
    assert "The log verifies" in seen["verification"]  # English, as chosen before
