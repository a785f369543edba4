"""JPEG XL decode speed: imagecodecs (what soclake uses) against pillow-jxl-plugin, on the files a
Blender salient-object renderer writes: a lossless 1024x1024 RGB(A) image and its 8-bit mask.

Measures the median of --repeats decodes of each file, in ms, for imagecodecs with one thread
(as an ingest worker runs it), and pillow-jxl-plugin with one thread and with all threads; the
ratio printed is (pillow-jxl ms) / (imagecodecs ms): above 1 means imagecodecs is faster. Both
decoders must return the same pixels (checked). pillow-jxl-plugin is optional: without it only
imagecodecs is timed.

Run (from the repository root):
    python benchmarks/jxl_decode.py              # 1024x1024, 9 repeats
    python benchmarks/jxl_decode.py --size 512 --repeats 15
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import time

import cv2
import imagecodecs
import numpy as np
from PIL import Image


def photo(size: int) -> tuple[np.ndarray, np.ndarray]:
    """A render-like RGBA image (smooth shading + mild noise, a soft-edged object) and its mask."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size]
    rgb = np.dstack([(x * 255 // size), (y * 255 // size), ((x + y) * 127 // size)]).astype(np.uint8)
    rgb = cv2.GaussianBlur(cv2.add(rgb, rng.integers(0, 12, rgb.shape, dtype=np.uint8)), (5, 5), 0)
    mask = np.zeros((size, size), np.uint8)
    cv2.circle(mask, (size // 2, size // 2), size * 2 // 5, 255, -1)
    mask = cv2.GaussianBlur(mask, (9, 9), 0)
    return np.dstack([rgb, mask]), mask


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args()
    try:
        import pillow_jxl  # noqa: F401  (registers the JXL plugin with Pillow)
        from pillow_jxl import JpegXLImagePlugin
    except ImportError:
        JpegXLImagePlugin = None
        print("pillow-jxl-plugin is not installed: timing imagecodecs alone")
    rgba, mask = photo(args.size)
    print(f"{os.cpu_count()} cores, load average {' '.join(f'{v:.1f}' for v in os.getloadavg())} "
          "(a shared machine: compare the ratios, measured in the same run)")
    for name, arr in (("image RGBA", rgba), ("image RGB", np.ascontiguousarray(rgba[..., :3])), ("mask L", mask)):
        data = imagecodecs.jpegxl_encode(arr, lossless=True)
        ic = median_ms(lambda: imagecodecs.jpegxl_decode(data, numthreads=1), args.repeats)
        line = f"{name:<11} {args.size}x{args.size} lossless, {len(data) / 1024:.0f} KiB: imagecodecs 1 thread {ic:.1f} ms"
        if JpegXLImagePlugin is not None:
            got = np.asarray(Image.open(io.BytesIO(data)))
            assert np.array_equal(got.reshape(arr.shape), imagecodecs.jpegxl_decode(data)), "decoders disagree"
            timings = {}
            for threads, label in ((0, "1 thread"), (-1, "all threads")):
                JpegXLImagePlugin.DECODE_THREADS = threads
                timings[label] = median_ms(lambda: np.asarray(Image.open(io.BytesIO(data))), args.repeats)
            line += "; pillow-jxl " + ", ".join(f"{k} {v:.1f} ms (ratio {v / ic:.2f})" for k, v in timings.items())
        print(line)


if __name__ == "__main__":
    main()
