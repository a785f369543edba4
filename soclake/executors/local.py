"""The local executor: a process pool (spawn start method) over tasks, or in-process for one
worker. Tasks are built lazily and at most two per worker are in flight, so memory stays
bounded however many shards a job has."""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from typing import Callable, Iterable, Iterator


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
