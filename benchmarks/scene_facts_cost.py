"""What measuring the scene facts costs compose (colours of the visible pixels, unlabelled
objects, contacts and covers; soclake/render/scene_facts.py), as a share of rendering.

Workload: compose_rate.py's reference pool and spec (1024x1024, 5-19 objects, lossless RGBA
PNG). Each planned image is rendered in this process; the time spent in the paste tracker and
scene_facts.measure is compared with the whole render of the same images, in the same run.
Target: <= 15% of the render.

    python benchmarks/scene_facts_cost.py [--pool DIR] [--images N]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time

from soclake.jobs import compose as jobs
from soclake.render import compose, scene_facts

sys.path.insert(0, __file__.rsplit("/", 1)[0])
from compose_rate import reference_lake, spec  # noqa: E402  (the reference workload)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate one)")
    ap.add_argument("--images", type=int, default=48)
    args = ap.parse_args()
    lake = reference_lake(tempfile.mkdtemp(prefix="soclake-facts-bench-"), args.pool, False, categories=30)
    s = spec(args.images, "facts-cost", shard_size=args.images)
    jobs.run(lake, s, workers=1, progress=False)  # writes the plan (and renders it once: a warm-up)
    task = jobs.shard_task(lake, jobs.prepare(lake, s), 0)
    spent = {"facts": 0.0}
    measure, record = scene_facts.measure, scene_facts.PasteTracker.record

    def timed(fn):
        def run(*a, **k):
            t0 = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                spent["facts"] += time.perf_counter() - t0
        return run

    scene_facts.measure, scene_facts.PasteTracker.record = timed(measure), timed(record)
    shares, totals = [], []
    for row in task["plan"]:
        spent["facts"] = 0.0
        t0 = time.perf_counter()
        compose.render_image(row, task["segments"], task["backgrounds"], lake.read_range, task["render"], {})
        total = time.perf_counter() - t0
        shares.append(spent["facts"] / total)
        totals.append(total)
    print(f"scene facts: {100 * statistics.median(shares):.1f}% of the render (median of {len(shares)} images; "
          f"render {1000 * statistics.median(totals):.0f} ms/image, of which facts "
          f"{1000 * statistics.median(shares) * statistics.median(totals):.0f} ms; target <= 15%)")


if __name__ == "__main__":
    main()
