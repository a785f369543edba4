"""Ingest of the `sod` layout: SOURCE/images/NAME.{png,jpg} + SOURCE/masks/NAME.png with soft
0-255 masks. The mask becomes the segment's alpha exactly (soft edges kept), cropped tight.
"""
from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.imaging import MASK_THRESHOLD, decode_level
from soclake.ingestion import ingest


# ----------------------------------------------------------------------------- helpers
def noise_photo(seed: int, width: int, height: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def soft_mask(height: int, width: int, cx: float, cy: float, r: float, feather: float = 6.0) -> np.ndarray:
    """A disc with a linear soft edge: 255 inside, 0 outside, every value between on the rim."""
    yy, xx = np.mgrid[0:height, 0:width]
    d = np.hypot(xx - cx, yy - cy)
    return np.clip((r - d) / feather * 255, 0, 255).astype(np.uint8)


def tight_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(mask)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def level0(lake: Lake, row: dict) -> np.ndarray:
    lv = row["levels"][0]
    return decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))


def segments(lake: Lake) -> dict[str, dict]:
    lake.refresh()
    rows = lake.query("SELECT * FROM segments").to_pylist()
    by_uri = {r["source_uri"]: r for r in rows}
    assert len(by_uri) == len(rows)
    return by_uri


def rejects(lake: Lake) -> set[tuple[str, str]]:
    lake.refresh()
    return {(r["source_uri"], r["reason"])
            for r in lake.query("SELECT source_uri, reason FROM rejects").to_pylist()}


def assert_segment_matches(lake: Lake, row: dict, photo: np.ndarray, alpha: np.ndarray) -> None:
    """Level 0 is the photo with `alpha` as its alpha channel, exactly, over alpha's tight box."""
    x0, y0, x1, y1 = tight_box(alpha)
    assert (row["crop_x"], row["crop_y"], row["width"], row["height"]) == (x0, y0, x1 - x0, y1 - y0)
    assert (row["source_width"], row["source_height"]) == (photo.shape[1], photo.shape[0])
    assert row["alpha_area"] == int((alpha >= MASK_THRESHOLD).sum())
    px = level0(lake, row)
    assert px.shape == (y1 - y0, x1 - x0, 4)
    a = alpha[y0:y1, x0:x1]
    np.testing.assert_array_equal(px[..., 3], a)
    on = a > 0
    np.testing.assert_array_equal(px[..., :3][on], photo[y0:y1, x0:x1][on])
    assert not px[..., :3][~on].any(), "colour under alpha 0 is zeroed"


def jpeg_bytes(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb, "RGB").save(buf, "JPEG", quality=90)
    return buf.getvalue()


# ----------------------------------------------------------------------------- the dataset
W, H = 48, 40


@pytest.fixture(scope="module")
def sod(tmp_path_factory):
    root = tmp_path_factory.mktemp("sod") / "Red_Apple"
    images, masks = root / "images", root / "masks"
    images.mkdir(parents=True)
    masks.mkdir()

    # a: PNG image + soft 8-bit mask
    photo_a = noise_photo(1, W, H)
    mask_a = soft_mask(H, W, cx=20, cy=18, r=12)
    assert len(np.unique(mask_a)) > 10  # genuinely soft
    Image.fromarray(photo_a).save(images / "a.png")
    Image.fromarray(mask_a, "L").save(masks / "a.png")

    # b: JPEG image + soft mask (compare with the JPEG as Pillow decodes it)
    data = jpeg_bytes(noise_photo(2, W, H))
    (images / "b.jpg").write_bytes(data)
    photo_b = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
    mask_b = soft_mask(H, W, cx=30, cy=22, r=10, feather=3)
    Image.fromarray(mask_b, "L").save(masks / "b.png")

    # c: mask of another size than its image
    Image.fromarray(noise_photo(3, W, H)).save(images / "c.png")
    Image.fromarray(soft_mask(H, W + 2, cx=20, cy=20, r=10), "L").save(masks / "c.png")

    # d: image without mask; e: mask without image
    Image.fromarray(noise_photo(4, W, H)).save(images / "d.png")
    Image.fromarray(soft_mask(H, W, cx=20, cy=20, r=10), "L").save(masks / "e.png")

    # f: 16-bit mask (values v * 257, so 8-bit v whichever way it is scaled)
    photo_f = noise_photo(6, W, H)
    mask_f8 = soft_mask(H, W, cx=24, cy=20, r=14, feather=10)
    mask_f16 = mask_f8.astype(np.uint16) * 257
    Image.fromarray(photo_f).save(images / "f.png")
    assert cv2.imwrite(str(masks / "f.png"), mask_f16)
    with Image.open(masks / "f.png") as im:
        assert np.asarray(im).max() > 255, f"mask is not 16-bit ({im.mode})"

    # g: in a subfolder
    photo_g = noise_photo(7, W, H)
    mask_g = soft_mask(H, W, cx=10, cy=30, r=8)
    (images / "sub").mkdir()
    (masks / "sub").mkdir()
    Image.fromarray(photo_g).save(images / "sub" / "g.png")
    Image.fromarray(mask_g, "L").save(masks / "sub" / "g.png")

    lake = Lake(str(tmp_path_factory.mktemp("lake")), create=True)
    summary = ingest(lake, "sod", str(root), workers=1, progress=False)
    return {"lake": lake, "summary": summary, "root": root,
            "a": (photo_a, mask_a), "b": (photo_b, mask_b), "f": (photo_f, mask_f8), "g": (photo_g, mask_g)}


