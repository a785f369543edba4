"""The built-in sample pool for the demo and tests: procedurally drawn objects whose
categories and attributes (colour, material, shape) are known words, written in the SOC
layout, plus real background photos that ship with scikit-image.

Output is a pure function of the seed.
"""
from __future__ import annotations

import io
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from soclake import storage
from soclake.errors import SoclakeError

COLORS = {"red": (200, 30, 35), "orange": (240, 130, 20), "yellow": (235, 205, 40), "green": (50, 150, 60),
          "blue": (40, 80, 200), "purple": (120, 50, 150), "pink": (240, 140, 180), "brown": (120, 75, 40),
          "white": (235, 235, 230), "black": (30, 30, 32), "grey": (128, 128, 128)}
MATERIALS = ("wooden", "metal", "plastic", "fabric", "stone")
SHAPES = {"ball": "round", "box": "square", "star": "five-pointed", "ring": "ring-shaped",
          "kite": "diamond-shaped", "pill": "capsule-shaped", "heart": "heart-shaped", "moon": "crescent"}
BACKGROUND_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg", "motorcycle_left.png",
                     "hubble_deep_field.jpg", "brick.png", "grass.png", "gravel.png")


def _outline(shape: str, s: int, rng: np.random.Generator) -> Image.Image:
    """Binary shape mask drawn at size s x s (supersampled by the caller)."""
    m = Image.new("L", (s, s), 0)
    d = ImageDraw.Draw(m)
    p = s * 0.06
    if shape == "ball":
        d.ellipse([p, p, s - p, s - p], fill=255)
    elif shape == "box":
        d.rounded_rectangle([p, p, s - p, s - p], radius=s * 0.08, fill=255)
    elif shape == "star":
        pts = [(s / 2 + (s / 2 - p) * (1 if k % 2 == 0 else 0.45) * math.sin(k * math.pi / 5),
                s / 2 - (s / 2 - p) * (1 if k % 2 == 0 else 0.45) * math.cos(k * math.pi / 5)) for k in range(10)]
        d.polygon(pts, fill=255)
    elif shape == "ring":
        d.ellipse([p, p, s - p, s - p], fill=255)
        d.ellipse([s * 0.3, s * 0.3, s * 0.7, s * 0.7], fill=0)
    elif shape == "kite":
        d.polygon([(s / 2, p), (s - p, s * 0.4), (s / 2, s - p), (p, s * 0.4)], fill=255)
    elif shape == "pill":
        d.rounded_rectangle([p, s * 0.3, s - p, s * 0.7], radius=s * 0.2, fill=255)
    elif shape == "heart":
        r = s * 0.24
        d.ellipse([s / 2 - 2 * r, s * 0.18, s / 2, s * 0.18 + 2 * r], fill=255)
        d.ellipse([s / 2, s * 0.18, s / 2 + 2 * r, s * 0.18 + 2 * r], fill=255)
        d.polygon([(s / 2 - 2 * r + 2, s * 0.18 + r * 1.3), (s / 2 + 2 * r - 2, s * 0.18 + r * 1.3), (s / 2, s - p)],
                  fill=255)
    elif shape == "moon":
        d.ellipse([p, p, s - p, s - p], fill=255)
        off = s * rng.uniform(0.25, 0.35)
        d.ellipse([p + off, p - off * 0.3, s - p + off, s - p - off * 0.3], fill=0)
    return m


def _texture(material: str, color: tuple, w: int, h: int, rng: np.random.Generator) -> np.ndarray:
    base = np.array(color, np.float32)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    shade = 1.15 - 0.35 * ((xx / w - 0.35) ** 2 + (yy / h - 0.3) ** 2) ** 0.5
    if material == "wooden":
        f = rng.uniform(0.08, 0.16)
        tex = 1 + 0.12 * np.sin(xx * f + 3 * np.sin(yy * 0.02))
    elif material == "metal":
        tex = 0.8 + 0.5 * np.clip(1 - np.abs(xx / w - 0.3) * 3, 0, 1)
    elif material == "plastic":
        tex = 1 + 0.5 * np.exp(-(((xx / w - 0.3) ** 2 + (yy / h - 0.25) ** 2) / 0.01))
    elif material == "fabric":
        tex = 1 + 0.08 * (np.sin(xx * 0.9) * np.sin(yy * 0.9)) + rng.normal(0, 0.04, (h, w))
    else:  # stone
        tex = 1 + rng.normal(0, 0.09, (h, w))
    rgb = base[None, None, :] * (shade * tex)[..., None] + rng.normal(0, 3, (h, w, 3))
    return np.clip(rgb, 0, 255).astype(np.uint8)


