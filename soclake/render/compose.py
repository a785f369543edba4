"""The renderer: a pure function of one plan row and the pool's bytes. It composites the
pastes bottom to top on a premultiplied float canvas, tracks the owner of every pixel, and
derives every annotation from the final pixels, keeping only instances the final image shows
(render/visibility.py). Same inputs, same bytes.

Each paste draws its randomness from its own seed and keeps its panoptic id, so a variant
that removes or adds one object renders every other object exactly as its base does.
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

from soclake import imaging, pngcodec
from soclake.errors import RejectedItem, SoclakeError
from soclake.render import annotate, poisson, scene_facts, visibility
from soclake.render.blend import BLENDS
from soclake.shards.tar import sample_key

Reader = Callable[[str, int, int], bytes]


@dataclass
class Rendered:
    members: dict[str, bytes]        # extension -> bytes, in shard order
    info: dict                       # the KEY.json document
    annotations: list[dict] = field(default_factory=list)
    dropped: int = 0
    replaced: int = 0
    unseen: int = 0                  # of the dropped: failed the visibility test
    unreadable: int = 0              # failed segment reads ([render] on_unreadable replace / drop)


Slices = tuple[slice, slice]


@dataclass
class Layer:
    """One paste as drawn: where (None if it missed the canvas), the 8-bit alpha that was
    composited there (for poisson: 255 where the clone drew the object), and, for labelled
    pastes, what lay under it and its own colours, for the visibility test."""
    dst: Slices | None
    alpha8: np.ndarray | None
    label: int
    labelled: bool
    blend: str                # the mode really used
    full_area: int            # mask pixels of the whole paste, cut by the canvas or not
    under: np.ndarray | None = None  # the canvas before the paste (Canvas.pixels8)
    own: tuple[np.ndarray, np.ndarray] | None = None  # the object's straight rgb as blended and its alpha, uint8


class Canvas:
    """Premultiplied RGB (0..255) and alpha (0..1) in float32, the owner map, and the canvas
    as uint8 (pixels8), brought up to date inside each paste's box as it is drawn."""

    def __init__(self, width: int, height: int, background: np.ndarray | None, max_label: int):
        self.w, self.h = width, height
        self.opaque = background is not None  # alpha stays 1 everywhere: pastes only add coverage
        if background is None:
            self.rgb = np.zeros((height, width, 3), np.float32)
            self.alpha = np.zeros((height, width), np.float32)
            self.px8 = np.zeros((height, width, 4), np.uint8)
        else:
            self.rgb = background.astype(np.float32)
            self.alpha = np.ones((height, width), np.float32)
            self.px8 = background.copy() if background.dtype == np.uint8 else cv2.convertScaleAbs(self.rgb)
        self.owner = np.zeros((height, width), annotate.owner_dtype(max_label))

    def clip(self, x: int, y: int, w: int, h: int):
        """Canvas and patch slices of a patch at (x, y); None if it misses the canvas."""
        x0, y0, x1, y1 = max(x, 0), max(y, 0), min(x + w, self.w), min(y + h, self.h)
        if x0 >= x1 or y0 >= y1:
            return None
        return (slice(y0, y1), slice(x0, x1)), (slice(y0 - y, y1 - y), slice(x0 - x, x1 - x))

    def paste(self, prem: np.ndarray, a8: np.ndarray, dst: Slices, src: Slices, label: int) -> None:
        """Composite premultiplied rgb with its 8-bit alpha, touching only pixels where it is
        above 0: copied where it is 255, blended (over the canvas) where it is in between.
        The owner is `label` where a8 >= 128."""
        a, p = a8[src], pixel_rows(prem[src])
        rgb, alpha = self.rgb[dst], self.alpha[dst]  # views: update the canvas in place
        solid = a == 255
        cv2.copyTo(p, solid.view(np.uint8), rgb)  # writes into the view
        if not self.opaque:
            alpha[solid] = 1
        soft = (a > 0) & ~solid
        n_soft = int(np.count_nonzero(soft))
        if n_soft * 4 < soft.size:  # an edge band: blend just those pixels
            at = imaging.nonzero(soft)
            inv = 1 - a[at].astype(np.float32) * np.float32(1 / 255)
            rgb[at] = rgb[at] * inv[:, None] + p[at]
            if not self.opaque:
                alpha[at] = alpha[at] * inv + (1 - inv)
        elif n_soft:  # mostly soft (feathered, blurred): blend the box, keep the blend where soft
            inv = 1 - a.astype(np.float32) * np.float32(1 / 255)
            np.copyto(rgb, rgb * inv[..., None] + p, where=soft[..., None])
            if not self.opaque:
                np.copyto(alpha, alpha * inv + (1 - inv), where=soft)
        self.owner[dst][a >= imaging.MASK_THRESHOLD] = label
        self._sync(dst)

    def rewrite(self, dst: Slices, clone: poisson.Clone, label: int) -> None:
        """Put a seamless clone in place (an opaque canvas): its whole box is rewritten, the
        owner is `label` only where the clone drew the object."""
        self.rgb[dst][clone.box] = clone.rgb
        self.owner[dst][clone.written > 0] = label
        self._sync(dst)

    def _sync(self, dst: Slices) -> None:
        """pixels8 inside `dst` from the float canvas (rounded and saturated as OpenCV does)."""
        rgb = cv2.convertScaleAbs(self.rgb[dst])
        if self.opaque:
            self.px8[dst] = rgb
        else:
            cv2.merge([rgb, cv2.convertScaleAbs(self.alpha[dst], alpha=255)], dst=self.px8[dst])

    def pixels8(self, dst: Slices | None = None) -> np.ndarray:
        """The canvas as uint8: RGB on an opaque canvas, else premultiplied RGBA. The whole
        canvas is the live array (read it, do not write it); a rectangle of it is a copy."""
        return self.px8 if dst is None else self.px8[dst].copy()

    def straight_rgb(self, alpha8: np.ndarray) -> np.ndarray:
        """Un-premultiplied 8-bit RGB (colour 0 where the 8-bit alpha is 0). Only pixels whose
        alpha is neither 0 nor 1 need the division: elsewhere the colour is the canvas's."""
        rgb = cv2.cvtColor(self.px8, cv2.COLOR_RGBA2RGB) if not self.opaque else self.px8.copy()
        soft = imaging.nonzero((self.alpha != 1) & (alpha8 > 0))
        if soft[0].size:  # float32 throughout, rounded half to even: what OpenCV's dense form computes
            inv = np.float32(1) / np.maximum(self.alpha[soft], np.float32(1e-6))
            rgb[soft] = np.clip(np.rint(self.rgb[soft] * inv[:, None]), 0, 255).astype(np.uint8)
        return cv2.bitwise_and(rgb, rgb, mask=alpha8)


