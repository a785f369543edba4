"""The HTML report in headless Chromium (Debian's, driven by Playwright; `make browser-deps`
installs both): no console errors, the headline on top with working links, tables that page,
sort and filter, a screenshot under the test's temp folder."""
import os

import numpy as np
import pytest
from audit_pool import build_lake
from PIL import Image

from soclake.outputs.audit import run_audit, write_report

CHROMIUM = "/usr/bin/chromium"

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - make browser-deps installs it
    sync_playwright = None

pytestmark = pytest.mark.skipif(sync_playwright is None or not os.path.exists(CHROMIUM),
                                reason="needs Playwright and Debian's chromium: run `make browser-deps`")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("browser")
    lake, _ = build_lake(root)
    path, _ = write_report(run_audit(lake, "coco", min_segments=5), str(root / "audit.html"))
    return path


def _table(page, section: str):
    box = page.locator(f"#{section} div.sl-table")
    return box, box.locator("tbody tr"), box.locator("span.sl-info")


def test_report_in_headless_chromium(report, tmp_path):
    errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                   else (errors.append(f"network request {route.request.url}"), route.abort()))
        page.goto(f"file://{report}")
        assert page.locator("body > *").nth(1).get_attribute("id") == "headline"  # right under the title
        assert "113 segments" in page.locator("#headline").inner_text()

        box, rows, info = _table(page, "missing")
        assert info.inner_text() == "rows 1\u201350 of 76, page 1 of 2"
        first = rows.first.inner_text()
        box.locator("button", has_text="next").click()
        assert info.inner_text() == "rows 51\u201376 of 76, page 2 of 2" and rows.count() == 26
        assert rows.first.inner_text() != first

        box, rows, info = _table(page, "pool-categories")
        assert [rows.nth(i).locator("td").first.inner_text() for i in range(5)] == [
            "zebra", "teapot", "cat", "dog", "person"]  # thin first
        box.locator("th", has_text="kept").first.click()  # numbers sort largest first
        assert rows.first.locator("td").first.inner_text() == "person"
        box.locator("th", has_text="kept").first.click()
        assert rows.first.locator("td").first.inner_text() == "zebra"
        box.locator("input").fill("teap")
        assert rows.count() == 1 and info.inner_text().startswith("rows 1\u20131 of 1 (filtered from 5)")

        page.locator("#headline a", has_text="faint alpha").click()
        assert page.evaluate("location.hash") == "#problem-faint_alpha"
        _, rows, _ = _table(page, "problem-faint_alpha")
        assert rows.count() == 1 and rows.first.locator("td").first.inner_text() == "dog"

        page.goto(f"file://{report}")
        shot = tmp_path / "audit.png"
        page.screenshot(path=str(shot))
        browser.close()
    assert errors == []
    with Image.open(shot) as im:
        assert im.size == (1280, 900) and len(np.unique(np.asarray(im.convert("L")))) > 20  # drawn, not blank
