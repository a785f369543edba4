"""Ingest of the `coco` layout: instances JSON + photos become tight RGBA segments.

Every input is built here in tmp_path: random-noise photos (so any pixel shift shows),
masks as polygons, uncompressed RLE and compressed RLE, plus one broken item of each kind
the layout must turn into a rejects row without stopping the rest of the file.
"""
from __future__ import annotations

import json
import math
import os
import re

import numpy as np
import pytest
from PIL import Image
from pycocotools import mask as mask_utils

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.imaging import decode_level
from soclake.ingestion import ingest

JSON_NAME = "instances.json"


# ----------------------------------------------------------------------------- helpers
def noise_photo(seed: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def save_png(path, rgb: np.ndarray) -> None:
    Image.fromarray(rgb, "RGB").save(path, "PNG")


def blob_mask(height: int, width: int, cx: float, cy: float, rx: float, ry: float,
              hole: bool = True) -> np.ndarray:
    """An ellipse (with a hole, so it is not convex) as a uint8 0/1 HxW mask."""
    yy, xx = np.mgrid[0:height, 0:width]
    m = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1
    if hole:
        m &= ((xx - cx) / (rx / 3)) ** 2 + ((yy - cy) / (ry / 3)) ** 2 > 1
    return m.astype(np.uint8)


def uncompressed_rle(mask: np.ndarray) -> dict:
    """COCO uncompressed RLE: run lengths over the column-major pixels, starting with zeros."""
    flat = mask.ravel(order="F").astype(np.uint8)
    counts, current, run = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(run)
            current, run = v, 0
        run += 1
    counts.append(run)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": [int(c) for c in counts]}


def compressed_rle(mask: np.ndarray) -> dict:
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": [int(s) for s in rle["size"]], "counts": rle["counts"].decode("ascii")}


def polygon_mask(polys: list[list[float]], height: int, width: int) -> np.ndarray:
    return mask_utils.decode(mask_utils.merge(mask_utils.frPyObjects(polys, height, width)))


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def bbox_of(mask: np.ndarray) -> list[float]:
    x0, y0, x1, y1 = tight_box(mask)
    return [float(x0), float(y0), float(x1 - x0), float(y1 - y0)]


def level0(lake: Lake, row: dict) -> np.ndarray:
    lv = row["levels"][0]
    return decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))


def segments(lake: Lake) -> dict[str, dict]:
    rows = lake.query("SELECT * FROM segments").to_pylist()
    by_uri = {r["source_uri"]: r for r in rows}
    assert len(by_uri) == len(rows), "one segment per source_uri"
    return by_uri


def rejects(lake: Lake) -> list[dict]:
    return lake.query("SELECT source_uri, reason, detail FROM rejects ORDER BY source_uri, reason").to_pylist()


def assert_segment_matches(lake: Lake, row: dict, photo: np.ndarray, mask: np.ndarray) -> None:
    """The segment is exactly the photo under the mask, cropped to the mask's tight box."""
    x0, y0, x1, y1 = tight_box(mask)
    assert (row["crop_x"], row["crop_y"], row["width"], row["height"]) == (x0, y0, x1 - x0, y1 - y0)
    assert (row["source_width"], row["source_height"]) == (photo.shape[1], photo.shape[0])
    assert row["alpha_area"] == int(mask.sum())
    px = level0(lake, row)
    assert px.shape == (y1 - y0, x1 - x0, 4)
    assert row["levels"][0]["width"] == x1 - x0 and row["levels"][0]["height"] == y1 - y0
    m = mask[y0:y1, x0:x1].astype(bool)
    np.testing.assert_array_equal(px[..., 3], m.astype(np.uint8) * 255)
    np.testing.assert_array_equal(px[..., :3][m], photo[y0:y1, x0:x1][m])
    assert not px[..., :3][~m].any(), "colour under alpha 0 is zeroed"


def write_coco(path, images: list[dict], categories: list[dict], annotations: list[dict]) -> None:
    with open(path, "w") as f:
        json.dump({"images": images, "categories": categories, "annotations": annotations}, f)


