"""Decoding a stream's samples for a training task: numpy image, xyxy boxes, labels, masks and
grounding expressions, optionally resized, and the shared label space of mixed sources."""
from __future__ import annotations

import json

import cv2
import numpy as np
from pycocotools import mask as mask_utils

from soclake.errors import SoclakeError
from soclake.imaging import open_image
from soclake.vocab import canonical_category

TASKS = ("raw", "detection", "segmentation", "grounding")


def decode_sample(sample: dict, task: str, resize: tuple[int, int] | None = None,
                  labels: dict[str, int] | None = None) -> dict:
    """Numpy arrays for a task: image (H, W, 3), boxes (N, 4) xyxy, labels (N,), masks (N, H, W)
    for segmentation, expressions (text + target boxes) for grounding. With `labels` (canonical
    category name -> id, see label_map) the labels come from the instances' category names
    instead of their category_id (a shared label space for mixed sources)."""
    if task == "raw":
        return sample
    info = json.loads(sample["json"])
    comp = next(k for k in sample if k.endswith(("jpg", "png", "webp")) and not k.startswith(("pan.", "fg.")))
    image = np.asarray(open_image(sample[comp]).convert("RGB"))  # bombs are refused before decoding
    insts = info["instances"]
    boxes = np.array([[b[0], b[1], b[0] + b[2], b[1] + b[3]] for b in (i["bbox"] for i in insts)], np.float32).reshape(-1, 4)
    ids = [i["category_id"] for i in insts] if labels is None else [_label(labels, i["category"], sample)
                                                                       for i in insts]
    out = {"__key__": sample["__key__"], "image": image, "boxes": boxes, "labels": np.array(ids, np.int64)}
    if task == "segmentation":
        check_rle_sizes(insts, image.shape[:2])
        rles = [{"size": i["segmentation"]["size"], "counts": i["segmentation"]["counts"]} for i in insts]
        out["masks"] = (np.transpose(mask_utils.decode(rles), (2, 0, 1)) if rles
                        else np.zeros((0, *image.shape[:2]), np.uint8))
    if task == "grounding":
        out["expressions"] = _expressions(sample, insts, boxes)
    if resize:
        out = _resize(out, resize)
    out["__padded__"] = sample.get("__padded__", False)
    return out


def check_rle_sizes(insts: list[dict], shape: tuple[int, int]) -> None:
    """Every instance mask is the image's size: a hostile [30000, 30000] would otherwise
    allocate 900 MB per instance before anything noticed (the sample is bad: ValueError)."""
    for i in insts:
        size = i.get("segmentation", {}).get("size")
        if list(size or []) != [shape[0], shape[1]]:
            raise ValueError(f"instance {i.get('ann_id')}: mask size {str(size)[:40]} is not the image's "
                             f"{shape[0]}x{shape[1]}")


def label_map(categories: list[str] | dict[str, int]) -> dict[str, int]:
    """Canonical category name -> label: a list gives positions (0-based; put a placeholder
    such as "__background__" first for 1-based labels), a dict gives its own ids."""
    pairs = categories.items() if isinstance(categories, dict) else ((n, i) for i, n in enumerate(categories))
    out: dict[str, int] = {}
    for name, label in pairs:
        key = canonical_category(name)
        if key in out and out[key] != label:
            raise SoclakeError(f"categories: {name!r} appears twice (as {key!r}); list each category once")
        out[key] = int(label)
    return out


def _label(labels: dict[str, int], name: str, sample: dict) -> int:
    try:
        return labels[canonical_category(name)]
    except KeyError:
        raise SoclakeError(f"sample {sample.get('__source__', '')}/{sample['__key__']}: category {name!r} is not "
                           "in the mix's categories; add it to `categories`") from None


def _expressions(sample: dict, insts: list[dict], boxes: np.ndarray) -> list[dict]:
    """Referring expressions of the refexp stage when present, else one phrase per category."""
    if "refexp.json" in sample:
        by_id = {i["ann_id"]: k for k, i in enumerate(insts)}
        return [{"text": e["text"], "boxes": boxes[[by_id[t] for t in e.get("targets", []) if t in by_id]]}
                for e in json.loads(sample["refexp.json"]).get("expressions", [])]
    names: dict[str, list[int]] = {}
    for k, i in enumerate(insts):
        names.setdefault(i["category"], []).append(k)
    return [{"text": n, "boxes": boxes[idx]} for n, idx in sorted(names.items())]


def _resize(out: dict, size: tuple[int, int]) -> dict:
    h, w = out["image"].shape[:2]
    W, H = size
    sx, sy = W / w, H / h
    out["image"] = cv2.resize(out["image"], (W, H), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LINEAR)
    out["boxes"] = out["boxes"] * np.array([sx, sy, sx, sy], np.float32)
    if "masks" in out:
        out["masks"] = np.stack([cv2.resize(m, (W, H), interpolation=cv2.INTER_NEAREST) for m in out["masks"]]) \
            if len(out["masks"]) else np.zeros((0, H, W), np.uint8)
    for e in out.get("expressions", []):
        e["boxes"] = e["boxes"] * np.array([sx, sy, sx, sy], np.float32)
    return out
