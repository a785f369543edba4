"""COCO instances export of a large job, against merging per-image JSON files in Python.

Synthetic lake tables (100k images, 12 instances each, realistic RLE string lengths) are
generated with DuckDB; then `soclake export --format coco` runs in a child process (wall time
and peak memory measured from outside), and so does the reference-style baseline: one JSON
file per image, loaded and merged into one document by a Python loop.
Targets: under 10 s and under 2 GB peak memory on this machine.

    python benchmarks/export_coco.py [--images N] [--small]
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import duckdb

from soclake import Lake

JOB, FP = "bench", "0123456789abcdef"


def generate(root: str, n_images: int, per_image: int, shard_size: int = 1000) -> None:
    """Write plan, images, annotations, manifest and categories parts for one committed job."""
    Lake(root, create=True)
    con = duckdb.connect()
    t = lambda name: os.path.join(root, "tables", name)
    for name in ("plan", "images", "annotations", "manifest", "categories"):
        os.makedirs(t(name), exist_ok=True)
    con.execute(f"""COPY (SELECT i::INT AS category_id, 'category ' || i AS name, []::VARCHAR[] AS synonyms,
                   NULL::INT AS coco_id, NULL::INT AS lvis_id, 'bench' AS first_source FROM range(1, 1201) r(i))
                   TO '{t("categories")}/part-a.parquet'""")
    con.execute(f"""COPY (SELECT '{JOB}' AS job, '{FP}' AS fingerprint, i AS image_id, lpad(i::VARCHAR, 9, '0') AS key,
                   (i // {shard_size})::INT AS shard, i AS seed, 1024 AS width, 1024 AS height,
                   NULL::VARCHAR AS background_id, NULL::INT[] AS background_crop,
                   [{{'segment_id': 's', 'fallback_id': 's', 'category_id': 1, 'role': 'object', 'x': 0, 'y': 0,
                      'w': 1, 'h': 1, 'flip': false, 'angle': 0.0::FLOAT, 'blend': 'none', 'source_box': NULL::INT[],
                      'source_background_id': NULL::VARCHAR}}] AS objects
                   FROM range({n_images}) r(i)) TO '{t("plan")}/part-a.parquet'""")
    con.execute(f"""COPY (SELECT '{JOB}' AS job, '{FP}' AS fingerprint, i AS image_id, lpad(i::VARCHAR, 9, '0') AS key,
                   (i // {shard_size})::INT AS shard,
                   'jobs/{JOB}/{FP}/shards/shard-' || lpad((i // {shard_size})::VARCHAR, 6, '0') || '.tar' AS shard_uri,
                   lpad(i::VARCHAR, 9, '0') || '.rgba.png' AS file_name, 1024 AS width, 1024 AS height,
                   NULL::VARCHAR AS background_id, {per_image} AS instances, {per_image} AS planned, 0 AS dropped,
                   0 AS replaced FROM range({n_images}) r(i)) TO '{t("images")}/part-a.parquet'""")
    con.execute(f"""COPY (SELECT '{JOB}' AS job, '{FP}' AS fingerprint, i // {per_image} AS image_id,
                   (i // {per_image}) * 1000 + i % {per_image} + 1 AS ann_id, (i % {per_image} + 1)::INT AS panoptic_id,
                   md5(i::VARCHAR) AS segment_id, (hash(i) % 1200 + 1)::INT AS category_id,
                   [(i % 900)::DOUBLE, (i % 700)::DOUBLE, 40.0 + i % 90, 30.0 + i % 80] AS bbox,
                   (500 + i % 20000)::BIGINT AS area, repeat(md5(i::VARCHAR), 3) AS rle_counts, 0::TINYINT AS iscrowd,
                   0.9::FLOAT AS visible_fraction, (i % {per_image})::INT AS layer, 'none' AS blend,
                   NULL::VARCHAR AS replaced_segment_id
                   FROM range({n_images * per_image}) r(i)) TO '{t("annotations")}/part-a.parquet'""")
    con.execute(f"""COPY (SELECT '{JOB}' AS job, '{FP}' AS fingerprint, 'compose' AS stage, s::INT AS shard,
                   'jobs/{JOB}/{FP}/shards/shard-' || lpad(s::VARCHAR, 6, '0') || '.tar' AS shard_uri,
                   {shard_size} AS samples, 0::BIGINT AS bytes, '' AS sha256, []::VARCHAR[] AS inputs, 'bench' AS code_version,
                   '{{}}' AS params FROM range({-(-n_images // shard_size)}) r(s)) TO '{t("manifest")}/part-a.parquet'""")
    os.makedirs(os.path.join(root, "jobs", JOB, FP), exist_ok=True)
    open(os.path.join(root, "jobs", JOB, FP, "job.json"), "w").write("{}")


def write_per_image_json(root: str, folder: str) -> None:
    """The reference layout: one annotation JSON per image."""
    os.makedirs(folder)
    con = duckdb.connect()
    reader = con.sql(f"""SELECT image_id, list({{'id': ann_id, 'category_id': category_id, 'bbox': bbox, 'area': area,
                   'segmentation': {{'size': [1024, 1024], 'counts': rle_counts}}, 'iscrowd': 0}}) AS anns
                   FROM read_parquet('{root}/tables/annotations/*.parquet') GROUP BY image_id""").to_arrow_reader()
    for batch in reader:
        for rec in batch.to_pylist():
            with open(os.path.join(folder, f"{rec['image_id']:09d}.json"), "w") as f:
                json.dump(rec, f)


BASELINE = r'''
import json, os, sys
folder, out = sys.argv[1], sys.argv[2]
images, anns = [], []
for name in sorted(os.listdir(folder)):
    with open(os.path.join(folder, name)) as fh:
        rec = json.load(fh)
    images.append({"id": rec["image_id"], "file_name": name[:-5] + ".png", "width": 1024, "height": 1024})
    for a in rec["anns"]:
        anns.append({**a, "image_id": rec["image_id"]})
json.dump({"images": images, "annotations": anns, "categories": []}, open(out, "w"))
'''


def timed_child(args: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MB) of one child process (os.wait4 gives its own rusage)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"{args[:4]} failed: {proc.stderr.read().decode()[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=100_000)
    ap.add_argument("--per-image", type=int, default=12)
    ap.add_argument("--small", action="store_true")
    args = ap.parse_args()
    if args.small:
        args.images = 5000
    work = tempfile.mkdtemp(prefix="soclake-export-bench-")
    try:
        lake = os.path.join(work, "lake")
        t0 = time.perf_counter()
        generate(lake, args.images, args.per_image)
        print(f"generated {args.images} images x {args.per_image} instances in {time.perf_counter() - t0:.1f}s")
        soclake = [sys.executable, "-m", "soclake.cli", "export", "--lake", lake, "--job", JOB, "--format", "coco",
                   "--out", os.path.join(work, "coco")]
        wall, peak = timed_child(soclake)
        doc = json.load(open(os.path.join(work, "coco", "annotations.json")))
        assert len(doc["images"]) == args.images and len(doc["annotations"]) == args.images * args.per_image
        print(f"soclake export coco: {wall:.2f} s, peak {peak:.0f} MB (targets < 10 s, < 2048 MB)")
        per_image = os.path.join(work, "per_image")
        write_per_image_json(lake, per_image)
        base_wall, base_peak = timed_child([sys.executable, "-c", BASELINE, per_image, os.path.join(work, "merged.json")])
        print(f"baseline (merge per-image JSON files in Python): {base_wall:.2f} s, peak {base_peak:.0f} MB")
        print(f"speed-up: {base_wall / wall:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
