"""Compose jobs: fingerprint a spec against the pool, commit its plan, and render the shards
that are not committed yet with an executor. Rerunning a finished job does nothing; an
interrupted one renders only its missing shards; a changed spec or pool gets a new folder.
"""
from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass

from soclake import faults, paths
from soclake.errors import SoclakeError
from soclake.jobs import executors, runner
from soclake.lake import Lake, catalog
from soclake.lake.schemas import to_table
from soclake.lake.snapshot import pool_snapshot
from soclake.plan import feedback, make_plan, sampling_weights
from soclake.render.compose import render_image
from soclake.shards.commit import claim, commit_shard, sweep
from soclake.shards.tar import tar_bytes
from soclake.spec import variations
from soclake.spec.identity import code_version, fingerprint
from soclake.spec.model import JobSpec

STAGE = "compose"


@dataclass
class Job:
    name: str
    fingerprint: str
    spec: JobSpec
    code_version: str

    @property
    def shards(self) -> int:
        return variations.shard_count(self.spec)


@dataclass
class RunSummary(runner.Summary):
    instances: int = 0
    dropped: int = 0
    unseen: int = 0  # of the dropped: visible in area, but not shown by the final pixels
    replaced: int = 0
    unreadable: int = 0

    COUNTS = ("images", "instances", "dropped", "unseen", "replaced", "unreadable")

    def describe(self) -> str:
        return (f"job {self.job} [{self.fingerprint}]: rendered {self.shards_rendered} shard(s) "
                f"{self.not_rendered()}: {self.images} images, {self.instances} instances, "
                f"{self.dropped} dropped ({self.dropped - self.unseen} too small a visible area, {self.unseen} not "
                f"shown by the final pixels), {self.replaced} replaced segments, "
                f"{self.unreadable_note()}{self.timing()}\n{self.where()}")

    def unreadable_note(self) -> str:
        """Segment reads that failed in shards committed anyway (the spec's [render] on_unreadable
        allowed it): said, never silent."""
        if not self.unreadable:
            return ""
        return (f"{self.unreadable} segment read(s) FAILED and were replaced or dropped as [render] on_unreadable "
                "allows (see failed_reads in the samples; `soclake verify --deep` lists them), ")


