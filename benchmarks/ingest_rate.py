"""Ingest rate of soclake's `soc` layout on 1024x1024 RGBA PNG cut-outs, in segments/s/core, and of
the same images as a SOC 7z release and as a Hugging Face Parquet file, as ratios to the folder.

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

Layouts on the same images (--layouts, default folder,7z,parquet): `folder` is the pool folder
(layout soc); `7z` is the same pool as SOC publishes it, a 7z archive (LZMA2, as py7zr writes
it) split into 3 volumes NAME.7z.001-003 beside the metadata and quality files, ingested without
extracting it; `parquet` is one Hugging Face-shaped Parquet file (an Image struct column of the
PNG bytes, row groups of 100 rows as `datasets` writes them, category / subcategory / flag
columns). Each is timed like the folder, and its median is printed as a ratio to the folder's
median at the same worker count (1.00 = as fast as reading the folder). Building the archive
and the Parquet file is not timed.

The pool is made with make_soc_pool.py (default 10 categories x 4 subcategories x 3 ids = 120
segments; --small: 3 x 2 x 2 = 12) in a temporary folder, or reused with --pool DIR.

Run (from the repository root):
    python benchmarks/ingest_rate.py            # full: 120 segments, 3 repeats of W=1 and W=2
    python benchmarks/ingest_rate.py --small    # smoke test, well under a minute
    python benchmarks/ingest_rate.py --pool DIR --repeats 5 --workers 1,2
    python benchmarks/ingest_rate.py --layouts folder      # the folder alone (the old report)
"""
from __future__ import annotations

import argparse
import io
import json
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
import py7zr
import pyarrow as pa
import pyarrow.parquet as pq
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
    ap.add_argument("--layouts", default="folder,7z,parquet", help="comma-separated: folder, 7z, parquet")
    ap.add_argument("--keep", action="store_true", help="keep the generated pool and lakes")
    return ap.parse_args()


