"""What users hold, in every file layout: lossless JPEG XL images and masks (Blender salient-object
renders), phone JPEGs with an EXIF orientation (applied before any crop, pairing, hashing or size
check, and recorded), files no decoder accepts (reject rows, never silently skipped), and the
warning with a layout hint when nothing at all was accepted.
"""
from __future__ import annotations

import io
import json

import imagecodecs
import numpy as np
from conftest import blob_rgba, save_png
from PIL import Image

from soclake import Lake, imaging
from soclake.cli import main
from soclake.ingestion import ingest

ORIENT_6 = 6  # "rotate 90 degrees clockwise to display": the sensor stored the picture sideways


def jxl(arr: np.ndarray) -> bytes:
    return imagecodecs.jpegxl_encode(arr, lossless=True)


def sideways_jpeg(upright: np.ndarray, quality: int = 95) -> bytes:
    """A JPEG whose stored pixels are `upright` turned sideways, with EXIF orientation 6, so that
    a viewer applying the orientation shows `upright`."""
    stored = Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = ORIENT_6
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=quality, exif=exif)
    data = buf.getvalue()
    # the reference: Pillow's own transpose of the file shows the upright picture
    shown = np.asarray(__import__("PIL.ImageOps", fromlist=["x"]).exif_transpose(Image.open(io.BytesIO(data))))
    assert shown.shape == upright.shape
    return data


def smooth_photo(h: int, w: int, seed: int = 0) -> np.ndarray:
    """A photo-like gradient (JPEG keeps it within a few levels), different in each corner."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    r = np.random.default_rng(seed).uniform(0, 40, 3)
    return np.dstack([xx / w * 200 + r[0], yy / h * 200 + r[1], (xx + yy) / (w + h) * 200 + r[2]]).astype(np.uint8)


def level0(lake: Lake, row: dict) -> np.ndarray:
    lv = row["levels"][0]
    return imaging.decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))


def rows(lake: Lake, table: str = "segments") -> dict[str, dict]:
    lake.refresh()
    return {r["source_uri"]: r for r in lake.query(f"SELECT * FROM {table}").to_pylist()}


def rejects(lake: Lake) -> dict[str, str]:
    lake.refresh()
    return {r["source_uri"]: r["reason"] for r in lake.query("SELECT * FROM rejects").to_pylist()}


# ----------------------------------------------------------------------------- JPEG XL
def test_sod_jxl_pairs_and_png_with_jxl_mask(tmp_path):
    """Today .jxl files are skipped without a row, and a PNG with a .jxl mask is 'missing_mask'."""
    src = tmp_path / "renders"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    rng = np.random.default_rng(0)
    photos = [rng.integers(0, 256, (40, 50, 3), dtype=np.uint8) for _ in range(2)]
    mask = np.zeros((40, 50), np.uint8)
    mask[8:30, 10:40] = 255
    mask[7, 10:40] = 90
    (src / "images" / "0001.jxl").write_bytes(jxl(photos[0]))
    (src / "masks" / "0001.jxl").write_bytes(jxl(mask))
    Image.fromarray(photos[1]).save(src / "images" / "0002.png")
    (src / "masks" / "0002.jxl").write_bytes(jxl(mask))
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "sod", str(src), category="thing", workers=1, progress=False)
    assert (s.accepted, s.rejected) == (2, 0)
    got = rows(lake)
    for i, name in enumerate(("images/0001.jxl", "images/0002.png")):
        px = level0(lake, got[name])
        assert np.array_equal(px[..., 3], mask[7:30, 10:40]) and np.array_equal(px[..., :3], photos[i][7:30, 10:40])


def test_folders_and_backgrounds_read_jxl(tmp_path):
    cut = blob_rgba(5, 48)
    (tmp_path / "src" / "cat").mkdir(parents=True)
    (tmp_path / "src" / "cat" / "a.jxl").write_bytes(jxl(cut))
    bg = np.random.default_rng(2).integers(0, 256, (30, 60, 3), dtype=np.uint8)
    (tmp_path / "bg").mkdir()
    (tmp_path / "bg" / "room.jxl").write_bytes(jxl(bg))
    lake = Lake(str(tmp_path / "lake"), create=True)
    assert ingest(lake, "folders", str(tmp_path / "src"), workers=1, progress=False).accepted == 1
    assert np.array_equal(level0(lake, rows(lake)["cat/a.jxl"]), imaging.canonical_crop(cut)[0])
    assert ingest(lake, "backgrounds", str(tmp_path / "bg"), workers=1, progress=False).accepted == 1
    b = rows(lake, "backgrounds")["room.jxl"]
    assert b["format"] == "png" and (b["width"], b["height"]) == (60, 30)
    assert np.array_equal(imaging.decode_rgb(lake.read_range(b["pack"], b["offset"], b["length"])), bg)


# ----------------------------------------------------------------------------- EXIF orientation
def test_sod_square_pair_is_turned_before_the_mask_is_applied(tmp_path):
    """A square phone photo stored sideways: today its mask is paired with the unturned pixels
    (accepted, silently wrong); now the photo is turned first, so the object's pixels match."""
    upright = smooth_photo(64, 64)
    mask = np.zeros((64, 64), np.uint8)
    mask[4:24, 30:60] = 255  # top-right corner of the upright photo
    src = tmp_path / "phone"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    (src / "images" / "IMG_0001.jpg").write_bytes(sideways_jpeg(upright))
    Image.fromarray(mask).save(src / "masks" / "IMG_0001.png")
    lake = Lake(str(tmp_path / "lake"), create=True)
    assert ingest(lake, "sod", str(src), category="box", workers=1, progress=False).accepted == 1
    r = rows(lake)["images/IMG_0001.jpg"]
    assert (r["crop_x"], r["crop_y"], r["width"], r["height"]) == (30, 4, 30, 20)
    px = level0(lake, r).astype(int)
    assert np.abs(px[..., :3] - upright[4:24, 30:60]).mean() < 4  # JPEG loss only
    assert r.get("exif_orientation") == ORIENT_6


