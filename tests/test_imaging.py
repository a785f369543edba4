import io

import numpy as np
import pytest
from conftest import blob_rgba
from PIL import Image

from soclake import imaging
from soclake.errors import RejectedItem


def test_canonical_crop_is_tight_and_zeroes_transparent_colour():
    rgba = blob_rgba(1)
    rgba[0, 0] = (9, 9, 9, 0)  # colour under alpha 0 must not matter
    crop, (x, y) = imaging.canonical_crop(rgba)
    ys, xs = np.nonzero(rgba[..., 3])
    assert (x, y) == (xs.min(), ys.min())
    assert crop.shape[:2] == (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1)
    assert (crop[crop[..., 3] == 0, :3] == 0).all()
    assert np.array_equal(crop[..., 3], rgba[ys.min():ys.max() + 1, xs.min():xs.max() + 1, 3])


def test_fully_transparent_and_faint_are_rejected():
    with pytest.raises(RejectedItem, match="fully_transparent"):
        imaging.canonical_crop(np.zeros((8, 8, 4), np.uint8))
    faint = np.zeros((8, 8, 4), np.uint8)
    faint[2:4, 2:4, 3] = 100
    with pytest.raises(RejectedItem, match="faint_alpha"):
        imaging.canonical_crop(faint)


def test_content_id_depends_on_pixels_and_shape():
    a = blob_rgba(2)
    assert imaging.content_id(a) == imaging.content_id(a.copy())
    b = a.copy()
    b[50, 50, 0] ^= 1
    assert imaging.content_id(a) != imaging.content_id(b)
    assert imaging.content_id(a.reshape(48, 192, 4)) != imaging.content_id(a)


@pytest.mark.parametrize("longest,expected", [(700, [700, 256, 128, 64, 32]), (1024, [1024, 512, 256, 128, 64, 32]),
                                              (5000, [1024, 512, 256, 128, 64, 32]), (48, [48, 32]), (40, [40]),
                                              (20, [20])])
def test_level_sides(longest, expected):
    assert imaging.level_sides(longest) == expected


@pytest.mark.parametrize("codec", sorted(imaging.LEVEL_CODECS))
def test_level_codec_is_lossless(codec):
    for crop in (imaging.canonical_crop(blob_rgba(3, 128))[0], np.full((1, 1, 4), 200, np.uint8),
                 np.random.default_rng(0).integers(0, 256, (31, 7, 4), dtype=np.uint8)):
        data = imaging.encode_level(crop, codec)
        assert np.array_equal(imaging.decode_level(data), crop)  # the header tells the codec
        assert data == imaging.encode_level(crop.copy(), codec)


def test_a_damaged_raw_level_is_an_error_not_pixels():
    data = imaging.encode_level(imaging.canonical_crop(blob_rgba(3, 64))[0], "zstd")
    with pytest.raises(Exception):
        imaging.decode_level(data[:-9])
    with pytest.raises(ValueError, match="header"):
        imaging.decode_level(data[:8] + (1).to_bytes(4, "big") + data[12:])  # wrong width
    with pytest.raises(ValueError, match="unknown level codec"):
        imaging.encode_level(np.zeros((2, 2, 4), np.uint8), "qoi")


