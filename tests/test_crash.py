"""Crash and resume: `soclake run` is SIGKILLed at random moments of a shard's life and rerun;
every planned image ends up committed exactly once, shards verify, nothing partial is visible."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from soclake import Lake
from soclake.outputs.verify import verify


@pytest.mark.slow
def test_sigkill_at_random_moments_then_rerun(sample_lake, tmp_path):
    spec = tmp_path / "crash.toml"
    spec.write_text('[job]\nname = "crash"\nimages = 24\nshard_size = 2\n[layout]\nwidth = 256\nheight = 256\n'
                    '[render]\nbackground = "pool"\nfg_mask = true\n')
    cmd = [sys.executable, "-m", "soclake.cli", "run", str(spec), "--lake", sample_lake.root, "--workers", "1",
           "--no-progress"]
    rng = np.random.default_rng(0)
    kills = 0
    for trial in range(25):  # kill at random moments until a run gets to finish on its own
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(float(rng.uniform(0.4, 2.5)))  # start-up, planning, rendering, tar write, commit
        if proc.poll() is not None:
            break
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        kills += 1
    assert kills >= 3
    done = subprocess.run(cmd, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lake = Lake(sample_lake.root)
    fp = lake.query("SELECT DISTINCT fingerprint FROM plan WHERE job = 'crash'").column(0).to_pylist()
    assert len(fp) == 1
    images = lake.query("SELECT image_id, count(*) n FROM committed_images WHERE fingerprint = $fp GROUP BY 1 "
                        "ORDER BY 1", {"fp": fp[0]}).to_pylist()
    assert images == [{"image_id": i, "n": 1} for i in range(24)]  # every planned image, exactly once
    anns = lake.query("SELECT count(*) n, count(DISTINCT ann_id) d FROM committed_annotations WHERE fingerprint = $fp",
                      {"fp": fp[0]}).to_pylist()[0]
    assert anns["n"] == anns["d"] > 0
    checked, problems = verify(lake, "crash", deep=True)
    assert checked == 12 and problems == []
    shard_dir = lake.path("jobs", "crash", fp[0], "shards")
    visible = sorted(f for f in os.listdir(shard_dir) if not f.startswith("."))
    assert visible == [f"shard-{i:06d}.tar" for i in range(12)]  # temp files are hidden, never committed
