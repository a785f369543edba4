"""PNG encoding of the compose outputs: soclake.pngcodec (fpng for rgba.png and pan.png, its
own gray writer for fg.png) against OpenCV's fastest setting (level 1, SUB filter: what the
renderer used before) and Pillow level 1, in the same run, on the same arrays.

Inputs: 1024x1024 outputs of SOC's reference workload, built here from a make_soc_pool.py
segment (an RGBA composite of pasted copies, its 3-channel panoptic map, its soft
foreground mask). Every encoded file is decoded back (OpenCV) and compared with its array.
Figures: median ms per image over --repeats; sizes in KiB; ratio = OpenCV / pngcodec.

    python benchmarks/encode_png.py [--repeats N] [--pool DIR]
"""
from __future__ import annotations

import argparse
import glob
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

from soclake import imaging, pngcodec

MAKE_POOL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "bench", "make_soc_pool.py")
OPENCV_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


def make_pool_script() -> str:
    """make_soc_pool.py: beside the repository (shared/bench) or SOCLAKE_MAKE_POOL."""
    return os.environ.get("SOCLAKE_MAKE_POOL") or MAKE_POOL


def outputs(pool: str | None) -> dict[str, np.ndarray]:
    """A composite of 9 pasted segments, its panoptic map and its foreground mask."""
    with tempfile.TemporaryDirectory() as tmp:
        if not pool:
            pool = os.path.join(tmp, "pool")
            subprocess.run([sys.executable, make_pool_script(), "--out", pool, "--categories", "3",
                            "--subcategories", "1", "--ids", "1", "--size", "1024"], check=True, capture_output=True)
        files = sorted(glob.glob(os.path.join(pool, "*", "*", "*.png")))[:3]
        crops = [imaging.canonical_crop(imaging.decode_rgba(open(f, "rb").read()))[0] for f in files]
    canvas = np.zeros((1024, 1024, 4), np.uint8)
    pan = np.zeros((1024, 1024, 3), np.uint8)
    rng = np.random.default_rng(0)
    for label in range(1, 10):
        crop = crops[label % len(crops)]
        side = int(rng.integers(120, 600))
        h, w = crop.shape[:2]
        f = side / max(h, w)
        patch = imaging.resize_rgba(crop, max(1, int(w * f)), max(1, int(h * f)))
        y, x = int(rng.integers(0, 1024 - patch.shape[0])), int(rng.integers(0, 1024 - patch.shape[1]))
        region = canvas[y:y + patch.shape[0], x:x + patch.shape[1]]
        a = patch[..., 3:4].astype(np.float32) / 255
        region[..., :3] = (patch[..., :3] * a + region[..., :3] * (1 - a)).astype(np.uint8)
        region[..., 3] = np.maximum(region[..., 3], patch[..., 3])
        pan[y:y + patch.shape[0], x:x + patch.shape[1]][patch[..., 3] >= 128] = (label, 0, 0)
    return {"rgba.png": canvas, "pan.png": pan, "fg.png": canvas[..., 3].copy()}


def opencv(arr: np.ndarray) -> bytes:
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_RGBA2BGRA if arr.shape[2] == 4 else cv2.COLOR_RGB2BGR)
    return cv2.imencode(".png", arr, OPENCV_FAST)[1].tobytes()


def pillow(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG", compress_level=1)
    return buf.getvalue()


ENCODERS = {"pngcodec": pngcodec.encode_png, "opencv-l1": opencv, "pillow-l1": pillow}


def decoded(data: bytes, like: np.ndarray) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr.reshape(like.shape)


def median_ms(fn, arr, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn(arr)
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--pool", help="an existing make_soc_pool.py pool (default: generate 3 segments)")
    args = ap.parse_args()
    arrays = outputs(args.pool)
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} cores (a shared machine "
          f"is noisy: medians of {args.repeats})")
    print(f"{'member':<10} {'encoder':<10} {'ms':>7} {'KiB':>6}  exact")
    totals = {name: 0.0 for name in ENCODERS}
    for member, arr in arrays.items():
        for name, fn in ENCODERS.items():
            data = fn(arr)
            ms = median_ms(fn, arr, args.repeats)
            totals[name] += ms
            print(f"{member:<10} {name:<10} {ms:7.2f} {len(data) / 1024:6.0f}  {np.array_equal(decoded(data, arr), arr)}")
    print(f"rgba.png + pan.png + fg.png per image: pngcodec {totals['pngcodec']:.1f} ms, OpenCV level 1 "
          f"{totals['opencv-l1']:.1f} ms ({totals['opencv-l1'] / totals['pngcodec']:.1f}x slower), Pillow level 1 "
          f"{totals['pillow-l1']:.1f} ms ({totals['pillow-l1'] / totals['pngcodec']:.1f}x slower)")


if __name__ == "__main__":
    main()
