"""Backgrounds for relighting composites that have none (classic backend): one of the lake's
backgrounds drawn per sample and cover-cropped to the canvas, or a generated backdrop (a seeded
two-colour gradient) when the lake has none or the spec asks for it. The choice is recorded.
"""
from __future__ import annotations

import hashlib
from typing import Callable

import cv2
import numpy as np

from soclake import imaging
from soclake.plan import cover_crop

Reader = Callable[[str, int, int], bytes]
COLUMNS = ("background_id", "pack", "offset", "length", "width", "height")


def pool(lake, sources: list[str]) -> dict[str, list]:
    """The lake's backgrounds a relight may draw from (columns of COLUMNS, by background_id)."""
    rows = lake.query("SELECT background_id, pack, \"offset\", length, width, height FROM backgrounds "
                      "WHERE len($s) = 0 OR list_contains($s, source) ORDER BY background_id", {"s": sources})
    return {c: rows.column(c).to_pylist() for c in COLUMNS}


def digest(backgrounds: dict[str, list]) -> str:
    """Identity of a background pool (its ids: ids are content hashes)."""
    return hashlib.sha256("\n".join(backgrounds["background_id"]).encode()).hexdigest()


def generated(rng: np.random.Generator, width: int, height: int) -> tuple[np.ndarray, dict]:
    """A smooth vertical gradient between two muted colours, drawn from rng."""
    top, bottom = (rng.integers(40, 216, 3) for _ in range(2))
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    img = (top[None, None, :] * (1 - t) + bottom[None, None, :] * t).astype(np.uint8)
    return np.ascontiguousarray(np.broadcast_to(img, (height, width, 3))), {
        "generated": {"top": top.tolist(), "bottom": bottom.tolist()}}


def draw(rng: np.random.Generator, width: int, height: int, backgrounds: dict[str, list] | None,
         read: Reader | None) -> tuple[np.ndarray, dict]:
    """A W x H background and its record: a lake background (cover-cropped) when there are any."""
    if not backgrounds or not backgrounds["background_id"] or read is None:
        return generated(rng, width, height)
    b = int(rng.integers(len(backgrounds["background_id"])))
    x, y, cw, ch = cover_crop(rng, backgrounds["width"][b], backgrounds["height"][b], width, height)
    photo = imaging.decode_rgb(read(backgrounds["pack"][b], backgrounds["offset"][b], backgrounds["length"][b]))
    region = photo[y:y + ch, x:x + cw]
    shrink = cw > width and ch > height
    img = cv2.resize(region, (width, height), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)
    return img, {"background_id": backgrounds["background_id"][b], "crop": [x, y, cw, ch]}


def compose_on(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """Straight-alpha RGB over an opaque background."""
    a = alpha.astype(np.float32)[..., None] * np.float32(1 / 255)
    out = rgb.astype(np.float32) * a + background.astype(np.float32) * (1 - a)
    return cv2.convertScaleAbs(out)
