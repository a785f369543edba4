"""The Ray executor: soclake's private Ray listens on loopback only; compose and relight shards
come out byte-identical to the local executor's; a failing shard is retried, then reported; a
shard whose worker died is retried; GPU stages run on a pool of actors."""
import hashlib
import ipaddress

import pytest
from conftest import job_outputs, job_spec, wipe_job

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.jobs import executors
from soclake.spec.load import resolve
from soclake.stages import runner as stage

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module")
def ray_cluster():
    """One private Ray for the module, started the way soclake starts it (no address)."""
    from soclake.jobs.executors import ray as ray_executor
    assert not ray.is_initialized()
    ray_executor.connect(workers=2)
    yield ray
    ray.shutdown()


def is_loopback(ip: str) -> bool:
    addr = ipaddress.ip_address(ip.split("%")[0])
    if addr.version == 6 and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    return addr.is_loopback


def test_private_ray_listens_on_loopback_only(ray_cluster):
    psutil = pytest.importorskip("psutil")
    me = psutil.Process()
    procs = [me, *me.children(recursive=True)]
    names = {p.name() for p in procs}
    assert {"gcs_server", "raylet"} <= names
    listening = [(p.name(), c.laddr) for p in procs for c in p.net_connections(kind="inet")
                 if c.status == psutil.CONN_LISTEN]
    assert any(name == "gcs_server" for name, _ in listening) and any(name == "raylet" for name, _ in listening)
    assert [(name, addr) for name, addr in listening if not is_loopback(addr.ip)] == []


def test_compose_on_ray_is_byte_identical_to_local(sample_lake, ray_cluster):
    spec = job_spec("on-ray", job={"images": 6, "shard_size": 2}, render={"background": "pool", "fg_mask": True})
    local = jobs.run(sample_lake, spec, workers=1, progress=False)
    expected = job_outputs(sample_lake, local.fingerprint)
    wipe_job(sample_lake, local.fingerprint, local.folder)
    remote = jobs.run(sample_lake, spec, workers=2, executor="ray", progress=False)
    assert remote.fingerprint == local.fingerprint and remote.shards_rendered == 3 and not remote.failed
    assert (remote.images, remote.instances) == (local.images, local.instances)
    got = job_outputs(sample_lake, remote.fingerprint)
    assert got == expected and len(got) == 3
    assert all(hashlib.sha256(data).hexdigest() == sha for data, sha in got.values())
    assert jobs.run(sample_lake, spec, executor="ray", progress=False).shards_rendered == 0


def test_failing_shard_is_retried_then_reported(sample_lake, ray_cluster, monkeypatch):
    spec = job_spec("ray-flaky", job={"images": 6, "shard_size": 2}, render={"background": "pool"})
    job = jobs.prepare(sample_lake, spec)
    with sample_lake.writer_lock():
        jobs.plan(sample_lake, job)
    sample_lake.refresh()
    original = jobs.shard_task

    def broken_task(lake, job_, shard):  # shard 1 points at bytes that are not an image
        task = original(lake, job_, shard)
        if shard == 1:
            bg = task["plan"][0]["background_id"]
            task["backgrounds"][bg] = {**task["backgrounds"][bg], "length": 7}
        return task

    monkeypatch.setattr(jobs, "shard_task", broken_task)
    first = jobs.run(sample_lake, spec, executor="ray", retries=1, progress=False)
    assert set(first.failed) == {1} and "after 2 attempts" in first.failed[1]
    assert first.images == 4 and "FAILED shard 1" in first.describe()
    monkeypatch.setattr(jobs, "shard_task", original)
    again = jobs.run(sample_lake, spec, executor="ray", progress=False)
    assert again.shards_rendered == 1 and not again.failed and again.images == 2


