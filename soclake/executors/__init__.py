"""Executors run a job's shard tasks: a registry from name to module, imported when used.

An executor module provides `run(fn, tasks, workers) -> Iterator[result]`, calling the
picklable `fn(task)` once per task and yielding results in task order.
"""
from __future__ import annotations

import importlib

from soclake.errors import SoclakeError

EXECUTORS = {"local": "soclake.executors.local"}


def get(name: str):
    if name not in EXECUTORS:
        raise SoclakeError(f"unknown executor {name!r}; choose one of {', '.join(EXECUTORS)}")
    return importlib.import_module(EXECUTORS[name])
