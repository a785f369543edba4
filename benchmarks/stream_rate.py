"""Streaming throughput: decoded samples/s through soclake.loader.stream against a bare loop that
reads and decodes the same shards (target >= 90%), and over HTTP (soclake serve on
127.0.0.1) against local disk (target within 15%). One process, medians over repeats.

    python benchmarks/stream_rate.py [--images N] [--repeats R] [--small]
"""
from __future__ import annotations

import argparse
import glob
import io
import json
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
from soclake.loader.stream import Stream
from soclake.outputs.serve import serve_in_background
from soclake.sample_pool import write_sample_pool
from soclake.spec.load import resolve


def bare_loop(shards: list[str]) -> int:
    """Read every shard with tarfile and decode what the detection task decodes."""
    n = 0
    for path in shards:
        with tarfile.open(path) as tar:
            sample: dict = {}
            for m in tar:
                key, _, ext = m.name.partition(".")
                sample[ext] = tar.extractfile(m).read()
                if ext == "json":
                    info = json.loads(sample["json"])
                    image = np.asarray(Image.open(io.BytesIO(sample["jpg"])).convert("RGB"))
                    boxes = np.array([i["bbox"] for i in info["instances"]], np.float32)
                    labels = np.array([i["category_id"] for i in info["instances"]], np.int64)
                    n += image.shape[0] > 0 and len(boxes) == len(labels)
                    sample = {}
    return n


def rate(fn) -> float:
    t0 = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    if args.small:
        args.images, args.repeats = 40, 2
    work = tempfile.mkdtemp(prefix="soclake-stream-bench-")
    server = None
    try:
        write_sample_pool(os.path.join(work, "pool"), ids=2)
        lake = Lake(os.path.join(work, "lake"), create=True)
        ingest(lake, "soc", os.path.join(work, "pool", "segments"), progress=False)
        ingest(lake, "backgrounds", os.path.join(work, "pool", "backgrounds"), progress=False)
        spec = resolve({"job": {"name": "s", "images": args.images, "shard_size": 50},
                        "layout": {"width": 512, "height": 512}, "render": {"background": "pool", "format": "jpg"}})
        summary = jobs.run(lake, spec, progress=False)
        shards = sorted(glob.glob(lake.path(summary.folder, "shards", "*.tar")))
        server = serve_in_background(lake.root)
        url = f"http://127.0.0.1:{server.server_port}"
        count = lambda src: lambda: sum(1 for _ in Stream(src, "s", task="detection", seed=0))
        bare, local, http = [], [], []
        for _ in range(args.repeats):  # interleaved so drift hits all three alike
            bare.append(rate(lambda: bare_loop(shards)))
            local.append(rate(count(lake.root)))
            http.append(rate(count(url)))
        b, l, h = (statistics.median(x) for x in (bare, local, http))
        print(f"{summary.images} images of 512x512 (JPEG), {len(shards)} shards, {args.repeats} repeats, medians:")
        print(f"bare loop: {b:.1f} samples/s; soclake.loader.stream local: {l:.1f} samples/s -> {l / b:.1%} (target >= 90%)")
        print(f"soclake.loader.stream over HTTP: {h:.1f} samples/s -> {h / l:.1%} of local (target >= 85%)")
    finally:
        if server:
            server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
