"""Hostile tar shards: members whose paths escape the folder ('../evil', '/abs', 'KEY.x/../..'),
symlinks, hard links, devices, FIFOs, folders and hidden names, inside a shard the manifest
vouches for. The shard reader, Stream, export (panoptic PNGs, --images, ODVG of a refexp job),
show and verify skip and flag them and never write outside their output.
"""
from __future__ import annotations

import io
import json
import os
import tarfile

import pytest
from conftest import folders_lake, job_spec
from hostile_corpus import HOSTILE_MEMBER_COUNT, changed_outside, tree, with_hostile_members

from soclake import Lake
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.lake.schemas import to_table
from soclake.paths import part_name
from soclake.shards.tar import read_samples

ABS_MEMBER = "/tmp/soclake-hostile-abs.jpg"


def commit_tampered(lake: Lake, job: str, stage: str, shard: int, data: bytes) -> None:
    """Replace a committed shard and its manifest row, as a hostile producer of the lake could."""
    import hashlib
    row = lake.query("SELECT * FROM manifest WHERE job = $j AND shard = $s", {"j": job, "s": shard}).to_pylist()[0]
    open(lake.path(row["shard_uri"]), "wb").write(data)
    row.update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    lake.append("manifest", to_table("manifest", [row]), part_name(job, row["fingerprint"], shard))
    lake.refresh()
    from soclake.jobs.runner import write_indexes
    write_indexes(lake, job, row["fingerprint"], stage)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A lake with a 4-image compose job (2 shards) and a refexp job on it; shard 0 of both
    carries every hostile member."""
    root = tmp_path_factory.mktemp("shards")
    lake = folders_lake(root, seed_step=20)
    summary = jobs.run(lake, job_spec("hj", job={"images": 4, "shard_size": 2}, sampling={"objects": [1, 3]},
                                      layout={"width": 64, "height": 64}), workers=1, progress=False)
    shard0 = os.path.join(lake.root, summary.folder, "shards", "shard-000000.tar")
    clean = open(shard0, "rb").read()
    commit_tampered(lake, "hj", "compose", 0, with_hostile_members(clean))
    from soclake.spec import load as jobspec
    from soclake.stages import runner as stage
    # 64x64 images: objects of ~150 px are plainly visible here, so the size margin is lowered
    spec = jobspec.resolve({"job": {"name": "hx", "input": "hj"}, "refexp": {"min_pixels": 16}})
    refexp = stage.run(lake, spec, workers=1, progress=False)
    assert refexp.images == 4 and not refexp.failed
    ref0 = os.path.join(lake.root, refexp.folder, "shards", "shard-000000.tar")
    commit_tampered(lake, "hx", "refexp", 0, with_hostile_members(open(ref0, "rb").read()))
    return lake, shard0, clean


@pytest.fixture
def guard(hostile, tmp_path):
    """Snapshots of the lake folder's parent and of tmp_path: only `allowed` may change."""
    lake = hostile[0]
    parent = os.path.dirname(lake.root)
    before = (tree(parent), tree(tmp_path))

    def check(*allowed: str):
        assert changed_outside(before[0], tree(parent), allowed=()) == []
        assert changed_outside(before[1], tree(tmp_path), allowed=allowed) == []
        assert not os.path.lexists(ABS_MEMBER)
    return check


def test_reader_skips_and_reports_every_hostile_member(hostile):
    _, shard0, clean = hostile
    skipped: list[tuple[str, str]] = []
    got = read_samples(open(shard0, "rb").read(), lambda name, why: skipped.append((name, why)))
    assert got == read_samples(clean)
    assert len(skipped) == HOSTILE_MEMBER_COUNT
    why = dict(skipped)
    assert why["../evil.jpg"] == why[ABS_MEMBER] == "a path, not a plain file name"
    assert why["000000000.sym.jpg"] == "a symlink" and why["000000000.hard.jpg"] == "a hard link"
    assert why["000000000.dev.jpg"] == why["000000000.fifo.jpg"] == "a device or FIFO"


def test_stream_yields_the_samples_and_counts_the_skipped_members(hostile, guard):
    from soclake.loader.stream import Stream
    lake = hostile[0]
    stream = Stream(lake.root, "hj", task="segmentation", shuffle=False)
    with pytest.warns(UserWarning, match="not sample files"):
        got = list(stream)
    assert [s["__key__"] for s in got] == ["000000000", "000000001", "000000002", "000000003"]
    assert all(s["masks"].shape[1:] == (64, 64) for s in got)
    assert stream.stats.skipped_members == HOSTILE_MEMBER_COUNT and stream.stats.bad_shards == 0
    guard()


