"""Array-job splits (--split I/N, --split slurm): the splits of a compose or a stage job, run one
after another, together equal the whole job byte for byte, and any split can be rerun."""
import pytest
from conftest import job_outputs, job_spec, wipe_job

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.jobs import runner
from soclake.spec.load import resolve
from soclake.stages import runner as stage


def test_compose_splits_equal_the_whole_job(sample_lake, monkeypatch):
    spec = job_spec("splits3", job={"images": 7, "shard_size": 1}, render={"background": "pool"})
    done = []
    for i in range(3):
        if i == 1:  # the middle one as a Slurm array task would run it
            monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
            monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
            s = jobs.run(sample_lake, spec, workers=1, progress=False, split="slurm")
        else:
            s = jobs.run(sample_lake, spec, workers=1, progress=False, split=f"{i}/3")
        done.append(sorted(sample_lake.query("SELECT shard FROM manifest WHERE fingerprint = $fp",
                                             {"fp": s.fingerprint}).column(0).to_pylist()))
    assert done == [[0, 3, 6], [0, 1, 3, 4, 6], list(range(7))]
    parts = job_outputs(sample_lake, s.fingerprint)
    again = jobs.run(sample_lake, spec, workers=1, progress=False, split="1/3")
    assert again.shards_rendered == 0 and job_outputs(sample_lake, s.fingerprint) == parts
    wipe_job(sample_lake, s.fingerprint, s.folder)
    whole = jobs.run(sample_lake, spec, workers=2, progress=False)
    assert whole.fingerprint == s.fingerprint and whole.shards_rendered == 7
    assert job_outputs(sample_lake, whole.fingerprint) == parts


def test_stage_splits_equal_the_whole_stage(sample_lake):
    jobs.run(sample_lake, job_spec("split-relight-in", job={"images": 6, "shard_size": 2}), workers=1, progress=False)
    spec = resolve({"job": {"name": "split-relit", "input": "split-relight-in"}, "relight": {}})
    first = stage.run(sample_lake, spec, workers=1, progress=False, split="1/2")
    assert first.shards_rendered == 1 and first.images == 2
    second = stage.run(sample_lake, spec, workers=1, progress=False, split="0/2")
    assert second.shards_rendered == 2 and second.images == 4
    assert stage.run(sample_lake, spec, workers=1, progress=False, split="1/2").shards_rendered == 0
    parts = job_outputs(sample_lake, first.fingerprint, "relight")
    assert sorted(parts) == [0, 1, 2]
    wipe_job(sample_lake, first.fingerprint, first.folder)
    whole = stage.run(sample_lake, spec, workers=1, progress=False)
    assert whole.shards_rendered == 3 and job_outputs(sample_lake, whole.fingerprint, "relight") == parts


def test_split_arguments(monkeypatch):
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "5")
    monkeypatch.setenv("SLURM_ARRAY_TASK_COUNT", "3")
    monkeypatch.setenv("SLURM_ARRAY_TASK_MIN", "4")  # --array=4-6
    assert runner.parse_split("slurm") == (1, 3)
    assert runner.in_split(range(7), "2/3") == [2, 5] and runner.in_split({3, 1}, None) == [1, 3]
    for bad, message in (("half", "I/N"), ("3/3", r"\[0, N\)")):
        with pytest.raises(SoclakeError, match=message):
            runner.parse_split(bad)
    monkeypatch.delenv("SLURM_ARRAY_TASK_COUNT")
    with pytest.raises(SoclakeError, match="SLURM_ARRAY_TASK_COUNT"):
        runner.parse_split("slurm")
