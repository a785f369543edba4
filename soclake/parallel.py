"""An ordered parallel map over processes, for pure functions of picklable tasks (planning
chunks): results come back in task order, so the output never depends on the worker count."""
from __future__ import annotations

import multiprocessing as mp
from collections import deque
from typing import Callable, Iterable, Iterator


def ordered_map(fn: Callable, tasks: Iterable, workers: int) -> Iterator:
    """fn over tasks, results in task order; at most 2 x workers tasks in flight."""
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
