"""Poisson blending against the pixels: the mask is where seamlessClone wrote the object, an
object the clone washes out is dropped, and the fallback pastes exactly as blend none."""
import cv2
import numpy as np
from render_scene import Scene, dilate, disc, erode, gradient_correlation, noise_texture, placed

from soclake.render import poisson


def textured_scene(size: int = 48, x: int = 40, y: int = 30) -> tuple[Scene, np.ndarray, np.ndarray]:
    bg = noise_texture(128, seed=1, mean=(90, 100, 110), spread=40, blur=3)
    tex = noise_texture(size, seed=2, mean=(170, 150, 120), spread=45, blur=2)
    obj = disc(size, None, soft=1.5, texture=tex)
    return Scene(128, 128, bg).add(obj, x, y, "poisson"), bg, obj


def test_poisson_mask_holds_the_object_not_the_background():
    """Inside the annotated mask, and in its outermost 3 px, the composite's gradients follow
    the object's and not the background's (today the outer ring is background texture)."""
    scene, bg, obj = textured_scene()
    out = scene.decoded()
    (inst,) = out["info"]["instances"]
    assert inst["blend"] == "poisson"
    mask = out["pan"] == inst["panoptic_id"]
    comp = out["image"].astype(np.float64)
    own, under = placed(obj[..., :3], 40, 30, 128, 128), bg.astype(np.float64)
    band = mask & ~erode(mask, 3)
    assert band.sum() > 100 and mask.sum() > 0.5 * np.pi * 24 ** 2
    for region in (mask, band):
        assert gradient_correlation(comp, own, region) > 0.8
        assert gradient_correlation(comp, under, region) < 0.3
    # what seamlessClone turned into background is no instance's
    alpha = placed(np.repeat(obj[..., 3:], 3, axis=2), 40, 30, 128, 128)[..., 0]
    ring = (alpha >= 128) & ~mask
    assert ring.sum() > 100 and (out["pan"][ring] == 0).all()
    assert gradient_correlation(comp, under, ring) > 0.5


