"""`soclake verify`: check committed shards against their manifest rows (existence, size,
sha256, sample count), optionally decode every member and check annotations against the
pixels (--deep), list what interrupted runs left behind (temporary files, uncommitted parts),
and re-render bad compose shards from their plan and remove the leftovers (--repair).
"""
from __future__ import annotations

import hashlib
import json
import os
import tarfile
from dataclasses import dataclass

import numpy as np
from pycocotools import mask as mask_utils

from soclake import paths, storage
from soclake.imaging import open_image
from soclake.jobs import compose
from soclake.lake import Lake, catalog
from soclake.lake.schemas import table_names
from soclake.shards import commit as shards
from soclake.shards.tar import read_samples
from soclake.spec.load import resolve


@dataclass
class Problem:
    job: str
    stage: str
    fingerprint: str
    shard: int
    shard_uri: str
    problem: str


def _deep_check(samples: list[tuple[str, dict[str, bytes]]]) -> str | None:
    """Every member decodes (images within the pixel limit); every instance's RLE equals its
    panoptic region."""
    for key, members in samples:
        try:
            for ext, blob in members.items():
                if ext.endswith("json"):
                    json.loads(blob)
                else:
                    open_image(blob).load()
        except Exception as e:
            return f"sample {key}: member does not decode ({type(e).__name__})"
        if "pan.png" in members and "json" in members:
            try:
                rgb = np.asarray(open_image(members["pan.png"]).convert("RGB")).astype(np.int64)
                pan = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
                for inst in json.loads(members["json"])["instances"]:
                    seg = inst["segmentation"]
                    m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"]})
                    if not np.array_equal(m.astype(bool), pan == inst["panoptic_id"]) or int(m.sum()) != inst["area"]:
                        return f"sample {key}: instance {inst['ann_id']} disagrees with the panoptic map"
            except Exception as e:  # a JSON of another shape: reported, never a crash
                return f"sample {key}: annotations cannot be checked ({type(e).__name__}: {str(e)[:100]})"
    return None


def _shard_problem(data: bytes, expected_samples: int, deep: bool) -> str | None:
    skipped: list[str] = []
    try:
        samples = read_samples(data, lambda name, why: skipped.append(f"{name[:100]!r} ({why})"))
    except (tarfile.TarError, EOFError, OSError) as e:
        return f"unreadable tar ({e})"
    if skipped:
        return f"member {skipped[0]} is not a sample file" + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
    if len(samples) != expected_samples:
        return f"{len(samples)} samples != manifest {expected_samples}"
    return _deep_check(samples) if deep else None


def verify(lake: Lake, job: str | None = None, deep: bool = False) -> tuple[int, list[Problem]]:
    """(shards checked, problems found)."""
    rows = lake.query("SELECT job, stage, fingerprint, shard, shard_uri, samples, bytes, sha256 FROM manifest "
                      "WHERE $job IS NULL OR job = $job ORDER BY job, stage, shard", {"job": job}).to_pylist()
    problems = []
    for r in rows:
        path = lake.path(r["shard_uri"])
        problem = None
        if not lake.fs.exists(path):
            problem = "missing shard file"
        else:
            data = lake.fs.cat_file(path)
            if len(data) != r["bytes"]:
                problem = f"size {len(data)} != manifest {r['bytes']}"
            elif hashlib.sha256(data).hexdigest() != r["sha256"]:
                problem = "sha256 mismatch"
            else:
                problem = _shard_problem(data, r["samples"], deep)
        if problem:
            problems.append(Problem(r["job"], r["stage"], r["fingerprint"], r["shard"], r["shard_uri"], problem))
    return len(rows), problems


def job_folders(lake: Lake, job: str | None = None) -> list[tuple[str, str, str]]:
    """(job, fingerprint, folder) of every planned job (or of one job's fingerprints)."""
    out = []
    for marker in sorted(lake.fs.glob(lake.path(paths.marker_uri(job or "*", "*")))):
        parsed = paths.parse_marker(lake.relpath(marker))
        if parsed:
            out.append((*parsed, paths.job_folder(*parsed)))
    return out


def leftovers(lake: Lake, job: str | None = None) -> dict[str, list[str]]:
    """Files interrupted runs left, by folder: abandoned temporaries, and the files of
    uncommitted shards. Never read by anything; removed by the job's next run or --repair."""
    found = {}
    for name, fingerprint, folder in job_folders(lake, job):
        files = shards.abandoned_temps(lake, name, fingerprint)
        files += [p for ps in shards.uncommitted_files(lake, name, fingerprint).values() for p in ps]
        if files:
            found[folder] = sorted(files)
    if job is None:  # and what killed ingests left
        packs = [lake.relpath(p) for p in lake.fs.glob(lake.path("packs", "*")) if lake.fs.isdir(p)]
        for folder in ["packs", *packs] + [lake.relpath(lake.table_dir(t)) for t in table_names()]:
            files = storage.abandoned_temps(lake.fs, lake.path(folder))
            files = [p for p in files if not any(p in ps for ps in found.values())]
            if files:
                found[folder] = files
    return found


def sweep_leftovers(lake: Lake, job: str | None = None) -> int:
    removed = sum(shards.sweep(lake, name, fp, force=True) for name, fp, _ in job_folders(lake, job))
    for folder, files in leftovers(lake, job).items():
        for path in files:
            if not folder.startswith(paths.JOBS + "/"):
                lake.fs.rm(path)
                removed += 1
    return removed


def repair(lake: Lake, problems: list[Problem]) -> list[str]:
    """Re-render bad compose shards from the stored plan; stage shards are uncommitted so the
    next `soclake run` of their job redoes them. Returns what was done, per shard."""
    done = []
    for p in problems:
        part = paths.part_name(p.job, p.fingerprint, p.shard)
        for table in ("manifest", "images", "annotations", "refexps"):
            for path in lake.table_parts(table):
                if os.path.basename(path) == f"part-{part}.parquet":
                    lake.fs.rm(path)
        lake.refresh()
        if p.stage != "compose":
            done.append(f"{p.shard_uri}: uncommitted; rerun the {p.stage} job {p.job!r} to redo it")
            continue
        info = catalog.read_marker(lake, p.job, p.fingerprint)
        if "spec" not in (info or {}):  # an imported job (ingest soc-output) has no plan to re-render from
            done.append(f"{p.shard_uri}: uncommitted; import job {p.job!r} again to redo it")
            continue
        job = compose.Job(p.job, p.fingerprint, resolve(info["spec"]), info["code_version"])
        result = compose.render_shard_safely(compose.shard_task(lake, job, p.shard))
        done.append(f"{p.shard_uri}: " + (f"FAILED {result['error']}" if "error" in result else "re-rendered"))
        lake.refresh()
    return done
