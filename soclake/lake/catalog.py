"""The job catalog of a lake: each run's job.json marker, which of a job's fingerprints is
current (the one resolver every command uses), a run's lineage back to its compose run, the jobs
there are, and the identity of the pool a job reads. Where a job's files live is soclake.paths."""
from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa

from soclake import paths, storage
from soclake.errors import SoclakeError, did_you_mean
from soclake.lake.lake import Lake


# ---------------------------------------------------------------------------- markers
def read_marker(lake: Lake, job: str, fingerprint: str) -> dict | None:
    """The job.json of a run, or None before it is planned (compose) or started (stages)."""
    marker = lake.path(paths.marker_uri(job, fingerprint))
    return json.loads(lake.fs.cat_file(marker)) if lake.fs.exists(marker) else None


def write_marker(lake: Lake, job: str, fingerprint: str, info: dict) -> None:
    """Write a run's job.json once (a finished job reruns as a no-op even on a read-only lake)."""
    marker = lake.path(paths.marker_uri(job, fingerprint))
    if not lake.fs.exists(marker):
        storage.write_bytes(lake.fs, marker, json.dumps(info, indent=1, sort_keys=True).encode())


# ---------------------------------------------------------------------------- which run
@dataclass(frozen=True)
class Run:
    """One fingerprint of a job, with the stage that wrote it."""
    job: str
    fingerprint: str
    stage: str


def committed_runs(lake: Lake, job: str, planned: bool = False) -> list[Run]:
    """Every (fingerprint, stage) of a job with at least one committed shard (with `planned`,
    also planned compose runs), newest first: by the time its job.json was written, then by
    fingerprint (so the order is total)."""
    sql = "SELECT DISTINCT fingerprint, stage FROM manifest WHERE job = $job"
    if planned:
        sql += " UNION SELECT DISTINCT fingerprint, 'compose' FROM plan WHERE job = $job"
    rows = lake.read(sql, {"job": job}).to_pylist()
    runs = [Run(job, r["fingerprint"], r["stage"]) for r in rows]

    def written(run: Run) -> float:
        marker = lake.path(paths.marker_uri(job, run.fingerprint))
        return lake.fs.modified(marker).timestamp() if lake.fs.exists(marker) else 0.0

    return sorted(runs, key=lambda r: (written(r), r.fingerprint), reverse=True)


def current(lake: Lake, job: str, fingerprint: str | None = None, stage: str | None = None,
            planned: bool = False) -> Run:
    """The run of `job` that readers mean by the job's name: the given fingerprint, else the
    newest run with committed shards (of `stage`, if given; with `planned`, also compose runs
    that are planned but have no shard yet). An unknown job is an error that lists the jobs
    there are and suggests the closest name."""
    runs = [r for r in committed_runs(lake, job, planned) if stage is None or r.stage == stage]
    if fingerprint is not None:
        runs = [r for r in runs if r.fingerprint == fingerprint]
    if runs:
        return runs[0]
    if fingerprint is not None:
        raise SoclakeError(f"job {job!r} has no committed shards with fingerprint {fingerprint} in {lake.uri}")
    known = job_names(lake)
    if job in known:
        what = f" of stage {stage}" if stage else ""
        raise SoclakeError(f"job {job!r} has no committed shards{what} in {lake.uri}; run it with `soclake run`")
    raise SoclakeError(f"no job {job!r} in {lake.uri}" + did_you_mean(job, known, "jobs"))


def compose_run(lake: Lake, run: Run) -> Run:
    """The compose run a run descends from (itself for a compose run): stage job.json markers
    name their input's fingerprint and stage. Stage shards keep the keys and shard numbers of
    their input, so the compose run's images table locates any sample of the lineage."""
    seen = set()
    while run.stage != "compose":
        info = read_marker(lake, run.job, run.fingerprint)
        if info is None or run.fingerprint in seen or "input_fingerprint" not in info:
            raise SoclakeError(f"{paths.marker_uri(run.job, run.fingerprint)} does not name its input; rerun the "
                               f"{run.stage} job {run.job!r} to rewrite it")
        seen.add(run.fingerprint)
        stage = info.get("input_stage") or _stage_of(lake, info["input_fingerprint"])
        run = Run(info["input"], info["input_fingerprint"], stage)
    return run


def _stage_of(lake: Lake, fingerprint: str) -> str:
    rows = lake.read_con.execute("SELECT DISTINCT stage FROM manifest WHERE fingerprint = ?", [fingerprint]).fetchall()
    return rows[0][0] if rows else "compose"


def job_names(lake: Lake) -> list[str]:
    """Jobs with a plan or a committed shard."""
    rows = lake.read_con.execute("SELECT DISTINCT job FROM plan UNION SELECT DISTINCT job FROM manifest ORDER BY 1").fetchall()
    return [r[0] for r in rows]


def missing_shards(lake: Lake, run: Run) -> list[int]:
    """Planned shards of a compose run without a commit (stage runs have no plan: [])."""
    if run.stage != "compose":
        return []
    rows = lake.read_con.execute("SELECT shards, shards_committed FROM job_status WHERE fingerprint = ? AND stage = 'compose'",
                            [run.fingerprint]).fetchall()
    if not rows:
        return []
    committed = committed_shards(lake, run.fingerprint, "compose")
    return sorted(set(range(rows[0][0])) - committed)


def committed_shards(lake: Lake, fingerprint: str, stage: str = "compose") -> set[int]:
    rows = lake.read_con.execute("SELECT shard FROM manifest WHERE fingerprint = ? AND stage = ?",
                            [fingerprint, stage]).fetchall()
    return {r[0] for r in rows}


def list_jobs(lake: Lake) -> pa.Table:
    """Every job run: stage, fingerprint, images, shards committed, state, bytes and path."""
    runs = lake.read("SELECT job, stage, fingerprint, images, shards, shards_committed, state, bytes FROM job_status")
    folders = [paths.shards_folder(j, fp) for j, fp in zip(runs["job"].to_pylist(), runs["fingerprint"].to_pylist())]
    return runs.append_column("path", pa.array(folders, pa.string()))