# ----------------------------------------------------------------------------- the rich dataset
W, H = 64, 48


@pytest.fixture(scope="module")
def rich(tmp_path_factory):
    """One COCO file with good polygon / RLE instances and one broken item of each kind."""
    root = tmp_path_factory.mktemp("coco")
    images_dir = root / "images"
    images_dir.mkdir()

    photo1 = noise_photo(1, W, H)
    save_png(images_dir / "photo1.png", photo1)
    photo2 = noise_photo(2, W, H)
    save_png(images_dir / "photo2.png", photo2)

    # polygon instance (two parts) on photo1
    polys = [[5.0, 4.0, 30.0, 6.0, 26.0, 25.0, 8.0, 20.0], [40.0, 30.0, 55.0, 31.0, 50.0, 44.0]]
    poly_mask = polygon_mask(polys, H, W)
    # uncompressed RLE instance on photo1
    unc_mask = blob_mask(H, W, cx=45, cy=14, rx=12, ry=9)
    unc_rle = uncompressed_rle(unc_mask)
    np.testing.assert_array_equal(mask_utils.decode(mask_utils.frPyObjects(unc_rle, H, W)), unc_mask)
    # compressed RLE instance on photo2
    cmp_mask = blob_mask(H, W, cx=20, cy=30, rx=15, ry=12)
    cmp_rle = compressed_rle(cmp_mask)

    # truncated image: a valid PNG cut in the middle of its pixel data
    save_png(images_dir / "truncated.png", noise_photo(3, W, H))
    data = (images_dir / "truncated.png").read_bytes()
    (images_dir / "truncated.png").write_bytes(data[: len(data) // 2])
    # image whose real size differs from the JSON
    save_png(images_dir / "wrongsize.png", noise_photo(4, W + 1, H))
    # a file outside the images folder that `../` would reach
    save_png(root / "escape.png", noise_photo(5, W, H))

    images = [
        {"id": 1, "file_name": "photo1.png", "width": W, "height": H},
        {"id": 2, "file_name": "photo2.png", "width": W, "height": H},
        {"id": 3, "file_name": "../escape.png", "width": W, "height": H},
        {"id": 4, "file_name": "truncated.png", "width": W, "height": H},
        {"id": 5, "file_name": "wrongsize.png", "width": W, "height": H},
    ]
    categories = [{"id": 1, "name": "Traffic_Light"}, {"id": 2, "name": "Person"},
                  {"id": 3, "name": "Fire_Hydrant"}]
    crowd_mask = blob_mask(H, W, cx=30, cy=24, rx=20, ry=15, hole=False)
    small = [10.0, 10.0, 20.0, 10.0, 20.0, 20.0, 10.0, 20.0]
    annotations = [
        {"id": 1, "image_id": 1, "category_id": 1, "segmentation": polys, "bbox": bbox_of(poly_mask),
         "area": float(poly_mask.sum()), "iscrowd": 0},
        {"id": 2, "image_id": 1, "category_id": 2, "segmentation": unc_rle, "bbox": bbox_of(unc_mask),
         "area": float(unc_mask.sum()), "iscrowd": 0},
        {"id": 3, "image_id": 2, "category_id": 3, "segmentation": cmp_rle, "bbox": bbox_of(cmp_mask),
         "area": float(cmp_mask.sum()), "iscrowd": 0},
        # crowd region: skipped, neither a segment nor a reject
        {"id": 4, "image_id": 2, "category_id": 2, "segmentation": uncompressed_rle(crowd_mask),
         "bbox": bbox_of(crowd_mask), "area": float(crowd_mask.sum()), "iscrowd": 1},
        # NaN bbox (json.dump writes a bare NaN, as Python tools do)
        {"id": 5, "image_id": 1, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, math.nan, 10.0],
         "iscrowd": 0},
        # negative bbox size
        {"id": 6, "image_id": 1, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, -3.0, 10.0],
         "iscrowd": 0},
        # duplicate of annotation id 1 (the first one wins)
        {"id": 1, "image_id": 2, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
        # dangling image_id / category_id
        {"id": 7, "image_id": 999, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
        {"id": 8, "image_id": 1, "category_id": 999, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
        # annotations on the images that cannot be read
        {"id": 9, "image_id": 3, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
        {"id": 10, "image_id": 4, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
        {"id": 11, "image_id": 5, "category_id": 1, "segmentation": [small], "bbox": [10.0, 10.0, 10.0, 10.0],
         "iscrowd": 0},
    ]
    json_path = root / JSON_NAME
    write_coco(json_path, images, categories, annotations)
    assert "NaN" in json_path.read_text()

    lake = Lake(str(root / "lake"), create=True)
    summary = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                     images=str(images_dir))
    return {
        "lake": lake, "summary": summary, "root": root, "json": json_path, "images_dir": images_dir,
        "photo1": photo1, "photo2": photo2,
        "poly_mask": poly_mask, "unc_mask": unc_mask, "cmp_mask": cmp_mask,
    }


def test_exactly_the_good_instances_become_segments(rich):
    segs = segments(rich["lake"])
    assert set(segs) == {"photo1.png#ann=1", "photo1.png#ann=2", "photo2.png#ann=3"}
    assert rich["summary"].accepted == 3
    for row in segs.values():
        assert row["source"] == "c" and row["layout"] == "coco"
        assert row["is_instance"] is True


def test_polygon_instance_pixels(rich):
    row = segments(rich["lake"])["photo1.png#ann=1"]
    assert_segment_matches(rich["lake"], row, rich["photo1"], rich["poly_mask"])
    assert row["alpha_components"] == 2  # the two polygons of the instance stay one segment


def test_uncompressed_rle_instance_pixels(rich):
    row = segments(rich["lake"])["photo1.png#ann=2"]
    assert_segment_matches(rich["lake"], row, rich["photo1"], rich["unc_mask"])


def test_compressed_rle_instance_pixels(rich):
    row = segments(rich["lake"])["photo2.png#ann=3"]
    assert_segment_matches(rich["lake"], row, rich["photo2"], rich["cmp_mask"])


def test_categories_come_from_the_file_canonicalised(rich):
    lake = rich["lake"]
    segs = segments(lake)
    assert segs["photo1.png#ann=1"]["category"] == "traffic light"
    assert segs["photo1.png#ann=2"]["category"] == "person"
    assert segs["photo2.png#ann=3"]["category"] == "fire hydrant"
    cats = {r["name"]: r for r in lake.query("SELECT * FROM categories").to_pylist()}
    assert set(cats) == {"traffic light", "person", "fire hydrant"}
    for row in segs.values():
        assert row["category_id"] == cats[row["category"]]["category_id"]
    # the COCO vocabulary links the canonical names
    assert cats["person"]["coco_id"] == 1
    assert cats["traffic light"]["coco_id"] == 10
    assert cats["fire hydrant"]["coco_id"] == 11


def test_category_synonyms_keep_the_spelling_of_the_file(rich):
    cats = {r["name"]: r for r in rich["lake"].query("SELECT * FROM categories").to_pylist()}
    assert cats["traffic light"]["synonyms"] == ["Traffic_Light"]
    assert cats["person"]["synonyms"] == ["Person"]


def test_crowd_annotations_are_skipped_silently(rich):
    lake = rich["lake"]
    assert not any("ann=4" in uri for uri in segments(lake))
    assert not any(r["source_uri"].endswith("#ann=4") for r in rejects(lake))


def test_broken_items_become_rejects(rich):
    got = {(r["source_uri"], r["reason"]) for r in rejects(rich["lake"])}
    expected = {
        (f"{JSON_NAME}#ann=5", "bad_annotation"),        # NaN bbox
        (f"{JSON_NAME}#ann=6", "bad_annotation"),        # negative bbox
        (f"{JSON_NAME}#ann=1", "duplicate_id"),          # second annotation with id 1
        (f"{JSON_NAME}#ann=7", "dangling_reference"),    # image_id 999
        (f"{JSON_NAME}#ann=8", "dangling_reference"),    # category_id 999
        (f"{JSON_NAME}#image=3", "unsafe_path"),         # ../escape.png
        (f"{JSON_NAME}#ann=9", "dangling_reference"),    # on the refused image
        ("truncated.png", "corrupt"),
        ("wrongsize.png", "size_mismatch"),
    }
    assert got == expected
    assert rich["summary"].rejected == len(expected)
    assert sum(rich["summary"].reasons.values()) == len(expected)
    rows = rich["lake"].query("SELECT * FROM rejects").to_pylist()
    assert all(r["source"] == "c" and r["layout"] == "coco" and r["detail"] for r in rows)


def test_reject_details_explain(rich):
    by_key = {(r["source_uri"], r["reason"]): r["detail"] for r in rejects(rich["lake"])}
    assert "nan" in by_key[(f"{JSON_NAME}#ann=5", "bad_annotation")].lower()
    assert "negative" in by_key[(f"{JSON_NAME}#ann=6", "bad_annotation")]
    assert "65x48" in by_key[("wrongsize.png", "size_mismatch")]


def test_nothing_outside_the_images_folder_is_read(rich):
    segs = segments(rich["lake"])
    assert not any("escape" in uri for uri in segs)
    assert not any(row["source_uri"].startswith("..") for row in segs.values())


def test_bad_segmentations_reject_only_their_instance(tmp_path):
    """Broken RLEs are rejected one by one; the image's other instances (before and after) ingest."""
    h, w = 30, 40
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    photo = noise_photo(21, w, h)
    save_png(images_dir / "p.png", photo)
    first_mask = blob_mask(h, w, cx=10, cy=10, rx=7, ry=6)
    last_mask = blob_mask(h, w, cx=28, cy=18, rx=9, ry=8)
    good_unc = uncompressed_rle(first_mask)
    short_counts = dict(good_unc, counts=good_unc["counts"][:-1])         # runs stop short of h*w
    cut_string = dict(compressed_rle(last_mask))
    cut_string["counts"] = cut_string["counts"][: len(cut_string["counts"]) // 2]
    segs = {
        1: good_unc,
        2: compressed_rle(np.pad(first_mask, ((0, 1), (0, 0)))),           # RLE of another size
        3: short_counts,
        4: dict(good_unc, counts=[10, -5] + good_unc["counts"]),          # negative run
        5: cut_string,                                                     # truncated counts string
        6: {"size": ["a", 5], "counts": [1, 2]},                           # nonsense size
        7: {"size": [h, w], "counts": "@@~~\u00e9"},                       # garbage counts string
        8: compressed_rle(last_mask),
    }
    annotations = [{"id": i, "image_id": 1, "category_id": 1, "segmentation": s, "bbox": [0.0, 0.0, 1.0, 1.0],
                    "iscrowd": 0} for i, s in segs.items()]
    annotations.append({"id": 1e20, "image_id": 1, "category_id": 1, "segmentation": good_unc,
                        "bbox": [0.0, 0.0, 1.0, 1.0], "iscrowd": 0})  # id beyond 64 bits
    json_path = tmp_path / JSON_NAME
    write_coco(json_path, [{"id": 1, "file_name": "p.png", "width": w, "height": h}],
               [{"id": 1, "name": "cup"}], annotations)
    lake = Lake(str(tmp_path / "lake"), create=True)
    summary = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                     images=str(images_dir))
    got = segments(lake)
    assert set(got) == {"p.png#ann=1", "p.png#ann=8"}
    assert_segment_matches(lake, got["p.png#ann=1"], photo, first_mask)
    assert_segment_matches(lake, got["p.png#ann=8"], photo, last_mask)
    assert {(r["source_uri"], r["reason"]) for r in rejects(lake)} == {
        ("p.png#ann=2", "size_mismatch"),
        ("p.png#ann=3", "bad_annotation"),
        ("p.png#ann=4", "bad_annotation"),
        ("p.png#ann=5", "bad_annotation"),
        ("p.png#ann=6", "bad_annotation"),
        ("p.png#ann=7", "bad_annotation"),
        (f"{JSON_NAME}#ann={1e20}", "bad_annotation"),
    }
    assert (summary.accepted, summary.rejected) == (2, 7)


# ----------------------------------------------------------------------------- re-runs
def small_dataset(root, n_images: int = 2):
    images_dir = root / "images"
    images_dir.mkdir()
    images, annotations = [], []
    for i in range(1, n_images + 1):
        save_png(images_dir / f"p{i}.png", noise_photo(100 + i, 40, 32))
        images.append({"id": i, "file_name": f"p{i}.png", "width": 40, "height": 32})
        m = blob_mask(32, 40, cx=12 + 3 * i, cy=14, rx=8, ry=6)
        annotations.append({"id": i, "image_id": i, "category_id": 1, "segmentation": compressed_rle(m),
                            "bbox": bbox_of(m), "iscrowd": 0})
    annotations.append({"id": 99, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 5, 1, 5, 5]],
                        "bbox": [1.0, 1.0, -1.0, 4.0], "iscrowd": 0})  # rejected
    json_path = root / JSON_NAME
    write_coco(json_path, images, [{"id": 1, "name": "dog"}], annotations)
    return json_path, images_dir


def table_count(lake: Lake, table: str) -> int:
    lake.refresh()
    return lake.query(f"SELECT count(*) AS n FROM {table}").to_pylist()[0]["n"]


def test_rerun_adds_nothing(tmp_path):
    json_path, images_dir = small_dataset(tmp_path)
    lake = Lake(str(tmp_path / "lake"), create=True)
    first = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                   images=str(images_dir))
    assert (first.accepted, first.rejected) == (2, 1)
    counts = {t: table_count(lake, t) for t in ("segments", "rejects", "categories")}
    assert counts == {"segments": 2, "rejects": 1, "categories": 1}

    again = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                   images=str(images_dir))
    assert again.accepted == 0
    assert again.rejected == 0
    assert again.skipped > 0
    assert {t: table_count(lake, t) for t in counts} == counts


