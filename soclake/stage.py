"""Shard-in, shard-out stages (relight, refexp): read a job's committed shards, write new
shards with the same keys and new or replaced members, with lineage in the manifest.

A stage module provides `process(samples, params, seed, context) -> StageOutput` over one
shard's samples, and optionally `check(params)` (run before any shard is read) and
`actor_options(params)` (resources of the long-lived workers that keep its model loaded,
e.g. {"num_gpus": 1}; without it shards run as plain tasks). The input job may be a compose
job or another stage's job. Fingerprinted, resumable and split like compose.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import sys
import time
from dataclasses import dataclass, field

from tqdm import tqdm

from soclake import executors, faults, jobspec, storage
from soclake.errors import SoclakeError
from soclake.jobspec import JobSpec
from soclake.lake import Lake
from soclake.schemas import to_table
from soclake.shards import claim, commit_shard, committed_shards, read_samples, sweep, tar_bytes

STAGES = {"relight": "soclake.relight", "refexp": "soclake.language.stage"}


@dataclass
class StageOutput:
    samples: list[tuple[str, dict[str, bytes]]]
    tables: dict[str, list[dict]] = field(default_factory=dict)
    flagged: int = 0  # samples the stage could only partly handle (reported in the summary)


@dataclass
class StageSummary:
    stage: str
    job: str
    fingerprint: str
    input: str
    folder: str
    shards_total: int
    shards_rendered: int
    images: int = 0
    flagged: int = 0
    seconds: float = 0.0
    failed: dict = field(default_factory=dict)
    concurrent: dict = field(default_factory=dict)  # shard -> "busy"/"committed": left to another runner

    def add(self, stats: dict) -> None:
        self.images += stats["images"]
        self.flagged += stats["flagged"]

    def describe(self) -> str:
        from soclake.jobs import failures, not_rendered, timing
        return (f"{self.stage} {self.job} [{self.fingerprint}] of {self.input}: {self.shards_rendered} shard(s) done "
                f"{not_rendered(self)}: {self.images} images, {self.flagged} flagged, {timing(self)}\n"
                f"shards: {self.folder}/shards/{failures(self)}")


def resolve_input(lake: Lake, job: str) -> tuple[str, str]:
    """(fingerprint, stage) of a job's newest output with committed shards, any stage."""
    rows = lake.query("SELECT DISTINCT fingerprint, stage FROM manifest WHERE job = $job", {"job": job}).to_pylist()
    if not rows:
        raise SoclakeError(f"job {job!r} has no committed shards in {lake.uri}; run it first")
    newest = max(rows, key=lambda r: lake.fs.modified(lake.path("jobs", job, r["fingerprint"], "job.json"))
                 if lake.fs.exists(lake.path("jobs", job, r["fingerprint"], "job.json")) else 0)
    return newest["fingerprint"], newest["stage"]


def stage_shard(task: dict) -> dict:
    """Worker: process one input shard and commit the output shard (unless another runner
    holds it or has committed it: then {"shard", "skipped": state})."""
    lake = Lake.from_ref(task["lake"])
    with claim(lake, task["job"], task["fingerprint"], task["shard"], task["output_uri"]) as state:
        if state != "claimed":
            return {"shard": task["shard"], "skipped": state}
        return _stage_claimed_shard(lake, task)


def _stage_claimed_shard(lake: Lake, task: dict) -> dict:
    module = importlib.import_module(STAGES[task["stage"]])
    data = lake.fs.cat_file(lake.path(task["input_uri"]))
    if hashlib.sha256(data).hexdigest() != task["input_sha256"]:
        raise SoclakeError(f"input shard {task['input_uri']} does not match its manifest sha256")
    out = module.process(read_samples(data), task["params"], task["seed"],
                         {"job": task["job"], "fingerprint": task["fingerprint"], "shard": task["shard"]})
    faults.point("render")
    tables = {t: to_table(t, rows) for t, rows in out.tables.items()}
    commit_shard(lake, task["job"], task["fingerprint"], task["stage"], task["shard"], task["output_uri"],
                 tar_bytes(out.samples), tables, [f"{task['input_uri']}#{task['input_sha256']}"],
                 task["code_version"], task["params_json"], samples=len(out.samples))
    return {"shard": task["shard"], "images": len(out.samples), "flagged": out.flagged}


