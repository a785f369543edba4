"""Fault injection across every stage of a shard's life (soclake.faults): `soclake run` of a
compose, a relight and a refexp job is SIGKILLed mid-render, mid-write (half a file in its
temporary), between the tar and its table parts, between the parts and the manifest, and right
after the commit; after each kill the lake is consistent, and after a final rerun every planned
image is committed exactly once, byte-identical to an uninterrupted run, with nothing left over.
"""
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tarfile

import pytest

from soclake import Lake
from soclake.outputs.verify import leftovers, verify

COMPOSE = ('[job]\nname = "faulty"\nimages = 16\nshard_size = 1\n[layout]\nwidth = 96\nheight = 96\n'
           '[render]\nbackground = "pool"\n')
RELIGHT = '[job]\nname = "faulty-relit"\ninput = "faulty"\n[relight]\nbackend = "classic"\n'
REFEXP = '[job]\nname = "faulty-refexp"\ninput = "faulty-relit"\n[refexp]\nbackend = "graph"\n'

# (job, fault) per trial, in order: each trial starts where the killed one before it stopped.
TRIALS = [("compose", f) for f in ("write:1", "render:1", "write:3", "tar-written:1", "parts-written:1",
                                   "committed:1", "render:2", "write:6", "tar-written:2", "parts-written:2")] + \
         [(stage, f) for stage in ("relight", "refexp")
          for f in ("render:1", "write:2", "tar-written:1", "parts-written:2", "committed:1")]


def run(spec: str, lake_root: str, fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "SOCLAKE_FAULT"}
    if fault:
        env["SOCLAKE_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "soclake.cli", "run", spec, "--lake", lake_root, "--workers", "1",
                           "--no-progress"], env=env, capture_output=True, text=True, timeout=300)


def check_consistent(lake_root: str) -> None:
    """What readers can see after any kill: committed shards whole and matching the manifest,
    indexes listing only committed shards, every visible tar complete."""
    lake = Lake(lake_root)
    checked, problems = verify(lake)
    assert problems == []
    committed = {r["shard_uri"]: r["sha256"] for r in lake.query("SELECT shard_uri, sha256 FROM manifest").to_pylist()}
    for dirpath, _, files in os.walk(os.path.join(lake_root, "jobs")):
        for name in files:
            path = os.path.join(dirpath, name)
            if name == "index.json":  # shard urls are relative to the index's folder
                for shard in json.loads(open(path, "rb").read())["shards"]:
                    uri = os.path.relpath(os.path.join(dirpath, shard["url"]), lake_root)
                    assert committed.get(uri) == shard["sha256"]
            elif name.endswith(".tar") and not name.startswith("."):
                with tarfile.open(path) as tar:  # complete: every member readable to the end
                    for m in tar:
                        assert len(tar.extractfile(m).read()) == m.size