def test_rerun_does_not_repeat_instance_rejects_of_an_image(tmp_path):
    """An image whose only instance is rejected while loading (empty mask) is not re-rejected."""
    images_dir = tmp_path / "images"
    images_dir.mkdir()
    save_png(images_dir / "blank.png", noise_photo(7, 20, 16))
    empty = compressed_rle(np.zeros((16, 20), np.uint8))
    json_path = tmp_path / JSON_NAME
    write_coco(json_path, [{"id": 1, "file_name": "blank.png", "width": 20, "height": 16}],
               [{"id": 1, "name": "cat"}],
               [{"id": 1, "image_id": 1, "category_id": 1, "segmentation": empty, "bbox": [0, 0, 1, 1],
                 "iscrowd": 0}])
    lake = Lake(str(tmp_path / "lake"), create=True)
    first = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                   images=str(images_dir))
    assert (first.accepted, first.rejected) == (0, 1)
    assert [(r["source_uri"], r["reason"]) for r in rejects(lake)] == [("blank.png#ann=1", "empty_mask")]
    again = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
                   images=str(images_dir))
    assert (again.accepted, again.rejected) == (0, 0)
    assert table_count(lake, "rejects") == 1


def test_other_source_name_is_a_separate_source(tmp_path):
    json_path, images_dir = small_dataset(tmp_path, n_images=1)
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "coco", str(json_path), source_name="a", workers=1, progress=False, images=str(images_dir))
    other = ingest(lake, "coco", str(json_path), source_name="b", workers=1, progress=False,
                   images=str(images_dir))
    # same pixels under another source: not skipped, but recognised as duplicates
    assert other.skipped == 0 and other.accepted == 0
    assert other.reasons["duplicate"] == 1


