"""Hostile COCO files: broken boxes and polygons, missing segmentations, duplicate and
dangling ids, bytes that are not UTF-8, and file names that try to leave the images folder.
Each bad entry is one rejects row with its reason; the good instances of the same file are
ingested with their exact pixels; nothing outside the images folder is opened.
"""
from __future__ import annotations

import json
import os
import tempfile

import numpy as np
import pytest
from hostile_corpus import OpenRecorder, changed_outside, tree
from PIL import Image

from soclake import Lake
from soclake.imaging import decode_level
from soclake.ingestion import ingest

W, H = 50, 40


def square(x: float, y: float, s: float = 10) -> list[list[float]]:
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def ann(i: int, image_id=1, category_id=1, **kw) -> dict:
    return {"id": i, "image_id": image_id, "category_id": category_id, "segmentation": square(5, 5),
            "bbox": [5, 5, 10, 10], "iscrowd": 0, **kw}


@pytest.fixture
def coco(tmp_path, monkeypatch):
    """Images a.png .. d.png (noise photos) and a secret image outside the images folder."""
    rng = np.random.default_rng(0)
    (tmp_path / "src" / "images").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    photos = {}
    for name in ("a.png", "b.png", "c.png", "d.png"):
        photos[name] = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        Image.fromarray(photos[name]).save(tmp_path / "src" / "images" / name)
    Image.fromarray(rng.integers(0, 256, (H, W, 3), dtype=np.uint8)).save(tmp_path / "outside" / "secret.png")
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    return tmp_path, photos


def run(root, doc: dict | bytes, monkeypatch) -> tuple[Lake, OpenRecorder]:
    path = root / "src" / "instances.json"
    path.write_bytes(doc if isinstance(doc, bytes) else json.dumps(doc).encode())
    before = tree(root)
    recorder = OpenRecorder(monkeypatch)
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "coco", str(path), workers=1, progress=False)
    assert changed_outside(before, tree(root), allowed=("lake", "tmp")) == []
    assert os.listdir(root / "tmp") == []
    return lake, recorder


def reasons(lake: Lake) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for r in lake.query("SELECT source_uri, reason FROM rejects ORDER BY ALL").to_pylist():
        out.setdefault(r["source_uri"], []).append(r["reason"])
    return out


def test_bad_boxes_polygons_and_segmentations(coco, monkeypatch):
    root, photos = coco
    doc = {
        "images": [{"id": 1, "file_name": "a.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "thing"}],
        "annotations": [
            ann(1),                                                               # good
            ann(2, bbox=[5, 5, float("nan"), 10]),                                # NaN box (bare NaN)
            ann(3, bbox=[5, 5, -10, 10]),                                         # negative size
            ann(4, bbox=[5, 5, 0, 10]),                                           # zero size
            ann(5, bbox=[500, 500, 10, 10]),                                      # outside the image
            ann(6, bbox=[5, 5, 10]),                                              # not 4 numbers
            ann(7, segmentation=[[1, 2, 3, 4]]),                                  # fewer than 3 points
            ann(8, segmentation=[[1, 2, 3, 4, 5, 6, 7]]),                         # odd coordinates
            ann(9, segmentation=[[1e30, 1, 2, -1e30, 3, 3]]),                     # huge (pycocotools crashes)
            ann(10, segmentation=[[5e8, 1, 2, 3, 3, 3]]),                         # far out (pycocotools OOM)
            ann(11, segmentation=[[5, 5, 5, 5, 5, 5]]),                           # no area
            ann(12, segmentation=[[100, 100, 120, 100, 120, 120]]),               # beyond one image size
            ann(13, segmentation=[[1, 1, "x", 4, 5, 6]]),                         # not numbers
            ann(14, segmentation=[]),                                             # empty
            ann(15, segmentation="polygon"),                                      # wrong type
            ann(16, segmentation={"size": [H, W], "counts": "!!!!"}),             # broken RLE
            {"id": 17, "image_id": 1, "category_id": 1, "bbox": [5, 5, 10, 10]},  # segmentation missing
            ann(18, segmentation=square(20, 15, 12), bbox=[20, 15, 12, 12]),      # good
            ann(19, segmentation=[[-0.5, -0.5, 60, -0.5, 60, 45]], bbox=[0, 0, W, H]),  # partly outside: clipped
        ],
    }
    text = json.dumps(doc).replace('"NaN"', "NaN")
    lake, recorder = run(root, text.encode(), monkeypatch)
    got = reasons(lake)
    # checked while staging the file (uri FILE#ann=ID) or against the image (uri IMAGE#ann=ID)
    expected = {f"instances.json#ann={i}": ["bad_annotation"] for i in (2, 3, 4, 6, 7, 13, 14, 15, 17)}
    expected.update({f"a.png#ann={i}": ["bad_annotation"] for i in (5, 8, 9, 10, 12, 16)})
    expected["a.png#ann=11"] = ["empty_mask"]
    assert got == expected
    segs = {r["source_uri"]: r for r in lake.query("SELECT * FROM segments").to_pylist()}
    assert set(segs) == {"a.png#ann=1", "a.png#ann=18", "a.png#ann=19"}
    s = segs["a.png#ann=18"]
    lv = s["levels"][0]
    pixels = decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))
    y, x = s["crop_y"], s["crop_x"]
    inside = pixels[..., 3] == 255
    assert np.array_equal(pixels[..., :3][inside], photos["a.png"][y:y + s["height"], x:x + s["width"]][inside])
    clipped = segs["a.png#ann=19"]
    assert clipped["crop_x"] + clipped["width"] == W and clipped["crop_y"] + clipped["height"] <= H
    assert clipped["crop_x"] <= 1 and clipped["crop_y"] == 0
    assert recorder.outside(root / "src", root / "lake", root / "tmp") == []


