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

from soclake.lake import Lake
from soclake.schemas import table_names
from soclake.shards import read_samples


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
    from pycocotools import mask as mask_utils

    from soclake.imaging import open_image
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
    for marker in sorted(lake.fs.glob(lake.path("jobs", job or "*", "*", "job.json"))):
        folder = lake.relpath(marker.rsplit("/", 1)[0])
        _, name, fingerprint = folder.split("/")
        out.append((name, fingerprint, folder))
    return out


def leftovers(lake: Lake, job: str | None = None) -> dict[str, list[str]]:
    """Files interrupted runs left, by folder: abandoned temporaries, and the files of
    uncommitted shards. Never read by anything; removed by the job's next run or --repair."""
    from soclake import shards, storage
    found = {}
    for name, fingerprint, folder in job_folders(lake, job):
        shards_folder = f"{folder}/shards"
        paths = shards.abandoned_temps(lake, name, fingerprint, shards_folder)
        paths += [p for ps in shards.uncommitted_files(lake, name, fingerprint, shards_folder).values() for p in ps]
        if paths:
            found[folder] = sorted(paths)
    if job is None:  # and what killed ingests left
        packs = [lake.relpath(p) for p in lake.fs.glob(lake.path("packs", "*")) if lake.fs.isdir(p)]
        for folder in ["packs", *packs] + [f"tables/{t}" for t in table_names()]:
            paths = storage.abandoned_temps(lake.fs, lake.path(folder))
            paths = [p for p in paths if not any(p in ps for ps in found.values())]
            if paths:
                found[folder] = paths
    return found


def sweep_leftovers(lake: Lake, job: str | None = None) -> int:
    from soclake import shards
    removed = sum(shards.sweep(lake, name, fp, f"{folder}/shards", force=True) for name, fp, folder in job_folders(lake, job))
    for folder, paths in leftovers(lake, job).items():
        for path in paths:
            if not folder.startswith("jobs/"):
                lake.fs.rm(path)
                removed += 1
    return removed


def repair(lake: Lake, problems: list[Problem]) -> list[str]:
    """Re-render bad compose shards from the stored plan; stage shards are uncommitted so the
    next `soclake run` of their job redoes them. Returns what was done, per shard."""
    from soclake import jobs, jobspec
    done = []
    for p in problems:
        part = f"{p.job}-{p.fingerprint}-{p.shard:06d}"
        for table in ("manifest", "images", "annotations", "refexps"):
            for path in lake.table_parts(table):
                if os.path.basename(path) == f"part-{part}.parquet":
                    lake.fs.rm(path)
        lake.refresh()
        if p.stage != "compose":
            done.append(f"{p.shard_uri}: uncommitted; rerun the {p.stage} job {p.job!r} to redo it")
            continue
        info = json.loads(lake.fs.cat_file(lake.path("jobs", p.job, p.fingerprint, "job.json")))
        job = jobs.Job(p.job, p.fingerprint, jobspec.resolve(info["spec"]), info["code_version"])
        result = jobs.render_shard_safely(jobs.shard_task(lake, job, p.shard))
        done.append(f"{p.shard_uri}: " + (f"FAILED {result['error']}" if "error" in result else "re-rendered"))
        lake.refresh()
    return done
