"""Compose jobs: fingerprint a spec against the pool, commit its plan, and render the shards
that are not committed yet with an executor. Rerunning a finished job does nothing; an
interrupted one renders only its missing shards; a changed spec or pool gets a new folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, field

from tqdm import tqdm

from soclake import executors, faults, jobspec, storage
from soclake.errors import SoclakeError
from soclake.jobspec import JobSpec
from soclake.lake import Lake
from soclake.plan import variations
from soclake.schemas import to_table
from soclake.shards import claim, commit_shard, committed_shards, sweep, tar_bytes
from soclake.snapshot import pool_snapshot


@dataclass
class Job:
    name: str
    fingerprint: str
    spec: JobSpec
    code_version: str

    @property
    def folder(self) -> str:
        return f"jobs/{self.name}/{self.fingerprint}"

    def shard_uri(self, shard: int) -> str:
        return f"{self.folder}/shards/shard-{shard:06d}.tar"

    @property
    def shards(self) -> int:
        return variations.shard_count(self.spec)


@dataclass
class RunSummary:
    job: str
    fingerprint: str
    folder: str
    shards_total: int
    shards_rendered: int
    images: int = 0
    instances: int = 0
    dropped: int = 0
    unseen: int = 0
    replaced: int = 0
    seconds: float = 0.0
    failed: dict = field(default_factory=dict)  # shard -> error, for shards that could not be rendered
    concurrent: dict = field(default_factory=dict)  # shard -> "busy"/"committed": left to another runner

    def add(self, stats: dict) -> None:
        for k in ("images", "instances", "dropped", "unseen", "replaced"):
            setattr(self, k, getattr(self, k) + stats[k])

    def describe(self) -> str:
        return (f"job {self.job} [{self.fingerprint}]: rendered {self.shards_rendered} shard(s) "
                f"{not_rendered(self)}: {self.images} images, {self.instances} instances, "
                f"{self.dropped} dropped ({self.dropped - self.unseen} too small a visible area, {self.unseen} not "
                f"shown by the final pixels), {self.replaced} replaced segments, "
                f"{timing(self)}\nshards: {self.folder}/shards/{failures(self)}")


def not_rendered(summary) -> str:
    """Why the shards a run did not render were not: "(3 already committed, 1 by another runner)"."""
    skipped = summary.shards_total - summary.shards_rendered - len(summary.failed)
    others = f", {len(summary.concurrent)} by another runner" if summary.concurrent else ""
    return f"({skipped} already committed{others})"


def timing(summary) -> str:
    rate = summary.images / summary.seconds if summary.seconds else 0.0
    return f"{summary.seconds:.1f}s ({rate:.2f} images/s)"


def failures(summary) -> str:
    return "".join(f"\nFAILED shard {s}: {e} (rerun to retry it)" for s, e in sorted(summary.failed.items()))


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
        from soclake.feedback import digest as feedback_digest
        digest += feedback_digest(lake, spec["sampling"]["feedback"])
    fp = jobspec.fingerprint(spec, pool_snapshot(lake), digest)
    return Job(spec.name, fp, spec, jobspec.code_version())


def is_planned(lake: Lake, job: Job) -> bool:
    return lake.fs.exists(lake.path(job.folder, "job.json"))


def plan(lake: Lake, job: Job, workers: int = 1) -> dict:
    """Write the job's plan (once) and its job.json, which commits it."""
    marker = lake.path(job.folder, "job.json")
    if lake.fs.exists(marker):
        return json.loads(lake.fs.cat_file(marker))
    from soclake.plan import make_plan, sampling_weights
    table, summary = make_plan(lake, job.spec, job.fingerprint, workers)
    lake.append("sampling_weights", sampling_weights(lake, job.spec, job.fingerprint), f"{job.name}-{job.fingerprint}")
    lake.append("plan", table, f"{job.name}-{job.fingerprint}")
    info = {"job": job.name, "fingerprint": job.fingerprint, "code_version": job.code_version,
            "shards": job.shards, "spec": job.spec.values, "plan": asdict(summary)}
    storage.write_bytes(lake.fs, marker, json.dumps(info, indent=1, sort_keys=True).encode())
    return info


