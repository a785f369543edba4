"""Page times of `soclake app` on a generated lake of 1M segments (issue 22: the pool page
answers in < 300 ms per page of 100 thumbnails after warm-up; medians).

The lake: the built-in sample pool ingested for real (real packs, real pyramid levels), then a
generated part of ROWS segments appended to its segments table by DuckDB. Each generated row
has its own segment_id, category (Zipf over 2,000 names, plus the real ones), source, dominant
colour and flags, and the levels of one real segment, so every thumbnail is a real range read
of a real lossless-WebP level. The app runs as `soclake app` in a child process on 127.0.0.1,
driven over HTTP by 6 client threads (a browser's connections per host).

Timed (medians of --repeats, after one warm-up of each):
  page       GET /api/pool/segments?limit=100 (the keyset page, JSON) -- first page and a deep one
  page+100   that page and its 100 thumbnails: what the pool page needs to show 100 thumbnails.
             "cold" against a server started with --cache-mb 0 (every thumbnail a range read),
             "warm" against the default cache
  filtered   the same with a category, a colour, a size range, filter_4
  count      GET /api/pool/count (with filters)
  html       GET /pool (the page shell)
Baseline in the same run: GET /api/lake (an answer kept in memory: the server's per-request
floor); ratios are printed against it. The machine may be shared: see the load average.

    python benchmarks/app_pages.py              # 1M rows
    python benchmarks/app_pages.py --rows 100000 --repeats 3
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import duckdb
import httpx
import numpy as np
import pyarrow as pa

from soclake import Lake
from soclake.ingestion import ingest
from soclake.lake.schemas import table_schema
from soclake.sample_pool import write_sample_pool

TARGET_S = 0.300
CATEGORIES = 2_000
CLIENTS = 6


def duckdb_types(table: str) -> dict[str, str]:
    con = duckdb.connect()
    con.register("_empty", table_schema(table).empty_table())
    return {name: typ for name, typ, *_ in con.execute("DESCRIBE _empty").fetchall()}


def make_lake(root: str, rows: int) -> Lake:
    """The sample pool ingested, then `rows` generated segments reusing its levels."""
    write_sample_pool(os.path.join(root, "pool"), seed=3, ids=4, subcategories=4)
    lake = Lake(os.path.join(root, "lake"), create=True)
    ingest(lake, "soc", os.path.join(root, "pool", "segments"), source_name="sample", workers=2, progress=False)
    seeds = lake.query("SELECT count(*) FROM segments").column(0)[0].as_py()
    first_id = lake.query("SELECT max(category_id) FROM categories").column(0)[0].as_py() + 1
    ids = np.arange(first_id, first_id + CATEGORIES, dtype=np.int32)
    lake.append("categories", pa.table({
        "category_id": ids, "name": [f"cat{i}" for i in ids], "synonyms": pa.array([[]] * CATEGORIES, pa.list_(pa.string())),
        "coco_id": pa.nulls(CATEGORIES, pa.int32()), "lvis_id": pa.nulls(CATEGORIES, pa.int32()),
        "frequency": pa.nulls(CATEGORIES, pa.string()), "synset": pa.nulls(CATEGORIES, pa.string()),
        "first_source": ["bench"] * CATEGORIES}))
    types = duckdb_types("segments")
    generated = {  # everything else is the real seed row's (sizes, levels, metadata)
        "segment_id": "md5(i::VARCHAR)",
        "source": "'bench-' || (h2 % 3)",
        "category_id": f"{first_id} + ((least({CATEGORIES}, floor(pow({CATEGORIES} + 1, (h1 >> 11) / 2.0 ** 53)))::BIGINT - 1) * 7919) % {CATEGORIES}",
        "category": f"'cat' || ({first_id} + ((least({CATEGORIES}, floor(pow({CATEGORIES} + 1, (h1 >> 11) / 2.0 ** 53)))::BIGINT - 1) * 7919) % {CATEGORIES})",
        "subcategory": "CAST((h2 >> 40) % 5 AS VARCHAR)",
        "source_uri": "'gen/' || i || '.png'",
        "dominant_color": "['red', 'green', 'blue', 'yellow', 'grey', 'black', 'white', 'brown'][(1 + h3 % 8)::BIGINT]",
        "is_distractor": "(h2 >> 24) % 100 < 2",
        "is_instance": "h2 % 100 < 80",
        "integrity": "(h2 >> 8) % 100 < 80",
        "quality_regularity": "(h2 >> 16) % 100 < 80",
        "sha256": "sha256(i::VARCHAR)",
        "ingest_run": "'bench'",
    }
    cols = ", ".join(f"CAST({generated.get(c, 's.' + c)} AS {t}) AS {c}" for c, t in types.items())
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    seg_glob = os.path.join(lake.table_dir("segments"), "*.parquet")
    con.execute(f"CREATE TEMP TABLE seed AS SELECT row_number() OVER (ORDER BY segment_id) - 1 AS k, * "
                f"FROM read_parquet('{seg_glob}')")
    out = os.path.join(lake.table_dir("segments"), "part-bench-generated.parquet")
    con.execute(f"COPY (SELECT {cols} FROM (SELECT range AS i, hash(range, 1) AS h1, hash(range, 2) AS h2, "
                f"hash(range, 3) AS h3 FROM range({rows})) g JOIN seed s ON s.k = g.i % {seeds} ORDER BY g.i) "
                f"TO '{out}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    lake.refresh()
    return lake


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def app_server(lake: Lake, cache_mb: int):
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd()] + sys.path)}
    proc = subprocess.Popen([sys.executable, "-m", "soclake.cli", "app", "--lake", lake.root, "--port", str(port),
                             "--cache-mb", str(cache_mb)], env=env, stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/api/lake", timeout=60).status_code == 200:
                    break
            if proc.poll() is not None:
                raise SystemExit("the app did not start")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def timed(fn, repeats: int) -> tuple[float, list[float]]:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="generated segments")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per measurement (median reported)")
    ap.add_argument("--dir", help="where to make the lake (default: a temporary folder, deleted); a lake this "
                    "script made there before is reused")
    ap.add_argument("--keep", action="store_true", help="keep the generated lake")
    args = ap.parse_args()
    root = args.dir or tempfile.mkdtemp(prefix="soclake-app-bench-")
    try:
        t0 = time.perf_counter()
        existing = os.path.join(root, "lake", "soclake.json")
        lake = Lake(os.path.join(root, "lake")) if args.dir and os.path.exists(existing) else make_lake(root, args.rows)
        total = lake.query("SELECT count(*) FROM segments").column(0)[0].as_py()
        print(f"lake: {total:,} segments ({args.rows:,} generated) in {time.perf_counter() - t0:.1f} s at {lake.root} "
              f"(not timed); load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
        cat = lake.query("SELECT category FROM segments GROUP BY 1 ORDER BY count(*) DESC LIMIT 1 OFFSET 20").column(0)[0].as_py()
        deep = lake.query("SELECT segment_id FROM segments ORDER BY segment_id LIMIT 1 OFFSET $n",
                          {"n": total // 2}).column(0)[0].as_py()
        cases = {"": "first page", f"after=0:{deep}": "deep page (row 500,000 on)",
                 f"category={cat}&colour=red": f"category {cat} + colour red",
                 "view=filter_4&min_side=100&max_side=400&sort=largest": "filter_4, side 100-400, largest first"}
        rows = []
        for cache_mb, label in ((0, "cold"), (256, "warm")):
            with app_server(lake, cache_mb) as base, httpx.Client(base_url=base, timeout=60,
                                                                 limits=httpx.Limits(max_connections=CLIENTS)) as client, \
                    cf.ThreadPoolExecutor(CLIENTS) as pool:
                get = lambda path: client.get(path).raise_for_status()
                floor, _ = timed(lambda: get("/api/lake"), args.repeats)
                rows.append((label, "baseline GET /api/lake", floor, floor))
                for q, name in cases.items():
                    url = f"/api/pool/segments?limit=100&{q}"
                    page, _ = timed(lambda: get(url), args.repeats)

                    def page_and_thumbs() -> None:
                        segments = client.get(url).raise_for_status().json()["segments"]
                        assert len(segments) == 100, len(segments)
                        list(pool.map(lambda s: get(s["thumbnail"]), segments))
                    both, _ = timed(page_and_thumbs, args.repeats)
                    rows.append((label, f"page      {name}", page, floor))
                    rows.append((label, f"page+100  {name}", both, floor))
                if label == "warm":
                    count, _ = timed(lambda: get(f"/api/pool/count?category={cat}"), args.repeats)
                    rows.append((label, "count (kept after the first)", count, floor))
                    html, _ = timed(lambda: get("/pool"), args.repeats)
                    rows.append((label, "html /pool", html, floor))
        print(f"medians of {args.repeats} after a warm-up; {CLIENTS} client threads; target page+100 < {TARGET_S * 1000:.0f} ms")
        print(f"{'cache':<6} {'measurement':<58} {'ms':>8} {'x base':>7} {'verdict':>7}")
        for label, name, seconds, floor in rows:
            verdict = ("ok" if seconds < TARGET_S else "SLOW") if name.startswith("page+100") else ""
            print(f"{label:<6} {name:<58} {seconds * 1000:8.1f} {seconds / floor:7.1f} {verdict:>7}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
