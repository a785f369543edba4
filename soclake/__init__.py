"""soclake: a data lakehouse for synthetic object-composition datasets.

The Python API is the real interface (the `soclake` command line is a thin layer over it):

    from soclake import Lake, ingest, run, export, audit, show, shard_urls

Names are imported on first use, so a training worker that imports soclake.loader never
loads DuckDB or the lake.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_API = {  # name -> "module:attribute", imported when first used
    "Lake": "soclake.lake.lake:Lake",
    "SoclakeError": "soclake.errors:SoclakeError",
    "ingest": "soclake.api:ingest",
    "run": "soclake.api:run",
    "export": "soclake.api:export",
    "audit": "soclake.api:audit",
    "show": "soclake.api:show",
    "shard_urls": "soclake.api:shard_urls",
    "Stream": "soclake.loader.stream:Stream",
    "Mix": "soclake.loader.mix:Mix",
    "torch_loader": "soclake.loader.torch:torch_loader",
}
__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'soclake' has no attribute {name!r}")
    module, _, attr = _API[name].partition(":")
    value = getattr(importlib.import_module(module), attr)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
