"""Hand-built scenes for renderer tests: RGBA cut-outs placed at exact positions over a
background array, rendered by render_image from in-memory packs, and decoded back with
plain Pillow/numpy (never with the renderer's own helpers)."""
from __future__ import annotations

import io
import json
from dataclasses import dataclass, field

import cv2
import numpy as np
from conftest import job_spec
from PIL import Image

from soclake import imaging
from soclake.render.compose import render_image


def disc(size: int, rgb, soft: float = 1.0, texture: np.ndarray | None = None) -> np.ndarray:
    """A centred disc in a `size` x `size` patch, its edge ramped down to 0 over `soft`
    pixels inside the patch; flat `rgb` or the given (size, size, 3) texture."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5
    r = (size - soft) / 2
    d = r - np.hypot(xx - r, yy - r)
    alpha = np.clip(d / soft + 0.5, 0, 1) if soft > 0 else (d > 0).astype(np.float32)
    colour = np.broadcast_to(np.asarray(rgb, np.uint8), (size, size, 3)) if texture is None else texture
    a8 = (alpha * 255 + 0.5).astype(np.uint8)
    rgba = np.dstack([colour, a8]).copy()
    rgba[a8 == 0, :3] = 0
    return rgba


def noise_texture(size: int, seed: int, mean=(128, 128, 128), spread: float = 60.0, blur: int = 0) -> np.ndarray:
    """Random texture around `mean` (optionally box-blurred to a coarser grain)."""
    rng = np.random.default_rng(seed)
    t = rng.normal(0, spread, (size, size, 3)).astype(np.float32)
    if blur:
        t = cv2.blur(t, (blur, blur)) * blur ** 0.5
    return np.clip(t + np.asarray(mean, np.float32), 0, 255).astype(np.uint8)


@dataclass
class Scene:
    width: int
    height: int
    background: np.ndarray | None = None     # (H, W, 3) uint8, or None for a transparent canvas
    render: dict = field(default_factory=dict)  # [render] keys over the defaults
    pastes: list = field(default_factory=list)

    def add(self, rgba: np.ndarray, x: int, y: int, blend: str = "none", role: str = "object") -> "Scene":
        self.pastes.append((rgba, x, y, blend, role))
        return self

    def rendered(self):
        store: dict[str, bytes] = {}
        segments, objects, label = {}, [], 0
        for i, (rgba, x, y, blend, role) in enumerate(self.pastes):
            sid = f"seg{i}"
            store[sid] = imaging.encode_level(np.ascontiguousarray(rgba))
            h, w = rgba.shape[:2]
            segments[sid] = {"segment_id": sid, "category": "thing", "subcategory": None, "short_phrase": "a thing",
                             "description": "a thing", "features": [], "dominant_color": "grey",
                             "levels": [{"side": max(w, h), "width": w, "height": h, "pack": sid, "offset": 0,
                                         "length": len(store[sid])}]}
            label += role == "object"
            objects.append({"segment_id": sid, "fallback_id": sid, "category_id": 1, "role": role, "x": x, "y": y,
                            "w": w, "h": h, "flip": False, "angle": 0.0, "blend": blend, "source_box": None,
                            "source_background_id": None, "panoptic_id": label if role == "object" else None,
                            "seed": i})
        backgrounds = {}
        if self.background is not None:
            store["bg"] = _png(self.background)
            backgrounds["bg"] = {"background_id": "bg", "pack": "bg", "offset": 0, "length": len(store["bg"])}
        plan = {"image_id": 0, "key": "000000000", "seed": 7, "width": self.width, "height": self.height,
                "background_id": "bg" if self.background is not None else None,
                "background_crop": [0, 0, self.width, self.height], "objects": objects, "base_id": None}
        render = job_spec("scene", render={"format": "png", "fg_mask": True, **self.render})["render"]
        return render_image(plan, segments, backgrounds, lambda p, o, n: store[p][o:o + n], render, {})

    def decoded(self) -> dict:
        """{"info", "image" (H, W, 3|4 uint8), "pan" (H, W int64 ids), "fg" (H, W uint8)} of a render."""
        out = self.rendered()
        info = json.loads(out.members["json"])
        ext = info["file_name"].split(".", 1)[1]
        rgb = np.asarray(Image.open(io.BytesIO(out.members["pan.png"])).convert("RGB")).astype(np.int64)
        return {"info": info, "image": np.asarray(Image.open(io.BytesIO(out.members[ext]))),
                "pan": rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2],
                "fg": np.asarray(Image.open(io.BytesIO(out.members["fg.png"]))), "rendered": out}


def _png(rgb: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "PNG")
    return buf.getvalue()


# ----------------------------------------------------------------------------- independent checks
def placed(rgb: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    """`rgb` (h, w, 3) drawn at (x, y) on a zero (H, W, 3) float canvas, cut to the canvas."""
    out = np.zeros((height, width, 3), np.float64)
    h, w = rgb.shape[:2]
    x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, width), min(y + h, height)
    out[y0:y1, x0:x1] = rgb[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def gradient_correlation(image: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> float:
    """Pearson correlation of the forward differences (x and y, luminance) of two images over
    the pixel pairs that lie wholly inside `mask`."""
    def grads(a):
        lum = np.asarray(a, np.float64)[..., :3].mean(axis=2)
        return lum[:, 1:] - lum[:, :-1], lum[1:, :] - lum[:-1, :]
    gx_m, gy_m = mask[:, 1:] & mask[:, :-1], mask[1:, :] & mask[:-1, :]
    (ax, ay), (bx, by) = grads(image), grads(reference)
    a = np.concatenate([ax[gx_m], ay[gy_m]])
    b = np.concatenate([bx[gx_m], by[gy_m]])
    if a.std() == 0 or b.std() == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def erode(mask: np.ndarray, r: int) -> np.ndarray:
    """Pixels of `mask` whose whole (2r+1)^2 neighbourhood is in `mask` (outside counts as out)."""
    m = np.pad(mask, r, constant_values=False)
    out = np.ones_like(mask)
    H, W = mask.shape
    for dy in range(2 * r + 1):
        for dx in range(2 * r + 1):
            out &= m[dy:dy + H, dx:dx + W]
    return out


def dilate(mask: np.ndarray) -> np.ndarray:
    """`mask` grown by one pixel (8-neighbourhood)."""
    return ~erode(~mask, 1)
