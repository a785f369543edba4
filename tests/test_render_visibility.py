"""The visibility test in every blend mode, and the one rule that fg.png and pan.png share,
checked on decoded pixels of hand-built scenes."""
import numpy as np
import pytest
from render_scene import Scene, disc, noise_texture, placed

from soclake.render.visibility import by_colour, shown

GREY = (180, 180, 180)


def alpha_on_canvas(rgba: np.ndarray, x: int, y: int, w: int, h: int) -> np.ndarray:
    return placed(np.repeat(rgba[..., 3:], 3, 2).astype(np.float64), x, y, w, h)[..., 0] / 255


@pytest.mark.parametrize("blend", ["none", "gaussian", "motion", "poisson"])
def test_an_object_that_looks_like_what_lies_under_it_is_dropped(blend):
    """A grey disc on the same grey shows nothing of itself: dropped and counted as unseen, its
    pixels void; a textured disc in the same scene stays annotated."""
    bg = np.full((96, 128, 3), GREY, np.uint8)
    same = disc(36, GREY, soft=1.5)
    seen = disc(36, None, soft=1.5, texture=noise_texture(36, seed=9, mean=(60, 90, 150), spread=50))
    out = Scene(128, 96, bg).add(same, 8, 20, blend).add(seen, 70, 30, blend).decoded()
    comp = out["image"].astype(np.float64)
    inside = alpha_on_canvas(same, 8, 20, 128, 96) >= 0.5
    assert np.abs(comp[inside] - GREY).max() <= 2  # independent: nothing there but the grey
    ids = [i["panoptic_id"] for i in out["info"]["instances"]]
    assert ids == [2], blend
    assert out["info"]["unseen"] == 1
    assert not (out["pan"][inside] != 0).any()
    assert 0.5 <= out["info"]["instances"][0]["shown_fraction"] <= 1


def test_what_lies_under_is_the_canvas_not_the_background():
    """A red disc pasted on a larger disc of the same red is invisible even though it differs
    from the background; the larger disc stays."""
    bg = np.full((96, 96, 3), 40, np.uint8)
    out = Scene(96, 96, bg).add(disc(70, (200, 20, 20)), 10, 10).add(disc(30, (200, 20, 20)), 30, 30).decoded()
    assert [i["panoptic_id"] for i in out["info"]["instances"]] == [1]
    assert out["info"]["unseen"] == 1


def soft_scene() -> tuple[Scene, list]:
    """Labelled soft discs whose soft edges stack, and a distractor's soft edge over a
    labelled soft edge. Returns the scene and its pastes (rgba, x, y, labelled)."""
    red, blue, green = disc(40, (220, 40, 40), soft=8), disc(40, (40, 40, 220), soft=8), disc(40, (40, 200, 40), soft=8)
    pastes = [(red, 10, 10, True), (blue, 44, 10, True), (red, 10, 60, True), (green, 42, 60, False)]
    scene = Scene(128, 112, np.full((112, 128, 3), 128, np.uint8))
    for rgba, x, y, labelled in pastes:
        scene.add(rgba, x, y, "none", "object" if labelled else "distractor")
    return scene, pastes


def test_fg_and_pan_follow_one_rule_on_stacked_and_covered_soft_edges():
    """fg.png >= 128 exactly where pan.png names an instance; elsewhere fg.png is the share of
    the pixel's colour that labelled objects give, computed here from the cut-outs' alphas."""
    scene, pastes = soft_scene()
    out = scene.decoded()
    fg, pan = out["fg"].astype(np.int64), out["pan"]
    assert len(out["info"]["instances"]) == 3
    assert np.array_equal(fg >= 128, pan != 0)
    share = np.zeros(pan.shape)
    for rgba, x, y, labelled in pastes:
        a = alpha_on_canvas(rgba, x, y, 128, 112)
        share = share * (1 - a) + (a if labelled else 0)
    agree = (share >= 0.5) == (pan != 0)
    assert (~agree).sum() > 0  # the scene does hold both kinds of disagreement
    assert (np.abs(fg[agree] - share[agree] * 255) <= 1).all()
    assert set(np.unique(fg[~agree])) <= {127, 128}