def build_7z(pool: Path, out: Path, volumes: int = 3) -> Path:
    """The pool as SOC publishes it: a 7z of POOL/category/sub/ID.png cut into NAME.7z.001..."""
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for p in source_pngs(pool):
            z.writestr(p.read_bytes(), f"{pool.name}/{p.relative_to(pool).as_posix()}")
    data = buf.getvalue()
    out.mkdir(parents=True, exist_ok=True)
    step = -(-len(data) // volumes)
    for i in range(volumes):
        (out / f"segments.7z.{i + 1:03d}").write_bytes(data[i * step:(i + 1) * step])
    for side in sorted(pool.glob("*.json")):
        shutil.copy(side, out / side.name)
    return out / "segments.7z.001"


def build_parquet(pool: Path, out: Path, rows_per_group: int = 100) -> Path:
    """The pool as a Hugging Face dataset: one Parquet file, an Image struct column and metadata."""
    quality_path = pool / "segment_quality.json"
    quality = json.loads(quality_path.read_text()) if quality_path.exists() else {}
    pngs = source_pngs(pool)
    rel = [p.relative_to(pool).as_posix() for p in pngs]
    flags = [quality.get(r, {}) for r in rel]
    table = pa.table({
        "image": pa.array([{"bytes": p.read_bytes(), "path": r} for p, r in zip(pngs, rel)],
                          pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "category": [r.split("/")[0] for r in rel], "subcategory": [r.split("/")[1] for r in rel],
        **{k: [f.get(k) for f in flags] for k in ("IsInstance", "Integrity", "QualityAndRegularity")}})
    out.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out / "train-00000-of-00001.parquet", row_group_size=rows_per_group)
    return out / "train-00000-of-00001.parquet"


LAYOUT_OF = {"folder": "soc", "7z": "soc", "parquet": "parquet"}


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


def ingest_once(what: str, source: Path, workers: int, scratch: Path, keep: bool) -> dict:
    """Ingest one form of the pool into a fresh lake; wall seconds, CPU seconds, counts, pack bytes."""
    root = Path(tempfile.mkdtemp(prefix=f"lake-{what}-w{workers}-", dir=scratch))
    lake = Lake(str(root), create=True)
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    summary = ingest(lake, LAYOUT_OF[what], str(source), source_name="bench", workers=workers, progress=False)
    seconds, cpu = time.perf_counter() - t0, cpu_seconds() - cpu0
    pack_bytes = sum(p.stat().st_size for p in (root / "packs").rglob("*.tar"))
    top_bytes = lake.query("SELECT sum(levels[1].length)::BIGINT AS b FROM segments").column("b")[0].as_py()
    lake.refresh()
    if not keep:
        shutil.rmtree(root)
    return {"what": what, "workers": workers, "seconds": seconds, "cpu": cpu, "accepted": summary.accepted,
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

        layouts = [x for x in args.layouts.split(",") if x]
        sources = {"folder": pool}
        if "7z" in layouts:
            sources["7z"] = build_7z(pool, scratch / "release")
            print(f"7z: {sum(p.stat().st_size for p in (scratch / 'release').glob('segments.7z.*')) / 2**20:.1f} MiB "
                  "in 3 volumes (built, not timed)")
        if "parquet" in layouts:
            sources["parquet"] = build_parquet(pool, scratch / "hf")
            print(f"parquet: {sources['parquet'].stat().st_size / 2**20:.1f} MiB (built, not timed)")

        runs: list[dict] = []
        floors: list[float] = []
        print(f"\n{'run':>3} {'what':<20} {'seconds':>8} {'accepted':>8} {'seg/s':>7} {'seg/s/core':>10} {'cpu use':>7} {'seg/cpu-s':>9}")
        for rep in range(repeats):  # interleave the configurations so drift in load hits all alike
            floors.append(decode_floor(pngs))
            print(f"{rep:>3} {'decode floor':<20} {floors[-1]:8.2f} {len(pngs):8d} {len(pngs) / floors[-1]:7.1f} "
                  f"{len(pngs) / floors[-1]:10.1f}")
            for what in layouts:
                for w in worker_counts:
                    r = ingest_once(what, sources[what], w, scratch, args.keep)
                    runs.append(r)
                    rate = r["accepted"] / r["seconds"]
                    print(f"{rep:>3} {f'{what} W={w}':<20} {r['seconds']:8.2f} {r['accepted']:8d} {rate:7.1f} "
                          f"{rate / w:10.1f} {r['cpu'] / r['seconds'] / w:6.0%} {r['accepted'] / r['cpu']:9.1f}",
                          flush=True)
                    if r["rejected"]:
                        print(f"    warning: {r['rejected']} sources rejected")

        floor_rate = len(pngs) / statistics.median(floors)
        print(f"\nmedians over {repeats} repeat(s); {load()} (other processes share the cores: compare ratios)")
        print(f"  baseline decode floor (Pillow, 1 process): {floor_rate:.1f} segments/s")
        per_core: dict[tuple[str, int], float] = {}
        medians: dict[tuple[str, int], float] = {}
        for what in layouts:
            for w in worker_counts:
                mine = [r for r in runs if r["workers"] == w and r["what"] == what]
                medians[what, w] = statistics.median(r["seconds"] for r in mine)
                per_core[what, w] = statistics.median(r["accepted"] for r in mine) / medians[what, w] / w
                per_cpu = statistics.median(r["accepted"] / r["cpu"] for r in mine)
                vs = (f"; {medians['folder', w] / medians[what, w]:.2f} x the folder's rate"
                      if what != "folder" and ("folder", w) in medians else "")
                print(f"  {what} W={w}: {medians[what, w]:.2f} s, {per_core[what, w] * w:.1f} segments/s, "
                      f"{per_core[what, w]:.1f} segments/s/core ({verdict(per_core[what, w])}); ratio to decode floor "
                      f"{per_core[what, w] / floor_rate:.2f}; {per_cpu:.1f} segments per CPU second{vs}")
        last, src = runs[-1], png_bytes / len(pngs)
        n = max(last["accepted"], 1)
        print(f"  bytes/segment: packs {last['pack_bytes'] / n / 1024:.0f} KiB on disk (all levels; the largest "
              f"level alone {last['top_bytes'] / n / 1024:.0f} KiB) vs source PNG {src / 1024:.0f} KiB: "
              f"ratio {last['pack_bytes'] / n / src:.2f} (largest level alone {last['top_bytes'] / n / src:.2f})")
        w = worker_counts[-1]
        first = layouts[0]
        print(f"\nresult: {first} {per_core[first, w]:.1f} segments/s/core at W={w} on {os.cpu_count()} cores "
              f"({verdict(per_core[first, w])}); {per_core[first, w] / floor_rate:.2f} x the Pillow decode floor of "
              f"{floor_rate:.1f} segments/s" + "".join(
                  f"; {what} {medians['folder', w] / medians[what, w]:.2f} x the folder"
                  for what in layouts if what != "folder" and ("folder", w) in medians))
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":  # ingest workers are spawned: they re-import this file
    main()
