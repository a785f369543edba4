"""The jobs page's data: every run of every job (stage, fingerprint, progress as committed over
planned shards, state, bytes), its lineage (input run, and the runs made from it), and one
run's page: spec (its job.json), shards, what failed or is missing, and what was degraded."""
from __future__ import annotations

import json

from soclake import paths
from soclake.app import guard
from soclake.app.state import LakeView
from soclake.errors import SoclakeError, did_you_mean
from soclake.lake import catalog
from soclake.lake.sqlfiles import query as sql_query


def _markers(view: LakeView) -> dict[tuple[str, str], dict]:
    """Every job.json of the lake, by (job, fingerprint): planned or started runs, committed or not."""
    lake = view.lake
    found = {}
    for path in sorted(lake.fs.glob(lake.path(paths.marker_uri("*", "*")))):
        where = paths.parse_marker(lake.relpath(path))
        if where is None:
            continue
        try:
            found[where] = json.loads(lake.fs.cat_file(path))
        except (OSError, ValueError):
            found[where] = {"unreadable": True}
    return found


def runs(view: LakeView) -> list[dict]:
    """Every run: job_status rows, and started runs with no committed shard yet; each with its
    input run, the runs that read it, and whether it is its job's current run."""
    def make() -> list[dict]:
        with view.locked() as lake:
            status = catalog.list_jobs(lake).to_pylist()
            markers = _markers(view)
            current = {}
            for job in {r["job"] for r in status}:
                try:
                    current[job] = catalog.current(lake, job).fingerprint
                except SoclakeError:
                    pass
        seen = {(r["job"], r["fingerprint"]) for r in status}
        for (job, fp), info in markers.items():
            if (job, fp) not in seen and not info.get("unreadable"):
                status.append({"job": job, "stage": info.get("stage", "compose"), "fingerprint": fp, "images": 0,
                               "shards": info.get("shards"), "shards_committed": 0, "state": "started",
                               "bytes": 0, "path": paths.shards_folder(job, fp)})
        out = []
        for r in status:
            info = markers.get((r["job"], r["fingerprint"]), {})
            r["input"] = ({"job": info["input"], "fingerprint": info["input_fingerprint"],
                           "stage": info.get("input_stage")} if "input_fingerprint" in info else None)
            r["current"] = current.get(r["job"]) == r["fingerprint"]
            r["code_version"] = info.get("code_version")
            out.append(r)
        for r in out:
            r["outputs"] = [{"job": o["job"], "fingerprint": o["fingerprint"], "stage": o["stage"]} for o in out
                            if o["input"] and o["input"]["fingerprint"] == r["fingerprint"]]
        return sorted(out, key=lambda r: (r["job"], not r["current"], r["fingerprint"]))
    return view.remember(("runs",), make)


def find_run(view: LakeView, job: str, fingerprint: str | None = None) -> dict:
    """A run by job name and fingerprint (default: the job's current run); unknown names are
    404s that list what there is."""
    guard.job_name(job)
    if fingerprint is not None:
        guard.fingerprint(fingerprint)
    all_runs = runs(view)
    mine = [r for r in all_runs if r["job"] == job]
    if not mine:
        raise guard.not_found(f"no job {job!r} in the lake" + did_you_mean(job, sorted({r["job"] for r in all_runs}),
                                                                          "jobs"))
    if fingerprint is None:
        chosen = [r for r in mine if r["current"]] or mine
        return chosen[0]
    for r in mine:
        if r["fingerprint"] == fingerprint:
            return r
    raise guard.not_found(f"job {job!r} has no run {fingerprint}" + did_you_mean(fingerprint,
                                                                                 [r["fingerprint"] for r in mine],
                                                                                 "fingerprints"))


def lineage(view: LakeView, run: dict) -> list[dict]:
    """The run's ancestors up to its compose run, oldest first, then the run itself, then the
    runs made from it (children and their children)."""
    by_fp = {r["fingerprint"]: r for r in runs(view)}
    chain, seen = [run], {run["fingerprint"]}
    while chain[0]["input"] and chain[0]["input"]["fingerprint"] in by_fp \
            and chain[0]["input"]["fingerprint"] not in seen:
        chain.insert(0, by_fp[chain[0]["input"]["fingerprint"]])
        seen.add(chain[0]["fingerprint"])
    todo = list(run["outputs"])
    while todo:
        o = by_fp.get(todo.pop(0)["fingerprint"])
        if o is not None and o["fingerprint"] not in seen:
            seen.add(o["fingerprint"])
            chain.append(o)
            todo += o["outputs"]
    return [{k: r[k] for k in ("job", "fingerprint", "stage", "state", "images")} for r in chain]


def detail(view: LakeView, job: str, fingerprint: str) -> dict:
    """One run's page: its row, job.json, lineage, committed shards, and failures: planned or
    input shards without a commit, degraded samples (replaced segments, dropped objects)."""
    run = find_run(view, job, fingerprint)
    with view.locked() as lake:
        marker = catalog.read_marker(lake, run["job"], run["fingerprint"])
        shards = lake.query(sql_query("app/run_shards"),
                            {"fingerprint": run["fingerprint"], "stage": run["stage"]}).to_pylist()
        failures = _failures(lake, run, {s["shard"] for s in shards})
    return {"run": run, "marker": marker, "lineage": lineage(view, run), "shards": shards, "failures": failures}


def _failures(lake, run: dict, committed: set[int]) -> dict:
    out: dict = {}
    if run["stage"] == "compose":
        planned = run.get("shards") or 0
        out["missing_shards"] = sorted(set(range(planned)) - committed)
        out["degraded"] = lake.query(sql_query("app/run_degraded"), {"fingerprint": run["fingerprint"]}).to_pylist()[0]
    elif run["input"]:
        inputs = catalog.committed_shards(lake, run["input"]["fingerprint"], run["input"]["stage"] or "compose")
        out["missing_shards"] = sorted(inputs - committed)
    return out
