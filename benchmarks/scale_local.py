"""Scaling of the local executor: the reference compose workload with 1 worker vs 2 workers.

Workload: compose_rate.py's (a make_soc_pool.py pool of 1024x1024 RGBA segments; 1024x1024
output without background, 5-19 objects per image, COCO size mix, panoptic PNG plus RLE).
Each worker count renders the same plan `--repeats` times (the outputs are removed between
runs); the figure is the median wall-clock rate in images/s. Target: 2 workers >= 1.8x the
rate of 1 worker on a 2-core machine.

    python benchmarks/scale_local.py [--pool DIR] [--images N] [--repeats R] [--small]
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

from compose_rate import MAKE_POOL, reset, spec, timed_run
from soclake import Lake
from soclake.ingest import ingest

TARGET = 1.8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate one)")
    ap.add_argument("--images", type=int, default=192)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="quick smoke run")
    args = ap.parse_args()
    if args.small:
        args.images, args.repeats = 16, 1
    work = tempfile.mkdtemp(prefix="soclake-scale-bench-")
    try:
        pool = args.pool
        if not pool:
            pool = os.path.join(work, "pool")
            n = ("4", "2", "2") if args.small else ("20", "4", "2")
            subprocess.run([sys.executable, MAKE_POOL, "--out", pool, "--categories", n[0], "--subcategories", n[1],
                            "--ids", n[2], "--size", "1024", "--quality"], check=True, capture_output=True)
        lake = Lake(os.path.join(work, "lake"), create=True)
        ingest(lake, "soc", pool, source_name="bench", progress=False)
        s = spec(args.images, "scale")
        rates = {}
        for workers in (1, 2):
            runs = []
            for _ in range(args.repeats):
                wall, summary = timed_run(lake, s, workers)
                runs.append(summary.images / wall)
                reset(lake, summary.fingerprint, summary.folder)
            rates[workers] = float(np.median(runs))
            print(f"workers={workers}: {rates[workers]:.2f} images/s (median of {args.repeats}: "
                  f"{', '.join(f'{r:.2f}' for r in runs)})")
        ratio = rates[2] / rates[1]
        print(f"images per run: {summary.images} in {summary.shards_total} shards; cores: {os.cpu_count()}")
        print(f"2 workers vs 1: {ratio:.2f}x (target >= {TARGET}x: {'met' if ratio >= TARGET else 'missed'})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