def run(lake: Lake, spec: JobSpec, workers: int | None = None, progress: bool | None = None,
        executor: str = "local", split: str | None = None, retries: int | None = None,
        address: str | None = None) -> StageSummary:
    """Process every committed shard of the input job not done yet (of one split: shards
    s with s % N == I). A shard that fails is tried again up to `retries` times."""
    from soclake.jobs import execute, in_split, worker_count
    stage = spec.kind
    if stage not in STAGES:
        raise SoclakeError(f"{spec.name}: not a stage spec (it needs a [relight] or [refexp] section)")
    t0 = time.perf_counter()
    workers = worker_count(lake, executor, workers)
    module = importlib.import_module(STAGES[stage])
    params = dict(spec[stage])
    if hasattr(module, "check"):
        module.check(params)  # e.g. a missing model is an error before any shard is read
    if hasattr(module, "prepare_params"):
        params = module.prepare_params(lake, params)
    input_fp, input_stage = resolve_input(lake, spec["job"]["input"])
    fp = jobspec.fingerprint(spec, input_fp)
    folder = f"jobs/{spec.name}/{fp}"
    inputs = lake.query("SELECT shard, shard_uri, sha256 FROM manifest WHERE fingerprint = $fp AND stage = $stage "
                        "ORDER BY shard", {"fp": input_fp, "stage": input_stage}).to_pylist()
    done = committed_shards(lake, fp, stage)
    todo = set(in_split(set(r["shard"] for r in inputs) - done, split))
    summary = StageSummary(stage, spec.name, fp, f"{spec['job']['input']} [{input_fp}]", folder, len(inputs), 0)
    marker = lake.path(folder, "job.json")
    if not lake.fs.exists(marker):  # a finished job reruns as a no-op even on a read-only lake
        storage.write_bytes(lake.fs, marker, json.dumps(
            {"job": spec.name, "fingerprint": fp, "stage": stage, "input": spec["job"]["input"],
             "input_fingerprint": input_fp, "spec": spec.values}, indent=1, sort_keys=True).encode())
    if todo:  # what killed runners left, of this run's shards only
        sweep(lake, spec.name, fp, f"{folder}/shards", only=todo)
    tasks = [{"lake": lake.ref, "stage": stage, "job": spec.name, "fingerprint": fp, "shard": r["shard"],
              "input_uri": r["shard_uri"], "input_sha256": r["sha256"],
              "output_uri": f"{folder}/shards/shard-{r['shard']:06d}.tar", "seed": spec["job"]["seed"],
              "params": params, "params_json": spec.canonical_json(), "code_version": jobspec.code_version()}
             for r in inputs if r["shard"] in todo]
    actor = module.actor_options(params) if hasattr(module, "actor_options") else None
    retries = spec["job"]["retries"] if retries is None else retries
    bar = tqdm(total=len(tasks), desc=f"{stage} {spec.name}", unit="shard", file=sys.stderr,
               disable=None if progress is None else not progress)
    by_shard = {t["shard"]: t for t in tasks}

    def process(shards: list[int], wait: bool):
        return executors.run_tasks(executor, stage_shard, [{**by_shard[s], "wait": wait} for s in shards], workers,
                                   retries, actor, address)

    execute(process, sorted(todo), summary, lake, len(done), bar)
    bar.close()
    lake.refresh()
    from soclake.stream import write_index
    write_index(lake, spec.name, fp, stage=stage)
    summary.seconds = time.perf_counter() - t0
    return summary
