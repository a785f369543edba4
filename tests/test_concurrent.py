"""Concurrent runners of one job: shard claims (soclake.shards.commit.claim) make two `soclake run`
processes, or overlapping splits, render every shard exactly once between them, and a claim
dies with its process."""
import os
import re
import signal
import subprocess
import sys
import time

from soclake import Lake
from soclake.outputs.verify import leftovers, verify
from soclake.shards.commit import claim

SPEC = '[job]\nname = "{name}"\nimages = 12\nshard_size = 1\n[layout]\nwidth = 64\nheight = 64\n'


def start(spec, lake_root, *extra):
    return subprocess.Popen([sys.executable, "-m", "soclake.cli", "run", str(spec), "--lake", lake_root,
                             "--workers", "1", "--no-progress", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def rendered(proc) -> int:
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    return int(re.search(r"rendered (\d+) shard", out).group(1))


def committed_once(lake_root: str, job: str) -> list[int]:
    lake = Lake(lake_root)
    rows = lake.query("SELECT shard, count(*) n FROM manifest WHERE job = $j GROUP BY 1 ORDER BY 1", {"j": job})
    assert set(rows.column("n").to_pylist()) == {1}
    images = lake.query("SELECT count(*) n, count(DISTINCT image_id) d FROM images WHERE job = $j", {"j": job})
    assert images.to_pylist()[0]["n"] == images.to_pylist()[0]["d"]
    return rows.column("shard").to_pylist()


def test_two_runners_of_one_job_render_each_shard_once(sample_lake, tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(SPEC.format(name="two-runners"))
    a, b = start(spec, sample_lake.root), start(spec, sample_lake.root)
    assert rendered(a) + rendered(b) == 12  # between them, every shard once: none twice
    assert committed_once(sample_lake.root, "two-runners") == list(range(12))
    assert verify(Lake(sample_lake.root), "two-runners", deep=True)[1] == []
    assert leftovers(Lake(sample_lake.root), "two-runners") == {}


def test_overlapping_splits_never_render_a_shard_twice(sample_lake, tmp_path):
    spec = tmp_path / "job.toml"
    spec.write_text(SPEC.format(name="overlap"))
    a, b = start(spec, sample_lake.root, "--split", "0/2"), start(spec, sample_lake.root, "--split", "0/3")
    union = {s for s in range(12) if s % 2 == 0 or s % 3 == 0}
    assert rendered(a) + rendered(b) == len(union)  # shards 0 and 6 are in both splits: rendered once
    assert committed_once(sample_lake.root, "overlap") == sorted(union)
    assert rendered(start(spec, sample_lake.root)) == 12 - len(union)
    assert committed_once(sample_lake.root, "overlap") == list(range(12))


def test_a_claim_is_exclusive_and_dies_with_its_process(sample_lake, tmp_path):
    lake = Lake(sample_lake.root)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\nfrom soclake import Lake\nfrom soclake.shards.commit import claim\n"
        f"with claim(Lake({sample_lake.root!r}), 'claims-test', '0123456789abcdef', 4) as s:\n"
        "    print(s, flush=True)\n    time.sleep(60)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    with claim(lake, "claims-test", "0123456789abcdef", 4) as state:
        assert state == "busy"
    with claim(lake, "claims-test", "0123456789abcdef", 5) as state:
        assert state == "claimed"  # claims are per shard
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait()
    time.sleep(0.1)
    with claim(lake, "claims-test", "0123456789abcdef", 4) as state:
        assert state == "claimed"  # the kernel dropped the dead holder's lock


def test_a_shard_held_but_never_committed_is_waited_for_and_rendered(sample_lake, tmp_path):
    """A claim held by something that does not commit (another split's sweep, a worker on its
    way out) must not leave a hole: the run waits for the claim, then renders the shard."""
    from conftest import job_spec

    from soclake.jobs import compose as jobs
    spec = job_spec("held-claim", job={"images": 4, "shard_size": 1})
    job = jobs.prepare(sample_lake, spec)
    holder = subprocess.Popen([sys.executable, "-c", (
        "import time\nfrom soclake import Lake\nfrom soclake.shards.commit import claim\n"
        f"with claim(Lake({sample_lake.root!r}), {job.name!r}, {job.fingerprint!r}, 2) as s:\n"
        "    print(s, flush=True)\n    time.sleep(3)\n")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "claimed"
    summary = jobs.run(sample_lake, spec, workers=1, progress=False)
    holder.wait()
    assert summary.shards_rendered == 4 and not summary.concurrent and not summary.failed
    assert committed_once(sample_lake.root, "held-claim") == [0, 1, 2, 3]
