"""The ingest layouts: one module per source layout, imported when used. Each provides
`tasks(source, options)` (the items of a source) and `load(task, options)` (its cut-outs); a
layout of KIND "job" (soc-output) imports a whole dataset as a job through `ingest_job`."""
from __future__ import annotations

from soclake.registry import Registry

LAYOUTS = Registry("ingest layout", {
    "soc": "soclake.ingestion.soc",
    "folders": "soclake.ingestion.folders",
    "coco": "soclake.ingestion.coco",
    "sod": "soclake.ingestion.sod",
    "backgrounds": "soclake.ingestion.backgrounds",
    "parquet": "soclake.ingestion.parquet",
    "soc-output": "soclake.ingestion.soc_output",
})