def test_documented_written_region_matches_opencv():
    """The region the renderer annotates is the one OpenCV clones the object's gradients into,
    measured by cloning a checkerboard and finding where it shows."""
    rng = np.random.default_rng(5)
    for trial in range(4):
        h, w = rng.integers(20, 60, 2)
        mask = np.zeros((h, w), np.uint8)
        cv2.ellipse(mask, (int(w // 2), int(h // 2)), (int(w // 2 - rng.integers(0, 4)), int(h // 2 - 2)), 0, 0, 360,
                    255, -1)
        yy, xx = np.mgrid[0:h, 0:w]
        checker = np.repeat(np.where((yy + xx) % 2 == 0, 178, 78).astype(np.uint8)[..., None], 3, axis=2)
        dst = np.full((h + 40, w + 40, 3), 128, np.uint8)
        ys, xs = np.nonzero(mask)
        centre = (20 + (int(xs.min()) + int(xs.max()) + 1) // 2, 20 + (int(ys.min()) + int(ys.max()) + 1) // 2)
        out = cv2.seamlessClone(checker, dst, mask.copy(), centre, cv2.NORMAL_CLONE)[20:20 + h, 20:20 + w, 0]
        shows = np.abs(out.astype(int) - 128) > 25
        written = poisson.written_region(mask) > 0
        # the documented region explains where the checkerboard shows far better than the
        # region one pixel wider or narrower (they differ from it only on its rim)
        miss = {name: int((shows != region).sum()) for name, region in
                (("rule", written), ("wider", dilate(written)), ("narrower", erode(written, 1)))}
        assert written.sum() > 50 and miss["rule"] < 0.25 * min(miss["wider"], miss["narrower"]), miss


def test_poisson_drops_an_object_the_clone_washes_out():
    """A flat disc has no gradients of its own: the clone fills it with the background's
    colour, so it is not in the picture and must not be annotated; a textured one stays."""
    bg = noise_texture(128, seed=3, mean=(110, 120, 100), spread=35, blur=3)
    flat = disc(40, (220, 30, 30), soft=1.5)
    tex = disc(40, None, soft=1.5, texture=noise_texture(40, seed=4, mean=(60, 60, 160), spread=50))
    out = Scene(128, 128, bg).add(flat, 10, 10, "poisson").add(tex, 70, 70, "poisson").decoded()
    comp = out["image"].astype(np.float64)
    inside = placed(np.repeat(flat[..., 3:], 3, 2), 10, 10, 128, 128)[..., 0] >= 128
    # independent of the renderer: the pixels there are near the background, far from red
    assert np.abs(comp[inside] - bg[inside]).mean() < 0.5 * np.abs(comp[inside] - [220, 30, 30]).mean()
    assert [i["panoptic_id"] for i in out["info"]["instances"]] == [2]
    assert out["info"]["unseen"] == 1 and out["info"]["dropped"] == 1
    assert not (out["pan"] == 1).any() and (out["fg"][inside] < 128).all()


def white_disc() -> np.ndarray:
    return disc(40, (255, 255, 255), soft=4.0)


def test_fallback_on_a_transparent_canvas_is_blend_none():
    """No background: poisson cannot run; the fallback keeps a white disc white at every
    alpha and paints nothing outside the disc's own alpha (no grey core, no halo)."""
    obj = white_disc()
    out = Scene(64, 64, None).add(obj, 12, 12, "poisson").decoded()
    rgba = out["image"]
    alpha = placed(np.repeat(obj[..., 3:], 3, 2), 12, 12, 64, 64)[..., 0]
    assert np.array_equal(rgba[..., 3], alpha.astype(np.uint8))
    assert (rgba[alpha > 0, :3] >= 254).all()  # straight colours: white stays white
    assert (rgba[alpha == 0] == 0).all()
    (inst,) = out["info"]["instances"]
    assert inst["blend"] == "none"
    plain = Scene(64, 64, None).add(obj, 12, 12, "none").rendered()
    assert out["rendered"].members["rgba.png"] == plain.members["rgba.png"]


def test_fallback_at_the_border_is_blend_none():
    bg = np.full((64, 64, 3), 100, np.uint8)
    obj = white_disc()
    out = Scene(64, 64, bg).add(obj, -6, 30, "poisson").decoded()
    comp = out["image"].astype(np.int64)
    alpha = placed(np.repeat(obj[..., 3:], 3, 2), -6, 30, 64, 64)[..., 0]
    # white over grey with the soft alpha: no dark core, no bright halo
    assert (np.abs(comp[..., 0] - (alpha + 100 * (1 - alpha / 255))) <= 1).all()
    assert (comp[alpha == 0] == 100).all()
    assert out["info"]["instances"][0]["blend"] == "none"
    plain = Scene(64, 64, bg).add(obj, -6, 30, "none").rendered()
    assert out["rendered"].members["png"] == plain.members["png"]


def test_poisson_clone_is_not_shifted():
    """The cloned texture lands where the plan puts it, also for a patch whose alpha touches
    its own edge on one side only (OpenCV clears the mask's outer frame before cloning)."""
    bg = noise_texture(96, seed=6, mean=(100, 100, 100), spread=30, blur=3)
    tex = noise_texture(30, seed=7, mean=(150, 150, 150), spread=60)
    alpha = np.zeros((30, 30), np.uint8)
    alpha[:, :25] = 255
    obj = np.dstack([tex, alpha])
    out = Scene(96, 96, bg).add(obj, 30, 30, "poisson").decoded()
    mask = out["pan"] == 1
    comp = out["image"].astype(np.float64)
    shifts = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1)]
    score = {d: gradient_correlation(comp, placed(tex, 30 + d[0], 30 + d[1], 96, 96), mask) for d in shifts}
    assert max(score, key=score.get) == (0, 0) and score[(0, 0)] > 0.8


def test_an_object_too_thin_for_the_clone_falls_back_to_blend_none():
    """A clone erodes its mask by 4 px: a 6-px object would vanish (and OpenCV fails on
    masks that thin), so it is pasted as blend none and recorded so."""
    obj = np.dstack([np.full((6, 30, 3), 250, np.uint8), np.full((6, 30), 255, np.uint8)])
    out = Scene(64, 64, np.full((64, 64, 3), 20, np.uint8)).add(obj, 10, 10, "poisson").decoded()
    (inst,) = out["info"]["instances"]
    assert inst["blend"] == "none" and inst["area"] == 180
    assert (out["image"][10:16, 10:40] == 250).all()
