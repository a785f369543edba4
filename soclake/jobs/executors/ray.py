"""The Ray executor (`--executor ray [--address auto|ray://HOST:10001]`): one Ray task per shard,
or, for stages that keep a model loaded (`actor` resources such as {"num_gpus": 1}), a pool of
actors that each process shard after shard. Work in flight is bounded (`workers` shards, or
two per cluster CPU; two per actor) and results come back as shards finish. A shard that
raised, or whose worker or actor died, is retried up to `retries` times, then reported.
Without an address soclake starts a private Ray on this machine with every server bound to
127.0.0.1. ray is imported here only (pip install 'soclake[ray]').
"""
from __future__ import annotations

import contextlib
import itertools
import logging
import os
from functools import lru_cache
from typing import Any, Callable, Iterable, Iterator

from soclake.errors import SoclakeError
from soclake.jobs.executors import Failure, Outcome, attempt
from soclake.spec.identity import code_version

IN_FLIGHT = 2  # shards queued per worker: the next one starts without a round trip


def _import_ray():
    try:  # an optional extra, imported only by this executor
        import ray
    except ImportError:
        raise SoclakeError("the ray executor needs ray: pip install 'soclake[ray]'") from None
    return ray


@contextlib.contextmanager
def _private_cluster_env() -> Iterator[None]:
    """The environment a private Ray starts in. ray.init swaps a loopback _node_ip_address for
    the machine's address (and then binds its servers to every interface) unless multi-node
    clusters are off: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0, read when ray is imported, hence
    also set on the loaded constant. RAY_AUTH_MODE=disabled keeps Ray from writing an auth
    token under ~/.ray. PYTHONPATH lets Ray's workers import this very soclake."""
    from ray._private import ray_constants  # optional extra (ray), loaded only with this executor
    package_parent = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    saved_env = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    saved_flag = ray_constants.ENABLE_RAY_CLUSTER
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, saved_env["PYTHONPATH"]) if p)
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved_flag
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def connect(address: str | None = None, workers: int | None = None):
    """The ray module, connected: to `address` (a running cluster), to the Ray this process
    already joined, or to a private Ray started here with `workers` CPUs on 127.0.0.1."""
    ray = _import_ray()
    if ray.is_initialized():
        return ray
    if address or os.environ.get("RAY_ADDRESS"):
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, ValueError, RuntimeError) as e:
            raise SoclakeError(f"cannot join the Ray cluster at {address or os.environ['RAY_ADDRESS']}: {e}; "
                               "start it with `ray start --head` or pass the right --address") from None
        return ray
    with _private_cluster_env():
        ray.init(num_cpus=workers or os.cpu_count() or 1, include_dashboard=False,
                 _node_ip_address="127.0.0.1", logging_level=logging.WARNING)
    return ray


@lru_cache(maxsize=1)
def _worker_code_version() -> str:
    return code_version()


def _call(fn: Callable, task: Any, driver_version: str) -> Any:
    """One try on a Ray worker, refused when its soclake renders differently from the driver's."""
    if _worker_code_version() != driver_version:
        return Failure(f"this Ray worker runs soclake {_worker_code_version()}, the driver {driver_version}; "
                       "install the same soclake on every node")
    return attempt(fn, task)


class ShardWorker:
    """An actor's state is its process: what a task loads and caches (a model) stays loaded."""

    def call(self, fn: Callable, task: Any, driver_version: str) -> Any:
        return _call(fn, task, driver_version)


