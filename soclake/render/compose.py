"""The renderer: a pure function of one plan row and the pool's bytes. It composites the
pastes bottom to top on a premultiplied float canvas, tracks the owner of every pixel, and
derives every annotation from the final pixels. Same inputs, same bytes.
"""
from __future__ import annotations

import io
import json
import re
from dataclasses import dataclass, field
from typing import Callable

import cv2
import numpy as np
from PIL import Image

from soclake import imaging
from soclake.errors import RejectedItem
from soclake.render import annotate
from soclake.render.blend import BLENDS

Reader = Callable[[str, int, int], bytes]
PNG_FAST = [cv2.IMWRITE_PNG_COMPRESSION, 1, cv2.IMWRITE_PNG_FILTER, cv2.IMWRITE_PNG_FILTER_SUB]


@dataclass
class Rendered:
    members: dict[str, bytes]        # extension -> bytes, in shard order
    info: dict                       # the KEY.json document
    annotations: list[dict] = field(default_factory=list)
    dropped: int = 0
    replaced: int = 0


class Canvas:
    """Premultiplied RGB (0..255) and alpha (0..1) in float32, plus the owner map."""

    def __init__(self, width: int, height: int, background: np.ndarray | None):
        self.w, self.h = width, height
        if background is None:
            self.rgb = np.zeros((height, width, 3), np.float32)
            self.alpha = np.zeros((height, width), np.float32)
        else:
            self.rgb = background.astype(np.float32)
            self.alpha = np.ones((height, width), np.float32)
        self.owner = np.zeros((height, width), np.int32)
        self.fg = np.zeros((height, width), np.float32)

    def clip(self, x: int, y: int, w: int, h: int):
        """Canvas and patch slices of a patch at (x, y); None if it misses the canvas."""
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))

    def paste(self, prem: np.ndarray, a8: np.ndarray, x: int, y: int, label: int, labelled: bool) -> None:
        sl = self.clip(x, y, a8.shape[1], a8.shape[0])
        if sl is None:
            return
        dst, src = sl
        a = a8[src].astype(np.float32) * np.float32(1 / 255)
        inv = 1 - a
        self.rgb[dst] = prem[src] + self.rgb[dst] * inv[..., None]
        self.alpha[dst] = a + self.alpha[dst] * inv
        self.fg[dst] = (a + self.fg[dst] * inv) if labelled else self.fg[dst] * inv
        self.owner[dst][a8[src] >= imaging.MASK_THRESHOLD] = label


def _cover(bg: np.ndarray, crop: list[int], w: int, h: int) -> np.ndarray:
    x, y, cw, ch = crop
    region = bg[y:y + ch, x:x + cw]
    interp = cv2.INTER_AREA if cw > w and ch > h else cv2.INTER_LINEAR
    return cv2.resize(region, (w, h), interpolation=interp)


def pick_level(levels: list[dict], w: int, h: int) -> dict:
    """The smallest pyramid level at least as large as the paste (the largest otherwise)."""
    fitting = [lv for lv in levels if lv["width"] >= w and lv["height"] >= h]
    return fitting[-1] if fitting else levels[0]


def _segment_patch(read: Reader, seg: dict, w: int, h: int) -> np.ndarray:
    lv = pick_level(seg["levels"], w, h)
    return imaging.resize_rgba(imaging.decode_level(read(lv["pack"], lv["offset"], lv["length"])), w, h)