def shard_task(lake: Lake, job: Job, shard: int) -> dict:
    """Everything a worker needs to render one shard, resolved in SQL by the main process."""
    rows = lake.query("SELECT * FROM plan WHERE fingerprint = $fp AND shard = $s ORDER BY image_id",
                      {"fp": job.fingerprint, "s": shard}).to_pylist()
    ids = sorted({sid for r in rows for o in r["objects"] for sid in (o["segment_id"], o["fallback_id"])})
    segs = lake.query("SELECT segment_id, levels, category, subcategory, short_phrase, description, features, "
                      "dominant_color FROM segments WHERE list_contains($ids, segment_id)", {"ids": ids})
    bg_ids = sorted({r["background_id"] for r in rows if r["background_id"]} |
                    {o["source_background_id"] for r in rows for o in r["objects"] if o["source_background_id"]})
    bgs = lake.query("SELECT background_id, pack, \"offset\", length FROM backgrounds "
                     "WHERE list_contains($ids, background_id)", {"ids": bg_ids})
    return {"lake": lake.ref, "job": job.name, "fingerprint": job.fingerprint, "shard": shard,
            "shard_uri": job.shard_uri(shard), "code_version": job.code_version,
            "params": job.spec.canonical_json(), "render": job.spec["render"], "plan": rows,
            "segments": {r["segment_id"]: r for r in segs.to_pylist()},
            "backgrounds": {r["background_id"]: r for r in bgs.to_pylist()}}


def render_shard_safely(task: dict) -> dict:
    """A shard that fails is reported ({"shard", "error"}), never raised."""
    try:
        return render_shard(task)
    except Exception as e:  # reported per shard; the shard stays uncommitted and is retried next run
        return {"shard": task["shard"], "error": f"{type(e).__name__}: {e}"}


def raise_fatal(lake: Lake, out: executors.Outcome, committed: int) -> None:
    """Stop a run on a storage error (disk full, read-only lake) with what to do about it."""
    raise SoclakeError(f"writing shard {out.task['shard']} to {lake.uri} failed: {out.error}. "
                       f"Stopped: every further shard would fail the same way. {committed} shard(s) of this job are "
                       "committed and intact, and nothing partial is visible; free space (or make the lake "
                       "writable) and rerun the same command to render the rest.")


def render_shard(task: dict) -> dict:
    """Render every image of a shard, write and commit it, unless another runner holds the
    shard or has committed it (then {"shard", "skipped": state}). Pure of the task."""
    lake = Lake.from_ref(task["lake"])
    with claim(lake, task["job"], task["fingerprint"], task["shard"], task["shard_uri"], task.get("wait", False)) as state:
        if state != "claimed":
            return {"shard": task["shard"], "skipped": state}
        return _render_claimed_shard(lake, task)


def _render_claimed_shard(lake: Lake, task: dict) -> dict:
    from soclake.render.compose import render_image
    t0 = time.perf_counter()
    provenance = {"job": task["job"], "fingerprint": task["fingerprint"], "code_version": task["code_version"]}
    samples, images, anns = [], [], []
    stats = {"shard": task["shard"], "images": 0, "instances": 0, "dropped": 0, "unseen": 0, "replaced": 0}
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
                         "rle_counts": a["segmentation"]["counts"]})
        stats["images"] += 1
        stats["instances"] += len(out.annotations)
        stats["dropped"] += out.dropped
        stats["unseen"] += out.unseen
        stats["replaced"] += out.replaced
        faults.point("render")
    commit_shard(lake, task["job"], task["fingerprint"], "compose", task["shard"], task["shard_uri"],
                 tar_bytes(samples), {"images": to_table("images", images), "annotations": to_table("annotations", anns)},
                 [f"pool:{task['fingerprint']}"], task["code_version"], task["params"])
    stats["seconds"] = time.perf_counter() - t0
    return stats


def parse_split(split: str | None) -> tuple[int, int] | None:
    """'I/N' (or SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT when split is 'slurm') -> (I, N)."""
    if not split:
        return None
    if split == "slurm":
        try:
            i, n = int(os.environ["SLURM_ARRAY_TASK_ID"]), int(os.environ["SLURM_ARRAY_TASK_COUNT"])
        except (KeyError, ValueError):
            raise SoclakeError("--split slurm needs SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT") from None
        i -= int(os.environ.get("SLURM_ARRAY_TASK_MIN", "0"))
    else:
        try:
            i, n = (int(v) for v in split.split("/"))
        except ValueError:
            raise SoclakeError(f"--split {split!r} must be I/N, e.g. 0/4") from None
    if not 0 <= i < n:
        raise SoclakeError(f"--split {split}: I must be in [0, N)")
    return i, n


