"""Planning time per image on SOC's reference workload (coco_sizes layout, 5-19 objects per
image, 1024x1024), against the one-by-one rejection sampling it replaced, in the same run.

(1) The whole planner (`make_plan`: DuckDB counts, numpy draws, layouts, the plan table) on
a lake of make_soc_pool.py segments, ms per image (wall and CPU), median of --repeats.
(2) The layout step alone on the same objects: plan/layouts.py (each box draws its `tries`
candidates at once; exact bounds decide most of them without the occupancy grid) against
the reference (a draw and an Occupancy.fits call per try, the code before), which also
reports that both keep the same visibility constraint. Target: (1) <= 2 ms per image.

    python benchmarks/plan_rate.py [--pool DIR] [--images N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np
from compose_rate import reference_lake, spec

from soclake.plan import layouts, make_plan

TARGET_MS = 2.0


def reference_free_placement(rng, sizes: np.ndarray, params: dict, ctx: dict) -> layouts.Placement:
    """The layout before: per try, two scalar draws and one Occupancy.fits."""
    W, H = ctx["width"], ctx["height"]
    best = None
    for _ in range(max(1, params["tries"] // 5)):
        occ = layouts.Occupancy(W, H, len(sizes))
        boxes, placed, order = np.zeros((len(sizes), 4), np.int32), np.zeros(len(sizes), bool), []
        for i, (w, h) in enumerate(sizes):
            for _ in range(params["tries"]):
                if params["truncate"]:
                    x, y = rng.integers(-(w // 2), W - w // 2 + 1), rng.integers(-(h // 2), H - h // 2 + 1)
                else:
                    x, y = rng.integers(0, W - w + 1), rng.integers(0, H - h + 1)
                box = (int(x), int(y), int(w), int(h))
                ok, shown, size = occ.fits(box, params["min_visible"])
                if ok:
                    occ.add(box, shown, size)
                    boxes[i], placed[i] = box, True
                    order.append(i)
                    break
        visible = np.zeros(len(sizes))
        visible[order] = occ.visible()
        score = (placed.sum(), visible[placed].mean() if placed.any() else 0.0)
        if best is None or score > best[0]:
            best = (score, layouts.Placement(boxes, placed, visible))
        if placed.all() and score[1] >= params["min_mean_visible"]:
            break
    return best[1]


def layout_inputs(n: int, params: dict) -> list[np.ndarray]:
    """Box sizes of n images as coco_sizes draws them (5-19 objects, SOC-like aspects)."""
    rng = np.random.default_rng(0)
    out = []
    for k in rng.integers(5, 20, n):
        objs = layouts.Objects(rng.uniform(0.5, 2.0, k), rng.uniform(0.3, 0.9, k))
        area = layouts.sample_mask_areas(rng, k, params, 1024, 1024) / np.maximum(objs.alpha_fraction, 0.05)
        w = np.sqrt(area * objs.aspect)
        out.append(np.array([layouts._fit(wi, a / wi, 1024, 1024, params["truncate"], params["min_visible"])
                             for wi, a in zip(w, area)]).reshape(-1, 2))
    return out


def time_layout(place, inputs, params, repeats) -> tuple[float, float, float]:
    """Median CPU ms per image, mean objects placed, mean planned visibility."""
    ctx = {"width": 1024, "height": 1024}
    runs = []
    for _ in range(repeats):
        t0 = time.process_time()
        results = [place(np.random.default_rng(i), sizes, params, ctx) for i, sizes in enumerate(inputs)]
        runs.append((time.process_time() - t0) / len(inputs) * 1000)
    placed = np.mean([r.placed.sum() for r in results])
    vis = np.mean([r.visible[r.placed].min() for r in results if r.placed.any()])
    return statistics.median(runs), placed, vis


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate one)")
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    print(f"{os.cpu_count()} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} (shared machine: "
          f"medians of {args.repeats})")
    work = tempfile.mkdtemp(prefix="soclake-plan-bench-")
    try:
        lake = reference_lake(work, args.pool, False, categories=30, level_codec="zstd")
        s = spec(args.images, "plan-bench")
        walls, cpus = [], []
        for _ in range(args.repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            table, summary = make_plan(lake, s, "bench", workers=1)
            walls.append((time.perf_counter() - t0) / args.images * 1000)
            cpus.append((time.process_time() - c0) / args.images * 1000)
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        print(f"(1) make_plan, {args.images} images, {summary.objects / summary.images:.1f} objects each: "
              f"{wall:.2f} ms/image wall, {cpu:.2f} ms/image CPU (target <= {TARGET_MS} ms: "
              f"{'met' if wall <= TARGET_MS else 'missed'} on wall, {'met' if cpu <= TARGET_MS else 'missed'} on CPU)")
        params = s["layout"]
        inputs = layout_inputs(min(args.images, 500), params)
        new = time_layout(layouts._free_placement, inputs, params, args.repeats)
        old = time_layout(reference_free_placement, inputs, params, args.repeats)
        print(f"(2) layout step, {len(inputs)} images: {new[0]:.2f} ms/image CPU vs {old[0]:.2f} for one-by-one "
              f"tries ({old[0] / new[0]:.1f}x faster); objects placed per image {new[1]:.2f} vs {old[1]:.2f}; lowest "
              f"planned visibility per image (mean) {new[2]:.3f} vs {old[2]:.3f} (min_visible {params['min_visible']})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
