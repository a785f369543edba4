"""No silent degradation: a segment pack that is missing or corrupt fails the shards that need
it (not committed, retried, reported with the pack and `soclake verify`; the run exits 1)
unless the spec opts in with [render] on_unreadable = "replace" | "drop"; then every failed
read is in the run's summary and the sample's failed_reads (no local path), and
`verify --deep` lists the samples. A committed sample whose reads failed or whose instances
differ from its plan is a verify problem when its spec did not allow it. A stage job named like
its input is refused at load.
"""
from __future__ import annotations

import json
import os

import pytest
from conftest import folders_lake
from test_hostile_shards import commit_tampered

from soclake import Lake
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.shards.tar import read_samples, tar_bytes
from soclake.spec import load as jobspec


def spec_file(tmp_path, name: str, on_unreadable: str | None = None) -> str:
    render = f'\n[render]\non_unreadable = "{on_unreadable}"\n' if on_unreadable else ""
    path = tmp_path / f"{name}.toml"
    path.write_text(f'[job]\nname = "{name}"\nimages = 4\nshard_size = 2\nretries = 1\n\n'
                    f'[layout]\nwidth = 64\nheight = 64\n{render}')
    return str(path)


def broken_lake(root) -> tuple[Lake, str]:
    """A folders lake whose only segment pack has gone missing (moved aside)."""
    lake = folders_lake(root, seed_step=60)
    pack = lake.query("SELECT levels[1].pack AS p FROM segments LIMIT 1")["p"][0].as_py()
    os.rename(lake.path(pack), str(root / "aside.tar"))
    return lake, pack


def test_a_missing_pack_fails_its_shards_loudly(tmp_path, capsys):
    lake, pack = broken_lake(tmp_path)
    assert main(["run", spec_file(tmp_path, "gone"), "--lake", lake.root, "--workers", "1"]) == 1
    out = capsys.readouterr().out
    assert out.count("FAILED shard") == 2 and "(after 2 attempts)" in out
    assert f"cannot be read from {pack} at offset" in out and "soclake verify --deep" in out
    assert "FileNotFoundError" in out and lake.root not in out.split("shards:")[0]
    fresh = Lake(lake.root)
    assert fresh.query("SELECT count(*) AS n FROM manifest")["n"][0].as_py() == 0  # nothing committed
    os.rename(str(tmp_path / "aside.tar"), lake.path(pack))  # restored: the rerun commits everything
    assert main(["run", spec_file(tmp_path, "gone"), "--lake", lake.root, "--workers", "1"]) == 0
    assert "0 dropped" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["drop", "replace"])
def test_opting_in_records_every_failed_read(tmp_path, capsys, mode):
    lake, pack = broken_lake(tmp_path)
    assert main(["run", spec_file(tmp_path, "opt", mode), "--lake", lake.root, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "segment read(s) FAILED and were replaced or dropped as [render] on_unreadable allows" in out
    fresh = Lake(lake.root)
    shards = fresh.query("SELECT shard_uri FROM manifest ORDER BY shard")["shard_uri"].to_pylist()
    assert len(shards) == 2
    for uri in shards:
        data = open(fresh.path(uri), "rb").read()
        assert str(tmp_path).encode() not in data  # no absolute local path in any member
        for _, members in read_samples(data):
            info = json.loads(members["json"])
            assert info["instances"] == [] and info["failed_reads"]
            assert {f["pack"] for f in info["failed_reads"]} == {pack}
            assert all(f["error"].startswith("FileNotFoundError") for f in info["failed_reads"])
    assert main(["verify", "--lake", lake.root]) == 1  # the missing pack itself
    assert f"{pack}: missing pack file" in capsys.readouterr().out
    os.rename(str(tmp_path / "aside.tar"), lake.path(pack))
    assert main(["verify", "--lake", lake.root, "--deep"]) == 0  # allowed by the spec: notes, not problems
    out = capsys.readouterr().out
    assert out.count("note: sample") == 4 and f"(pack {pack})" in out and "allowed by the spec" in out
    # the same samples in a lake whose spec did not allow them (written before on_unreadable) are problems
    marker = next(os.path.join(d, "job.json") for d, _, files in os.walk(lake.path("jobs")) if "job.json" in files)
    info = json.load(open(marker))
    del info["spec"]["render"]["on_unreadable"]
    open(marker, "w").write(json.dumps(info))
    assert main(["verify", "--lake", lake.root, "--deep"]) == 1
    assert "segment read(s) failed" in capsys.readouterr().out


def test_verify_deep_finds_a_sample_with_fewer_instances_than_its_plan(tmp_path, capsys):
    lake = folders_lake(tmp_path, seed_step=70)
    assert main(["run", spec_file(tmp_path, "few"), "--lake", lake.root, "--workers", "1"]) == 0
    assert main(["verify", "--lake", lake.root, "--deep"]) == 0
    capsys.readouterr()
    uri = lake.query("SELECT shard_uri FROM manifest WHERE shard = 0")["shard_uri"][0].as_py()
    samples = read_samples(open(lake.path(uri), "rb").read())
    info = json.loads(samples[0][1]["json"])
    assert info["instances"], "the first sample has an instance to lose"
    info["instances"] = info["instances"][1:]
    samples[0][1]["json"] = json.dumps(info).encode()
    commit_tampered(lake, "few", "compose", 0, tar_bytes(samples))
    assert main(["verify", "--lake", lake.root, "--deep"]) == 1
    assert f"sample {samples[0][0]}: " in capsys.readouterr().out


def test_a_stage_job_named_like_its_input_is_refused_at_load():
    for stage in ("relight", "refexp"):
        with pytest.raises(SoclakeError, match="is also its input"):
            jobspec.resolve({"job": {"name": "demo", "input": "demo"}, stage: {}})
    assert jobspec.resolve({"job": {"name": "demo-relit", "input": "demo"}, "relight": {}}).name == "demo-relit"