def _rotate(patch: np.ndarray, angle: float) -> tuple[np.ndarray, int, int]:
    """Rotate about the centre, growing the patch; returns it and the shift of its corner."""
    h, w = patch.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    a = patch[..., 3:4].astype(np.float32) / 255
    prem = np.dstack([patch[..., :3] * a, a * 255])
    out = cv2.warpAffine(prem, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    alpha = np.clip(out[..., 3] + 0.5, 0, 255)
    rgb = out[..., :3] * (255 / np.maximum(out[..., 3:4], 1e-3))
    res = np.dstack([np.clip(rgb + 0.5, 0, 255), alpha]).astype(np.uint8)
    res[res[..., 3] == 0, :3] = 0
    return res, (nw - w) // 2, (nh - h) // 2


def _poisson(canvas: Canvas, patch: np.ndarray, x: int, y: int) -> np.ndarray | None:
    """Seamless-clone colours for a patch fully inside a backgrounded canvas (else None)."""
    h, w = patch.shape[:2]
    if x < 1 or y < 1 or x + w > canvas.w - 1 or y + h > canvas.h - 1 or canvas.alpha.min() < 1:
        return None
    mask = np.where(patch[..., 3] >= imaging.MASK_THRESHOLD, 255, 0).astype(np.uint8)
    if not mask.any():
        return None
    ys, xs = np.nonzero(mask)
    # seamlessClone centres the mask's bounding box at `center`
    cx = x + (xs.min() + xs.max() + 1) // 2
    cy = y + (ys.min() + ys.max() + 1) // 2
    dst = np.clip(canvas.rgb + 0.5, 0, 255).astype(np.uint8)
    # seamlessClone writes into the mask it is given: hand it a copy
    out = cv2.seamlessClone(np.ascontiguousarray(patch[..., :3]), dst, mask.copy(), (int(cx), int(cy)),
                            cv2.NORMAL_CLONE)
    return out[y:y + h, x:x + w].astype(np.float32) * (mask[..., None].astype(np.float32) / 255)


def render_image(plan: dict, segments: dict[str, dict], backgrounds: dict[str, dict], read: Reader,
                 options: dict, provenance: dict) -> Rendered:
    W, H = plan["width"], plan["height"]
    rng = np.random.default_rng(plan["seed"])
    bg_cache: dict[str, np.ndarray] = {}

    def background(bid: str) -> np.ndarray:
        if bid not in bg_cache:
            b = backgrounds[bid]
            bg_cache[bid] = imaging.decode_rgb(read(b["pack"], b["offset"], b["length"]))
        return bg_cache[bid]

    base = _cover(background(plan["background_id"]), plan["background_crop"], W, H) if plan["background_id"] else None
    canvas = Canvas(W, H, base)
    objects: list[dict] = []   # labelled pastes, in layer order
    failures: list[dict] = []
    for paste in plan["objects"]:
        patch, used, replaced_from = _load_patch(paste, segments, read, failures, background)
        if patch is None:
            continue
        if paste["flip"]:
            patch = np.ascontiguousarray(patch[:, ::-1])
        x, y = paste["x"], paste["y"]
        if paste["angle"]:
            patch, dx, dy = _rotate(patch, paste["angle"])
            x, y = x - dx, y - dy
        mode = paste["blend"]
        prem, a8, pad = BLENDS[mode](patch, rng, options)
        x, y = x - pad, y - pad
        if mode == "poisson":
            cloned = _poisson(canvas, patch, x, y)
            if cloned is None:
                mode = "none"
            else:
                prem = cloned
        labelled = paste["role"] == "object"
        label = len(objects) + 1 if labelled else 0
        canvas.paste(prem, a8, x, y, label, labelled)
        if labelled:
            ys, xs = np.nonzero(a8 >= imaging.MASK_THRESHOLD)
            objects.append({"paste": paste, "segment_id": used, "replaced": replaced_from, "blend": mode,
                            "full_area": len(ys),
                            "box": (max(x, 0), max(y, 0), min(x + a8.shape[1], W), min(y + a8.shape[0], H))})
    return _finish(plan, canvas, objects, failures, segments, options, provenance)


def _load_patch(paste: dict, segments: dict, read: Reader, failures: list, background):
    """Resized RGBA patch of a paste; a failed pack read falls back to the planned fallback."""
    w, h = paste["w"], paste["h"]
    for sid in dict.fromkeys([paste["segment_id"], paste["fallback_id"]]):
        try:
            patch = _segment_patch(read, segments[sid], w, h)
        except (OSError, RejectedItem, KeyError, ValueError) as e:
            # no object addresses in the message: samples must be byte-identical across runs
            failures.append({"segment_id": sid, "error": re.sub(r" at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")[:300]})
            continue
        if paste["role"] == "decoy":
            sx, sy, sw, sh = paste["source_box"]
            texture = background(paste["source_background_id"])[sy:sy + sh, sx:sx + sw]
            patch = np.dstack([cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR), patch[..., 3]])
        return patch, sid, (paste["segment_id"] if sid != paste["segment_id"] else None)
    return None, None, None


