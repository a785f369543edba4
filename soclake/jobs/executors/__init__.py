"""Executors run a job's shard tasks: a registry from name to module, imported when used.

An executor module provides `run_tasks(fn, tasks, workers, retries, actor) -> Iterator[Outcome]`:
it calls the picklable `fn(task)` once per task, retries a task whose call raised (or whose
worker died) up to `retries` times, and yields one Outcome per task as tasks finish. `actor`
(None, or a dict of resources such as {"num_gpus": 1}) asks for long-lived workers that keep
a model loaded between tasks. The local executor also offers `run(fn, tasks, workers)`, an
ordered map used by planning.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

from soclake.errors import SoclakeError, is_storage_error
from soclake.registry import Registry

EXECUTORS = Registry("executor", {"local": "soclake.jobs.executors.local", "ray": "soclake.jobs.executors.ray"},
                     extras={"ray": "ray"})


@dataclass
class Outcome:
    task: Any
    value: Any = None        # fn's result, when it succeeded
    error: str | None = None  # "Type: message" of the last failure, when every attempt failed
    attempts: int = 1
    fatal: bool = False       # a storage error (disk full, read-only): the run should stop

    @classmethod
    def of(cls, task: Any, value: Any, attempts: int) -> "Outcome":
        """The outcome of a task's last attempt (a Failure becomes the error)."""
        if isinstance(value, Failure):
            return cls(task, error=value.error, attempts=attempts, fatal=value.fatal)
        return cls(task, value, attempts=attempts)


@dataclass
class Failure:
    """What a worker sends back instead of raising: exceptions need not pickle, strings do."""
    error: str
    fatal: bool = False  # never retried: see soclake.errors.STORAGE_ERRNOS

    def retry(self, attempts: int, retries: int) -> bool:
        return not self.fatal and attempts <= retries


def attempt(fn: Callable, task: Any) -> Any:
    """Worker side of one try: fn's result, or a Failure naming the exception."""
    try:
        return fn(task)
    except Exception as e:  # reported (and retried) per task by the executor
        return Failure(f"{type(e).__name__}: {e}", fatal=is_storage_error(e))


def get(name: str):
    return EXECUTORS.get(name)


def run_tasks(name: str, fn: Callable, tasks: Iterable, workers: int | None = None, retries: int = 0,
              actor: dict | None = None, address: str | None = None) -> Iterator[Outcome]:
    """Run shard tasks on the executor `name`; `address` (a Ray cluster) only for ray."""
    if retries < 0:
        raise SoclakeError(f"retries must be 0 or more, got {retries}")
    module = get(name)
    if name == "ray":
        return module.run_tasks(fn, tasks, workers, retries, actor, address=address)
    if address:
        raise SoclakeError(f"--address {address} is for the ray executor; add --executor ray")
    return module.run_tasks(fn, tasks, workers, retries, actor)
