"""Audit of a generated 20M-segment, 47,000-category pool against LVIS v1 (1203 names).

The segments table comes from sql_20m.py's generator (Zipf-skewed categories, every column
of schemas/segments.json); the first 1203 categories carry LVIS names (some in plural or
with underscores, to exercise matching), the rest synthetic names. Times `run_audit`
(coverage, unmatched categories, quality funnel, per-category pool statistics, size
histogram) and the report's terminal summary data. Target: under 10 s on this machine.
Baseline in the same run: `SELECT count(*) FROM segments`.

    python benchmarks/audit_20m.py [--rows N] [--small]
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
from soclake.outputs.audit import run_audit
from soclake.vocab import lvis_names


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
        "lvis_id": pa.nulls(n, pa.int32()), "first_source": ["bench"] * n}))
    child = mp.get_context("spawn").Process(target=gen.write_segments, args=(lake.table_dir("segments"), rows))
    child.start()
    child.join()
    if child.exitcode:
        raise SystemExit("generating the segments table failed")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=20_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    if args.small:
        args.rows, args.repeats = 1_000_000, 1
    work = tempfile.mkdtemp(prefix="soclake-audit-bench-")
    try:
        t0 = time.perf_counter()
        make_lake(work, args.rows)
        print(f"generated {args.rows:,} segments in {time.perf_counter() - t0:.1f}s")
        times, base = [], []
        for _ in range(args.repeats):
            lake = Lake(work)
            t0 = time.perf_counter()
            lake.query("SELECT count(*) FROM segments")
            base.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            result = run_audit(lake, "lvis", min_segments=10)
            times.append(time.perf_counter() - t0)
        c = result["vocabulary"]["counts"]
        a, b = statistics.median(times), statistics.median(base)
        print(f"LVIS coverage: covered {c['covered']}, thin {c['thin']}, missing {c['missing']}; "
              f"{len(result['vocabulary']['unmatched_pool_categories']):,} unmatched pool categories")
        print(f"audit against LVIS: {a:.2f} s median of {args.repeats} (target < 10 s); "
              f"count(*) baseline {b:.3f} s; ratio {a / b:.0f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