@pytest.mark.slow
def test_sigkill_at_every_point_of_a_shards_life_across_stages(sample_lake, tmp_path):
    lake_root = str(tmp_path / "lake")
    shutil.copytree(sample_lake.root, lake_root, ignore=shutil.ignore_patterns("jobs", "part-*-??????.parquet"))
    reference = str(tmp_path / "reference")
    shutil.copytree(lake_root, reference)
    specs = {}
    for kind, text in (("compose", COMPOSE), ("relight", RELIGHT), ("refexp", REFEXP)):
        specs[kind] = str(tmp_path / f"{kind}.toml")
        open(specs[kind], "w").write(text)

    previous = None
    for kind, fault in TRIALS:
        if previous and kind != previous:  # a stage reads its input's committed shards: finish it first
            assert run(specs[previous], lake_root).returncode == 0
        previous = kind
        done = run(specs[kind], lake_root, fault)
        assert done.returncode == -signal.SIGKILL, (kind, fault, done.stdout, done.stderr[-2000:])
        check_consistent(lake_root)

    for kind in ("compose", "relight", "refexp"):
        assert run(specs[kind], lake_root).returncode == 0
        assert run(specs[kind], reference).returncode == 0
    check_consistent(lake_root)

    lake, ref = Lake(lake_root), Lake(reference)
    assert leftovers(lake) == {}
    hidden = [f for _, _, files in os.walk(lake_root) for f in files if ".tmp-" in f]
    assert hidden == []
    for job in ("faulty", "faulty-relit", "faulty-refexp"):
        sql = "SELECT shard, sha256 FROM manifest WHERE job = $job ORDER BY shard"
        got, want = lake.query(sql, {"job": job}).to_pylist(), ref.query(sql, {"job": job}).to_pylist()
        assert got == want and len(got) == 16  # byte-identical to the uninterrupted run
    images = lake.query("SELECT image_id, count(*) n FROM images WHERE job = 'faulty' GROUP BY 1 ORDER BY 1").to_pylist()
    assert images == [{"image_id": i, "n": 1} for i in range(16)]  # no orphan rows, none twice
    anns = lake.query("SELECT count(*) n, count(DISTINCT ann_id) d FROM annotations WHERE job = 'faulty'").to_pylist()[0]
    assert anns["n"] == anns["d"] == ref.query("SELECT count(*) n FROM annotations").to_pylist()[0]["n"]
    refexps = lake.query("SELECT count(*) n FROM refexps").to_pylist()[0]["n"]
    assert refexps == ref.query("SELECT count(*) n FROM refexps").to_pylist()[0]["n"] > 0
    assert verify(lake, deep=True)[1] == []


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_sweep_removes_only_what_no_commit_owns(sample_lake, tmp_path):
    """Leftovers are temporary files and uncommitted parts of this job; committed data and other
    jobs' files are never touched."""
    from soclake import storage
    from soclake.shards import commit as shards
    lake_root = str(tmp_path / "lake")
    shutil.copytree(sample_lake.root, lake_root, ignore=shutil.ignore_patterns("jobs", "part-*-??????.parquet"))
    spec = tmp_path / "c.toml"
    spec.write_text(COMPOSE.replace("images = 16", "images = 2"))
    assert run(str(spec), lake_root).returncode == 0
    lake = Lake(lake_root)
    fp = lake.query("SELECT DISTINCT fingerprint FROM manifest").column(0)[0].as_py()
    folder = f"jobs/faulty/{fp}"
    gone = _dead_pid()
    dead, alive = f"{storage._HOST}-{gone}-0123456789ab", f"{storage._HOST}-{os.getpid()}-0123456789ab"
    planted = [lake.path(folder, "shards", f".shard-000001.tar.tmp-{dead}"),
               lake.path(folder, "shards", "shard-000007.tar"),
               lake.path(folder, f".index.json.tmp-{dead}"),
               lake.path("tables", "images", f"part-faulty-{fp}-000007.parquet"),
               lake.path("tables", "manifest", f".part-faulty-{fp}-000001.parquet.tmp-{dead}")]
    keep = [lake.path("tables", "images", "part-other-job-000007.parquet"),  # another job's
            lake.path(folder, "shards", f".shard-000003.tar.tmp-{alive}")]  # a live writer's
    for p in planted + keep:
        open(p, "wb").write(b"x")
    found = leftovers(lake)
    assert sorted(found[folder]) == sorted(planted)
    assert shards.sweep(lake, "faulty", fp) == 5
    assert all(not os.path.exists(p) for p in planted) and all(os.path.exists(p) for p in keep)
    for p in keep:
        os.unlink(p)
    assert verify(Lake(lake_root))[1] == [] and leftovers(Lake(lake_root)) == {}
    sha = hashlib.sha256(open(lake.path(folder, "shards", "shard-000001.tar"), "rb").read()).hexdigest()
    assert lake.query("SELECT sha256 FROM manifest WHERE shard = 1").column(0)[0].as_py() == sha


def test_verify_lists_and_repairs_leftovers(sample_lake, tmp_path):
    lake_root = str(tmp_path / "lake")
    shutil.copytree(sample_lake.root, lake_root, ignore=shutil.ignore_patterns("jobs", "part-*-??????.parquet"))
    spec = tmp_path / "c.toml"
    spec.write_text(COMPOSE.replace("images = 16", "images = 3"))
    assert run(str(spec), lake_root, "parts-written:2").returncode == -signal.SIGKILL
    cli = [sys.executable, "-m", "soclake.cli", "verify", "--lake", lake_root]
    out = subprocess.run(cli, capture_output=True, text=True)
    assert out.returncode == 0 and "leftover file(s) of interrupted runs" in out.stdout
    out = subprocess.run(cli + ["--repair"], capture_output=True, text=True)
    assert "removed 3 leftover file(s)" in out.stdout  # the shard tar, its images and annotations parts
    assert subprocess.run(cli, capture_output=True, text=True).stdout.count("leftover") == 0
    assert leftovers(Lake(lake_root)) == {}


def test_object_store_runs_leave_uncommitted_files_to_repair():
    """Without claims, a run cannot tell a dead runner's uncommitted shard from a live one's:
    on an object store only an explicit repair removes it."""
    from soclake.shards import commit as shards
    lake = Lake("memory://sweep-test/lake", create=True)
    folder = "jobs/j/0123456789abcdef"
    for path in (f"{folder}/shards/shard-000002.tar", "tables/images/part-j-0123456789abcdef-000002.parquet"):
        lake.fs.pipe_file(lake.path(path), b"x")
    assert sorted(map(len, shards.uncommitted_files(lake, "j", "0123456789abcdef").values())) == [2]
    assert shards.sweep(lake, "j", "0123456789abcdef") == 0
    assert shards.sweep(lake, "j", "0123456789abcdef", force=True) == 2
    assert shards.uncommitted_files(lake, "j", "0123456789abcdef") == {}


def test_a_locked_temporary_is_never_abandoned(tmp_path):
    """A writer whose pid this process cannot see (another pid namespace on the same host name)
    still holds an flock on its temporary: that file is not abandoned."""
    import fcntl

    from soclake import storage
    path = tmp_path / f".shard-000001.tar.tmp-{storage._HOST}-{_dead_pid()}-0123456789ab"
    path.write_bytes(b"x")
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        holder = subprocess.run([sys.executable, "-c", f"from soclake import storage; "
                                 f"print(storage.abandoned_temp({str(path)!r}))"], capture_output=True, text=True)
        assert holder.stdout.strip() == "False"
    assert storage.abandoned_temp(str(path))
