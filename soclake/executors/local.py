"""The local executor: a process pool (spawn start method) over tasks, or in-process for one
worker. Tasks are built lazily and at most two per worker are in flight, so memory stays
bounded however many shards a job has. Pool workers live for the whole run, so a model a
task loads (cached per process) stays loaded: `actor` options need nothing more here."""
from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
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
    """One Outcome per task, in task order; a task whose call raised is tried again, up to
    `retries` times. A worker that dies (SIGKILL, the OOM killer) breaks the pool: the tasks in
    flight count a failed attempt and go to a fresh pool."""
    workers = workers or os.cpu_count() or 1
    if workers <= 1:
        for task in tasks:
            for n in range(1, retries + 2):
                value = attempt(fn, task)
                if not (isinstance(value, Failure) and value.retry(n, retries)):
                    break
            yield Outcome.of(task, value, n)
        return
    context = mp.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context)
    pending: deque = deque()  # [future, task, attempt number]
    todo = iter(tasks)
    try:
        while True:
            for task in todo:
                pending.append([_submit(pool, fn, task), task, 1])
                if len(pending) >= 2 * workers:
                    break
            if not pending:
                return
            future, task, n = pending.popleft()
            try:
                value = future.result()
            except BrokenProcessPool:
                value = Failure(WORKER_DIED)
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, mp_context=context)
                for entry in pending:  # each was in flight too: one attempt used, then resubmitted
                    done = entry[0]
                    if done.done() and not done.cancelled() and done.exception() is None:
                        continue  # finished before the pool broke: its result stands
                    entry[2] += 1
                    if entry[2] <= retries + 1:
                        entry[0] = _submit(pool, fn, entry[1])
                    else:
                        entry[0] = _failed(WORKER_DIED)
            if isinstance(value, Failure) and value.retry(n, retries):
                pending.appendleft([_submit(pool, fn, task), task, n + 1])
            else:
                yield Outcome.of(task, value, n)
    finally:  # reached early only when the caller stops or fails: leave nothing running
        pool.shutdown(wait=False, cancel_futures=True)


WORKER_DIED = "WorkerDied: the worker process died (killed by a signal, or out of memory)"


def _submit(pool: ProcessPoolExecutor, fn: Callable, task) -> Future:
    """A future of one attempt; a pool already broken gives a future that raises so, handled
    with the others where results are read."""
    try:
        return pool.submit(attempt, fn, task)
    except BrokenProcessPool as e:
        future: Future = Future()
        future.set_exception(e)
        return future


def _failed(error: str) -> Future:
    future: Future = Future()
    future.set_result(Failure(error))
    return future
