"""`soclake verify`: the lake checks itself. Table parts (readable, typed as schemas/, no
duplicates: lake.parts) and packs (present, long enough, decoding at their offsets:
lake.packs); committed shards against their manifest rows (existence, size, sha256, sample
count), with --deep every member decoded, annotations checked against the pixels and samples
whose segment reads failed or whose instances differ from their plan reported; what interrupted
runs and ingests left (temporaries, uncommitted parts, orphan packs, empty categories). --repair
moves bad parts and orphan packs to quarantine/, re-renders bad compose shards from their plan
and removes the leftovers.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tarfile
from dataclasses import dataclass, field

import numpy as np
from pycocotools import mask as mask_utils

from soclake import paths, storage
from soclake.errors import SoclakeError
from soclake.imaging import open_image
from soclake.jobs import compose
from soclake.lake import Lake, catalog
from soclake.lake.packs import PackProblem, check_packs, empty_categories, orphan_packs
from soclake.lake.parts import PartProblem, check_parts, quarantine
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


@dataclass
class Planned:
    """What the plan of a compose run says of each sample of a shard: labelled objects per key,
    and whether its spec lets failed segment reads be replaced or dropped."""
    objects: dict[str, int]
    opted_in: bool


def degraded(key: str, info: dict, planned: Planned | None) -> str | None:
    """Why a committed sample is not what its plan asked for: segment reads that failed
    (replaced or dropped), or instances (plus those dropped as too small) that do not add up to
    the planned objects."""
    failed = info.get("failed_reads") or []
    if failed:
        packs = sorted({str(f.get("pack") or "?") for f in failed})
        return f"sample {key}: {len(failed)} segment read(s) failed (pack {', '.join(packs)[:200]})"
    want = planned.objects.get(key) if planned else None
    if want is not None and isinstance(info.get("instances"), list):
        got = len(info["instances"]) + int(info.get("dropped") or 0)
        if got != want:
            return f"sample {key}: {got} instances (with those too small to keep) but its plan has {want} objects"
    return None


def _deep_check(samples: list[tuple[str, dict[str, bytes]]], planned: Planned | None = None,
                notes: list[str] | None = None) -> str | None:
    """Every member decodes (images within the pixel limit); every instance's RLE equals its
    panoptic region; no sample is degraded (see degraded: a problem, or a note in `notes` when
    the spec opted in with [render] on_unreadable)."""
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
                    if list(seg["size"]) != list(pan.shape):  # decoding a hostile size would allocate it
                        return f"sample {key}: instance {inst['ann_id']} has a mask of size {str(seg['size'])[:40]}"
                    m = mask_utils.decode({"size": seg["size"], "counts": seg["counts"]})
                    if not np.array_equal(m.astype(bool), pan == inst["panoptic_id"]) or int(m.sum()) != inst["area"]:
                        return f"sample {key}: instance {inst['ann_id']} disagrees with the panoptic map"
            except Exception as e:  # a JSON of another shape: reported, never a crash
                return f"sample {key}: annotations cannot be checked ({type(e).__name__}: {str(e)[:100]})"
        if "json" in members:
            info = json.loads(members["json"])
            why = degraded(key, info, planned) if isinstance(info, dict) else None
            if why and planned is not None and planned.opted_in and notes is not None:
                notes.append(why + " (allowed by the spec's [render] on_unreadable)")
            elif why:
                return why + "; restore the pack (`soclake verify --deep` checks packs) and rerun with --repair"
    return None


def _shard_problem(data: bytes, expected_samples: int, deep: bool, planned: Planned | None = None,
                   notes: list[str] | None = None) -> str | None:
    skipped: list[str] = []
    try:
        samples = read_samples(data, lambda name, why: skipped.append(f"{name[:100]!r} ({why})"))
    except (tarfile.TarError, EOFError, OSError) as e:
        return f"unreadable tar ({e})"
    if skipped:
        return f"member {skipped[0]} is not a sample file" + (f" (and {len(skipped) - 1} more)" if len(skipped) > 1 else "")
    if len(samples) != expected_samples:
        return f"{len(samples)} samples != manifest {expected_samples}"
    return _deep_check(samples, planned, notes) if deep else None


def planned_objects(lake: Lake, job: str, fingerprint: str, stage: str, shard: int) -> Planned | None:
    """The plan behind a committed shard (a stage shard's through its lineage), or None when
    there is none to compare with."""
    try:
        run = catalog.compose_run(lake, catalog.Run(job, fingerprint, stage))
    except Exception:  # a stage run whose lineage is broken: nothing to compare with
        return None
    rows = lake.con.execute("SELECT key, len(list_filter(objects, lambda o: o.role = 'object')) FROM plan "
                            "WHERE fingerprint = ? AND shard = ?", [run.fingerprint, shard]).fetchall()
    info = catalog.read_marker(lake, run.job, run.fingerprint) or {}
    mode = (info.get("spec") or {}).get("render", {}).get("on_unreadable", "fail")
    return Planned(dict(rows), mode != "fail") if rows else None


def verify(lake: Lake, job: str | None = None, deep: bool = False,
           notes: list[str] | None = None) -> tuple[int, list[Problem]]:
    """(shards checked, problems found). With `deep`, samples a spec allowed to be degraded
    are added to `notes`."""
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
                planned = planned_objects(lake, r["job"], r["fingerprint"], r["stage"], r["shard"]) if deep else None
                problem = _shard_problem(data, r["samples"], deep, planned, notes)
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


# ---------------------------------------------------------------------------- tables and packs
@dataclass
class LakeReport:
    """What `soclake verify` found in the tables and packs (shards are verify's)."""
    parts: list[PartProblem]
    packs_checked: int = 0
    packs: list[PackProblem] = field(default_factory=list)
    orphan_packs: list[str] = field(default_factory=list)
    empty_categories: list[dict] = field(default_factory=list)
    busy: bool = False  # an ingest holds the writer lock: orphans were not judged

    @property
    def problems(self) -> int:
        return len(self.parts) + len(self.packs)


def check_lake(lake: Lake, deep: bool = False, every: bool = False) -> LakeReport:
    """Check every table part (before DuckDB reads any: damaged ones are then left out of this
    lake's views, so the shard checks still run) and every pack; list the orphans of killed
    ingests unless one is running now."""
    report = LakeReport(check_parts(lake, deep))
    bad = {lake.path(p.path) for p in report.parts}
    if bad:
        lake.exclude_parts(bad)
    report.packs_checked, report.packs = check_packs(lake, deep, every)
    try:
        with contextlib.ExitStack() as held:
            try:  # no ingest halfway while orphans are judged; a lake nobody can write needs no lock
                held.enter_context(lake.writer_lock())
            except OSError as e:
                if e.errno not in (errno.EROFS, errno.EACCES, errno.EPERM):
                    raise
            report.orphan_packs = orphan_packs(lake)
            report.empty_categories = empty_categories(lake)
    except SoclakeError:  # an ingest is writing: its newest pack has no rows yet
        report.busy = True
    return report


def damaged_parts_note(lake_uri: str | None) -> str:
    """For an SQL error a command met: the lake's damaged table parts by name (a part of the
    wrong column types fails only at query time) and the fix; "" when its parts are sound."""
    if not lake_uri:
        return ""
    try:
        found = check_parts(Lake(lake_uri))
    except Exception:  # no lake there, or unreadable: the original error says enough
        return ""
    if not found:
        return ""
    names = "; ".join(f"{p.path}: {p.problem}" for p in found[:5]) + (f"; ... ({len(found)} in all)" if len(found) > 5 else "")
    return f"\nthe lake has damaged table parts: {names}\nrun `soclake verify --repair` to move them to quarantine/"


def repair_lake(lake: Lake, report: LakeReport) -> tuple[list[str], list[Problem]]:
    """Move bad and duplicate parts and orphan packs to quarantine/ (never delete), under the
    writer lock so no ingest is cut short. Returns one line per move, and the committed shards
    that lost a table part (their rows are incomplete: `repair` redoes them). A run whose plan
    part went loses its job.json too, so that its next `soclake run` plans it again."""
    moved, redo = [], {}
    with lake.writer_lock():
        for p in report.parts:
            moved.append(f"moved {p.path} -> {quarantine(lake, p.path)} ({p.problem})")
            if p.duplicate_of:
                continue  # the same rows are still there
            shard = paths.parse_part_name(p.path)
            if shard:
                info = catalog.read_marker(lake, shard[0], shard[1]) or {}
                redo[p.path] = Problem(shard[0], info.get("stage", "compose"), shard[1], shard[2],
                                       paths.shard_uri(*shard), f"its table part {p.path} was damaged")
            elif p.table == "plan" and (run := paths.parse_run_part_name(p.path)) \
                    and lake.fs.exists(lake.path(paths.marker_uri(*run))):
                marker = paths.marker_uri(*run)
                moved.append(f"moved {marker} -> {quarantine(lake, marker)} (its plan was damaged; `soclake run` "
                             "plans it again, the same plan)")
        for pack in orphan_packs(lake) if report.orphan_packs else []:
            moved.append(f"moved {pack} -> {quarantine(lake, pack)} (no row points to it)")
    lake.refresh()
    return moved, list(redo.values())