def flat(rgb, shape=(20, 20)) -> np.ndarray:
    return np.broadcast_to(np.asarray(rgb, np.uint8), (*shape, 3)).copy()


OPAQUE = np.full((20, 20), 255, np.uint8)


@pytest.mark.parametrize("alpha, expected", [(0.3, False), (0.45, False), (0.55, True), (0.9, True)])
def test_a_pixel_shows_an_object_above_half_its_contrast(alpha, expected):
    under, own = flat((40, 40, 40)), flat((200, 60, 60))
    final = (alpha * own.astype(float) + (1 - alpha) * under + 0.5).astype(np.uint8)
    assert (shown(final, under, own, OPAQUE, 12.0, 3.5) == expected).all()


def test_on_a_transparent_canvas_alpha_counts_as_a_channel():
    """A black object over transparency differs from it by its alpha alone."""
    under = np.zeros((20, 20, 4), np.uint8)
    own = flat((0, 0, 0))
    final = np.zeros((20, 20, 4), np.uint8)
    final[..., 3] = 200
    assert shown(final, under, own, OPAQUE, 12.0, 3.5).all()
    final[..., 3] = 100
    assert not shown(final, under, own, OPAQUE, 12.0, 3.5).any()


def test_below_the_contrast_nothing_shows():
    under, own = flat((100, 100, 100)), flat((104, 104, 104))
    assert not shown(own, under, own, OPAQUE, 12.0, 3.5).any()


def test_texture_shows_through_a_colour_shift_and_flatness_does_not():
    """What a Poisson clone does: the object's texture shifted to the background's colour."""
    under = noise_texture(20, seed=1, mean=(60, 60, 60), spread=30)
    textured = noise_texture(20, seed=2, mean=(200, 200, 200), spread=20)
    shifted = np.clip(textured.astype(int) - 140, 0, 255).astype(np.uint8)
    inner = (slice(2, -2), slice(2, -2))
    assert shown(shifted, under, textured, OPAQUE, 12.0, 3.5)[inner].all()
    assert not shown(flat((60, 60, 60)), under, flat((200, 200, 200)), OPAQUE, 12.0, 3.5).any()


@pytest.mark.parametrize("channels", [3, 4])
def test_the_colour_test_within_a_mask_is_the_dense_test(channels):
    """by_colour(..., within=mask) is exactly by_colour(...) & mask: the object's colour pasted
    over transparency, over colour, soft edges and later covers, on transparent and opaque
    canvases."""
    rng = np.random.default_rng(11)
    h, w = 64, 80
    own = rng.integers(0, 256, (h, w, 3), np.uint8)
    under = np.zeros((h, w, channels), np.uint8)
    under[:, 40:] = rng.integers(0, 256, (h, 40, channels), np.uint8)  # half transparent, half painted
    opaque = own if channels == 3 else np.dstack([own, np.full((h, w), 255, np.uint8)])
    under[:8, 40:48] = opaque[:8, 40:48]  # the object's own colour lay there
    final = opaque.copy()
    final[20:26] = rng.integers(0, 256, (6, w, channels), np.uint8)  # covered by a later paste
    final[30:32] = (opaque[30:32].astype(np.int32) + under[30:32]) // 2  # a soft edge
    final[40, 10] = under[40, 10]
    mask = rng.random((h, w)) < 0.8
    mask[31, 3] = True  # a soft pixel exactly sqrt(50) from what lay under: the threshold's precision counts
    under[31, 3, :3] = np.clip(opaque[31, 3, :3].astype(int) - (5, 5, 0), 0, 255) if opaque[31, 3, 0] >= 5 \
        and opaque[31, 3, 1] >= 5 else opaque[31, 3, :3] + np.array([5, 5, 0], np.uint8)
    if channels == 4:
        under[31, 3, 3] = 255
    final[31, 3] = opaque[31, 3]
    final[31, 3, 2] = opaque[31, 3, 2] ^ 1  # one level off the object's colour, far nearer it than the under
    for contrast in (0.0, 12.0, 255.0, 50 ** 0.5):
        for m in (mask, np.zeros_like(mask), np.ones_like(mask)):
            assert np.array_equal(by_colour(final, under, own, contrast, m), by_colour(final, under, own, contrast) & m)