# ----------------------------------------------------------------------------- whole-file errors
def test_malformed_json_is_a_clear_error(tmp_path):
    json_path, images_dir = small_dataset(tmp_path)
    text = json_path.read_text()
    json_path.write_text(text[: len(text) - 40])  # cut inside the annotations list
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match=re.escape(str(json_path))):
        ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False, images=str(images_dir))
    assert table_count(lake, "segments") == 0


def test_garbage_json_is_a_clear_error(tmp_path):
    (tmp_path / "images").mkdir()
    json_path = tmp_path / "broken.json"
    json_path.write_text('{"images": [{"id": 1, "file_name": "a.png"} "oops"]}')
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match="broken.json"):
        ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False)


def test_missing_images_folder_is_an_error(tmp_path):
    json_path, _ = small_dataset(tmp_path)
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match="nowhere"):
        ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False,
               images=str(tmp_path / "nowhere"))
    assert table_count(lake, "segments") == 0 and table_count(lake, "rejects") == 0


def test_default_images_folder_is_next_to_the_json(tmp_path):
    json_path, _ = small_dataset(tmp_path)
    lake = Lake(str(tmp_path / "lake"), create=True)
    summary = ingest(lake, "coco", str(json_path), source_name="c", workers=1, progress=False)
    assert summary.accepted == 2

    lone = tmp_path / "elsewhere"
    lone.mkdir()
    os.replace(json_path, lone / JSON_NAME)
    with pytest.raises(SoclakeError, match="images"):
        ingest(Lake(str(tmp_path / "lake2"), create=True), "coco", str(lone / JSON_NAME), source_name="c",
               workers=1, progress=False)