def test_duplicate_and_dangling_ids(coco, monkeypatch):
    root, _ = coco
    doc = {
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}, {"id": 2, "file_name": "c.png"},
                   {"id": 3, "file_name": "d.png", "width": W, "height": H}],
        "categories": [{"id": 1, "name": "one"}, {"id": 7, "name": "seven"}, {"id": 7, "name": "other seven"}],
        "annotations": [ann(1), ann(1, image_id=3),          # duplicate annotation id: the second is rejected
                        ann(2, image_id=2),                  # its image id is defined twice: ambiguous
                        ann(3, category_id=7),               # its category id is defined twice
                        ann(4, image_id=99), ann(5, category_id=99), ann(6, image_id=3)],
    }
    lake, _ = run(root, doc, monkeypatch)
    assert reasons(lake) == {
        "instances.json#ann=1": ["duplicate_id"], "instances.json#ann=2": ["dangling_reference"],
        "instances.json#ann=3": ["dangling_reference"], "instances.json#ann=4": ["dangling_reference"],
        "instances.json#ann=5": ["dangling_reference"],
        "instances.json#image=2": ["duplicate_id", "duplicate_id"],
        "instances.json#category=7": ["duplicate_id", "duplicate_id"]}
    segs = lake.query("SELECT source_uri, category FROM segments ORDER BY 1").to_pylist()
    assert segs == [{"source_uri": "a.png#ann=1", "category": "one"}, {"source_uri": "d.png#ann=6", "category": "one"}]
    assert lake.query("SELECT name FROM categories").to_pylist() == [{"name": "one"}]


def test_file_names_never_leave_the_images_folder(coco, monkeypatch):
    root, _ = coco
    secret = str(root / "outside" / "secret.png")
    names = {2: "../outside/secret.png", 3: secret, 4: "images/../../outside/secret.png", 5: "a.png\x00.txt",
             6: "x" * 300 + ".png", 7: "sub/" * 1100 + "a.png", 8: "C:\\outside\\secret.png", 9: 17, 10: ""}
    doc = {"images": [{"id": 1, "file_name": "a.png"}] + [{"id": i, "file_name": n} for i, n in names.items()],
           "categories": [{"id": 1, "name": "thing"}],
           "annotations": [ann(i, image_id=i) for i in [1, *names]]}
    lake, recorder = run(root, doc, monkeypatch)
    got = reasons(lake)
    for i in names:
        assert got[f"instances.json#image={i}"] == ["unsafe_path"]
        assert got[f"instances.json#ann={i}"] == ["dangling_reference"]
    assert len(got) == 2 * len(names)
    assert lake.query("SELECT source_uri FROM segments").to_pylist() == [{"source_uri": "a.png#ann=1"}]
    assert recorder.outside(root / "src", root / "lake", root / "tmp") == []
    assert not any("outside" in p for p in recorder.paths)


def test_bytes_that_are_not_utf8_reject_only_their_entries(coco, monkeypatch):
    root, _ = coco
    doc = json.dumps({
        "images": [{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "BAD_NAME"}],
        "categories": [{"id": 1, "name": "ok"}, {"id": 2, "name": "BAD_NAME"}],
        "annotations": [ann(1), ann(2, image_id=2), ann(3, category_id=2),
                        ann(4, segmentation={"size": [H, W], "counts": "BAD_NAME"})],
    }).encode()
    lake, _ = run(root, doc.replace(b"BAD_NAME", b"caf\xe9\xff"), monkeypatch)
    assert reasons(lake) == {
        "instances.json#image": ["bad_image_entry"], "instances.json#category": ["bad_category"],
        "instances.json#ann=2": ["dangling_reference"], "instances.json#ann=3": ["dangling_reference"],
        "instances.json#ann=4": ["bad_annotation"]}
    assert lake.query("SELECT source_uri FROM segments").to_pylist() == [{"source_uri": "a.png#ann=1"}]
