"""Writes never follow links: symlinks planted where exports, show, audit, `soclake sql --out`,
shards-from-coco and the lake's own shards and parts write are errors naming them, and their
targets are never touched. A killed export's temporaries sit in its output folder (never the
system temp folder) and the next export removes them.
"""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import folders_lake, job_spec
from PIL import Image

from soclake import paths, storage
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.jobs import compose

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("writes")
    lake = folders_lake(root, seed_step=30)
    summary = compose.run(lake, job_spec("wj", job={"images": 4, "shard_size": 2}, layout={"width": 64, "height": 64}),
                          workers=1, progress=False)
    assert summary.images == 4 and not summary.failed
    return lake


def plant(link, victim) -> None:
    victim.write_text("keep me") if not victim.exists() else None
    os.symlink(victim, link)


OLD_NAMES = {"coco": ["annotations.json", "annotations.json.tmp"],
             "panoptic": ["panoptic.json", "panoptic.json.tmp"],
             "odvg": ["odvg.jsonl", "odvg.jsonl.tmp", "label_map.json"]}
"""What each export writes (its old temporaries too, fixed names anyone could plant a link at)."""


@pytest.mark.parametrize("fmt", sorted(OLD_NAMES))
def test_export_never_writes_through_a_planted_link(made, tmp_path, fmt, capsys):
    out = tmp_path / "out"
    out.mkdir()
    victims = {name: tmp_path / f"victim-{name}" for name in OLD_NAMES[fmt]}
    for name, victim in victims.items():
        plant(out / name, victim)
    assert main(["export", "--lake", made.root, "--job", "wj", "--format", fmt, "--out", str(out)]) == 2
    assert f"{out / OLD_NAMES[fmt][0]} is a symbolic link" in capsys.readouterr().err
    assert all(v.read_text() == "keep me" for v in victims.values())
    for name in OLD_NAMES[fmt]:  # links at the final names removed; the old temporary names stay
        if not name.endswith(".tmp"):
            os.unlink(out / name)
    assert main(["export", "--lake", made.root, "--job", "wj", "--format", fmt, "--out", str(out)]) == 0
    assert all(v.read_text() == "keep me" for v in victims.values())
    written = [n for n in OLD_NAMES[fmt] if not n.endswith(".tmp")]
    assert all(os.path.isfile(out / n) and not os.path.islink(out / n) for n in written)
    assert not glob.glob(str(out / ".*tmp-*"))


def test_an_output_folder_that_is_a_link_is_refused(made, tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = tmp_path / "out"
    (out).mkdir()
    os.symlink(elsewhere, out / "images")
    assert main(["export", "--lake", made.root, "--job", "wj", "--format", "coco", "--out", str(out), "--images"]) == 2
    assert f"{out / 'images'} is a symbolic link" in capsys.readouterr().err
    assert os.listdir(elsewhere) == []


def test_show_audit_and_sql_out_refuse_links(made, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    for command in (["show", "wj", "--lake", made.root, "--out"],
                    ["audit", "--lake", made.root, "--vocab", "coco", "--out"],
                    ["sql", "SELECT 1 AS one", "--lake", made.root, "--format", "csv", "--out"]):
        link = tmp_path / ("link.png" if command[0] == "show" else "link.html" if command[0] == "audit" else "l.csv")
        plant(link, victim)
        assert main(command + [str(link)]) == 2, command
        assert f"{link} is a symbolic link" in capsys.readouterr().err
        assert victim.read_text() == "keep me"
        os.unlink(link)
    assert main(["show", "wj", "--lake", made.root, "--out", str(tmp_path / "s.png")]) == 0
    assert Image.open(tmp_path / "s.png").size == (64, 64)


def test_atomic_open_refuses_links_folders_and_fifos(tmp_path):
    """The one write helper: a destination that is a link, a folder or a FIFO is an error naming
    it, and the temporary never follows a link planted at its name."""
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    os.symlink(victim, tmp_path / "link")
    (tmp_path / "folder").mkdir()
    os.mkfifo(tmp_path / "fifo")
    for name in ("link", "folder", "fifo"):
        with pytest.raises(SoclakeError, match=f"{tmp_path / name} "):
            storage.write_bytes(storage.LOCAL, str(tmp_path / name), b"data")
    assert victim.read_text() == "keep me" and os.path.islink(tmp_path / "link")
    storage.write_bytes(storage.LOCAL, str(tmp_path / "plain"), b"data")
    assert (tmp_path / "plain").read_bytes() == b"data"
    assert sorted(os.listdir(tmp_path)) == ["fifo", "folder", "link", "plain", "victim"]


def test_lake_shards_never_follow_a_planted_link(tmp_path):
    """Shard files have predictable names: a link planted at an uncommitted one is removed by the
    run's sweep (a link, never its target) and a real file is written in its place."""
    lake = folders_lake(tmp_path, seed_step=40)
    spec = job_spec("lj", job={"images": 6, "shard_size": 2, "retries": 0}, layout={"width": 64, "height": 64})
    job = compose.prepare(lake, spec)
    compose.plan(lake, job)
    victim = tmp_path / "victim"
    plant(tmp_path / "placeholder", victim)
    shard0 = lake.path(paths.shard_uri("lj", job.fingerprint, 0))
    os.makedirs(os.path.dirname(shard0))
    os.symlink(victim, shard0)
    summary = compose.run(lake, spec, workers=1, progress=False)
    assert summary.shards_rendered == 3 and not summary.failed
    assert victim.read_text() == "keep me" and os.path.isfile(shard0) and not os.path.islink(shard0)


def _tiny_coco(root) -> tuple[str, str]:
    images = root / "images"
    images.mkdir()
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "box"}]}
    for i in (1, 2):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(images / f"{i}.png")
        doc["images"].append({"id": i, "file_name": f"{i}.png", "width": 16, "height": 16})
        doc["annotations"].append({"id": i, "image_id": i, "category_id": 1, "bbox": [2, 2, 6, 6], "iscrowd": 0,
                                   "segmentation": [[2, 2, 8, 2, 8, 8, 2, 8]]})
    (root / "inst.json").write_text(json.dumps(doc))
    return str(root / "inst.json"), str(images)