def test_export_writes_only_the_selected_members_inside_its_folder(hostile, guard, tmp_path, capsys):
    """Panoptic PNGs and --images composites land in their folders and nowhere else; a symlink
    planted in the output folder is an error naming it, never written through (nor replaced)."""
    lake = hostile[0]
    secret = tmp_path / "secret.txt"
    secret.write_text("keep me")
    out = tmp_path / "out"
    (out / "images").mkdir(parents=True)
    link = out / "images" / "000000000.rgba.png"
    os.symlink(secret, link)
    code = main(["export", "--lake", lake.root, "--job", "hj", "--format", "panoptic", "--out", str(out), "--images"])
    assert code == 2
    assert f"{link} is a symbolic link" in capsys.readouterr().err
    assert os.path.islink(link) and secret.read_text() == "keep me"
    os.unlink(link)
    assert main(["export", "--lake", lake.root, "--job", "hj", "--format", "panoptic", "--out", str(out),
                 "--images"]) == 0
    keys = [f"00000000{i}" for i in range(4)]
    assert sorted(os.listdir(out / "panoptic")) == [f"{k}.png" for k in keys]
    assert sorted(os.listdir(out / "images")) == [f"{k}.rgba.png" for k in keys]
    assert secret.read_text() == "keep me"
    assert sorted(os.listdir(out)) == ["images", "panoptic", "panoptic.json"]
    guard("out", "secret.txt")


def test_odvg_export_of_a_refexp_job_skips_hostile_members(hostile, guard, tmp_path, capsys):
    lake = hostile[0]
    assert main(["export", "--lake", lake.root, "--job", "hx", "--format", "odvg", "--out", str(tmp_path / "o")]) == 0
    assert "skipped member '../evil.jpg'" in capsys.readouterr().err
    records = [json.loads(line) for line in open(tmp_path / "o" / "odvg.jsonl")]
    assert {r["filename"] for r in records} == {f"00000000{i}.rgba.png" for i in range(4)}
    assert sorted(os.listdir(tmp_path / "o")) == ["odvg.jsonl"]
    guard("o")


def test_show_draws_from_a_hostile_shard_and_writes_only_its_png(hostile, guard, tmp_path):
    _, shard0, _ = hostile
    assert main(["show", shard0, "--key", "000000001", "--out", str(tmp_path / "s.png")]) == 0
    from PIL import Image
    assert Image.open(tmp_path / "s.png").size == (64, 64)
    guard("s.png")


def test_show_of_a_sample_it_cannot_draw_is_a_clear_error(tmp_path, capsys):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("k1.json", b'{"not": "a soclake sample"}'), ("k2.json", b"\xff garbage"),
                           ("k2.png", b"not a png")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    shard = tmp_path / "odd.tar"
    shard.write_bytes(buf.getvalue())
    for key in ("k1", "k2", "missing"):
        assert main(["show", str(shard), "--key", key, "--out", str(tmp_path / "x.png")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("soclake: error:") and "Traceback" not in err and key in err
    (tmp_path / "junk.tar").write_bytes(b"\0junk" * 100)
    with pytest.raises(SoclakeError, match="not a readable tar"):
        from soclake.outputs.show import show
        show(str(tmp_path / "junk.tar"), str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def test_verify_flags_the_hostile_shard(hostile, guard, capsys):
    lake = hostile[0]
    assert main(["verify", "--lake", lake.root, "--job", "hj", "--deep"]) == 1
    out = capsys.readouterr().out
    assert "shard-000000.tar: member" in out and "is not a sample file (and 9 more)" in out
    assert "shard-000001.tar" not in out
    guard()


@pytest.mark.parametrize("url", ["../../../../etc/passwd", "/etc/passwd", "http://127.0.0.1:9/x.tar",
                                 "jobs/../../x.tar", "C:\\x.tar", 5])
def test_stream_refuses_an_index_pointing_outside_the_lake(tmp_path, url):
    from soclake.loader.stream import Stream
    index = tmp_path / "jobs" / "j" / "index.json"
    index.parent.mkdir(parents=True)
    index.write_text(json.dumps({"version": 1, "job": "j", "fingerprint": "f", "shards": [{"url": url, "samples": 1}]}))
    with pytest.raises(SoclakeError, match="not a path inside its folder"):
        Stream(str(index))
    index.write_text(json.dumps({"version": 1, "job": "j", "shards": [{"url": "a.tar"}]}))
    with pytest.raises(SoclakeError, match="malformed"):
        Stream(str(index))


@pytest.mark.parametrize("version", [None, 2, "1"])
def test_stream_refuses_an_index_of_an_unknown_version(tmp_path, version):
    from soclake.loader.stream import Stream
    index = tmp_path / "index.json"
    doc = {"job": "j", "fingerprint": "f", "shards": [{"url": "shards/a.tar", "samples": 1}]}
    index.write_text(json.dumps(doc if version is None else {"version": version, **doc}))
    with pytest.raises(SoclakeError, match="not one this soclake reads"):
        Stream(str(index))
