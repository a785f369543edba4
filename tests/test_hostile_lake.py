"""The lake checks itself: truncated, junk, mistyped and duplicated table parts, and missing,
truncated, corrupt and orphaned packs. Every command that meets a damaged part names it and
says `soclake verify --repair`; verify finds each one (without dying), --repair moves them to
quarantine/ (never deletes), redoes the shards that lost a part, and afterwards every command
works again.
"""
from __future__ import annotations

import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import folders_lake, job_spec

from soclake import Lake
from soclake.cli import main
from soclake.jobs import compose
from soclake.lake.schemas import to_table
from soclake.paths import part_name


def built(root) -> tuple[Lake, str]:
    lake = folders_lake(root, seed_step=50)
    summary = compose.run(lake, job_spec("lk", job={"images": 4, "shard_size": 2}, layout={"width": 64, "height": 64}),
                          workers=1, progress=False)
    assert summary.images == 4 and not summary.failed
    return lake, summary.fingerprint


@pytest.fixture
def lake(tmp_path):
    return built(tmp_path)


def everything_works(lake: Lake, tmp_path, capsys) -> None:
    for command in (["info"], ["jobs"], ["sql", "SELECT count(*) FROM segments"], ["verify", "--deep"],
                    ["export", "--job", "lk", "--format", "coco", "--out", str(tmp_path / "coco")]):
        assert main(command + ["--lake", lake.root]) == 0, (command, capsys.readouterr())
    capsys.readouterr()


