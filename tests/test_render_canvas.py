"""The compositor's fast pixel path (render/compose.py Canvas) equals the dense float
formulas it replaces, bit for bit: pastes touch only pixels whose 8-bit alpha is above 0,
copy where it is 255 and blend in between; un-premultiplying divides only where alpha is
neither 0 nor 1."""
import cv2
import numpy as np
import pytest

from soclake import imaging
from soclake.render.compose import Canvas, _straight, pixel_rows


class DenseCanvas:
    """The dense reference: every pixel of the box composited as premultiplied floats, with
    the patch's colour where its 8-bit alpha is 0 taken as 0 (what is composited is the 8-bit
    alpha the annotations threshold)."""

    def __init__(self, w, h, background):
        self.rgb = np.zeros((h, w, 3), np.float32) if background is None else background.astype(np.float32)
        self.alpha = np.zeros((h, w), np.float32) if background is None else np.ones((h, w), np.float32)
        self.owner = np.zeros((h, w), np.uint8)

    def paste(self, prem, a8, dst, src, label):
        p = np.where((a8[src] > 0)[..., None], prem[src], 0).astype(np.float32)
        inv = 1 - a8[src].astype(np.float32) * np.float32(1 / 255)
        rgb = self.rgb[dst]
        rgb *= cv2.merge([inv, inv, inv])
        rgb += p
        alpha = self.alpha[dst]
        alpha *= inv
        alpha += 1 - inv
        self.owner[dst][a8[src] >= imaging.MASK_THRESHOLD] = label

    def straight_rgb(self, alpha8):
        inv = cv2.divide(1.0, cv2.max(self.alpha, 1e-6))
        rgb = cv2.convertScaleAbs(cv2.multiply(self.rgb, cv2.merge([inv, inv, inv])))
        return cv2.bitwise_and(rgb, rgb, mask=alpha8)


def random_patch(rng, h, w, kind):
    """A premultiplied float patch and its 8-bit alpha: a solid blob with a soft edge band,
    a wholly soft (feathered) patch, or scattered single pixels."""
    if kind == "blob":
        yy, xx = np.mgrid[:h, :w]
        r = np.hypot((yy - h / 2) / max(h / 2, 1), (xx - w / 2) / max(w / 2, 1))
        alpha = np.clip((1 - r) * 6, 0, 1) * 255
    elif kind == "soft":
        alpha = rng.uniform(0, 255, (h, w))
    else:
        alpha = np.where(rng.random((h, w)) < 0.02, rng.uniform(0, 255, (h, w)), 0)
    alpha = alpha.astype(np.float32)
    straight = rng.integers(0, 256, (h, w, 3)).astype(np.float32)
    prem = np.dstack([straight * alpha[..., None] / 255, alpha]).astype(np.float32)
    return prem[..., :3], cv2.convertScaleAbs(alpha)