def test_source_must_be_a_json_file(tmp_path):
    (tmp_path / "images").mkdir()
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError):
        ingest(lake, "coco", str(tmp_path / "images"), source_name="c", workers=1, progress=False)
    with pytest.raises(SoclakeError):
        ingest(lake, "coco", str(tmp_path / "absent.json"), source_name="c", workers=1, progress=False)


# ----------------------------------------------------------------------------- LVIS v1
def lvis_release(root) -> dict:
    """An LVIS v1 val file in the published shape: images carry coco_url (no file_name) and
    per-image neg / not-exhaustive category ids; categories carry synonyms, frequency (r/c/f),
    synset, def and counts. The photos sit in COCO's own train2017/ and val2017/ folders."""
    coco = root / "coco"
    images, anns = [], []
    for image_id, split in ((139, "val2017"), (9, "train2017")):
        (coco / split).mkdir(parents=True, exist_ok=True)
        # lossless bytes under COCO's .jpg name (the format is read from the header), so pixels compare exactly
        save_png(coco / split / f"{image_id:012d}.jpg", noise_photo(image_id, 64, 48))
        images.append({"id": image_id, "width": 64, "height": 48, "license": 1, "flickr_url": "http://farm.example/x.jpg",
                       "coco_url": f"http://images.cocodataset.org/{split}/{image_id:012d}.jpg",
                       "date_captured": "2013-11-14 11:18:45", "neg_category_ids": [3, 1203],
                       "not_exhaustive_category_ids": [2]})
    for i, (image_id, cat) in enumerate(((139, 1), (139, 2), (9, 3))):
        x = 8 + 20 * (i % 2)
        anns.append({"id": 100 + i, "image_id": image_id, "category_id": cat, "bbox": [x, 8, 16, 20], "area": 320.0,
                     "segmentation": [[x, 8, x + 16, 8, x + 16, 28, x, 28]]})
    cats = [{"id": 1, "name": "aerosol_can", "synonyms": ["aerosol_can", "spray_can"], "synset": "aerosol.n.02",
             "def": "a dispenser that holds a substance under pressure", "frequency": "c", "image_count": 64,
             "instance_count": 109},
            {"id": 2, "name": "air_conditioner", "synonyms": ["air_conditioner"], "synset": "air_conditioner.n.01",
             "def": "a machine that keeps air cool and dry", "frequency": "f", "image_count": 364, "instance_count": 1467},
            {"id": 3, "name": "bolo_tie", "synonyms": ["bolo_tie", "bolo", "bola_tie", "bola"], "synset": "bolo_tie.n.01",
             "def": "a cord fastened around the neck", "frequency": "r", "image_count": 1, "instance_count": 1}]
    doc = {"info": {"description": "LVIS v1"}, "licenses": [], "images": images, "annotations": anns, "categories": cats}
    path = root / "lvis_v1_val.json"
    path.write_text(json.dumps(doc))
    return {"json": path, "images": coco}


