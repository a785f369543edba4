"""Running a stage job (relight, refexp): read the input job's committed shards, give each to the
stage, and commit new shards with the same keys and lineage in the manifest. The input may be a
compose job or another stage's job. Fingerprinted, resumable and split like compose.
"""
from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass

from soclake import faults
from soclake.errors import SoclakeError
from soclake.jobs import executors, runner
from soclake.lake import Lake, catalog
from soclake.lake.schemas import to_table
from soclake.shards.commit import claim, commit_shard, sweep
from soclake.shards.tar import composite_member, read_samples, tar_bytes
from soclake.spec.identity import code_version, fingerprint
from soclake.spec.model import JobSpec
from soclake.stages.base import STAGES


@dataclass
class StageSummary(runner.Summary):
    stage: str = ""
    input: str = ""  # "job [fingerprint]" of the input
    flagged: int = 0

    COUNTS = ("images", "flagged")

    def describe(self) -> str:
        return (f"{self.stage} {self.job} [{self.fingerprint}] of {self.input}: {self.shards_rendered} shard(s) done "
                f"{self.not_rendered()}: {self.images} images, {self.flagged} flagged, {self.timing()}\n"
                f"{self.where()}")


def stage_shard(task: dict) -> dict:
    """Worker: process one input shard and commit the output shard (unless another runner
    holds it or has committed it: then {"shard", "skipped": state})."""
    lake = Lake.from_ref(task["lake"])
    with claim(lake, task["job"], task["fingerprint"], task["shard"], task.get("wait", False)) as state:
        if state != "claimed":
            return {"shard": task["shard"], "skipped": state}
        return _stage_claimed_shard(lake, task)


def _stage_claimed_shard(lake: Lake, task: dict) -> dict:
    stage = STAGES.get(task["stage"])
    data = lake.fs.cat_file(lake.path(task["input_uri"]))
    if hashlib.sha256(data).hexdigest() != task["input_sha256"]:
        raise SoclakeError(f"input shard {task['input_uri']} does not match its manifest sha256")
    out = stage.process(read_samples(data), task["params"], task["seed"],
                        {"job": task["job"], "fingerprint": task["fingerprint"], "shard": task["shard"],
                         "read": lake.read_range})
    faults.point("render")
    rows = [{"job": task["job"], "fingerprint": task["fingerprint"], "stage": task["stage"], "image_id": int(key),
             "key": key, "shard": task["shard"], "file_name": f"{key}.{composite_member(members)}"}
            for key, members in out.samples if key.isdigit() and composite_member(members)]
    tables = {t: to_table(t, rows) for t, rows in {**out.tables, "stage_images": rows}.items()}
    commit_shard(lake, task["job"], task["fingerprint"], task["stage"], task["shard"], tar_bytes(out.samples), tables,
                 [f"{task['input_uri']}#{task['input_sha256']}"], task["code_version"], task["params_json"],
                 samples=len(out.samples))
    return {"shard": task["shard"], "images": len(out.samples), "flagged": out.flagged}


def run(lake: Lake, spec: JobSpec, workers: int | None = None, progress: bool | None = None,
        executor: str = "local", split: str | None = None, retries: int | None = None,
        address: str | None = None) -> StageSummary:
    """Process every committed shard of the input job not done yet (of one split: shards
    s with s % N == I). A shard that fails is tried again up to `retries` times."""
    name = spec.kind
    if name not in STAGES:
        raise SoclakeError(f"{spec.name}: not a stage spec (it needs a [relight] or [refexp] section)")
    t0 = time.perf_counter()
    workers = runner.worker_count(lake, executor, workers)
    stage = STAGES.get(name)
    params = dict(spec[name], spec_dir=spec.base_dir)  # files a spec names are relative to its folder
    stage.check(params)  # e.g. a missing model is an error before any shard is read
    params = stage.prepare_params(lake, params)
    source = catalog.current(lake, spec["job"]["input"])
    fp = fingerprint(spec, source.fingerprint, stage.inputs_digest(params))
    inputs = lake.read("SELECT shard, shard_uri, sha256 FROM manifest WHERE fingerprint = $fp AND stage = $stage "
                        "ORDER BY shard", {"fp": source.fingerprint, "stage": source.stage}).to_pylist()
    done = catalog.committed_shards(lake, fp, name)
    todo = set(runner.in_split(set(r["shard"] for r in inputs) - done, split))
    summary = StageSummary(spec.name, fp, len(inputs), stage=name, input=f"{source.job} [{source.fingerprint}]")
    catalog.write_marker(lake, spec.name, fp, {"job": spec.name, "fingerprint": fp, "stage": name,
                                              "input": source.job, "input_fingerprint": source.fingerprint,
                                              "input_stage": source.stage, "spec": spec.values})
    if todo:  # what killed runners left, of this run's shards only
        sweep(lake, spec.name, fp, only=todo)
    version = code_version()
    tasks = {r["shard"]: {"lake": lake.ref, "stage": name, "job": spec.name, "fingerprint": fp, "shard": r["shard"],
                          "input_uri": r["shard_uri"], "input_sha256": r["sha256"], "seed": spec["job"]["seed"],
                          "params": params, "params_json": spec.canonical_json(), "code_version": version}
             for r in inputs if r["shard"] in todo}
    actor = stage.actor_options(params)
    retries = spec["job"]["retries"] if retries is None else retries
    bar = runner.progress_bar(len(tasks), f"{name} {spec.name}", progress)

    def process(shards: list[int], wait: bool):
        return executors.run_tasks(executor, stage_shard, [{**tasks[s], "wait": wait} for s in shards], workers,
                                   retries, actor, address)

    runner.execute(process, sorted(todo), summary, lake, len(done), bar)
    lake.refresh()
    runner.write_indexes(lake, spec.name, fp, name)
    summary.seconds = time.perf_counter() - t0
    return summary