@pytest.mark.parametrize("mode", ["RGBA", "RGB", "L", "LA"])
def test_lossless_webp_levels_decode_to_pillows_pixels(mode):
    """decode_level reads lossless WebP with OpenCV (faster); the pixels are Pillow's, colour
    under zero alpha included, and a damaged one is an error."""
    rgba = np.random.default_rng(2).integers(0, 256, (37, 53, 4), np.uint8)
    rgba[..., 3][rgba[..., 3] < 60] = 0
    buf = io.BytesIO()
    Image.fromarray(rgba, "RGBA").convert(mode).save(buf, "WEBP", lossless=True, exact=True)
    data = buf.getvalue()
    assert data[12:16] == b"VP8L"
    assert np.array_equal(imaging.decode_level(data), np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")))
    damaged = data[:len(data) // 2]
    with pytest.raises(Exception) as pillow:  # the Pillow path every level took before
        np.asarray(imaging.open_image(damaged).convert("RGBA"))
    with pytest.raises(pillow.type):  # what OpenCV cannot decode, Pillow decodes or names, as before
        imaging.decode_level(damaged)


def test_pyramid_levels_have_no_dark_fringe_and_exact_top():
    rgba = blob_rgba(6, 160)
    rgba[..., :3] = 255
    rgba[rgba[..., 3] == 0, :3] = 0
    crop, _ = imaging.canonical_crop(rgba)
    sides = imaging.level_sides(max(crop.shape[:2]))
    levels = imaging.pyramid(crop, sides)
    assert np.array_equal(levels[0], crop)
    for side, lv in zip(sides[1:], levels[1:]):
        assert max(lv.shape[:2]) == side
        visible = lv[..., 3] > 8
        assert visible.any() and lv[visible, :3].min() >= 250
        assert (lv[lv[..., 3] == 0, :3] == 0).all()


def test_premultiplied_resize_has_no_dark_fringe():
    # a white disc with a soft edge: resizing must keep the colour white wherever alpha > 0
    rgba = blob_rgba(4, 128)
    rgba[..., :3] = 255
    rgba[rgba[..., 3] == 0, :3] = 0
    small = imaging.resize_rgba(rgba, 32, 32)
    visible = small[..., 3] > 8
    assert visible.any() and small[visible, :3].min() >= 250


def test_mask_stats():
    alpha = np.zeros((10, 10), np.uint8)
    alpha[1:3, 1:3] = 255
    alpha[6:9, 6:9] = 200
    alpha[0, 9] = 60  # soft, below the mask threshold
    s = imaging.mask_stats(alpha)
    assert s["alpha_area"] == 4 + 9
    assert s["alpha_components"] == 2
    assert s["soft_edge_fraction"] == pytest.approx(10 / 14)
    assert s["alpha_fraction"] == pytest.approx(13 / 100)


@pytest.mark.parametrize("rgb,name", [((200, 30, 35), "red"), ((240, 130, 20), "orange"), ((235, 205, 40), "yellow"),
                                      ((50, 150, 60), "green"), ((40, 80, 200), "blue"), ((120, 50, 150), "purple"),
                                      ((240, 150, 180), "pink"), ((120, 75, 40), "brown"), ((10, 10, 10), "black"),
                                      ((240, 240, 240), "white"), ((128, 128, 128), "grey")])
def test_dominant_color_names(rgb, name):
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = rgb
    rgba[..., 3] = 255
    assert imaging.dominant_color(rgba) == name


def test_decode_rejects_garbage_and_bombs():
    with pytest.raises(RejectedItem, match="empty_file"):
        imaging.decode_rgba(b"")
    with pytest.raises(RejectedItem, match="not_an_image"):
        imaging.decode_rgba(b"this is not a png")
    import io

    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGBA", (300, 300)).save(buf, "PNG")
    with pytest.raises(RejectedItem, match="too_large"):
        imaging.decode_rgba(buf.getvalue(), max_pixels=10_000)
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PNG")
    with pytest.raises(RejectedItem, match="no_alpha"):
        imaging.decode_rgba(buf.getvalue())


def test_decode_handles_palette_la_and_16bit():
    import io

    from PIL import Image
    rgba = blob_rgba(5, 64)
    for mode in ("LA", "P"):
        im = Image.fromarray(rgba).convert(mode) if mode == "LA" else Image.fromarray(rgba).convert("P")
        if mode == "P":
            im.info["transparency"] = 0
        buf = io.BytesIO()
        im.save(buf, "PNG")
        out = imaging.decode_rgba(buf.getvalue())
        assert out.shape == (64, 64, 4)
    import cv2
    ok, enc = cv2.imencode(".png", (rgba.astype(np.uint16) * 257)[..., [2, 1, 0, 3]])
    out = imaging.decode_rgba(enc.tobytes())
    assert np.array_equal(out, rgba)


def test_nonzero_is_numpys_in_the_same_order():
    rng = np.random.default_rng(4)
    big = rng.random((40, 50)) < 0.3
    for mask in (big, big[5:20, 7:44], np.zeros((3, 4), bool), np.ones((1, 1), bool), (big * 200).astype(np.uint8)):
        got, want = imaging.nonzero(mask), np.nonzero(mask)
        assert all(np.array_equal(g, w) for g, w in zip(got, want))
