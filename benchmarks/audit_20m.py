"""Audit of a generated 20M-segment, 47,000-category pool against LVIS v1 (1203 names).

The segments table comes from sql_20m.py's generator (Zipf-skewed categories, every column
of schemas/segments.json), with audit findings planted: 2% near-duplicate copies (each names
the row before it as its group's first member), 1% with holes, 1% faint, 1% in pieces, eleven
dominant colours. The first 1203 categories carry LVIS names (some plural, to exercise
matching), the rest synthetic names. Times, median of --repeats, in the same run:

  new     `run_audit(lake, "lvis")`: filter choice, the one-pass category_audit, vocabulary and
          pool coverage, problems, near-duplicate groups grouped in SQL from the stored
          columns, funnel, size histogram, headline. Target: under 10 s on this machine.
  today   the audit as it was before issue 20 (sql/50_audit.sql at 352d63b: its per-category
          pass, vocabulary coverage, unmatched categories, funnel, duplicates, size histogram).
          The two alternate, run by run; the ratio is the median of the runs' ratios.
  scan    `SELECT count(*) FROM segments` (the baseline every ratio is to).
  ingest  the near-duplicate search one ingest flush pays (20,000 new rows against the whole
          table, sql/queries/near_duplicate_candidates.sql), once; not part of the audit.

    python benchmarks/audit_20m.py [--rows N] [--repeats R] [--small] [--lake KEEP_HERE]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa

from soclake import Lake
from soclake.ingestion import near_duplicates
from soclake.outputs.audit import run_audit
from soclake.outputs.audit.numbers import register_vocabulary
from soclake.vocab import lvis_names

# Findings planted over sql_20m.py's columns (its ROWS_SQL names i, h1, h2, h3, cid, sub, w, h).
COLOURS = "['black', 'white', 'grey', 'red', 'orange', 'yellow', 'green', 'blue', 'purple', 'pink', 'brown']"
OVERRIDES = {
    "dominant_color": f"{COLOURS}[((h2 >> 32) % 11 + 1)::BIGINT]",
    "phash": "CASE WHEN i % 50 = 1 THEN xor(hash(i - 1, 4), 3::UBIGINT) ELSE hash(i, 4) END",
    "near_duplicate": ("CASE WHEN i % 50 = 1 THEN {'of': md5((i - 1)::VARCHAR), 'bits': 2, 'source': 'bench', "
                       "'source_uri': 'cat' || cid || '/' || sub || '/' || (i - 1) || '.png', 'category_id': cid} END"),
    "alpha_holes": "CASE WHEN h3 % 97 = 0 THEN 3 ELSE 0 END",
    "alpha_hole_fraction": "CASE WHEN h3 % 97 = 0 THEN 0.08 ELSE 0.0 END",
    "alpha_mean": "CASE WHEN h3 % 89 = 0 THEN 0.4 ELSE 0.93 END",
    "alpha_components": "CASE WHEN h3 % 83 = 0 THEN 5 ELSE 1 END",
}

# The per-category pass of the audit before issue 20, verbatim from sql/50_audit.sql at 352d63b.
TODAY_POOL_CATEGORY_AUDIT = """
    WITH agg AS (
        SELECT category_id, count(*) AS segments,
               count(*) FILTER (WHERE is_instance IS TRUE) AS filter_1,
               count(*) FILTER (WHERE integrity IS TRUE) AS filter_2,
               count(*) FILTER (WHERE quality_regularity IS TRUE) AS filter_3,
               count(*) FILTER (WHERE is_instance AND integrity AND quality_regularity) AS filter_4,
               count(DISTINCT subcategory) AS subcategories,
               count(DISTINCT short_phrase) AS short_phrases,
               count(DISTINCT dominant_color) AS colours,
               mode(dominant_color) AS main_colour,
               avg(greatest(width, height)) AS mean_side,
               avg(alpha_fraction) AS mean_alpha_fraction,
               avg(soft_edge_fraction) AS mean_soft_edge
        FROM segments WHERE NOT is_distractor GROUP BY category_id)
    SELECT c.category_id, c.name AS category, coalesce(a.segments, 0) AS segments,
           coalesce(a.filter_1, 0) AS filter_1, coalesce(a.filter_2, 0) AS filter_2,
           coalesce(a.filter_3, 0) AS filter_3, coalesce(a.filter_4, 0) AS filter_4,
           coalesce(a.subcategories, 0) AS subcategories, coalesce(a.short_phrases, 0) AS short_phrases,
           coalesce(a.colours, 0) AS colours, a.main_colour, a.mean_side, a.mean_alpha_fraction, a.mean_soft_edge
    FROM categories c LEFT JOIN agg a USING (category_id)
"""


def _generator():
    """sql_20m.py, imported by name (its generator runs in a spawned child, which must find it)."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import sql_20m
    return sql_20m


