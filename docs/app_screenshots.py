"""Write the screenshots of docs/app.md (docs/app-*.png) from a running `soclake app` on the
demo lake (`make demo`), with Debian's Chromium through Playwright.

    soclake app --lake demo-lake &
    python docs/app_screenshots.py [--url http://127.0.0.1:8000] [--out docs]
"""
from __future__ import annotations

import argparse
import json
import os
import urllib.request

from playwright.sync_api import sync_playwright

ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--out", default=os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    args = ap.parse_args()
    runs = json.load(urllib.request.urlopen(f"{args.url}/api/jobs"))["runs"]
    relit = next(r for r in runs if r["stage"] == "relight")
    segment = json.load(urllib.request.urlopen(f"{args.url}/api/pool/segments?limit=1"))["segments"][0]["segment_id"]
    shots = {
        "pool": ("/pool", "#gallery figure img", None),
        "segment": (f"/segments/{segment}", "#levels img", None),
        "sample": (f"/images/{relit['job']}/{relit['fingerprint']}/000000000", "body[data-ready]",
                   "#refexp li[data-scope='multi']"),
        "console": ("/console?q=SELECT+category,+count(*)+AS+segments,+count(DISTINCT+subcategory)+AS+subcategories,"
                    "+mode(dominant_color)+AS+colour+FROM+filter_0+GROUP+BY+1+ORDER+BY+2+DESC", "#result-table", None),
        "jobs": ("/jobs", "#lineage", None),
        "audit": ("/audit?vocab=coco&job=demo", "#pool-categories", None),
    }
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        for name, (path, ready, hover) in shots.items():
            page.goto(args.url + path)
            page.wait_for_selector(ready)
            page.wait_for_load_state("networkidle")
            if hover:
                page.hover(hover)
            out = os.path.join(args.out, f"app-{name}.png")
            page.screenshot(path=out)
            print(out)
        browser.close()


if __name__ == "__main__":
    main()