def make_segment(shape: str, color: str, material: str, rng: np.random.Generator) -> np.ndarray:
    side = int(rng.integers(160, 320))
    aspect = rng.uniform(0.75, 1.3)
    m = _outline(shape, side * 2, rng).resize((side * 2, int(side * 2 / aspect)))
    m = m.rotate(float(rng.uniform(-25, 25)), resample=Image.BICUBIC, expand=True)
    m = m.filter(ImageFilter.GaussianBlur(1.0)).resize((m.width // 2, m.height // 2), Image.LANCZOS)
    canvas = (m.width + 20, m.height + 20)
    alpha = Image.new("L", canvas, 0)
    alpha.paste(m, (10, 10))
    a = np.asarray(alpha)
    rgb = _texture(material, COLORS[color], canvas[0], canvas[1], rng)
    rgb[a == 0] = 0
    return np.dstack([rgb, a])


def write_sample_pool(out: str, seed: int = 0, ids: int = 3, subcategories: int = 4) -> dict:
    """Write OUT/segments (SOC layout + metadata + quality flags) and OUT/backgrounds."""
    rng = np.random.default_rng(seed)
    meta, quality = {}, {}
    names = list(COLORS)
    combos = [(c, m) for c in names for m in MATERIALS]
    for shape, shape_word in SHAPES.items():
        for pick in rng.choice(len(combos), subcategories, replace=False):
            color, material = combos[int(pick)]
            sub = f"{color}-{material}"
            meta[f"{shape}_{sub}"] = {
                "description": f"A {shape_word} {color} {material} {shape} on a plain background.",
                "short_phrase": f"{color} {material} {shape}",
                "features": [color, material, shape_word],
            }
            folder = _folders(out, "segments", shape, sub)
            for i in range(ids):
                rgba = make_segment(shape, color, material, rng)
                buf = io.BytesIO()
                Image.fromarray(rgba, "RGBA").save(buf, "PNG", compress_level=1)
                storage.write_bytes(storage.LOCAL, os.path.join(folder, f"{i}.png"), buf.getvalue())
                quality[f"{shape}/{sub}/{i}.png"] = {k: bool(rng.random() < 0.9)
                                                     for k in ("IsInstance", "Integrity", "QualityAndRegularity")}
    for name, doc in (("sample_metadata.json", meta), ("segment_quality.json", quality)):
        storage.write_bytes(storage.LOCAL, os.path.join(_folders(out, "segments"), name),
                            json.dumps(doc, indent=1, sort_keys=True).encode())
    n_bg = copy_background_photos(os.path.join(_folders(out), "backgrounds"))
    return {"segments": len(quality), "categories": len(SHAPES), "backgrounds": n_bg}


def copy_background_photos(out: str) -> int:
    try:  # an optional extra (demo): only the sample backgrounds need it
        import skimage.data
    except ImportError:
        raise SoclakeError("the sample backgrounds come from scikit-image; pip install 'soclake[demo]'") from None
    src = os.path.dirname(skimage.data.__file__)
    storage.make_folder(out)
    n = 0
    for name in BACKGROUND_PHOTOS:
        if os.path.exists(os.path.join(src, name)):
            with open(os.path.join(src, name), "rb") as f:
                storage.write_bytes(storage.LOCAL, os.path.join(out, name), f.read())
            n += 1
    return n


def _folders(root: str, *names: str) -> str:
    """root/names..., each made a real folder (never one a planted link points to)."""
    path = storage.make_folder(root)
    for name in names:
        path = storage.make_folder(os.path.join(path, name))
    return path