def run_tasks(fn: Callable, tasks: Iterable, workers: int | None = None, retries: int = 0,
              actor: dict | None = None, address: str | None = None) -> Iterator[Outcome]:
    """One Outcome per task, in the order tasks finish."""
    ray = connect(address, workers)
    version = code_version()
    pool = _Actors(ray, actor, workers) if actor is not None else _Tasks(ray, workers)
    pending: dict = {}  # ObjectRef -> (task, attempt number, actor or None)
    todo = iter(tasks)
    try:
        more = True
        while True:
            while more and len(pending) < pool.limit:
                task = next(todo, _END)
                if task is _END:
                    more = False
                    break
                ref, who = pool.submit(fn, task, version)
                pending[ref] = (task, 1, who)
            if not pending:
                return
            [ref], _ = ray.wait(list(pending), num_returns=1)
            task, n, who = pending.pop(ref)
            value = _result(ray, ref, pool, who)
            if isinstance(value, Failure) and value.retry(n, retries):
                ref, who = pool.submit(fn, task, version)
                pending[ref] = (task, n + 1, who)
            else:
                yield Outcome.of(task, value, n)
    finally:  # reached early only when the caller stops or fails: leave nothing running
        if actor is None:
            for ref in pending:
                ray.cancel(ref)
        pool.close()


_END = object()


def _result(ray, ref, pool, who) -> Any:
    """A finished call's value, or a Failure when the call raised or its worker died."""
    try:
        return ray.get(ref)
    except ray.exceptions.RayActorError as e:
        pool.died(who)
        return Failure(f"{type(e).__name__}: the actor died ({_first_line(e)})")
    except ray.exceptions.RayError as e:
        return Failure(f"{type(e).__name__}: {_first_line(e)}")
    finally:
        pool.done(who)


def _first_line(e: Exception) -> str:
    return (str(e).strip().splitlines() or [""])[0][:300]


class _Tasks:
    """One Ray task per shard, one CPU each: `workers` shards at a time, or as many as the
    cluster has CPUs (two per CPU in flight)."""

    def __init__(self, ray, workers: int | None):
        self.remote = ray.remote(_call).options(num_cpus=1, max_retries=0)
        self.limit = workers or IN_FLIGHT * max(1, int(ray.cluster_resources().get("CPU", 1)))

    def submit(self, fn, task, version):
        return self.remote.remote(fn, task, version), None

    def done(self, who) -> None:
        pass

    def died(self, who) -> None:
        pass

    def close(self) -> None:
        pass


class _Actors:
    """Up to `capacity` ShardWorker actors with the given resources, started as work arrives;
    an actor that dies is dropped and replaced by a new one on the next submit."""

    def __init__(self, ray, resources: dict, workers: int | None):
        self.ray = ray
        resources = {"num_cpus": 1, **resources}
        self.cls = ray.remote(ShardWorker).options(max_restarts=0, **resources)
        cluster = ray.cluster_resources()
        if resources.get("num_gpus"):
            fit = int(cluster.get("GPU", 0) // resources["num_gpus"])
            if not fit:  # the actors would wait for GPUs forever
                raise SoclakeError(f"the Ray cluster has {cluster.get('GPU', 0):g} GPUs; actors need "
                                   f"num_gpus = {resources['num_gpus']:g} each (set [relight] num_gpus, e.g. 0 on CPU)")
        else:
            fit = max(1, int(cluster.get("CPU", 1) // max(resources["num_cpus"], 1e-9)))
        self.capacity = workers or fit
        self.limit = self.capacity * IN_FLIGHT  # an actor runs one shard at a time; the next waits there
        self.load: dict[int, list] = {}  # actor number -> [handle, shards in flight]
        self.numbers = itertools.count()  # never reused, unlike id(): a late death report of a
        # replaced actor must not kill its successor

    def submit(self, fn, task, version):
        idle = [k for k, (_, n) in self.load.items() if n == 0]
        if not idle and len(self.load) < self.capacity:
            self.load[next(self.numbers)] = [self.cls.remote(), 0]
        key = min(self.load, key=lambda k: self.load[k][1])
        self.load[key][1] += 1
        return self.load[key][0].call.remote(fn, task, version), key

    def done(self, key) -> None:
        if key in self.load:
            self.load[key][1] -= 1

    def died(self, key) -> None:
        entry = self.load.pop(key, None)
        if entry:
            self.ray.kill(entry[0])

    def close(self) -> None:
        for handle, _ in self.load.values():
            self.ray.kill(handle)
        self.load.clear()
