"""Relight throughput of the classic (CPU) backend at 1024x1024, per core.

Composes a job of 1024x1024 JPEG images on backgrounds from the built-in sample pool, then
times the relight stage (decode, classic relight, area-ranked Lab blend, encode, commit) with
one worker. Target: >= 6 images/s/core. Baseline in the same run: decoding and re-encoding the
same composites (the codec floor of a shard-in, shard-out stage).

With --rgba the composites have no background (KEY.rgba.png, SOC's FC recipe): each is first
composed on a lake background, and the relit scene is written as KEY.jpg.

    python benchmarks/relight_rate.py [--images N] [--repeats R] [--small] [--rgba]
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import shutil
import statistics
import tarfile
import tempfile
import time

import numpy as np
from PIL import Image

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.render.compose import encode_image
from soclake.sample_pool import write_sample_pool
from soclake.spec.load import resolve
from soclake.stages.runner import run as relight_run


def codec_floor(shards: list[str]) -> float:
    t0, n = time.perf_counter(), 0
    for path in shards:
        with tarfile.open(path) as tar:
            for m in tar:
                if m.name.endswith((".jpg", ".rgba.png")):  # decode the composite, encode a JPEG
                    rgb = np.asarray(Image.open(io.BytesIO(tar.extractfile(m).read())).convert("RGB"))
                    encode_image(rgb, "jpg", 95)
                    n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=40)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--small", action="store_true")
    ap.add_argument("--rgba", action="store_true", help="composites without background (RGBA PNG in, JPEG scene out)")
    args = ap.parse_args()
    if args.small:
        args.images, args.repeats = 8, 1
    work = tempfile.mkdtemp(prefix="soclake-relight-bench-")
    try:
        write_sample_pool(os.path.join(work, "pool"), ids=2)
        lake = Lake(os.path.join(work, "lake"), create=True)
        ingest(lake, "soc", os.path.join(work, "pool", "segments"), progress=False)
        ingest(lake, "backgrounds", os.path.join(work, "pool", "backgrounds"), progress=False)
        compose = resolve({"job": {"name": "c", "images": args.images, "shard_size": max(1, args.images // 4)},
                           "sampling": {"objects": [5, 15]}, "layout": {"width": 1024, "height": 1024},
                           "render": {"background": "none" if args.rgba else "pool", "format": "jpg",
                                      "fg_mask": True}})
        jobs.run(lake, compose, progress=False)
        per_image = []
        for r in range(args.repeats):
            spec = resolve({"job": {"name": f"r{r}", "input": "c", "seed": r}, "relight": {}})
            t0 = time.perf_counter()
            s = relight_run(lake, spec, workers=1, progress=False)
            per_image.append((time.perf_counter() - t0) / s.images)
        floor = codec_floor(sorted(glob.glob(lake.path("jobs", "c", "*", "shards", "*.tar"))))
        v = statistics.median(per_image)
        what = "RGBA composites (scene composed on a background)" if args.rgba else "JPEG composites"
        print(f"classic relight at 1024x1024, {what}: {v:.3f} s/image/core = {1 / v:.1f} images/s/core "
              f"(target >= 6), median of {args.repeats}")
        print(f"codec floor (composite decode + JPEG encode): {floor:.3f} s/image; ratio {v / floor:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