def run(lake: Lake, spec: JobSpec, workers: int | None = None, executor: str = "local",
        progress: bool | None = None, split: str | None = None, retries: int | None = None,
        address: str | None = None) -> RunSummary:
    """Plan if needed, then render and commit every shard not committed yet (of one split:
    shards s with s % N == I, so N machines never render the same shard). A shard that fails
    is tried again up to `retries` times ([job] retries by default), then reported."""
    t0 = time.perf_counter()
    job = prepare(lake, spec)
    workers = worker_count(lake, executor, workers)
    if not is_planned(lake, job):  # a finished job reruns as a no-op even on a read-only lake
        with lake.writer_lock(wait=True):
            plan(lake, job, workers or os.cpu_count() or 1)
    lake.refresh()
    done = committed_shards(lake, job.fingerprint)
    todo = in_split(set(range(job.shards)) - done, split)
    if todo:  # what killed runners left, of this run's shards only
        sweep(lake, job.name, job.fingerprint, f"{job.folder}/shards", only=set(todo))
    summary = RunSummary(job.name, job.fingerprint, job.folder, job.shards, 0)
    bar = tqdm(total=len(todo), desc=f"render {job.name}", unit="shard", file=sys.stderr,
               disable=None if progress is None else not progress)
    retries = spec["job"]["retries"] if retries is None else retries

    def render(shards: list[int], wait: bool):
        tasks = ({**shard_task(lake, job, s), "wait": wait} for s in shards)
        return executors.run_tasks(executor, render_shard, tasks, workers, retries, address=address)

    execute(render, todo, summary, lake, len(done), bar)
    bar.close()
    lake.refresh()
    from soclake.stream import write_index
    write_index(lake, job.name, job.fingerprint)
    summary.seconds = time.perf_counter() - t0
    return summary


def execute(submit, todo: list[int], summary, lake: Lake, committed_before: int, bar) -> None:
    """Do the shards `todo` with `submit(shards, wait) -> outcomes`, folding the outcomes into
    the run's summary. Shards another process held are waited for at the end (it may be a sweep
    or a worker on its way out, not a runner) and done if it did not commit them. A storage
    error stops the run."""
    _collect(submit(todo, False), summary, lake, committed_before, bar)
    busy = sorted(s for s, state in summary.concurrent.items() if state == "busy")
    if busy:
        for s in busy:
            del summary.concurrent[s]
        _collect(submit(busy, True), summary, lake, committed_before, bar)


def _collect(outcomes, summary, lake: Lake, committed_before: int, bar) -> None:
    for out in outcomes:
        if out.fatal:
            bar.close()
            raise_fatal(lake, out, committed_before + summary.shards_rendered)
        if out.error:
            summary.failed[out.task["shard"]] = failure_note(out)
        elif "skipped" in out.value:
            summary.concurrent[out.task["shard"]] = out.value["skipped"]
            if out.value["skipped"] == "busy":
                continue  # counted when it is waited for
        else:
            summary.shards_rendered += 1
            summary.add(out.value)
        bar.update(1)


def in_split(shards, split: str | None) -> list[int]:
    """The shards of one split (all of them without a split), sorted."""
    part = parse_split(split)
    return sorted(s for s in shards if part is None or s % part[1] == part[0])


def failure_note(out) -> str:
    return out.error + (f" (after {out.attempts} attempts)" if out.attempts > 1 else "")


def worker_count(lake: Lake, executor: str, workers: int | None) -> int | None:
    """Workers run in other processes (or machines): an in-memory lake is not shared with them,
    so it renders in this process, and only with the local executor."""
    if not storage.is_in_memory(lake.fs):
        return workers
    if executor != "local":
        raise SoclakeError(f"the {executor} executor cannot reach an in-memory lake ({lake.uri}); "
                           "use a folder on a shared filesystem or an object store (s3://)")
    return 1


def list_jobs(lake: Lake):
    return lake.query("SELECT job, stage, fingerprint, images, shards, shards_committed, state, bytes, "
                      "'jobs/' || job || '/' || fingerprint || '/shards' AS path FROM job_status")
