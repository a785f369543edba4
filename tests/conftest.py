"""Shared fixtures: tiny RGBA cut-outs and pools in each layout, built by the tests."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image


def blob_rgba(seed: int, size: int = 96, soft: bool = True) -> np.ndarray:
    """An off-centre textured ellipse with an anti-aliased (soft) edge on a transparent canvas."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cx, cy = rng.uniform(0.35, 0.65, 2) * size
    rx, ry = rng.uniform(0.15, 0.3, 2) * size
    d = 1 - np.sqrt(((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2)
    alpha = np.clip(d * (rx if soft else 1e6), 0, 1)
    rgb = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    a8 = (alpha * 255 + 0.5).astype(np.uint8)
    rgb[a8 == 0] = 0
    return np.dstack([rgb, a8])


def save_png(path, arr) -> str:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(arr).save(path)
    return str(path)


@pytest.fixture
def soc_pool(tmp_path):
    """SOC layout: 2 categories x 2 subcategories x 2 ids, metadata and quality files."""
    root = tmp_path / "pool"
    meta, quality = {}, {}
    seed = 0
    for cat in ("apple", "Hot_Dog"):
        for sub in ("0", "1"):
            meta[f"{cat}_{sub}"] = {"description": f"a {cat} number {sub}", "short_phrase": f"red {cat}",
                                    "features": ["red", "shiny"]}
            for i in range(2):
                seed += 1
                save_png(root / cat / sub / f"{i}.png", blob_rgba(seed))
                quality[f"{cat}/{sub}/{i}.png"] = {"IsInstance": i == 0, "Integrity": True,
                                                   "QualityAndRegularity": sub == "0"}
    (root / "pool_metadata.json").write_text(json.dumps(meta))
    (root / "segment_quality.json").write_text(json.dumps(quality))
    return root


@pytest.fixture
def lake(tmp_path):
    from soclake import Lake
    return Lake(str(tmp_path / "lake"), create=True)


@pytest.fixture(scope="session")
def sample_lake(tmp_path_factory):
    """A lake holding the built-in sample pool (segments + backgrounds); treat it as read-only
    for pools: tests may add jobs to it."""
    from soclake import Lake
    from soclake.ingestion import ingest
    from soclake.sample_pool import write_sample_pool
    root = tmp_path_factory.mktemp("sample")
    write_sample_pool(str(root / "pool"), seed=1, ids=2, subcategories=3)
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "soc", str(root / "pool" / "segments"), source_name="sample", workers=2, progress=False)
    ingest(lake, "backgrounds", str(root / "pool" / "backgrounds"), source_name="bg", workers=2, progress=False)
    return lake


def job_spec(name: str, **sections):
    """A resolved job spec from keyword sections, e.g. job_spec("j", layout={"width": 64})."""
    from soclake.spec.load import resolve
    raw = {"job": {"name": name, "images": 6, "shard_size": 3}, "layout": {"width": 160, "height": 128}}
    for section, values in sections.items():
        raw.setdefault(section, {}).update(values)
    return resolve(raw)


def wipe_job(lake, fingerprint: str, folder: str) -> None:
    """Delete everything one fingerprint of a job wrote (its folder and its table parts), so
    that the same spec runs again from scratch, e.g. on another executor."""
    lake.fs.rm(lake.path(folder), recursive=True)
    for table in ("plan", "images", "annotations", "refexps", "manifest"):
        for part in lake.table_parts(table):
            if fingerprint in os.path.basename(part):
                lake.fs.rm(part)
    lake.refresh()


def job_outputs(lake, fingerprint: str, stage: str = "compose") -> dict:
    """{shard: (shard bytes, manifest sha256)} of a job fingerprint's committed shards."""
    rows = lake.query("SELECT shard, shard_uri, sha256 FROM manifest WHERE fingerprint = $fp AND stage = $stage",
                      {"fp": fingerprint, "stage": stage}).to_pylist()
    return {r["shard"]: (lake.fs.cat_file(lake.path(r["shard_uri"])), r["sha256"]) for r in rows}


def forget_job(lake, fingerprint: str, folder: str) -> None:
    """Delete everything a job wrote (its folder and table parts), so it plans and renders anew."""
    import os
    lake.fs.rm(lake.path(folder), recursive=True)
    for table in ("plan", "images", "annotations", "manifest"):
        for p in lake.table_parts(table):
            if fingerprint in p:
                os.unlink(p)
    lake.refresh()


def folders_lake(root, seed_step: int):
    """A lake of the folders layout: categories apple and pear, three 40-px blobs each."""
    from soclake import Lake
    from soclake.ingestion import ingest
    for c, cat in enumerate(("apple", "pear")):
        for i in range(3):
            save_png(root / "src" / cat / f"{i}.png", blob_rgba(seed_step * c + i, 40))
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "folders", str(root / "src"), workers=1, progress=False)
    return lake


@pytest.fixture(scope="session")
def app_lake(tmp_path_factory):
    """The lake the app's tests browse (tests/app_lake.py); read-only."""
    import app_lake as builder
    return builder.build(str(tmp_path_factory.mktemp("app")))
