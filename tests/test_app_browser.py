"""soclake app in a real browser: Debian's headless Chromium driven by Playwright (no browser
download; `make browser-deps` installs it), against the app served by uvicorn on 127.0.0.1.
Every page loads with no console error and is screenshotted under the test's temp folder; the
gallery shows as many thumbnails as SQL counts; toggling an instance changes the canvas only
inside its mask (decoded here from KEY.pan.png); hovering an expression highlights exactly its
targets; the console shows the rows `soclake sql` prints and refuses files, COPY and ATTACH."""
from __future__ import annotations

import base64
import glob
import io
import json
import os
import shutil
import socket
import tarfile
import threading
import time

import numpy as np
import pytest
import uvicorn
from PIL import Image
from playwright.sync_api import sync_playwright

from soclake.app import create_app
from soclake.cli import main

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("SOCLAKE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
RELIT = "appj-relit"


@pytest.fixture(scope="module")
def base_url(app_lake):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(create_app(app_lake.root), log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(400):
        if server.started:
            break
        time.sleep(0.05)
    assert server.started, "the app did not start"
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    server.should_exit = True
    thread.join(20)
    sock.close()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"no Chromium at {CHROMIUM}: run `make browser-deps` (Debian: apt-get install chromium), "
                    "or set SOCLAKE_CHROMIUM to its path")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


class Page:
    """A fresh browser page that records console errors, uncaught errors and failed requests."""

    def __init__(self, browser, base_url: str):
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.base, self.problems = base_url, []
        self.page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}")
                     if m.type in ("error", "warning") else None)
        self.page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        self.page.on("requestfailed", lambda r: self.problems.append(f"request failed: {r.url}"))
        self.page.on("response", lambda r: self.problems.append(f"{r.status} for {r.url}") if r.status >= 400 else None)

    def open(self, path: str, ready: str) -> None:
        self.page.goto(self.base + path)
        self.page.wait_for_selector(ready, timeout=60_000)
        self.page.wait_for_load_state("networkidle")

    def error_text(self) -> str:
        box = self.page.locator("#error")
        return box.text_content() if box.is_visible() else ""

    def canvas(self, selector: str = "#composite") -> np.ndarray:
        url = self.page.evaluate(f"() => document.querySelector('{selector}').toDataURL('image/png')")
        return np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))).convert("RGB")).astype(int)


@pytest.fixture
def page(browser, base_url):
    p = Page(browser, base_url)
    yield p
    p.context.close()


def runs(app_lake) -> dict[str, str]:
    return {r["job"]: r["fingerprint"] for r in app_lake.query("SELECT job, fingerprint FROM job_status").to_pylist()}


def sample_members(app_lake, job: str, key: str) -> dict[str, bytes]:
    fp = runs(app_lake)[job]
    for path in sorted(glob.glob(os.path.join(app_lake.root, "jobs", job, fp, "shards", "*.tar"))):
        with tarfile.open(path) as tar:
            found = {m.name.partition(".")[2]: tar.extractfile(m).read() for m in tar if m.name.startswith(key + ".")}
            if found:
                return found
    raise AssertionError(f"no sample {key} in {job}")


def panoptic(members: dict[str, bytes]) -> np.ndarray:
    pan = np.asarray(Image.open(io.BytesIO(members["pan.png"])).convert("RGB")).astype(np.int64)
    return pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]


def test_every_page_loads_without_console_errors(page, app_lake, tmp_path):
    fps = runs(app_lake)
    segment = app_lake.query("SELECT segment_id FROM segments WHERE source = 'sample' ORDER BY 1 LIMIT 1").column(0)[0].as_py()
    pages = {"pool": ("/pool", "#gallery figure img"),
             "pool-filtered": ("/pool?view=filter_4&colour=red&sort=largest", "#gallery[data-done]"),
             "segment": (f"/segments/{segment}", "#levels img"),
             "console": ("/console", "#console"),
             "jobs": ("/jobs", "#lineage"),
             "run": (f"/jobs/appj/{fps['appj']}", "#failures"),
             "images": ("/images", "#runs figure"),
             "grid": (f"/images/{RELIT}/{fps[RELIT]}", "#samples figure img"),
             "sample": (f"/images/{RELIT}/{fps[RELIT]}/000000000", "body[data-ready]"),
             "sample-transparent": (f"/images/appt/{fps['appt']}/000000000", "body[data-ready]"),
             "sample-relit-scene": (f"/images/appt-relit/{fps['appt-relit']}/000000001", "body[data-ready]"),
             "grid-relit-scene": (f"/images/appt-relit/{fps['appt-relit']}", "#samples figure img"),
             "audit": ("/audit?vocab=coco&job=appj", "#pool-categories")}
    shots = tmp_path / "screenshots"
    shots.mkdir()
    for name, (path, ready) in pages.items():
        page.problems.clear()
        page.open(path, ready)
        assert page.error_text() == "", (name, page.error_text())
        assert page.problems == [], (name, page.problems)
        broken = page.page.evaluate("() => Array.from(document.images).filter(i => i.complete && !i.naturalWidth).length")
        assert broken == 0, name
        page.page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
    assert sorted(os.listdir(shots)) == sorted(f"{n}.png" for n in pages)
    assert all(os.path.getsize(shots / f"{n}.png") > 10_000 for n in pages)


