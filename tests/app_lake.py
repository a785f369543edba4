"""The lake the app's tests browse: the built-in sample pool (with a duplicate rejected at
ingest), a compose job with foreground masks, its relit version and referring expressions on
the relit one, a transparent compose job and its relit scene, and generated segment rows (real levels, new ids) so that the gallery has
several pages. Built once per test session; tests treat it as read-only."""
from __future__ import annotations

import hashlib
import os
import shutil

import numpy as np
import pyarrow as pa

from soclake import Lake, api
from soclake.sample_pool import write_sample_pool

GENERATED = 230
"""Extra segment rows: with the real ones, three gallery pages of 100."""
JOBS = ("appj", "appj-relit", "appj-refexp")
CLEAR = ("appt", "appt-relit")
"""A compose job without background (KEY.rgba.png) and its relit version (KEY.jpg: relight
composes the scene), so that a lineage's runs name their composites differently."""


def build(root: str) -> Lake:
    pool = os.path.join(root, "pool")
    write_sample_pool(pool, seed=5, ids=1, subcategories=3)
    lake = Lake(os.path.join(root, "lake"), create=True)
    segments = os.path.join(pool, "segments")
    api.ingest(lake, "soc", segments, source_name="sample", workers=2, progress=False,
               quality=os.path.join(segments, "segment_quality.json"))
    api.ingest(lake, "backgrounds", os.path.join(pool, "backgrounds"), source_name="bg", workers=2, progress=False)
    _duplicate_source(lake, segments, os.path.join(root, "dup"))
    api.run(lake, {"job": {"name": JOBS[0], "images": 4, "shard_size": 2, "seed": 3},
                   "pool": {"filter": "filter_0"}, "sampling": {"objects": [3, 5]},
                   "layout": {"width": 192, "height": 160}, "render": {"background": "pool", "format": "jpg",
                                                                       "fg_mask": True}},
            workers=1, progress=False)
    api.run(lake, {"job": {"name": JOBS[1], "input": JOBS[0]}, "relight": {"backend": "classic"}}, workers=1,
            progress=False)
    api.run(lake, {"job": {"name": JOBS[2], "input": JOBS[1]}, "refexp": {"backend": "graph", "min_pixels": 16}},
            workers=1, progress=False)
    api.run(lake, {"job": {"name": CLEAR[0], "images": 2, "shard_size": 2, "seed": 4},
                   "pool": {"filter": "filter_0"}, "sampling": {"objects": [2, 3]},
                   "layout": {"width": 128, "height": 128}, "render": {"background": "none"}}, workers=1, progress=False)
    api.run(lake, {"job": {"name": CLEAR[1], "input": CLEAR[0]}, "relight": {"backend": "classic"}}, workers=1,
            progress=False)
    _generated_rows(lake, GENERATED)
    return lake


def _duplicate_source(lake: Lake, segments: str, folder: str) -> None:
    """A folders source holding a copy of one sample segment: rejected as a duplicate of it."""
    first = sorted(p for p in os.listdir(os.path.join(segments, "ball")))[0]
    sub = os.path.join(segments, "ball", first)
    png = sorted(os.listdir(sub))[0]
    os.makedirs(os.path.join(folder, "ball"))
    shutil.copy(os.path.join(sub, png), os.path.join(folder, "ball", "copy.png"))
    api.ingest(lake, "folders", folder, source_name="dup", workers=1, progress=False)


def _generated_rows(lake: Lake, n: int) -> None:
    """n rows copying real rows (levels included) under new ids, colours and sizes."""
    real = lake.query("SELECT * FROM segments WHERE source = 'sample' ORDER BY segment_id")
    rng = np.random.default_rng(0)
    take = pa.array(np.arange(n) % real.num_rows)
    rows = real.take(take)
    colours = np.array(["red", "green", "blue", "yellow", "grey"])
    replace = {"segment_id": [hashlib.md5(f"gen{i}".encode()).hexdigest() for i in range(n)],
               "source": ["generated"] * n, "source_uri": [f"gen/{i}.png" for i in range(n)],
               "dominant_color": colours[rng.integers(0, len(colours), n)].tolist(),
               "is_distractor": (rng.random(n) < 0.1).tolist()}
    for name, values in replace.items():
        rows = rows.set_column(rows.schema.get_field_index(name), name, pa.array(values, rows.schema.field(name).type))
    lake.append("segments", rows, part="generated")