def _inputs_digest(spec: JobSpec) -> str:
    h = hashlib.sha256()
    for key in (("pool", "vocab"), ("layout", "annotations")):
        value = spec[key[0]][key[1]]
        if value:
            path = spec.path(value)
            if not os.path.isfile(path):
                raise SoclakeError(f"[{key[0]}] {key[1]} = {value!r}: {path} does not exist or is not a file")
            with open(path, "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
    return h.hexdigest()


def prepare(lake: Lake, spec: JobSpec) -> Job:
    digest = _inputs_digest(spec)
    if spec["sampling"]["feedback"]:  # the plan reads the feedback: its numbers are an input
        digest += feedback.digest(lake, spec["sampling"]["feedback"])
    fp = fingerprint(spec, pool_snapshot(lake), digest)
    return Job(spec.name, fp, spec, code_version())


def plan(lake: Lake, job: Job, workers: int = 1) -> dict:
    """Write the job's plan (once) and its job.json, which commits it."""
    info = catalog.read_marker(lake, job.name, job.fingerprint)
    if info is not None:
        return info
    table, summary = make_plan(lake, job.spec, job.fingerprint, workers)
    lake.append("sampling_weights", sampling_weights(lake, job.spec, job.fingerprint), f"{job.name}-{job.fingerprint}")
    lake.append("plan", table, f"{job.name}-{job.fingerprint}")
    info = {"job": job.name, "fingerprint": job.fingerprint, "stage": STAGE, "code_version": job.code_version,
            "shards": job.shards, "spec": job.spec.values, "plan": asdict(summary)}
    catalog.write_marker(lake, job.name, job.fingerprint, info)
    return info


def shard_task(lake: Lake, job: Job, shard: int) -> dict:
    """Everything a worker needs to render one shard, resolved in SQL by the main process."""
    rows = lake.read("SELECT * FROM plan WHERE fingerprint = $fp AND shard = $s ORDER BY image_id",
                      {"fp": job.fingerprint, "s": shard}).to_pylist()
    ids = sorted({sid for r in rows for o in r["objects"] for sid in (o["segment_id"], o["fallback_id"])})
    segs = lake.read("SELECT segment_id, levels, category, subcategory, short_phrase, description, features, "
                      "dominant_color FROM segments WHERE list_contains($ids, segment_id)", {"ids": ids})
    bg_ids = sorted({r["background_id"] for r in rows if r["background_id"]} |
                    {o["source_background_id"] for r in rows for o in r["objects"] if o["source_background_id"]})
    bgs = lake.read("SELECT background_id, pack, \"offset\", length FROM backgrounds "
                     "WHERE list_contains($ids, background_id)", {"ids": bg_ids})
    return {"lake": lake.ref, "job": job.name, "fingerprint": job.fingerprint, "shard": shard,
            "shard_uri": paths.shard_uri(job.name, job.fingerprint, shard), "code_version": job.code_version,
            "params": job.spec.canonical_json(), "render": job.spec["render"], "plan": rows,
            "segments": {r["segment_id"]: r for r in segs.to_pylist()},
            "backgrounds": {r["background_id"]: r for r in bgs.to_pylist()}}


def render_shard_safely(task: dict) -> dict:
    """A shard that fails is reported ({"shard", "error"}), never raised."""
    try:
        return render_shard(task)
    except Exception as e:  # reported per shard; the shard stays uncommitted and is retried next run
        return {"shard": task["shard"], "error": f"{type(e).__name__}: {e}"}


def render_shard(task: dict) -> dict:
    """Render every image of a shard, write and commit it, unless another runner holds the
    shard or has committed it (then {"shard", "skipped": state}). Pure of the task."""
    lake = Lake.from_ref(task["lake"])
    with claim(lake, task["job"], task["fingerprint"], task["shard"], task.get("wait", False)) as state:
        if state != "claimed":
            return {"shard": task["shard"], "skipped": state}
        return _render_claimed_shard(lake, task)


def _render_claimed_shard(lake: Lake, task: dict) -> dict:
    t0 = time.perf_counter()
    provenance = {"job": task["job"], "fingerprint": task["fingerprint"], "code_version": task["code_version"]}
    samples, images, anns = [], [], []
    stats = {"shard": task["shard"], "images": 0, "instances": 0, "dropped": 0, "unseen": 0, "replaced": 0,
             "unreadable": 0}
    for row in task["plan"]:
        out = render_image(row, task["segments"], task["backgrounds"], lake.read_range, task["render"], provenance)
        samples.append((row["key"], out.members))
        images.append({"job": task["job"], "fingerprint": task["fingerprint"], "image_id": row["image_id"],
                       "key": row["key"], "shard": task["shard"], "shard_uri": task["shard_uri"],
                       "file_name": out.info["file_name"], "width": row["width"], "height": row["height"],
                       "background_id": row["background_id"], "instances": len(out.annotations),
                       "planned": sum(o["role"] == "object" for o in row["objects"]),
                       "dropped": out.dropped, "unseen": out.unseen, "replaced": out.replaced,
                       **{k: row.get(k) for k in ("base_id", "factor", "factor_value", "target_id", "added_ids")}})
        for a in out.annotations:
            anns.append({"job": task["job"], "fingerprint": task["fingerprint"], "image_id": row["image_id"],
                         **{k: a[k] for k in ("ann_id", "panoptic_id", "segment_id", "category_id", "bbox", "area",
                                              "iscrowd", "visible_fraction", "shown_fraction", "layer", "blend",
                                              "replaced_segment_id")},
                         "rle_counts": a["segmentation"]["counts"],
                         **{k: a["attributes"].get(k) for k in ("subcategory", "description", "short_phrase", "features")}})
        stats["images"] += 1
        stats["instances"] += len(out.annotations)
        stats["dropped"] += out.dropped
        stats["unseen"] += out.unseen
        stats["replaced"] += out.replaced
        stats["unreadable"] += out.unreadable
        faults.point("render")
    commit_shard(lake, task["job"], task["fingerprint"], STAGE, task["shard"], tar_bytes(samples), {"images": to_table("images", images), "annotations": to_table("annotations", anns)},
                 [f"pool:{task['fingerprint']}"], task["code_version"], task["params"])
    stats["seconds"] = time.perf_counter() - t0
    return stats


def run(lake: Lake, spec: JobSpec, workers: int | None = None, executor: str = "local",
        progress: bool | None = None, split: str | None = None, retries: int | None = None,
        address: str | None = None) -> RunSummary:
    """Plan if needed, then render and commit every shard not committed yet (of one split:
    shards s with s % N == I, so N machines never render the same shard). A shard that fails
    is tried again up to `retries` times ([job] retries by default), then reported."""
    t0 = time.perf_counter()
    job = prepare(lake, spec)
    workers = runner.worker_count(lake, executor, workers)
    if catalog.read_marker(lake, job.name, job.fingerprint) is None:  # a finished job replans nothing
        with lake.writer_lock(wait=True):
            plan(lake, job, workers or os.cpu_count() or 1)
    lake.refresh()
    done = catalog.committed_shards(lake, job.fingerprint, STAGE)
    todo = runner.in_split(set(range(job.shards)) - done, split)
    if todo:  # what killed runners left, of this run's shards only
        sweep(lake, job.name, job.fingerprint, only=set(todo))
    summary = RunSummary(job.name, job.fingerprint, job.shards)
    bar = runner.progress_bar(len(todo), f"render {job.name}", progress)
    retries = spec["job"]["retries"] if retries is None else retries

    def render(shards: list[int], wait: bool):
        tasks = ({**shard_task(lake, job, s), "wait": wait} for s in shards)
        return executors.run_tasks(executor, render_shard, tasks, workers, retries, address=address)

    runner.execute(render, todo, summary, lake, len(done), bar)
    lake.refresh()
    runner.write_indexes(lake, job.name, job.fingerprint, STAGE)
    summary.seconds = time.perf_counter() - t0
    return summary