def _finish(plan: dict, canvas: Canvas, objects: list[dict], failures: list, segments: dict, options: dict,
            provenance: dict) -> Rendered:
    W, H = canvas.w, canvas.h
    pan, ids, area = annotate.panoptic_ids(canvas.owner, len(objects), options["min_visible_area"])
    scratch = np.zeros((H, W), np.uint8, order="F")
    instances = []
    for layer, (obj, pid) in enumerate(zip(objects, ids)):
        if not pid:
            continue
        x0, y0, x1, y1 = obj["box"]
        rle = annotate.instance_rle(pan, int(pid), (x0, y0, x1, y1), scratch)
        seg = segments[obj["segment_id"]]
        instances.append({
            "panoptic_id": int(pid), "ann_id": plan["image_id"] * 1000 + int(pid),
            "category_id": int(obj["paste"]["category_id"]), "category": seg["category"],
            "segment_id": obj["segment_id"], "bbox": rle["bbox"], "area": rle["area"],
            "segmentation": {"size": rle["size"], "counts": rle["counts"]}, "iscrowd": 0,
            "visible_fraction": rle["area"] / max(obj["full_area"], 1), "layer": layer, "blend": obj["blend"],
            "replaced_segment_id": obj["replaced"],
            "attributes": {k: seg.get(k) for k in ("subcategory", "short_phrase", "description", "features",
                                                    "dominant_color")},
        })
    members, file_name = _encode(plan, canvas, pan, options)
    info = {"key": plan["key"], "image_id": plan["image_id"], "width": W, "height": H, "file_name": file_name,
            "background_id": plan["background_id"], "instances": instances,
            "dropped": int(len(objects) - len(instances)), "failed_reads": failures, **provenance,
            "seed": plan["seed"]}
    members["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    members = {k: members[k] for k in sorted(members, key=_member_order)}
    return Rendered(members, info, instances, dropped=info["dropped"],
                    replaced=sum(1 for o in objects if o["replaced"]))


def _member_order(ext: str) -> tuple:
    return (0 if ext.split(".")[-1] in ("jpg", "png", "webp") and not ext.startswith(("pan", "fg")) else 1, ext)


def _encode(plan: dict, canvas: Canvas, pan: np.ndarray, options: dict) -> tuple[dict[str, bytes], str]:
    members: dict[str, bytes] = {}
    if plan["background_id"]:
        rgb = np.clip(canvas.rgb + 0.5, 0, 255).astype(np.uint8)
        ext = options["format"]
        members[ext] = encode_image(rgb, ext, options["quality"])
    else:
        alpha = canvas.alpha
        rgb = canvas.rgb / np.maximum(alpha, 1e-6)[..., None]
        rgba = np.dstack([np.clip(rgb + 0.5, 0, 255), np.clip(alpha * 255 + 0.5, 0, 255)]).astype(np.uint8)
        rgba[rgba[..., 3] == 0, :3] = 0
        ext = "rgba.webp" if options["format"] == "webp" else "rgba.png"
        members[ext] = encode_image(rgba, ext.split(".")[-1], options["quality"])
    members["pan.png"] = cv2.imencode(".png", annotate.encode_pan_rgb(pan)[..., ::-1], PNG_FAST)[1].tobytes()
    if options["fg_mask"]:
        fg = np.clip(canvas.fg * 255 + 0.5, 0, 255).astype(np.uint8)
        members["fg.png"] = cv2.imencode(".png", fg, PNG_FAST)[1].tobytes()
    return members, f"{plan['key']}.{ext}"


def encode_image(arr: np.ndarray, ext: str, quality: int) -> bytes:
    """JPEG through Pillow; PNG through OpenCV (SUB filter, level 1: ~2x Pillow's speed);
    WebP lossless (fastest method). All deterministic for the same input."""
    if ext == "jpg":
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
        return buf.getvalue()
    if ext == "png":
        order = [2, 1, 0, 3] if arr.shape[2] == 4 else [2, 1, 0]
        return cv2.imencode(".png", np.ascontiguousarray(arr[..., order]), PNG_FAST)[1].tobytes()
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True)
    return buf.getvalue()