@pytest.mark.parametrize("query, sql", [
    ("view=segments", "SELECT count(*) FROM segments"),
    ("colour=red", "SELECT count(*) FROM filter_0 WHERE dominant_color = 'red'"),
    ("view=filter_4&min_side=100&distractor=exclude", "SELECT count(*) FROM filter_4 WHERE greatest(width, height) >= 100"),
    ("category=ball&source=generated", "SELECT count(*) FROM filter_0 WHERE category = 'ball' AND source = 'generated'"),
])
def test_gallery_shows_as_many_thumbnails_as_sql_counts(page, app_lake, query, sql):
    want = app_lake.query(sql).column(0)[0].as_py()
    page.open(f"/pool?{query}", "#count[data-count]")
    for _ in range(50):  # infinite scroll: the next page loads as the end of the gallery comes into view
        if page.page.locator("#gallery[data-done]").count():
            break
        page.page.mouse.wheel(0, 20_000)
        page.page.wait_for_timeout(150)
    page.page.wait_for_selector("#gallery[data-done]")
    page.page.wait_for_load_state("networkidle")
    assert page.page.locator("#gallery figure").count() == want
    assert int(page.page.locator("#count").get_attribute("data-count")) == want
    ids = page.page.eval_on_selector_all("#gallery figure", "fs => fs.map(f => f.dataset.segment)")
    assert len(set(ids)) == want
    assert page.page.evaluate("() => Array.from(document.images).filter(i => i.complete && !i.naturalWidth).length") == 0
    sources = page.page.eval_on_selector_all("#gallery img", "is => is.map(i => i.src)")  # lazy: not all loaded yet
    assert len(sources) == want and all(page.context.request.get(src).headers["content-type"] == "image/webp"
                                        for src in sources)
    assert page.problems == []


def open_sample(page, app_lake, boxes: bool = False, labels: bool = False, masks: bool = True) -> None:
    page.open(f"/images/{RELIT}/{runs(app_lake)[RELIT]}/000000000", "body[data-ready]")
    for layer, on in (("box", boxes), ("label", labels), ("mask", masks)):
        box = page.page.locator(f"#all-{layer}")
        if box.is_checked() != on:
            box.click()


def test_toggling_an_instance_changes_the_canvas_inside_its_mask_only(page, app_lake):
    members = sample_members(app_lake, RELIT, "000000000")
    ids = panoptic(members)
    instances = json.loads(members["json"])["instances"]
    assert len(instances) >= 2
    open_sample(page, app_lake)
    for inst in sorted(instances, key=lambda i: -i["area"])[:3]:
        mask = ids == inst["panoptic_id"]
        before = page.canvas()
        page.page.locator(f"input[data-layer='mask'][data-pid='{inst['panoptic_id']}']").click()
        after = page.canvas()
        changed = (before != after).any(axis=2)
        assert changed.any() and not (changed & ~mask).any(), inst["panoptic_id"]
        assert changed.sum() >= 0.9 * mask.sum()
        page.page.locator(f"input[data-layer='mask'][data-pid='{inst['panoptic_id']}']").click()
        assert (page.canvas() == before).all()
    # with boxes and labels drawn too, a mask toggle still stays inside its mask
    page.page.locator("#all-box").click()
    page.page.locator("#all-label").click()
    inst = instances[-1]
    before = page.canvas()
    page.page.locator(f"input[data-layer='mask'][data-pid='{inst['panoptic_id']}']").click()
    changed = (before != page.canvas()).any(axis=2)
    assert changed.any() and not (changed & (ids != inst["panoptic_id"])).any()
    # all masks off: only labelled pixels change
    before = page.canvas()
    page.page.locator("#all-mask").click()
    changed = (before != page.canvas()).any(axis=2)
    labelled = np.isin(ids, [i["panoptic_id"] for i in instances])
    assert changed.any() and not (changed & ~labelled).any()
    assert page.problems == []