def test_sod_non_square_pair_is_no_longer_a_size_mismatch(tmp_path):
    upright = smooth_photo(40, 64)
    mask = np.zeros((40, 64), np.uint8)
    mask[10:30, 5:20] = 255
    src = tmp_path / "phone"
    (src / "images").mkdir(parents=True)
    (src / "masks").mkdir()
    (src / "images" / "p.jpg").write_bytes(sideways_jpeg(upright))
    Image.fromarray(mask).save(src / "masks" / "p.png")
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "sod", str(src), category="box", workers=1, progress=False)
    assert (s.accepted, s.rejected) == (1, 0)
    assert (rows(lake)["images/p.jpg"]["source_width"], rows(lake)["images/p.jpg"]["source_height"]) == (64, 40)


def test_backgrounds_are_stored_upright(tmp_path):
    """Today a sideways phone background is stored as its raw bytes and read sideways."""
    upright = smooth_photo(40, 64, seed=3)
    (tmp_path / "bg").mkdir()
    (tmp_path / "bg" / "phone.jpg").write_bytes(sideways_jpeg(upright))
    Image.fromarray(upright).save(tmp_path / "bg" / "plain.jpg", quality=95)
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "backgrounds", str(tmp_path / "bg"), workers=1, progress=False)
    got = rows(lake, "backgrounds")
    b = got["phone.jpg"]
    assert (b["width"], b["height"]) == (64, 40)
    stored = np.asarray(Image.open(io.BytesIO(lake.read_range(b["pack"], b["offset"], b["length"]))))
    assert stored.shape == (40, 64, 3) and np.abs(stored.astype(int) - upright).mean() < 4  # what any reader decodes
    assert (b.get("exif_orientation"), b["format"]) == (ORIENT_6, "png")
    assert (got["plain.jpg"]["exif_orientation"], got["plain.jpg"]["format"]) == (1, "jpeg")  # kept as it was


