"""soclake verify: corrupt, truncated and missing shards are found and repaired from the plan."""
import os

from conftest import job_spec

from soclake.cli import main
from soclake.jobs import compose as jobs


def test_verify_finds_and_repairs_bad_shards(sample_lake, capsys):
    s = jobs.run(sample_lake, job_spec("verified", job={"images": 6, "shard_size": 2}), workers=1, progress=False)
    lake = sample_lake.uri
    assert main(["verify", "--lake", lake, "--job", "verified", "--deep"]) == 0
    paths = [sample_lake.path(s.folder, "shards", f"shard-{i:06d}.tar") for i in range(3)]
    originals = [open(p, "rb").read() for p in paths]
    flipped = bytearray(originals[0])
    flipped[len(flipped) // 2] ^= 0xFF
    open(paths[0], "wb").write(bytes(flipped))
    open(paths[1], "wb").write(originals[1][:1000])
    os.unlink(paths[2])
    capsys.readouterr()
    assert main(["verify", "--lake", lake, "--job", "verified"]) == 1
    out = capsys.readouterr().out
    assert "sha256 mismatch" in out and "size" in out and "missing shard file" in out and "3 problem(s)" in out
    assert main(["verify", "--lake", lake, "--job", "verified", "--repair"]) == 0
    assert "after repair: 0 problem(s)" in capsys.readouterr().out
    assert [open(p, "rb").read() for p in paths] == originals  # re-rendered byte for byte