@pytest.mark.parametrize("opaque", [True, False])
@pytest.mark.parametrize("seed", range(4))
def test_fast_paste_equals_the_dense_formulas(opaque, seed):
    rng = np.random.default_rng(seed)
    W, H = 97, 64
    bg = rng.integers(0, 256, (H, W, 3), dtype=np.uint8) if opaque else None
    fast, dense = Canvas(W, H, bg, 20), DenseCanvas(W, H, bg)
    for label in range(1, 13):
        h, w = int(rng.integers(1, 50)), int(rng.integers(1, 60))
        prem, a8 = random_patch(rng, h, w, ["blob", "soft", "sparse"][label % 3])
        x, y = int(rng.integers(-w // 2, W)), int(rng.integers(-h // 2, H))
        sl = fast.clip(x, y, w, h)
        if sl is None:
            continue
        fast.paste(prem, a8, *sl, label)
        dense.paste(prem, a8, *sl, label)
    assert np.array_equal(fast.rgb, dense.rgb)
    assert np.array_equal(fast.owner, dense.owner)
    if not opaque:
        assert np.array_equal(fast.alpha, dense.alpha)
        alpha8 = cv2.convertScaleAbs(fast.alpha, alpha=255)
        assert np.array_equal(fast.straight_rgb(alpha8), dense.straight_rgb(alpha8))


def test_one_pixel_pastes_and_untouched_transparent_pixels():
    fast, dense = Canvas(5, 4, None, 3), DenseCanvas(5, 4, None)
    prem = np.array([[[100.0, 50.0, 25.0]]], np.float32)
    for a, label in ((200, 1), (255, 2), (1, 3)):
        a8 = np.array([[a]], np.uint8)
        sl = fast.clip(2, 1, 1, 1)
        fast.paste(prem * a / 255, a8, *sl, label)
        dense.paste(prem * a / 255, a8, *sl, label)
    assert np.array_equal(fast.rgb, dense.rgb) and np.array_equal(fast.alpha, dense.alpha)
    alpha8 = cv2.convertScaleAbs(fast.alpha, alpha=255)
    straight = fast.straight_rgb(alpha8)
    assert np.array_equal(straight, dense.straight_rgb(alpha8))
    assert (straight[alpha8 == 0] == 0).all() and straight[1, 2].any()


def test_colour_under_alpha_zero_is_never_composited():
    """A patch's faint colour where its 8-bit alpha rounds to 0 leaves the canvas as it was."""
    bg = np.full((3, 3, 3), 10, np.uint8)
    canvas = Canvas(3, 3, bg, 1)
    prem = np.full((3, 3, 3), 0.4, np.float32)
    canvas.paste(prem, np.zeros((3, 3), np.uint8), *canvas.clip(0, 0, 3, 3), 1)
    assert (canvas.rgb == 10).all() and not canvas.owner.any()


@pytest.mark.parametrize("opaque", [True, False])
def test_pixels8_is_the_float_canvas_rounded_after_every_paste(opaque):
    """The uint8 canvas kept up to date inside each paste's box equals the whole float canvas
    converted at once (rounded half to even, saturated), after every paste."""
    rng = np.random.default_rng(5)
    W, H = 61, 47
    bg = rng.integers(0, 256, (H, W, 3), dtype=np.uint8) if opaque else None
    canvas = Canvas(W, H, bg, 9)
    for label in range(1, 10):
        h, w = int(rng.integers(1, 40)), int(rng.integers(1, 40))
        prem, a8 = random_patch(rng, h, w, ["blob", "soft", "sparse"][label % 3])
        sl = canvas.clip(int(rng.integers(-w // 2, W)), int(rng.integers(-h // 2, H)), w, h)
        if sl is None:
            continue
        under = canvas.pixels8(sl[0])
        canvas.paste(prem, a8, *sl, label)
        rgb = cv2.convertScaleAbs(canvas.rgb)
        whole = rgb if opaque else cv2.merge([rgb, cv2.convertScaleAbs(canvas.alpha, alpha=255)])
        assert np.array_equal(canvas.pixels8(), whole)
        assert not np.shares_memory(under, canvas.pixels8())  # a rectangle is a copy


def test_pixel_rows_passes_rectangles_and_copies_what_opencv_cannot_read():
    a = np.zeros((10, 12, 4), np.float32)
    for view, in_place in ((a, True), (a[2:5, 3:9], True), (a[..., :3], False), (a[:, ::-1], False),
                           (a[::-1], False), (a[:, :, 0], False), (np.zeros((5, 6), np.uint8)[1:3, 2:4], True)):
        out = pixel_rows(view)
        assert (out is view) == in_place and np.array_equal(out, view)


def test_a_one_pixel_transparent_canvas_unpremultiplies():
    canvas = Canvas(1, 1, None, 1)
    canvas.paste(np.array([[[60.0, 30.0, 15.0]]], np.float32), np.array([[128]], np.uint8), *canvas.clip(0, 0, 1, 1), 1)
    alpha8 = cv2.convertScaleAbs(canvas.alpha, alpha=255)
    assert canvas.straight_rgb(alpha8).tolist() == [[[120, 60, 30]]]


@pytest.mark.parametrize("shape", [(1, 1), (4, 1), (1, 4), (2, 2), (3, 1), (1, 2)])
def test_the_straight_colour_of_a_tiny_patch_is_the_large_patchs(shape):
    """OpenCV reads arrays of up to 4 values as scalars; tiny patches take numpy's route to
    the same numbers as the same pixels inside a larger patch."""
    rng = np.random.default_rng(7)
    a8 = rng.integers(0, 256, (8, 8), np.uint8)
    prem = (rng.random((8, 8, 3)) * a8[..., None]).astype(np.float32)
    h, w = shape
    assert np.array_equal(_straight(prem[:h, :w], a8[:h, :w]), _straight(prem, a8)[:h, :w])
