"""Scaling of the local executor: the reference compose workload with 1 worker vs 2 workers.

Workload: compose_rate.py's (a make_soc_pool.py pool of 1024x1024 RGBA segments; 1024x1024
output without background, 5-19 objects per image, COCO size mix, panoptic PNG plus RLE).
Each worker count runs the job `--repeats` times (the outputs are removed between runs),
once whole (planning, which runs in one process, included) and once on the stored plan (the
executor alone: pool start-up, shard tasks, rendering and commits); the figures are median
wall-clock rates in images/s. Target: on the whole run, 2 workers >= 1.8x the rate of 1 worker
on a 2-core machine (the executor-alone ratio is printed beside it). The pool's levels are
stored in --level-codec (default zstd, the fast codec).

    python benchmarks/scale_local.py [--pool DIR] [--images N] [--repeats R] [--level-codec C] [--small]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import numpy as np
from compose_rate import reference_lake, reset, spec, timed_run

TARGET = 1.8


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate one)")
    ap.add_argument("--images", type=int, default=288)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--shard-size", type=int, default=12, help="images per shard (a job's unit of work)")
    ap.add_argument("--level-codec", default="zstd", help="how the pool's levels are stored (webp or zstd)")
    ap.add_argument("--small", action="store_true", help="quick smoke run")
    args = ap.parse_args()
    if args.small:
        args.images, args.repeats, args.shard_size = 16, 1, 4
    work = tempfile.mkdtemp(prefix="soclake-scale-bench-")
    try:
        lake = reference_lake(work, args.pool, args.small, categories=20, level_codec=args.level_codec)
        s = spec(args.images, "scale", shard_size=args.shard_size)
        rates, render_rates = {}, {}
        for workers in (1, 2):
            runs, render_runs = [], []
            for _ in range(args.repeats):
                # whole run (planning, which is serial, included), then the executor alone on the
                # same plan (pool start-up, shard tasks, rendering, commits)
                wall, summary = timed_run(lake, s, workers)
                runs.append(summary.images / wall)
                reset(lake, summary.fingerprint, summary.folder, keep_plan=True)
                wall, summary = timed_run(lake, s, workers)
                render_runs.append(summary.images / wall)
                reset(lake, summary.fingerprint, summary.folder)
            rates[workers], render_rates[workers] = float(np.median(runs)), float(np.median(render_runs))
            print(f"workers={workers}: whole run {rates[workers]:.2f} images/s (median of {args.repeats}: "
                  f"{', '.join(f'{r:.2f}' for r in runs)}); executor alone {render_rates[workers]:.2f} images/s "
                  f"({', '.join(f'{r:.2f}' for r in render_runs)})")
        ratio, render_ratio = rates[2] / rates[1], render_rates[2] / render_rates[1]
        print(f"images per run: {summary.images} in {summary.shards_total} shards; level codec {args.level_codec}; "
              f"cores: {os.cpu_count()}; load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"2 workers vs 1, whole run (serial planning included): {ratio:.2f}x (target >= {TARGET}x: "
              f"{'met' if ratio >= TARGET else 'missed'})")
        print(f"2 workers vs 1, executor alone: {render_ratio:.2f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