def test_hovering_an_expression_highlights_exactly_its_targets(page, app_lake):
    members = sample_members(app_lake, "appj-refexp", "000000000")
    ids = panoptic(members)
    pid_of = {i["ann_id"]: i["panoptic_id"] for i in json.loads(members["json"])["instances"]}
    expressions = json.loads(members["refexp.json"])["expressions"]
    multi = next(e for e in expressions if len(e["targets"]) >= 2)
    single = next(e for e in expressions if len(e["targets"]) == 1)
    none = next(e for e in expressions if not e["targets"])
    open_sample(page, app_lake, masks=False)
    plain = page.canvas()
    for e in (multi, single):
        item = page.page.locator(f"#refexp li[data-targets='{','.join(map(str, e['targets']))}']", has_text=e["text"]).first
        item.hover()
        lit = (plain != page.canvas()).any(axis=2)
        targets = [pid_of[a] for a in e["targets"]]
        assert not (lit & ~np.isin(ids, targets)).any(), e["text"]
        for pid in targets:
            assert lit[ids == pid].mean() > 0.95, (e["text"], pid)
        rows = page.page.eval_on_selector_all("#instances tr.hl", "rs => rs.map(r => Number(r.dataset.pid))")
        assert sorted(rows) == sorted(targets)
        page.page.mouse.move(1, 1)
        assert (page.canvas() == plain).all()
    item = page.page.locator("#refexp li[data-targets='']", has_text=none["text"]).first
    item.hover()
    assert (page.canvas() == plain).all()
    assert page.page.locator("#instances tr.hl").count() == 0
    assert "no target" in item.text_content()
    # a click keeps the highlight after the pointer leaves; a second click clears it
    item = page.page.locator(f"#refexp li[data-targets='{','.join(map(str, multi['targets']))}']", has_text=multi["text"]).first
    item.click()
    page.page.mouse.move(1, 1)
    assert (plain != page.canvas()).any()
    item.click()
    page.page.mouse.move(1, 1)
    assert (page.canvas() == plain).all()
    assert page.problems == []


def js_cell(v) -> str:
    """How the console writes a value in a cell (common.js cell, exact)."""
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def run_console(page, sql: str, state: str) -> None:
    page.page.fill("#sql", sql)
    page.page.click("#run")
    page.page.wait_for_selector(f"#result[data-state='{state}']", state="attached")


def test_console_shows_the_rows_soclake_sql_prints_and_refuses_files_copy_attach(page, app_lake, capsys):
    sql = "SELECT segment_id, category, width, is_distractor, subcategory FROM segments ORDER BY segment_id"
    assert main(["sql", "--lake", app_lake.root, "--format", "json", sql]) == 0
    want = [[js_cell(v) for v in json.loads(line).values()] for line in capsys.readouterr().out.splitlines()]
    page.open("/console", "#console")
    run_console(page, sql, "done")
    cells = "t => Array.from(t.querySelectorAll('tbody tr')).map(r => Array.from(r.cells).map(c => c.textContent))"
    got = page.page.eval_on_selector("#result-table", cells)
    page.page.click("#pager button:has-text('next')")
    page.page.wait_for_function("() => document.querySelector('#rows').textContent.startsWith('rows 101')")
    got += page.page.eval_on_selector("#result-table", cells)
    assert got == want[:200] and len(want) > 200
    assert page.problems == []
    for bad, words in [("SELECT * FROM read_text('/etc/passwd')", "sandbox"),
                       ("COPY segments TO '/tmp/soclake-browser-leak.csv'", "one SELECT"),
                       ("ATTACH '/tmp/soclake-browser-leak.db' AS x", "one SELECT")]:
        run_console(page, bad, "error")
        assert words in page.error_text() and "root:" not in page.error_text()
        assert page.page.locator("#result-table").count() == 0
    assert not glob.glob("/tmp/soclake-browser-leak*")
    run_console(page, "SELECT 6 * 7 AS answer", "done")
    assert page.page.eval_on_selector("#result-table", cells) == [["42"]] and page.error_text() == ""