def pixel_rows(a: np.ndarray) -> np.ndarray:
    """`a` itself if OpenCV can read it in place (each row's pixels contiguous: a rectangle of
    a contiguous image), else a contiguous copy (a channel subset, a flipped view)."""
    pixel = a.itemsize * (a.shape[2] if a.ndim == 3 else 1)
    inner = a.strides[1:] == ((pixel, a.itemsize) if a.ndim == 3 else (a.itemsize,))
    return a if inner and a.strides[0] >= pixel * a.shape[1] else np.ascontiguousarray(a)


def _cover(bg: np.ndarray, crop: list[int], w: int, h: int) -> np.ndarray:
    x, y, cw, ch = crop
    region = bg[y:y + ch, x:x + cw]
    interp = cv2.INTER_AREA if cw > w and ch > h else cv2.INTER_LINEAR
    return cv2.resize(region, (w, h), interpolation=interp)


def pick_level(levels: list[dict], w: int, h: int) -> dict:
    """The smallest pyramid level at least as large as the paste (the largest otherwise)."""
    fitting = [lv for lv in levels if lv["width"] >= w and lv["height"] >= h]
    return fitting[-1] if fitting else levels[0]


def _resize(prem: np.ndarray, w: int, h: int) -> np.ndarray:
    if (prem.shape[1], prem.shape[0]) == (w, h):
        return prem
    shrinking = w < prem.shape[1] and h < prem.shape[0]
    return cv2.resize(prem, (w, h), interpolation=cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR)