def test_folders_cutout_with_exif_and_coco_photo_with_exif(tmp_path):
    """An RGBA PNG with an eXIf orientation (folders) and a COCO photo whose annotation is
    drawn on the upright picture: both cropped from the turned pixels."""
    cut = blob_rgba(9, 40)
    exif = Image.Exif()
    exif[0x0112] = 8  # rotate 270 to display
    stored = Image.fromarray(cut).transpose(Image.Transpose.ROTATE_270)
    save_dir = tmp_path / "src" / "cat"
    save_dir.mkdir(parents=True)
    stored.save(save_dir / "turned.png", exif=exif)
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(tmp_path / "src"), workers=1, progress=False)
    r = rows(lake)["cat/turned.png"]
    assert np.array_equal(level0(lake, r), imaging.canonical_crop(cut)[0]) and r.get("exif_orientation") == 8

    upright = smooth_photo(48, 64, seed=4)
    (tmp_path / "coco" / "images").mkdir(parents=True)
    (tmp_path / "coco" / "images" / "p.jpg").write_bytes(sideways_jpeg(upright))
    doc = {"images": [{"id": 1, "file_name": "p.jpg", "width": 64, "height": 48}], "categories": [{"id": 1, "name": "thing"}],
           "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [40, 4, 20, 16],
                            "segmentation": [[40, 4, 60, 4, 60, 20, 40, 20]]}]}
    (tmp_path / "coco" / "inst.json").write_text(json.dumps(doc))
    s = ingest(lake, "coco", str(tmp_path / "coco" / "inst.json"), workers=1, progress=False)
    assert (s.accepted, s.rejected) == (1, 0)  # today: size_mismatch (48x64 stored against 64x48 in the JSON)
    r = rows(lake)["p.jpg#ann=1"]
    assert r["exif_orientation"] == ORIENT_6
    assert np.abs(level0(lake, r)[..., :3].astype(int) - upright[4:20, 40:60]).mean() < 4


# ----------------------------------------------------------------------------- nothing silently skipped
def test_files_no_decoder_accepts_are_reject_rows(tmp_path):
    """Today .jxl, .heic and .txt files inside a layout's folders are skipped without a row."""
    folder = tmp_path / "src" / "cat" / "sub"
    save_png(folder / "ok.png", blob_rgba(1, 32))
    (folder / "photo.heic").write_bytes(b"\x00\x00\x00\x18ftypheic" + b"\x00" * 20)
    (folder / "notes.txt").write_text("hello")
    (folder / "fake.jpg").write_bytes(b"%PDF-1.4 not an image")
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "soc", str(tmp_path / "src"), workers=1, progress=False)
    assert s.accepted == 1
    assert rejects(lake) == {"cat/sub/photo.heic": "unsupported_format", "cat/sub/notes.txt": "not_an_image",
                             "cat/sub/fake.jpg": "unsupported_format"}
    detail = lake.query("SELECT detail FROM rejects WHERE source_uri = 'cat/sub/fake.jpg'").to_pylist()[0]["detail"]
    assert "PDF" in detail


def test_nothing_accepted_warns_with_the_layout_it_looks_like(tmp_path, capsys):
    """A folders tree ingested as soc: today '0 accepted, 2 rejected (wrong_layout)' and exit 0."""
    for i in range(2):
        save_png(tmp_path / "cutouts" / "cat" / f"{i}.png", blob_rgba(i, 32))
    lake = str(tmp_path / "lake")
    assert main(["ingest", "soc", str(tmp_path / "cutouts"), "--lake", lake, "--workers", "1", "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "nothing was accepted" in err and f"soclake ingest folders {tmp_path / 'cutouts'}" in err
    assert main(["ingest", "soc", str(tmp_path / "cutouts"), "--lake", lake, "--workers", "1", "--no-progress",
                 "--strict"]) == 1
    assert "nothing was accepted" in capsys.readouterr().err
    assert main(["ingest", "folders", str(tmp_path / "cutouts"), "--lake", lake, "--workers", "1", "--no-progress",
                 "--strict"]) == 0
    assert main(["ingest", "folders", str(tmp_path / "cutouts"), "--lake", lake, "--workers", "1", "--no-progress",
                 "--strict"]) == 0  # a rerun that finds everything in the lake is not "nothing accepted"
    assert "warning" not in capsys.readouterr().err
