"""Lossless codecs for segment pyramid levels: decode speed and bytes, on the levels ingest
makes from SOC-like 1024x1024 segments (make_soc_pool.py), in one run.

Candidates: webp (lossless WebP, method 0: the lake's default and the baseline), zstd (raw
RGBA in a zstd frame, level 1: soclake's fast codec), and, measured to justify the choice,
QOI, PNG (fpng-encoded, decoded by OpenCV and by libspng) and raw RGBA + LZ4 (imagecodecs).
Every candidate round-trips every level exactly. Figures: median decode ms per level
(weighted as the renderer reads them: each level once), total bytes of all levels, and each
candidate's decode speed-up and size ratio against webp.

    python benchmarks/level_codecs.py [--pool DIR] [--segments N] [--repeats R]
"""
from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import imagecodecs
import numpy as np

from soclake import imaging, pngcodec

MAKE_POOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "make_soc_pool.py")


def _cv2_png(data: bytes) -> np.ndarray:
    return cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)


CODECS = {  # name: (encode, decode)
    "webp": (lambda a: imaging.encode_level(a, "webp"), imaging.decode_level),
    "zstd": (lambda a: imaging.encode_level(a, "zstd"), imaging.decode_level),
    "qoi": (lambda a: bytes(imagecodecs.qoi_encode(a)), imagecodecs.qoi_decode),
    "png/opencv": (pngcodec.encode_png, _cv2_png),
    "png/spng": (pngcodec.encode_png, imagecodecs.spng_decode),
    "raw+lz4": (lambda a: bytes(imagecodecs.lz4_encode(a.tobytes())),
                lambda b, shape=None: np.frombuffer(imagecodecs.lz4_decode(b), np.uint8)),
}


def levels_of(pool: str, n: int) -> list[np.ndarray]:
    """Every pyramid level ingest stores for the first n segments of the pool."""
    out = []
    for f in sorted(glob.glob(os.path.join(pool, "*", "*", "*.png")))[:n]:
        crop = imaging.canonical_crop(imaging.decode_rgba(open(f, "rb").read()))[0]
        out += imaging.pyramid(crop, imaging.level_sides(max(crop.shape[:2])))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate one)")
    ap.add_argument("--segments", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        pool = args.pool
        if not pool:
            pool = os.path.join(tmp, "pool")
            subprocess.run([sys.executable, os.environ.get("SOCLAKE_MAKE_POOL") or MAKE_POOL, "--out", pool,
                            "--categories", str(max(1, args.segments // 2)), "--subcategories", "1", "--ids", "2",
                            "--size", "1024"], check=True, capture_output=True)
        levels = levels_of(pool, args.segments)
    pixels = sum(lv.shape[0] * lv.shape[1] for lv in levels)
    print(f"{len(levels)} levels of {args.segments} segments ({pixels / 1e6:.1f} Mpixel); load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores (shared machine: medians "
          f"of {args.repeats})")
    print(f"{'codec':<11} {'decode ms/level':>15} {'x webp':>7} {'MiB':>7} {'x webp':>7} {'encode ms/level':>15}  exact")
    base = None
    for name, (encode, decode) in CODECS.items():
        blobs = [encode(np.ascontiguousarray(lv)) for lv in levels]
        exact = all(np.array_equal(np.asarray(decode(b)).reshape(lv.shape), lv) for b, lv in zip(blobs, levels))
        dec, enc = [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            for b in blobs:
                decode(b)
            dec.append((time.perf_counter() - t0) / len(blobs))
        for _ in range(max(1, args.repeats // 3)):
            t0 = time.perf_counter()
            for lv in levels:
                encode(np.ascontiguousarray(lv))
            enc.append((time.perf_counter() - t0) / len(levels))
        d, size = statistics.median(dec) * 1000, sum(map(len, blobs)) / 2 ** 20
        base = base or (d, size)
        print(f"{name:<11} {d:15.2f} {base[0] / d:6.1f}x {size:7.1f} {size / base[1]:6.2f}x "
              f"{statistics.median(enc) * 1000:15.2f}  {exact}")


if __name__ == "__main__":
    main()