def test_pairs_become_segments(sod):
    segs = segments(sod["lake"])
    assert set(segs) == {"images/a.png", "images/b.jpg", "images/f.png", "images/sub/g.png"}
    assert sod["summary"].accepted == 4
    assert all(r["layout"] == "sod" for r in segs.values())


def test_soft_mask_is_kept_exactly_as_alpha(sod):
    row = segments(sod["lake"])["images/a.png"]
    assert_segment_matches(sod["lake"], row, *sod["a"])
    assert row["soft_edge_fraction"] > 0


def test_jpeg_image(sod):
    row = segments(sod["lake"])["images/b.jpg"]
    assert_segment_matches(sod["lake"], row, *sod["b"])


def test_sixteen_bit_mask_is_scaled_to_eight_bits(sod):
    row = segments(sod["lake"])["images/f.png"]
    assert_segment_matches(sod["lake"], row, *sod["f"])


def test_nested_folders_pair_by_relative_path(sod):
    row = segments(sod["lake"])["images/sub/g.png"]
    assert_segment_matches(sod["lake"], row, *sod["g"])


def test_category_defaults_to_the_folder_name(sod):
    lake = sod["lake"]
    assert {r["category"] for r in segments(lake).values()} == {"red apple"}
    cats = lake.query("SELECT name, synonyms FROM categories").to_pylist()
    assert cats == [{"name": "red apple", "synonyms": ["Red_Apple"]}]
    assert sod["summary"].source == "Red_Apple"


def test_unpaired_and_mismatched_files_are_rejected(sod):
    assert rejects(sod["lake"]) == {
        ("images/c.png", "size_mismatch"),
        ("images/d.png", "missing_mask"),
        ("masks/e.png", "missing_image"),
    }
    assert sod["summary"].rejected == 3


def test_category_option_and_rerun(tmp_path):
    root = tmp_path / "renders"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    photo = noise_photo(11, 32, 24)
    mask = soft_mask(24, 32, cx=16, cy=12, r=9)
    Image.fromarray(photo).save(root / "images" / "x.png")
    Image.fromarray(mask, "L").save(root / "masks" / "x.png")
    Image.fromarray(noise_photo(12, 32, 24)).save(root / "images" / "lonely.png")

    lake = Lake(str(tmp_path / "lake"), create=True)
    first = ingest(lake, "sod", str(root), workers=1, progress=False, category="Pet_Dog")
    assert (first.accepted, first.rejected) == (1, 1)
    segs = segments(lake)
    assert segs["images/x.png"]["category"] == "pet dog"
    assert_segment_matches(lake, segs["images/x.png"], photo, mask)

    again = ingest(lake, "sod", str(root), workers=1, progress=False, category="Pet_Dog")
    assert (again.accepted, again.rejected) == (0, 0)
    assert again.skipped == 2
    assert len(segments(lake)) == 1 and len(rejects(lake)) == 1


def test_mask_scaled_zero_to_one_is_rejected_not_ingested(tmp_path):
    root = tmp_path / "thing"
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    Image.fromarray(noise_photo(13, 32, 24)).save(root / "images" / "x.png")
    Image.fromarray((soft_mask(24, 32, cx=16, cy=12, r=9) > 0).astype(np.uint8), "L").save(root / "masks" / "x.png")
    lake = Lake(str(tmp_path / "lake"), create=True)
    summary = ingest(lake, "sod", str(root), workers=1, progress=False)
    assert summary.accepted == 0
    assert rejects(lake) == {("images/x.png", "faint_alpha")}


def test_source_without_images_and_masks_folders_is_an_error(tmp_path):
    (tmp_path / "src" / "images").mkdir(parents=True)
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match="masks"):
        ingest(lake, "sod", str(tmp_path / "src"), workers=1, progress=False, category="x")