def test_shards_from_coco_never_follows_a_link(tmp_path, capsys):
    ann, images = _tiny_coco(tmp_path)
    victim = tmp_path / "victim"
    out = tmp_path / "out"
    out.mkdir()
    plant(out / "index.json", victim)
    assert main(["shards-from-coco", ann, images, "--out", str(out)]) == 2
    assert f"{out / 'index.json'} is a symbolic link" in capsys.readouterr().err
    assert victim.read_text() == "keep me"
    os.unlink(out / "index.json")
    assert main(["shards-from-coco", ann, images, "--out", str(out)]) == 0
    assert os.path.isfile(out / "index.json") and not os.path.islink(out / "index.json")
    elsewhere, out2 = tmp_path / "elsewhere", tmp_path / "out2"
    elsewhere.mkdir()
    out2.mkdir()
    os.symlink(elsewhere, out2 / "shards")
    assert main(["shards-from-coco", ann, images, "--out", str(out2)]) == 2
    assert f"{out2 / 'shards'} is a symbolic link" in capsys.readouterr().err
    assert os.listdir(elsewhere) == []


def _killed_export(made, out, tmpdir, fault: str, *extra: str) -> int:
    env = {**os.environ, "SOCLAKE_FAULT": fault, "TMPDIR": str(tmpdir), "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, "-m", "soclake.cli", "export", "--lake", made.root, "--job", "wj",
                           "--format", "coco", "--out", str(out), *extra], env=env, capture_output=True).returncode


@pytest.mark.slow  # three exports in child processes (5 s each to start)
def test_a_killed_export_leaves_its_temporaries_only_in_its_folder_and_the_next_removes_them(made, tmp_path):
    tmpdir, out = tmp_path / "systemtmp", tmp_path / "out"
    tmpdir.mkdir()
    assert _killed_export(made, out, tmpdir, "export:1") == -9  # mid-document
    left = sorted(os.listdir(out))
    assert any(n.startswith(".annotations.json.tmp-") for n in left) and any(n.startswith(".export.tmp-") for n in left)
    assert _killed_export(made, out, tmpdir, "export:4", "--images") == -9  # mid-image, after the document
    assert any(n.startswith(".") and ".tmp-" in n for n in os.listdir(out / "images"))
    assert os.listdir(tmpdir) == []  # nothing in the system temp folder, ever
    env = {**os.environ, "TMPDIR": str(tmpdir), "PYTHONPATH": REPO}
    done = subprocess.run([sys.executable, "-m", "soclake.cli", "export", "--lake", made.root, "--job", "wj",
                           "--format", "coco", "--out", str(out), "--images"], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(out)) == ["annotations.json", "images"]
    assert sorted(os.listdir(out / "images")) == [f"00000000{i}.rgba.png" for i in range(4)]
    assert len(json.load(open(out / "annotations.json"))["images"]) == 4
    assert os.listdir(tmpdir) == []


@pytest.mark.parametrize("planted", ["segments", "segments/sample_metadata.json", "segments/ball"])
def test_sample_pool_never_writes_through_a_planted_link(tmp_path, planted, capsys):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep").write_text("mine")
    out = tmp_path / "pool"
    (out / planted).parent.mkdir(parents=True, exist_ok=True)
    os.symlink(outside if "." not in planted else outside / "keep", out / planted)
    assert main(["sample-pool", str(out)]) != 0
    assert "symbolic link" in capsys.readouterr().err
    assert sorted(os.listdir(outside)) == ["keep"] and (outside / "keep").read_text() == "mine"
