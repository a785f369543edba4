"""A full disk and a read-only lake: a clear error, committed shards untouched, nothing partial
left, and the same command finishes the job once space is back. Run against a real tmpfs of a
few hundred KB (when this process may mount one) and through injected errors (always)."""
import contextlib
import os
import shutil
import subprocess
import sys

import pytest

from soclake import Lake
from soclake.outputs.verify import leftovers, verify

SPEC = '[job]\nname = "{name}"\nimages = 40\nshard_size = 2\n[layout]\nwidth = 192\nheight = 192\n' \
       '[render]\nbackground = "pool"\n'


def soclake(*args, env=None):
    return subprocess.run([sys.executable, "-m", "soclake.cli", *args], capture_output=True, text=True, timeout=300,
                          env={**{k: v for k, v in os.environ.items() if k != "SOCLAKE_FAULT"}, **(env or {})})


def copy_pool(sample_lake, dest):
    shutil.copytree(sample_lake.root, dest, ignore=shutil.ignore_patterns("jobs", "part-*-??????.parquet"),
                    dirs_exist_ok=True)


def committed(lake_root, job):
    lake = Lake(lake_root)
    return {r["shard_uri"]: r["sha256"] for r in
            lake.query("SELECT shard_uri, sha256 FROM manifest WHERE job = $j", {"j": job}).to_pylist()}


def no_temporaries(root):
    return [f for _, _, files in os.walk(root) for f in files if ".tmp-" in f] == []


@pytest.mark.parametrize("fault,message", [("enospc", "No space left on device"), ("erofs", "Read-only file system")])
def test_injected_storage_error_stops_the_run_cleanly(sample_lake, tmp_path, fault, message):
    lake_root = str(tmp_path / "lake")
    copy_pool(sample_lake, lake_root)
    spec = tmp_path / "job.toml"
    spec.write_text(SPEC.format(name=f"full-{fault}"))
    run = ["run", str(spec), "--lake", lake_root, "--workers", "1", "--no-progress"]
    done = soclake(*run, env={"SOCLAKE_FAULT": f"write:12:{fault}"})  # a few shards in, a write fails
    assert done.returncode == 2
    assert message in done.stderr and "rerun the same command" in done.stderr and "Traceback" not in done.stderr
    before = committed(lake_root, f"full-{fault}")
    assert 0 < len(before) < 20
    assert verify(Lake(lake_root))[1] == [] and no_temporaries(lake_root)
    assert soclake(*run).returncode == 0
    after = committed(lake_root, f"full-{fault}")
    assert len(after) == 20 and all(after[k] == v for k, v in before.items())


@contextlib.contextmanager
def tmpfs(path, size):
    os.makedirs(path, exist_ok=True)
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the injected-error test covers the logic")
    try:
        yield
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount(path, options):
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def test_real_full_disk_then_read_only_lake(sample_lake, tmp_path):
    mnt, pool = tmp_path / "mnt", str(tmp_path / "pool")
    copy_pool(sample_lake, pool)  # the pool alone: other tests add jobs to sample_lake
    pool_bytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(pool) for f in fs)
    with tmpfs(mnt, pool_bytes + 2 ** 20):
        lake_root = str(mnt / "lake")
        shutil.copytree(pool, lake_root)
        spec = tmp_path / "job.toml"
        spec.write_text(SPEC.format(name="full").replace("images = 40", "images = 60"))
        run = ["run", str(spec), "--lake", lake_root, "--workers", "1", "--no-progress"]
        done = soclake(*run)
        assert done.returncode == 2, done.stdout + done.stderr[-2000:]
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        before = committed(lake_root, "full")
        assert 0 < len(before) < 30
        assert verify(Lake(lake_root), deep=True)[1] == [] and no_temporaries(lake_root)

        remount(mnt, "ro")  # read-only: reads work, a write is a clear error, nothing changes
        assert soclake("sql", "--lake", lake_root, "SELECT count(*) FROM manifest").returncode == 0
        assert soclake("verify", "--lake", lake_root).returncode == 0
        out = tmp_path / "export"
        assert soclake("export", "--job", "full", "--lake", lake_root, "--format", "coco", "--out", str(out)).returncode == 0
        assert os.path.getsize(out / "annotations.json") > 0
        done = soclake(*run)
        assert done.returncode == 2 and "Read-only file system" in done.stderr and "Traceback" not in done.stderr
        assert committed(lake_root, "full") == before

        remount(mnt, f"rw,size={pool_bytes + 64 * 2 ** 20}")
        assert soclake(*run).returncode == 0
        after = committed(lake_root, "full")
        assert len(after) == 30 and all(after[k] == v for k, v in before.items())
        assert leftovers(Lake(lake_root)) == {} and no_temporaries(lake_root)

        remount(mnt, "ro")  # a finished job reruns as a no-op on a read-only lake
        assert soclake(*run).returncode == 0