def test_damaged_parts_are_named_by_every_command_and_repaired(lake, tmp_path, capsys):
    lake, fp = lake
    ann = os.path.join(lake.table_dir("annotations"), f"part-{part_name('lk', fp, 1)}.parquet")
    data = open(ann, "rb").read()
    open(ann, "wb").write(data[: len(data) // 2])                                   # truncated
    junk = os.path.join(lake.table_dir("rejects"), "part-junk.parquet")
    os.makedirs(os.path.dirname(junk), exist_ok=True)
    open(junk, "wb").write(b"not parquet at all " * 20)                              # junk
    manifest0 = os.path.join(lake.table_dir("manifest"), f"part-{part_name('lk', fp, 0)}.parquet")
    shutil.copy(manifest0, os.path.join(lake.table_dir("manifest"), "part-copy.parquet"))  # duplicate
    for command in (["info"], ["sql", "SELECT count(*) FROM annotations"], ["jobs"]):
        assert main(command + ["--lake", lake.root]) == 2
        err = capsys.readouterr().err
        assert "soclake verify --repair" in err and ("part-junk.parquet" in err or os.path.basename(ann) in err), err
        assert "Traceback" not in err
    assert main(["verify", "--lake", lake.root]) == 1
    out = capsys.readouterr().out
    for name in (os.path.basename(ann), "part-junk.parquet", "part-copy.parquet"):
        assert name in out, out
    assert "would count twice" in out
    assert main(["verify", "--lake", lake.root, "--repair"]) == 0
    out = capsys.readouterr().out
    assert out.count("-> quarantine/") == 3 and "after repair: 0 problem(s)" in out
    assert os.path.exists(lake.path("quarantine", "tables", "rejects", "part-junk.parquet"))
    assert open(lake.path("quarantine", os.path.relpath(ann, lake.root)), "rb").read() == data[: len(data) // 2]
    everything_works(Lake(lake.root), tmp_path, capsys)
    fresh = Lake(lake.root)
    assert fresh.query("SELECT count(*) AS n FROM manifest")["n"][0].as_py() == 2  # not doubled
    n_ann = fresh.query("SELECT count(*) AS n FROM annotations WHERE fingerprint = $fp", {"fp": fp})["n"][0].as_py()
    assert n_ann == fresh.query("SELECT sum(instances) AS n FROM images WHERE fingerprint = $fp",
                                {"fp": fp})["n"][0].as_py()  # the shard that lost its part was redone


def test_a_part_of_the_wrong_types_is_found_and_named(lake, tmp_path, capsys):
    lake, fp = lake
    rows = lake.query("SELECT * FROM images").to_pylist()[:1]
    bad = pa.table({k: [str(v)] for k, v in rows[0].items()})  # every column a string
    pq.write_table(bad, os.path.join(lake.table_dir("images"), "part-mistyped.parquet"))
    assert main(["verify", "--lake", lake.root]) == 1
    out = capsys.readouterr().out
    assert "part-mistyped.parquet: column 'image_id' is string, schemas/images.json says int64" in out
    assert main(["sql", "SELECT sum(image_id) FROM images", "--lake", lake.root]) == 2
    err = capsys.readouterr().err
    assert "part-mistyped.parquet" in err and "soclake verify --repair" in err
    assert main(["verify", "--lake", lake.root, "--repair"]) == 0
    everything_works(Lake(lake.root), tmp_path, capsys)


def test_a_link_in_a_table_folder_is_a_damaged_part(lake, tmp_path, capsys):
    lake, _ = lake
    (tmp_path / "elsewhere.parquet").write_bytes(open(lake.table_parts("images")[0], "rb").read())
    os.symlink(tmp_path / "elsewhere.parquet", os.path.join(lake.table_dir("images"), "part-link.parquet"))
    assert main(["verify", "--lake", lake.root]) == 1
    assert "part-link.parquet: a symbolic link, not a part file" in capsys.readouterr().out


def test_packs_missing_truncated_corrupt_and_orphaned(tmp_path, capsys):
    lake, _ = built(tmp_path)
    rows = lake.query("SELECT background_id, pack FROM backgrounds").to_pylist()
    packs = sorted({lv["pack"] for r in lake.query("SELECT levels FROM segments").to_pylist() for lv in r["levels"]})
    assert packs and not rows  # the folders layout: one pack of segments
    pack = lake.path(packs[0])
    original = open(pack, "rb").read()
    assert main(["verify", "--lake", lake.root, "--deep", "--all"]) == 0
    capsys.readouterr()
    first = lake.query("SELECT levels[1] AS lv FROM segments ORDER BY segment_id LIMIT 1")["lv"][0].as_py()
    flipped = bytearray(original)
    flipped[first["offset"]: first["offset"] + 64] = b"\0" * 64  # the member's header, at its recorded offset
    open(pack, "wb").write(bytes(flipped))
    assert main(["verify", "--lake", lake.root]) == 0  # not --deep: sizes only
    capsys.readouterr()
    assert main(["verify", "--lake", lake.root, "--deep", "--all"]) == 1
    assert f"{packs[0]}: segment " in capsys.readouterr().out
    end = max(lv["offset"] + lv["length"] for r in lake.query("SELECT levels FROM segments").to_pylist()
              for lv in r["levels"])
    open(pack, "wb").write(original[: end - 1])  # the last member loses its last byte
    assert main(["verify", "--lake", lake.root]) == 1
    assert "but its rows locate members up to byte" in capsys.readouterr().out
    os.unlink(pack)
    assert main(["verify", "--lake", lake.root]) == 1
    assert f"{packs[0]}: missing pack file" in capsys.readouterr().out
    open(pack, "wb").write(original)
    orphan = os.path.join(os.path.dirname(pack), "killed-ingest-00000.tar")
    shutil.copy(pack, orphan)
    lake.append("categories", to_table("categories", [{"category_id": 999, "name": "ghost", "synonyms": [],
                                                       "first_source": "killed"}]))
    assert main(["verify", "--lake", lake.root]) == 0
    out = capsys.readouterr().out
    assert "killed-ingest-00000.tar: orphan pack" in out and "category 999 'ghost'" in out
    assert main(["verify", "--lake", lake.root, "--repair"]) == 0
    out = capsys.readouterr().out
    assert "killed-ingest-00000.tar -> quarantine/" in out and not os.path.exists(orphan)
    assert main(["verify", "--lake", lake.root]) == 0
    assert "orphan pack" not in capsys.readouterr().out
