"""Graph language backend throughput on 12-object scenes, per core.

Random scene graphs (12 objects, 4 categories x 3 colours: many same-category instances, so
relations and attributes are needed to single objects out) go through `describe`
(referring expressions in every bucket, dense caption, per-segment captions, QA).
Target: >= 500 images/s/core. Baseline in the same run: building the scene graphs alone.

    python benchmarks/language_rate.py [--images N] [--repeats R]
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
from test_language import random_scene  # noqa: E402  (the tests' scene generator)

from soclake.stages.refexp.graph_backend import describe  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    rates, build = [], []
    for r in range(args.repeats):
        rng = np.random.default_rng(r)
        t0 = time.perf_counter()
        scenes = [random_scene(rng, n=12) for _ in range(args.images)]
        build.append(args.images / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        n_expr = sum(len(describe(g, i, ["zebra", "cat", "lamp"])["expressions"]) for i, g in enumerate(scenes))
        rates.append(args.images / (time.perf_counter() - t0))
    rate = statistics.median(rates)
    print(f"graph backend, 12-object scenes: {rate:.0f} images/s/core (target >= 500), "
          f"{n_expr / args.images:.1f} expressions/image; building scene graphs alone: "
          f"{statistics.median(build):.0f} images/s; median of {args.repeats}")


if __name__ == "__main__":
    main()