@pytest.mark.parametrize("actor", [None, {"num_gpus": 0.0}], ids=["task", "actor"])
def test_a_dead_worker_is_retried(tmp_path, ray_cluster, actor):
    marker = tmp_path / "died-once"

    def die_once(task):  # a closure: Ray ships it by value to its workers
        import os
        if task == 2 and not os.path.exists(str(marker)):
            open(str(marker), "w").close()
            os._exit(1)  # the worker process dies mid-task
        return task * 10

    outs = list(executors.run_tasks("ray", die_once, range(4), retries=1, actor=actor))
    assert sorted((o.task, o.value, o.error) for o in outs) == [(0, 0, None), (1, 10, None), (2, 20, None),
                                                               (3, 30, None)]
    attempts = {o.task: o.attempts for o in outs}
    assert attempts[2] == 2 and max(attempts.values()) == 2  # tasks queued on a dying actor retry too

    outs = list(executors.run_tasks("ray", die_once, [5], retries=0, actor=actor))
    assert outs[0].error is None  # the marker exists now: no death
    marker.unlink()
    outs = list(executors.run_tasks("ray", die_once, [2], retries=0, actor=actor))
    assert outs[0].value is None and ("ActorDiedError" if actor else "WorkerCrashedError") in outs[0].error


def test_relight_on_an_actor_pool_is_byte_identical_to_local(sample_lake, ray_cluster, monkeypatch):
    jobs.run(sample_lake, job_spec("ray-relight-in", job={"images": 6, "shard_size": 2}, render={"fg_mask": True}),
             workers=1, progress=False)
    spec = resolve({"job": {"name": "ray-relit", "input": "ray-relight-in", "seed": 1},
                    "relight": {"backend": "classic", "num_gpus": 0.0}})
    local = stage.run(sample_lake, spec, workers=1, progress=False)
    expected = job_outputs(sample_lake, local.fingerprint, "relight")
    wipe_job(sample_lake, local.fingerprint, local.folder)

    from soclake.jobs.executors import ray as ray_executor
    started = []

    class CountingActors(ray_executor._Actors):
        def submit(self, fn, task, version):
            ref, key = super().submit(fn, task, version)
            started.append(key)
            return ref, key

    monkeypatch.setattr(ray_executor, "_Actors", CountingActors)
    remote = stage.run(sample_lake, spec, workers=1, executor="ray", progress=False)
    assert remote.fingerprint == local.fingerprint and not remote.failed and remote.images == 6
    assert job_outputs(sample_lake, remote.fingerprint, "relight") == expected and len(expected) == 3
    assert len(started) == 3 and len(set(started)) == 1  # one actor, kept alive, relit every shard


def test_gpu_actors_need_gpus(ray_cluster):
    from soclake.stages.relight import STAGE as relight_stage
    assert relight_stage.actor_options({"backend": "iclight", "num_gpus": 0.5}) == {"num_gpus": 0.5}
    assert relight_stage.actor_options({"backend": "classic", "num_gpus": 1.0}) == {"num_gpus": 0.0}
    for workers in (None, 2):
        with pytest.raises(SoclakeError, match="0 GPUs"):
            list(executors.run_tasks("ray", abs, [1], workers, actor={"num_gpus": 1.0}))


def test_cli_runs_a_split_on_ray(sample_lake, ray_cluster, tmp_path):
    from soclake.cli import main
    spec = tmp_path / "cli-ray.toml"
    spec.write_text('[job]\nname = "cli-ray"\nimages = 4\nshard_size = 1\n[layout]\nwidth = 64\nheight = 64\n')
    args = ["run", str(spec), "--lake", sample_lake.root, "--executor", "ray", "--no-progress"]
    assert main(args + ["--split", "1/2"]) == 0
    sample_lake.refresh()
    shards = sample_lake.query("SELECT shard FROM manifest WHERE job = 'cli-ray' ORDER BY shard").column(0).to_pylist()
    assert shards == [1, 3]
    assert main(args[:4] + ["--no-progress", "--address", "auto"]) == 2  # an address is for --executor ray
    with pytest.raises(SystemExit):
        main(args + ["--executor", "dask"])


def test_worker_with_other_code_refuses(monkeypatch):
    from soclake.jobs.executors import Failure
    from soclake.jobs.executors import ray as ray_executor
    out = ray_executor._call(abs, -3, "0.0.0+other")
    assert isinstance(out, Failure) and "install the same soclake" in out.error
    from soclake.spec.identity import code_version
    assert ray_executor._call(abs, -3, code_version()) == 3