def test_lvis_v1_with_coco_url_and_category_fields(tmp_path):
    """Today a real LVIS-shaped file gives 0 accepted (no file_name): now the image is found
    from coco_url under --images (COCO's split folders, or the split folder itself)."""
    src = lvis_release(tmp_path)
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "coco", str(src["json"]), images=str(src["images"]), workers=1, progress=False)
    assert (s.accepted, s.rejected) == (3, 0)
    rows = {r["source_uri"]: r for r in lake.query("SELECT * FROM segments").to_pylist()}
    assert sorted(rows) == ["train2017/000000000009.jpg#ann=102", "val2017/000000000139.jpg#ann=100",
                            "val2017/000000000139.jpg#ann=101"]
    r = rows["val2017/000000000139.jpg#ann=100"]
    assert (r["neg_category_ids"], r["not_exhaustive_category_ids"]) == ([3, 1203], [2])
    photo = noise_photo(139, 64, 48)
    lv = r["levels"][0]
    got = decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))
    assert np.array_equal(got[..., :3], photo[8:28, 8:24])  # the polygon's pixels, decoded from the pack
    cats = {c["name"]: c for c in lake.query("SELECT * FROM categories").to_pylist()}
    assert set(cats) == {"aerosol can", "air conditioner", "bolo tie"}
    assert cats["bolo tie"]["synonyms"] == ["bolo_tie", "bolo", "bola_tie", "bola"]
    assert (cats["bolo tie"]["frequency"], cats["bolo tie"]["synset"], cats["bolo tie"]["lvis_id"]) == \
        ("r", "bolo_tie.n.01", 3)
    assert (cats["aerosol can"]["frequency"], cats["aerosol can"]["lvis_id"]) == ("c", 1)
    # the split folder itself as --images, and a rerun that finds everything in the lake
    other = Lake(str(tmp_path / "other"), create=True)
    s = ingest(other, "coco", str(src["json"]), images=str(src["images"] / "val2017"), workers=1, progress=False)
    assert (s.accepted, s.reasons.get("unreadable")) == (2, 1)
    again = ingest(lake, "coco", str(src["json"]), images=str(src["images"]), workers=1, progress=False)
    assert (again.accepted, again.skipped) == (0, 2)


