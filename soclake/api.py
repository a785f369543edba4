"""The Python API for notebooks and scripts: the commands of the CLI as functions with the same
options. Each takes a Lake or a lake URI; specs may be a TOML path, a dict or a JobSpec.

    from soclake import Lake, ingest, run, export, show, shard_urls
    lake = Lake("my-lake", create=True)
    ingest(lake, "folders", "cutouts/")
    run(lake, "jobs/demo.toml")
    webdataset.WebDataset(shard_urls(lake, "demo"))
"""
from __future__ import annotations

import os

from soclake.ingestion import LAYOUTS
from soclake.ingestion import ingest as _ingest
from soclake.ingestion.engine import IngestSummary
from soclake.ingestion.soc_output import ImportSummary
from soclake.jobs import compose
from soclake.jobs.runner import Summary
from soclake.lake import Lake, catalog
from soclake.outputs import audit as _audit
from soclake.outputs.export import ExportSummary
from soclake.outputs.export import export as _export
from soclake.outputs.show import show as _show
from soclake.spec.load import load, resolve
from soclake.spec.model import JobSpec
from soclake.stages import runner as stages


def _lake(lake: Lake | str, create: bool = False) -> Lake:
    return lake if isinstance(lake, Lake) else Lake(str(lake), create=create)


def _spec(spec: JobSpec | dict | str | os.PathLike) -> JobSpec:
    if isinstance(spec, JobSpec):
        return spec
    if isinstance(spec, dict):
        return resolve(spec)
    return load(os.fspath(spec))


def ingest(lake: Lake | str, layout: str, source: str, **options) -> IngestSummary | ImportSummary:
    """`soclake ingest LAYOUT SOURCE`: options source_name, workers, retry_rejects, progress,
    metadata, quality, category, distractors, images, max_pixels. Creates the lake if needed.
    Layout soc-output imports a SOC output folder as a job: options name (required),
    annotations, images, masks, refexp, shard_size, progress."""
    module = LAYOUTS.get(layout)
    if getattr(module, "KIND", "") == "job":
        return module.ingest_job(_lake(lake, create=True), source, **options)
    return _ingest(_lake(lake, create=True), layout, source, **options)


def plan(lake: Lake | str, spec: JobSpec | dict | str, workers: int | None = None) -> dict:
    """`soclake plan SPEC`: write a compose job's plan without rendering; returns its job.json."""
    lake = _lake(lake)
    job = compose.prepare(lake, _spec(spec))
    with lake.writer_lock(wait=True):
        return compose.plan(lake, job, workers or os.cpu_count() or 1)


def run(lake: Lake | str, spec: JobSpec | dict | str, **options) -> Summary:
    """`soclake run SPEC`: options workers, executor, progress, split, retries, address."""
    lake, spec = _lake(lake), _spec(spec)
    return compose.run(lake, spec, **options) if spec.kind == "compose" else stages.run(lake, spec, **options)


def export(lake: Lake | str, job: str, format: str, out: str, **options) -> ExportSummary:
    """`soclake export`: options split, images, fingerprint, val_fraction, test_fraction, stratify, seed."""
    return _export(_lake(lake), job, format, out, **options)


def audit(lake: Lake | str, vocab: str = "lvis", job: str | None = None, min_segments: int = 10,
          filter: str = "filter_4", synonyms: str | None = None, out: str | None = None) -> dict:
    """`soclake audit`: the audit's numbers as a dict; with `out`, also its HTML report."""
    result = _audit.run_audit(_lake(lake), vocab, job, min_segments, filter, synonyms)
    if out:
        _audit.write_report(result, out)
    return result


def show(lake: Lake | str | None, target: str, out: str, key: str | None = None,
         fingerprint: str | None = None) -> str:
    """`soclake show TARGET --out PNG`: TARGET is a job of the lake, or a shard path (lake None)."""
    uri = None if lake is None else lake.uri if isinstance(lake, Lake) else str(lake)
    return _show(target, out, lake_uri=uri, key=key, fingerprint=fingerprint)


def shard_urls(lake: Lake | str, job: str, fingerprint: str | None = None) -> list[str]:
    """The committed shards of a job's current run, as URLs webdataset, HF datasets and GNU tar
    read (local paths, or s3://... on an object store), in shard order."""
    lake = _lake(lake)
    run_ = catalog.current(lake, job, fingerprint)
    rows = lake.con.execute("SELECT shard_uri FROM manifest WHERE fingerprint = ? AND stage = ? ORDER BY shard",
                            [run_.fingerprint, run_.stage]).fetchall()
    return [lake.uri_of(lake.path(r[0])) for r in rows]
