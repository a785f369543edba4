"""A pool with known findings for the audit tests: two folder sources, planted near-duplicates
(within a source, across sources, a whole category of copies), holes, faint alpha, several
components, a tiny crop, an extreme aspect ratio, a thin and an over-represented category.

Every cut-out is a smooth random colour field under a wavy round silhouette (distinct seeds
give distinct perceptual hashes); the planted problems are made by editing those pixels.
"""
from __future__ import annotations

import cv2
import numpy as np
from conftest import save_png

from soclake.imaging import resize_rgba

OVER = 70  # segments of the over-represented category "person"


def cutout(seed: int, h: int = 72, w: int = 72) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.uniform(0, 255, (5, 5, 3)).astype(np.float32)
    rgb = cv2.resize(base, (w, h), interpolation=cv2.INTER_CUBIC) + rng.normal(0, 4, (h, w, 3))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dy, dx = (yy - h / 2) / (h / 2), (xx - w / 2) / (w / 2)
    theta = np.arctan2(dy, dx)
    k, phase, amp = int(rng.integers(2, 6)), rng.uniform(0, 2 * np.pi), rng.uniform(0.05, 0.15)
    edge = 0.85 * (1 + amp * np.sin(k * theta + phase)) - np.hypot(dy, dx)
    alpha = np.clip(edge * 12 + 0.5, 0, 1)
    a8 = (alpha * 255 + 0.5).astype(np.uint8)
    out = np.dstack([np.clip(rgb, 0, 255).astype(np.uint8), a8])
    out[a8 == 0, :3] = 0
    return out


def near_copy(rgba: np.ndarray, seed: int, scale: float = 0.9) -> np.ndarray:
    """The same cut-out rescaled, with fresh sensor noise: other bytes, the same look."""
    h, w = rgba.shape[:2]
    out = resize_rgba(rgba, round(w * scale), round(h * scale)).astype(np.int16)
    out[..., :3] += np.random.default_rng(seed).normal(0, 2, out[..., :3].shape).astype(np.int16)
    out = np.clip(out, 0, 255).astype(np.uint8)
    out[out[..., 3] == 0, :3] = 0
    return out


def with_holes(rgba: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    h, w = out.shape[:2]
    for cy, cx in ((0.4, 0.4), (0.4, 0.62), (0.62, 0.5)):
        cv2.circle(out, (int(cx * w), int(cy * h)), max(2, w // 16), (0, 0, 0, 0), -1)
    return out


def faint(rgba: np.ndarray) -> np.ndarray:
    out = rgba.copy()
    out[..., 3] = (out[..., 3].astype(np.float32) * 140 / 255).astype(np.uint8)
    return out


def pieces(seed: int) -> np.ndarray:
    """Five separate blobs on one transparent canvas."""
    canvas = np.zeros((96, 96, 4), np.uint8)
    for i, (y, x) in enumerate(((2, 2), (2, 60), (60, 2), (60, 60), (32, 32))):
        canvas[y:y + 30, x:x + 30] = cutout(seed * 10 + i, 30, 30)
    return canvas


def write_pool(root) -> dict:
    """Write the two sources under root/web and root/studio; return what the audit must find."""
    seed = 1000
    files: dict[str, np.ndarray] = {}

    def add(path: str, rgba: np.ndarray) -> None:
        files[path] = rgba

    for i in range(OVER):
        add(f"web/person/{i}.png", cutout(seed := seed + 1, 64, 64))
    for i in range(12):
        add(f"web/dog/{i}.png", cutout(seed := seed + 1))
    add("web/dog/faint0.png", faint(cutout(seed := seed + 1)))
    add("web/dog/faint1.png", faint(cutout(seed := seed + 1)))
    add("web/dog/stick.png", cutout(seed := seed + 1, 20, 160))
    add("web/dog/zz-copy.png", near_copy(files["web/dog/3.png"], 1))
    for i in range(10):
        add(f"web/cat/{i}.png", cutout(seed := seed + 1))
    add("web/cat/holes0.png", with_holes(cutout(seed := seed + 1)))
    add("web/cat/holes1.png", with_holes(cutout(seed := seed + 1)))
    add("web/cat/tiny.png", cutout(seed := seed + 1, 24, 24))
    add("studio/cat/3.png", near_copy(files["web/cat/3.png"], 2, 0.9))
    add("web/zebra/0.png", cutout(seed := seed + 1))
    add("web/zebra/1.png", cutout(seed := seed + 1))
    add("web/zebra/pieces.png", pieces(seed := seed + 1))
    teapot = cutout(seed := seed + 1, 96, 96)
    add("studio/teapot/0.png", teapot)
    for i in range(1, 10):
        add(f"studio/teapot/{i}.png", near_copy(teapot, 100 + i, 0.95 - 0.01 * i))
    for path, rgba in files.items():
        save_png(root / path, rgba)
    return {
        "near_duplicate_groups": {
            frozenset({"web:dog/3.png", "web:dog/zz-copy.png"}),
            frozenset({"web:cat/3.png", "studio:cat/3.png"}),
            frozenset({f"studio:teapot/{i}.png" for i in range(10)}),
        },
        "holes": {"cat/holes0.png", "cat/holes1.png"},
        "faint_alpha": {"dog/faint0.png", "dog/faint1.png"},
        "soft_alpha": {"dog/faint0.png", "dog/faint1.png"},
        "many_components": {"zebra/pieces.png"},
        "tiny": {"cat/tiny.png"},
        "extreme_aspect": {"dog/stick.png"},
        "thin": {"zebra"},                 # with min_segments = 5
        "thin_in_diversity": {"teapot"},
        "over_represented": {"person"},
    }


def build_lake(root):
    """write_pool under root/src, ingested into root/lake as sources web and studio."""
    from soclake import Lake
    from soclake.ingestion import ingest
    expected = write_pool(root / "src")
    lake = Lake(str(root / "lake"), create=True)
    for source in ("web", "studio"):
        ingest(lake, "folders", str(root / "src" / source), source_name=source, workers=1, progress=False)
    return lake, expected