def test_coco_categories_get_their_lvis_id_by_name(tmp_path):
    """A plain COCO file: lvis_id comes from the shipped LVIS vocabulary when the name matches."""
    (tmp_path / "images").mkdir()
    save_png(tmp_path / "images" / "a.png", noise_photo(1, 40, 40))
    doc = {"images": [{"id": 1, "file_name": "a.png", "width": 40, "height": 40}],
           "categories": [{"id": 1, "name": "person"}, {"id": 2, "name": "no such thing"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": c, "bbox": [4 + 16 * (c - 1), 4, 12, 12],
                            "segmentation": [[4 + 16 * (c - 1), 4, 16 + 16 * (c - 1), 4, 16 + 16 * (c - 1), 16,
                                              4 + 16 * (c - 1), 16]]} for c in (1, 2)]}
    for i, a in enumerate(doc["annotations"]):
        a["id"] = i + 1
    (tmp_path / "inst.json").write_text(json.dumps(doc))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "coco", str(tmp_path / "inst.json"), workers=1, progress=False)
    got = {c["name"]: (c["coco_id"], c["lvis_id"], c["frequency"]) for c in lake.query("SELECT * FROM categories").to_pylist()}
    from soclake.vocab import lvis_names
    assert got == {"person": (1, lvis_names().index("person") + 1, None), "no such thing": (None, None, None)}