def make_lake(root: str, rows: int) -> None:
    gen = _generator()
    lake = Lake(root, create=True)
    n = gen.N_CATEGORIES
    lvis = lvis_names()
    names = [(lvis[i - 1] + ("s" if i % 7 == 0 else "")).lower() if i <= len(lvis) else f"synthetic {i}"
             for i in range(1, n + 1)]
    lake.append("categories", pa.table({
        "category_id": np.arange(1, n + 1, dtype=np.int32), "name": names,
        "synonyms": pa.array([[]] * n, pa.list_(pa.string())), "coco_id": pa.nulls(n, pa.int32()),
        "lvis_id": pa.nulls(n, pa.int32()), "frequency": pa.nulls(n, pa.string()), "synset": pa.nulls(n, pa.string()),
        "first_source": ["bench"] * n}))
    child = mp.get_context("spawn").Process(target=gen.write_segments,
                                            args=(lake.table_dir("segments"), rows, OVERRIDES))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit("generating the segments table failed")


def audit_today(lake: Lake) -> dict:
    """The audit's queries as they were before issue 20 (filter_4, no pixel columns)."""
    q = lambda sql: lake.query(sql).to_pylist()
    register_vocabulary(lake, "lvis", None)
    lake.con.execute(f"CREATE OR REPLACE TEMP TABLE pool_category_audit AS {TODAY_POOL_CATEGORY_AUDIT}")
    try:
        return {"funnel": q("SELECT * FROM quality_funnel"),
                "categories": q("SELECT * FROM pool_category_audit ORDER BY segments DESC, category"),
                "duplicates": q("SELECT * FROM duplicate_segments"),
                "sizes": q("SELECT power(2, floor(log2(greatest(width, height))))::INT AS side, count(*) AS n "
                           "FROM filter_0 GROUP BY 1 ORDER BY 1"),
                "coverage": q("SELECT * FROM vocab_coverage('user', min_segments := 10, filter_column := 'filter_4')"),
                "unmatched": q("SELECT * FROM unmatched_categories('user')")}
    finally:
        lake.con.execute("DROP TABLE IF EXISTS temp.pool_category_audit")


def timed(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def wall_and_cpu(fn) -> tuple[float, float, object]:
    """Wall seconds and CPU seconds of this process (DuckDB's threads included): CPU seconds
    move less than wall time when other processes share the cores."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - t0, time.process_time() - c0, out


def flush_search(lake: Lake, rows: int = 20_000) -> float:
    """One ingest flush's near-duplicate search: `rows` new rows against the whole table."""
    rng = np.random.default_rng(0)
    hashes = rng.integers(0, 2 ** 64, rows, dtype=np.uint64)
    batch = [{"segment_id": f"new{i}", "phash": int(h), "dominant_color": "red"} for i, h in enumerate(hashes)]
    t0 = time.perf_counter()
    near_duplicates.mark(lake, batch)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="1M rows, one repeat (smoke test)")
    ap.add_argument("--dir", help="where to make the temporary lake (default: the system temp dir)")
    ap.add_argument("--lake", help="audit this generated lake (made and kept if missing) instead of a temporary one")
    args = ap.parse_args()
    if args.small:
        args.rows, args.repeats = 1_000_000, 1
    work = args.lake or tempfile.mkdtemp(prefix="soclake-audit-bench-", dir=args.dir)
    try:
        if not os.path.exists(os.path.join(work, "soclake.json")):
            t0 = time.perf_counter()
            make_lake(work, args.rows)
            print(f"generated {args.rows:,} segments in {time.perf_counter() - t0:.1f}s")
        print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (a shared machine is noisy)")
        lake = Lake(work)
        scan, _ = timed(lambda: lake.query("SELECT count(*) FROM segments"), args.repeats)
        runs = []  # today's audit and the new one alternate, so a change of load hits both
        for _ in range(args.repeats):
            w_today, c_today, old = wall_and_cpu(lambda: audit_today(lake))
            w_new, c_new, result = wall_and_cpu(lambda: run_audit(lake, "lvis", min_segments=10))
            runs.append((w_today, w_new, c_today, c_new))
            print(f"  today {w_today:.2f} s ({c_today:.1f} cpu-s), new {w_new:.2f} s ({c_new:.1f} cpu-s), "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)
        today, new = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
        ratio = statistics.median(r[1] / r[0] for r in runs)
        cpu_ratio = statistics.median(r[3] / r[2] for r in runs)
        h = result["headline"]
        print(f"LVIS coverage: {h['coverage']}; {len(old['unmatched']):,} unmatched pool categories")
        print(f"after {h['filter']}: {h['segments']:,} segments in {h['categories']:,} categories; near-duplicates "
              f"{h['near_duplicates']}; problems {[(p['problem'], p['segments']) for p in h['problems']]}")
        print(f"audit against LVIS: {new:.2f} s median of {args.repeats} (target < 10 s); today's audit {today:.2f} s; "
              f"median ratio new / today {ratio:.2f} (CPU seconds {cpu_ratio:.2f}); count(*) {scan:.3f} s")
        search = flush_search(lake)
        print(f"ingest: one flush's near-duplicate search (20,000 rows against {args.rows:,}) {search:.2f} s")
    finally:
        if not args.lake:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
