"""Ingest rate of soclake's `soc` layout on 1024x1024 RGBA PNG cut-outs, in segments/s/core.

Measures: wall time of `soclake.ingestion.ingest(lake, "soc", pool, workers=W)` into a fresh lake
(decode, crop, pyramid, WebP levels, pack + Parquet commit, worker start-up included), for each
W in --workers, repeated --repeats times; reports the median as accepted segments / s / W.
Target: >= 15 segments/s/core.
Baseline, measured in the same run: the decode floor, i.e. decoding every source PNG once with
Pillow (`np.asarray(Image.open(p).convert("RGBA"))`) in one process, in segments/s. The ratio
printed is (ingest segments/s/core) / (decode-floor segments/s): the share of a core's bare
decode rate that ingest keeps. Also prints pack bytes per segment against source PNG bytes.
The "cpu use" column is CPU seconds (this process + workers) / wall seconds / W: on a shared
machine, well under 100% means the workers did not run all the time (other processes held the
cores -- see the load average printed -- or ingest waited). The "seg/cpu-s" column (segments
per CPU second) is about the per-core rate ingest would reach with its cores to itself; it is
printed as a companion figure that is less sensitive to other load than wall time.

The pool is made with make_soc_pool.py (default 10 categories x 4 subcategories x 3 ids = 120
segments; --small: 3 x 2 x 2 = 12) in a temporary folder, or reused with --pool DIR.

Run (from the repository root):
    python benchmarks/ingest_rate.py            # full: 120 segments, 3 repeats of W=1 and W=2
    python benchmarks/ingest_rate.py --small    # smoke test, well under a minute
    python benchmarks/ingest_rate.py --pool DIR --repeats 5 --workers 1,2
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from soclake import Lake
from soclake.ingestion import ingest

TARGET = 15.0  # segments/s/core
DEFAULT_POOL_SCRIPT = "/work/shared/bench/make_soc_pool.py"
FULL_POOL = (10, 4, 3)   # categories, subcategories, ids
SMALL_POOL = (3, 2, 2)


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", action="store_true", help="tiny pool and one repeat (smoke test)")
    ap.add_argument("--pool", help="reuse this SOC-layout pool instead of generating one")
    ap.add_argument("--pool-script", default=os.environ.get("SOCLAKE_POOL_SCRIPT", DEFAULT_POOL_SCRIPT),
                    help="make_soc_pool.py to generate the pool with (env SOCLAKE_POOL_SCRIPT)")
    ap.add_argument("--repeats", type=int, help="runs per worker count (default 3, --small 1)")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts (default 1,2)")
    ap.add_argument("--keep", action="store_true", help="keep the generated pool and lakes")
    return ap.parse_args()


def make_pool(script: str, out: Path, shape: tuple[int, int, int]) -> float:
    """Generate a SOC-layout pool of 1024x1024 RGBA PNGs with quality flags; returns seconds."""
    if not os.path.isfile(script):
        sys.exit(f"pool generator {script!r} not found; pass --pool-script PATH or --pool DIR")
    cats, subs, ids = shape
    t0 = time.perf_counter()
    subprocess.run([sys.executable, script, "--out", str(out), "--categories", str(cats),
                    "--subcategories", str(subs), "--ids", str(ids), "--size", "1024", "--quality"],
                   check=True, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def source_pngs(pool: Path) -> list[Path]:
    return sorted(pool.glob("*/*/*.png"))


def decode_floor(paths: list[Path]) -> float:
    """Seconds to decode every source PNG once with Pillow, in this one process."""
    t0 = time.perf_counter()
    for p in paths:
        with Image.open(p) as im:
            np.asarray(im.convert("RGBA"))
    return time.perf_counter() - t0


def cpu_seconds() -> float:
    """User + system CPU of this process and its finished children (ingest workers)."""
    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def ingest_once(pool: Path, workers: int, scratch: Path, keep: bool) -> dict:
    """Ingest the pool into a fresh lake; wall seconds, CPU seconds, counts and pack bytes."""
    root = Path(tempfile.mkdtemp(prefix=f"lake-w{workers}-", dir=scratch))
    lake = Lake(str(root), create=True)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    summary = ingest(lake, "soc", str(pool), source_name="bench", workers=workers, progress=False)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    pack_bytes = sum(p.stat().st_size for p in (root / "packs").rglob("*.tar"))
    top_bytes = lake.query("SELECT sum(levels[1].length)::BIGINT AS b FROM segments").column("b")[0].as_py()
    lake.refresh()
    if not keep:
        shutil.rmtree(root)
    return {"workers": workers, "seconds": seconds, "cpu": cpu, "accepted": summary.accepted,
            "rejected": summary.rejected, "pack_bytes": pack_bytes, "top_bytes": top_bytes or 0}


def verdict(per_core: float) -> str:
    return f"target >= {TARGET:g}: {'PASS' if per_core >= TARGET else 'MISS'}"


def load() -> str:
    return "load average " + " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> None:
    args = parse_args()
    repeats = args.repeats or (1 if args.small else 3)
    worker_counts = [int(w) for w in args.workers.split(",")]
    scratch = Path(tempfile.mkdtemp(prefix="soclake-bench-ingest-"))
    try:
        if args.pool:
            pool = Path(args.pool)
            print(f"pool: reusing {pool}")
        else:
            pool = scratch / "pool"
            shape = SMALL_POOL if args.small else FULL_POOL
            secs = make_pool(args.pool_script, pool, shape)
            print(f"pool: generated {shape[0]}x{shape[1]}x{shape[2]} segments in {secs:.1f}s (not timed)")
        pngs = source_pngs(pool)
        if not pngs:
            sys.exit(f"no category/subcategory/ID.png files under {pool}")
        png_bytes = sum(p.stat().st_size for p in pngs)
        with Image.open(pngs[0]) as im:
            print(f"pool: {len(pngs)} PNG sources, {im.width}x{im.height} {im.mode}, "
                  f"{png_bytes / len(pngs) / 1024:.0f} KiB/source mean; {os.cpu_count()} cores, {load()}")

        runs: list[dict] = []
        floors: list[float] = []
        print(f"\n{'run':>3} {'what':<14} {'seconds':>8} {'accepted':>8} {'seg/s':>7} {'seg/s/core':>10} {'cpu use':>7} {'seg/cpu-s':>9}")
        for rep in range(repeats):  # interleave the configurations so drift in load hits all alike
            floors.append(decode_floor(pngs))
            print(f"{rep:>3} {'decode floor':<14} {floors[-1]:8.2f} {len(pngs):8d} {len(pngs) / floors[-1]:7.1f} "
                  f"{len(pngs) / floors[-1]:10.1f}")
            for w in worker_counts:
                r = ingest_once(pool, w, scratch, args.keep)
                runs.append(r)
                rate = r["accepted"] / r["seconds"]
                print(f"{rep:>3} {f'ingest W={w}':<14} {r['seconds']:8.2f} {r['accepted']:8d} {rate:7.1f} "
                      f"{rate / w:10.1f} {r['cpu'] / r['seconds'] / w:6.0%} {r['accepted'] / r['cpu']:9.1f}", flush=True)
                if r["rejected"]:
                    print(f"    warning: {r['rejected']} sources rejected")

        floor_rate = len(pngs) / statistics.median(floors)
        print(f"\nmedians over {repeats} repeat(s); {load()}")
        print(f"  baseline decode floor (Pillow, 1 process): {floor_rate:.1f} segments/s")
        per_core = {}
        for w in worker_counts:
            mine = [r for r in runs if r["workers"] == w]
            seconds = statistics.median(r["seconds"] for r in mine)
            per_core[w] = statistics.median(r["accepted"] for r in mine) / seconds / w
            per_cpu = statistics.median(r["accepted"] / r["cpu"] for r in mine)
            print(f"  ingest W={w}: {seconds:.2f} s, {per_core[w] * w:.1f} segments/s, {per_core[w]:.1f} "
                  f"segments/s/core ({verdict(per_core[w])}); ratio to decode floor {per_core[w] / floor_rate:.2f}; "
                  f"{per_cpu:.1f} segments per CPU second")
        last, src = runs[-1], png_bytes / len(pngs)
        n = max(last["accepted"], 1)
        print(f"  bytes/segment: packs {last['pack_bytes'] / n / 1024:.0f} KiB on disk (all levels; the largest "
              f"level alone {last['top_bytes'] / n / 1024:.0f} KiB) vs source PNG {src / 1024:.0f} KiB: "
              f"ratio {last['pack_bytes'] / n / src:.2f} (largest level alone {last['top_bytes'] / n / src:.2f})")
        w = worker_counts[-1]
        print(f"\nresult: {per_core[w]:.1f} segments/s/core at W={w} on {os.cpu_count()} cores "
              f"({verdict(per_core[w])}); {per_core[w] / floor_rate:.2f} x the Pillow decode floor of "
              f"{floor_rate:.1f} segments/s")
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":  # ingest workers are spawned: they re-import this file
    main()
