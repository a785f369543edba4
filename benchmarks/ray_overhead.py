"""Per-shard overhead of the Ray executor against the local one, on small shards.

Workload: a compose job of one tiny image per shard (64x64, 1-2 objects from the built-in
sample pool), so the time per shard is mostly scheduling, task transfer and commit rather
than pixels. Both executors run it with the same number of workers, `--repeats` times each
(outputs removed between runs); the figure is the median wall-clock seconds per shard, and
the ratio ray / local. Ray's start-up (once per process) is reported apart.

    python benchmarks/ray_overhead.py [--shards N] [--workers W] [--repeats R] [--small]
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

import numpy as np
from compose_rate import reset

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.jobs.executors import ray as ray_executor
from soclake.sample_pool import write_sample_pool
from soclake.spec.load import resolve


def spec(shards: int):
    return resolve({"job": {"name": "overhead", "images": shards, "shard_size": 1, "seed": 1},
                    "sampling": {"objects": [1, 2]},
                    "layout": {"kind": "random_centers", "width": 64, "height": 64, "min_area": 16},
                    "render": {"background": "none"}})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--shards", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true", help="quick smoke run")
    args = ap.parse_args()
    if args.small:
        args.shards, args.repeats = 16, 1
    work = tempfile.mkdtemp(prefix="soclake-ray-bench-")
    try:
        write_sample_pool(os.path.join(work, "pool"), seed=0, ids=1, subcategories=2)
        lake = Lake(os.path.join(work, "lake"), create=True)
        ingest(lake, "soc", os.path.join(work, "pool", "segments"), source_name="bench", workers=1, progress=False)
        s = spec(args.shards)
        t0 = time.perf_counter()
        ray_executor.connect(workers=args.workers)
        startup = time.perf_counter() - t0
        per_shard = {}
        for executor in ("local", "ray"):
            runs = []
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                summary = jobs.run(lake, s, workers=args.workers, executor=executor, progress=False)
                runs.append((time.perf_counter() - t0) / summary.shards_rendered)
                reset(lake, summary.fingerprint, summary.folder)
            per_shard[executor] = float(np.median(runs))
            print(f"{executor}: {per_shard[executor] * 1000:.1f} ms/shard (median of {args.repeats}: "
                  f"{', '.join(f'{r * 1000:.1f}' for r in runs)}; {args.workers} workers, {args.shards} shards)")
        print(f"ray start-up (once per process): {startup:.1f} s")
        print(f"ray / local per shard: {per_shard['ray'] / per_shard['local']:.2f}x "
              f"({(per_shard['ray'] - per_shard['local']) * 1000:+.1f} ms/shard)")
    finally:
        import ray
        ray.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
