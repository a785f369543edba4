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

from soclake.jobs.executors import Failure, Outcome, attempt


def run_tasks(fn: Callable, tasks: Iterable, workers: int | None = None, retries: int = 0,
              actor: dict | None = None) -> Iterator[Outcome]:
    """One Outcome per task, in task order; a task whose call raised is tried again, up to
    `retries` times. A worker that dies (SIGKILL, the OOM killer) breaks the pool: the pool is
    rebuilt, and the tasks that were in it are run again one at a time to find the one that
    dies (only it is charged attempts)."""
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
                # Some worker died, but which task killed it is unknown: every unfinished task
                # is a suspect and runs again alone, so only the task that dies on its own
                # is charged (one that died of memory pressure beside others passes alone).
                pool.shutdown(wait=False, cancel_futures=True)
                pool = ProcessPoolExecutor(workers, mp_context=context)
                suspects = [[future, task, n]] + [e for e in pending if not _finished(e[0])]
                for entry in suspects:
                    value, entry[2] = _alone(context, fn, entry[1], entry[2], retries)
                    entry[0] = _done(value)
                value, n = suspects[0][0].result(), suspects[0][2]
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


def _finished(future: Future) -> bool:
    """Finished with a result before the pool broke (that result stands)."""
    return future.done() and not future.cancelled() and future.exception() is None


def _alone(context, fn: Callable, task, n: int, retries: int):
    """(value, attempt number) of a task run in a pool of its own, retried as usual."""
    while True:
        with ProcessPoolExecutor(1, mp_context=context) as solo:
            try:
                value = solo.submit(attempt, fn, task).result()
            except BrokenProcessPool:
                value = Failure(WORKER_DIED)
        if not (isinstance(value, Failure) and value.retry(n, retries)):
            return value, n
        n += 1


def _done(value) -> Future:
    future: Future = Future()
    future.set_result(value)
    return future
