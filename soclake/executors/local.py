"""The local executor: a process pool (spawn start method) over tasks, or in-process for one
worker. Tasks are built lazily and at most two per worker are in flight, so memory stays
bounded however many shards a job has. Pool workers live for the whole run, so a model a
task loads (cached per process) stays loaded: `actor` options need nothing more here."""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from typing import Callable, Iterable, Iterator

from soclake.executors import Failure, Outcome, attempt


def run(fn: Callable, tasks: Iterable, workers: int) -> Iterator:
    """fn over tasks, results in task order."""
    if workers <= 1:
        yield from map(fn, tasks)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        pending: deque = deque()
        for task in tasks:
            pending.append(pool.apply_async(fn, (task,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def run_tasks(fn: Callable, tasks: Iterable, workers: int | None = None, retries: int = 0,
              actor: dict | None = None) -> Iterator[Outcome]:
    """One Outcome per task; a task whose call raised is tried again, up to `retries` times."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        for task in tasks:
            for n in range(1, retries + 2):
                value = attempt(fn, task)
                if not isinstance(value, Failure):
                    break
            yield Outcome.of(task, value, n)
        return
    with mp.get_context("spawn").Pool(workers) as pool:
        pending: deque = deque()

        def drain_one() -> Iterator[Outcome]:
            result, task, n = pending.popleft()
            value = result.get()
            if isinstance(value, Failure) and n <= retries:
                pending.append((pool.apply_async(attempt, (fn, task)), task, n + 1))
            else:
                yield Outcome.of(task, value, n)

        for task in tasks:
            pending.append((pool.apply_async(attempt, (fn, task)), task, 1))
            while len(pending) >= 2 * workers:
                yield from drain_one()
        while pending:
            yield from drain_one()
