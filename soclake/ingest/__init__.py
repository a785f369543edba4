"""Ingest: source layouts (one module each) feeding one engine that writes segments,
backgrounds, categories and rejects. Layouts are imported only when used.
"""
from __future__ import annotations

import importlib

LAYOUTS = {
    "soc": "soclake.ingest.soc",
    "folders": "soclake.ingest.folders",
    "coco": "soclake.ingest.coco",
    "sod": "soclake.ingest.sod",
    "backgrounds": "soclake.ingest.backgrounds",
    "parquet": "soclake.ingest.parquet",
}


def layout_module(name: str):
    from soclake.errors import SoclakeError
    if name not in LAYOUTS:
        raise SoclakeError(f"unknown ingest layout {name!r}; choose one of {', '.join(LAYOUTS)}")
    return importlib.import_module(LAYOUTS[name])


def ingest(lake, layout: str, source: str, **options):
    """Ingest `source` in `layout` into `lake`; returns an IngestSummary. See engine.run."""
    from soclake.ingest.engine import run
    return run(lake, layout, source, **options)