def _rotate(prem: np.ndarray, angle: float) -> tuple[np.ndarray, int, int]:
    """Rotate a premultiplied patch about its centre, growing it; returns it and the shift."""
    h, w = prem.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    nw, nh = int(np.ceil(h * sin + w * cos)), int(np.ceil(h * cos + w * sin))
    m[0, 2] += nw / 2 - w / 2
    m[1, 2] += nh / 2 - h / 2
    out = cv2.warpAffine(prem, m, (nw, nh), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    return out, (nw - w) // 2, (nh - h) // 2


def _straight(prem: np.ndarray, a8: np.ndarray) -> np.ndarray:
    """Straight rgb uint8 of premultiplied rgb (0 where the alpha is 0)."""
    if a8.size <= 4:  # OpenCV reads an array of up to 4 values as a scalar: the same arithmetic in numpy
        inv = (255.0 / np.maximum(a8, 1).astype(np.float64)).astype(np.float32)
        return np.clip(np.rint(prem * inv[..., None]), 0, 255).astype(np.uint8)
    inv = cv2.divide(255.0, cv2.max(a8, 1).astype(np.float32))
    return cv2.convertScaleAbs(cv2.multiply(pixel_rows(prem), cv2.cvtColor(inv, cv2.COLOR_GRAY2RGB)))


def _paste(canvas: Canvas, mode: str, patch: np.ndarray, prem: np.ndarray, a8: np.ndarray, x: int, y: int,
           label: int, labelled: bool) -> Layer:
    """Draw one blended paste and record how. Poisson falls back to blend none (straight
    colours, soft alpha) where it cannot run: on a transparent canvas, for a patch that is
    not wholly on the canvas, or for an object too thin for the clone to draw any of it."""
    h, w = a8.shape
    sl = canvas.clip(x, y, w, h)
    if sl is None:
        return Layer(None, None, label, labelled, mode, int(np.count_nonzero(a8 >= imaging.MASK_THRESHOLD)))
    dst, src = sl
    under = canvas.pixels8(dst) if labelled else None
    if mode == "poisson":
        clone = straight = None
        if canvas.opaque and x >= 0 and y >= 0 and x + w <= canvas.w and y + h <= canvas.h:
            straight = _straight(patch[..., :3], cv2.convertScaleAbs(patch[..., 3]))
            clone = poisson.clone(under if under is not None else canvas.pixels8(dst), straight, a8)
        if clone is not None:
            canvas.rewrite(dst, clone, label)
            own = (straight, a8) if labelled else None
            return Layer(dst, clone.written, label, labelled, mode, int(np.count_nonzero(clone.written)), under, own)
        mode = "none"
        prem, a8, _ = BLENDS["none"](patch, None, {})  # blend none reads no randomness and no parameter
    canvas.paste(prem, a8, dst, src, label)
    return Layer(dst, a8[src], label, labelled, mode, int(np.count_nonzero(a8 >= imaging.MASK_THRESHOLD)), under,
                 (_straight(prem[src], a8[src]), a8[src]) if labelled else None)


def render_image(plan: dict, segments: dict[str, dict], backgrounds: dict[str, dict], read: Reader,
                 options: dict, provenance: dict) -> Rendered:
    W, H = plan["width"], plan["height"]
    bg_cache: dict[str, np.ndarray] = {}

    def background(bid: str) -> np.ndarray:
        if bid not in bg_cache:
            b = backgrounds[bid]
            try:
                bg_cache[bid] = imaging.decode_rgb(read(b["pack"], b["offset"], b["length"]))
            except (OSError, RejectedItem, ValueError) as e:
                raise UnreadablePixels(f"background {bid} cannot be read from {b['pack']} at offset {b['offset']} "
                                       f"({read_error(e)}); {CHECK_PACKS}") from None
        return bg_cache[bid]

    base = _cover(background(plan["background_id"]), plan["background_crop"], W, H) if plan["background_id"] else None
    keys = object_keys(plan["objects"])
    canvas = Canvas(W, H, base, max((label for _, label in keys), default=0))
    objects: list[dict] = []   # labelled pastes, in layer order
    layers: list[Layer] = []   # every paste, bottom to top
    failures: list[dict] = []
    tracker = scene_facts.PasteTracker(W, H, len(plan["objects"]))
    for z, (paste, (seed, label)) in enumerate(zip(plan["objects"], keys)):
        patch, used, replaced_from = _load_patch(paste, segments, read, failures, background,
                                                 options.get("on_unreadable", "fail"))
        if patch is None:
            continue
        x, y = paste["x"], paste["y"]
        if paste["angle"]:
            patch, dx, dy = _rotate(patch, paste["angle"])
            x, y = x - dx, y - dy
        mode = paste["blend"]
        prem, a8, pad = BLENDS[mode](patch, np.random.default_rng([plan["seed"], seed]), options)
        x, y = x - pad, y - pad
        labelled = paste["role"] == "object"
        layer = _paste(canvas, mode, patch, prem, a8, x, y, label, labelled)
        layers.append(layer)
        tracker.record(layer.dst, layer.alpha8, z, paste["role"])
        if labelled:
            objects.append({"paste": paste, "label": label, "segment_id": used, "replaced": replaced_from,
                            "drawn": layer, "z": z,
                            "box": (max(x, 0), max(y, 0), min(x + a8.shape[1], W), min(y + a8.shape[0], H))})
    return _finish(plan, canvas, objects, layers, failures, segments, options, provenance, tracker)


def object_keys(pastes: list[dict]) -> list[tuple[int, int]]:
    """(seed, panoptic id) of each paste; plans written before these were stored get their
    positions (seed = index, ids 1, 2, ... over labelled objects)."""
    keys, label = [], 0
    for i, p in enumerate(pastes):
        label += p["role"] == "object"
        seed = p.get("seed")
        pid = p.get("panoptic_id")
        keys.append((i if seed is None else seed, 0 if p["role"] != "object" else label if pid is None else pid))
    return keys


class UnreadablePixels(SoclakeError):
    """A segment or background the plan needs cannot be read: its shard fails (not committed,
    retried, reported) unless the spec opts in with [render] on_unreadable."""


CHECK_PACKS = ("run `soclake verify --deep` to check the lake's packs, then restore the pack or re-ingest its "
               "source (or set [render] on_unreadable = \"replace\" or \"drop\" to render without it)")


def read_error(e: BaseException) -> str:
    """Why a read failed, without paths or object addresses: recorded in sample JSON, which must
    hold no local paths and be byte-identical across runs and machines."""
    if isinstance(e, OSError):
        return f"{type(e).__name__}: {e.strerror or 'I/O error'}"
    text = re.sub(r" at 0x[0-9a-f]+", "", f"{type(e).__name__}: {e}")
    return re.sub(r"(?<![\w.])/[^\s'\"]+", "<path>", text)[:300]


def _load_patch(paste: dict, segments: dict, read: Reader, failures: list, background, on_unreadable: str = "fail"):
    """Premultiplied patch of a paste at its size. A segment that cannot be read raises
    UnreadablePixels unless `on_unreadable` is "replace" (the plan's fallback, when it reads)
    or "drop" (no patch); either way the failed read is recorded in `failures`."""
    w, h = paste["w"], paste["h"]
    tried = [paste["segment_id"]] + ([paste["fallback_id"]] if on_unreadable == "replace" else [])
    for sid in dict.fromkeys(tried):
        lv: dict = {}
        try:
            lv = pick_level(segments[sid]["levels"], w, h)
            rgba = imaging.decode_level(read(lv["pack"], lv["offset"], lv["length"]))
        except (OSError, RejectedItem, KeyError, ValueError) as e:
            where = f"{lv['pack']} at offset {lv['offset']}" if lv else "the task (no such segment row)"
            if on_unreadable == "fail":
                raise UnreadablePixels(f"segment {sid} cannot be read from {where} ({read_error(e)}); "
                                       f"{CHECK_PACKS}") from None
            failures.append({"segment_id": sid, "pack": lv.get("pack"), "error": read_error(e)})
            continue
        if paste["flip"]:
            rgba = cv2.flip(rgba, 1)
        if paste["role"] == "decoy":
            alpha = cv2.resize(np.ascontiguousarray(rgba[..., 3]), (w, h), interpolation=cv2.INTER_LINEAR)
            sx, sy, sw, sh = paste["source_box"]
            texture = background(paste["source_background_id"])[sy:sy + sh, sx:sx + sw]
            prem = imaging.premultiply(np.dstack([cv2.resize(texture, (w, h), interpolation=cv2.INTER_LINEAR), alpha]))
        else:
            prem = _resize(imaging.premultiply(rgba), w, h)
        return prem, sid, (paste["segment_id"] if sid != paste["segment_id"] else None)
    return None, None, None


def _visible(canvas: Canvas, objects: list[dict], pan: np.ndarray, ids: np.ndarray,
             options: dict) -> tuple[np.ndarray, np.ndarray, list[float | None], int]:
    """The visibility test on every instance still annotated. Returns the pan map and ids
    with those that fail it voided, each object's shown fraction (None where it was dropped
    before the test) and how many failed."""
    final = canvas.pixels8()
    fractions: list[float | None] = []
    for obj, pid in zip(objects, ids):
        d = obj["drawn"]
        fractions.append(visibility.shown_fraction(final[d.dst], d.under, *d.own, pan[d.dst] == pid,
                                                   options["min_contrast"], options["min_detail"]) if pid else None)
    unseen = np.array([f is not None and f < options["min_shown"] for f in fractions], bool)
    return annotate.void(pan, ids[unseen]), np.where(unseen, 0, ids).astype(ids.dtype), fractions, int(unseen.sum())


def _finish(plan: dict, canvas: Canvas, objects: list[dict], layers: list[Layer], failures: list, segments: dict,
            options: dict, provenance: dict, tracker: scene_facts.PasteTracker) -> Rendered:
    W, H = canvas.w, canvas.h
    labels = np.array([o["label"] for o in objects], np.int64)
    pan, ids, area = annotate.panoptic_ids(canvas.owner, labels, options["min_visible_area"])
    pan, ids, fractions, unseen = _visible(canvas, objects, pan, ids, options)
    instances = []
    for layer, (obj, pid) in enumerate(zip(objects, ids)):
        if not pid:
            continue
        x0, y0, x1, y1 = obj["box"]
        rle = annotate.instance_rle(pan, int(pid), (x0, y0, x1, y1))
        seg = segments[obj["segment_id"]]
        instances.append({
            "panoptic_id": int(pid), "ann_id": plan["image_id"] * 1000 + int(pid),
            "category_id": int(obj["paste"]["category_id"]), "category": seg["category"],
            "segment_id": obj["segment_id"], "bbox": rle["bbox"], "area": rle["area"],
            "segmentation": {"size": rle["size"], "counts": rle["counts"]}, "iscrowd": 0,
            "visible_fraction": rle["area"] / max(obj["drawn"].full_area, 1), "layer": layer, "z": obj["z"],
            "blend": obj["drawn"].blend, "shown_fraction": round(fractions[layer], 4), "replaced_segment_id": obj["replaced"],
            # the segment's ingest-time dominant_color is left out: "colours" measures this image
            "attributes": {k: seg.get(k) for k in ("subcategory", "short_phrase", "description", "features")},
        })
    kept = {int(pid) for pid in ids if pid}
    fg = annotate.foreground([(d.dst, d.alpha8, d.labelled and d.label in kept) for d in layers if d.dst], pan) \
        if options["fg_mask"] else None
    members, file_name, shown = _encode(plan, canvas, pan, fg, options)
    scene = scene_facts.measure(shown, pan, instances, tracker, options["min_visible_area"])
    info = {"key": plan["key"], "image_id": plan["image_id"], "width": W, "height": H, "file_name": file_name,
            "background_id": plan["background_id"], "instances": instances, "scene": scene,
            "dropped": int(len(objects) - len(instances)), "unseen": unseen, "failed_reads": failures, **provenance,
            "seed": plan["seed"]}
    if plan.get("base_id") is not None:
        info["variation"] = {"base_id": plan["base_id"], "base_key": sample_key(plan["base_id"]), "factor": plan["factor"],
                             "value": plan["factor_value"], "target_id": plan["target_id"],
                             "added_ids": list(plan["added_ids"] or [])}
    members["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    members = {k: members[k] for k in sorted(members, key=_member_order)}
    return Rendered(members, info, instances, dropped=info["dropped"],
                    replaced=sum(1 for o in objects if o["replaced"]), unseen=unseen, unreadable=len(failures))


def _member_order(ext: str) -> tuple:
    return (0 if ext.split(".")[-1] in ("jpg", "png", "webp") and not ext.startswith(("pan", "fg")) else 1, ext)


def _encode(plan: dict, canvas: Canvas, pan: np.ndarray, fg: np.ndarray | None,
            options: dict) -> tuple[dict[str, bytes], str, np.ndarray]:
    """The members, the composite's file name, and its RGB as a reader gets it (a JPEG decoded
    by Pillow, as webdataset and most loaders do)."""
    members: dict[str, bytes] = {}
    if plan["background_id"]:
        ext = options["format"]
        shown = canvas.pixels8()
        members[ext] = encode_image(shown, ext, options["quality"])
        if ext == "jpg":
            shown = imaging.decode_rgb(members[ext])
    else:
        alpha8 = cv2.extractChannel(canvas.pixels8(), 3)
        shown = canvas.straight_rgb(alpha8)
        rgba = cv2.merge([shown, alpha8])
        ext = "rgba.webp" if options["format"] == "webp" else "rgba.png"
        members[ext] = encode_image(rgba, ext.split(".")[-1], options["quality"])
    members["pan.png"] = pngcodec.encode_png(annotate.encode_pan_rgb(pan))
    if fg is not None:
        members["fg.png"] = pngcodec.encode_png(fg)
    return members, f"{plan['key']}.{ext}", shown


def encode_image(arr: np.ndarray, ext: str, quality: int) -> bytes:
    """JPEG through Pillow; PNG through soclake.pngcodec (fpng: ~10x OpenCV's fastest level);
    WebP lossless (fastest method). All deterministic for the same input."""
    if ext == "jpg":
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, "JPEG", quality=quality)
        return buf.getvalue()
    if ext == "png":
        return pngcodec.encode_png(arr)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True)
    return buf.getvalue()
