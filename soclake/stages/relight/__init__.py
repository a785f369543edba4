"""The relight stage (see soclake.stages.base): every sample's composite relit by a backend, then
blended back per segment in Lab (SOC), annotations carried over unchanged (masks do not
move) except the measured colours, taken again from the relit pixels. Backends are a
registry imported when used.
"""
from __future__ import annotations

import io
import json

import cv2
import numpy as np
from PIL import Image

from soclake.errors import SoclakeError
from soclake.imaging import decode_rgb
from soclake.registry import Registry
from soclake.render import scene_facts
from soclake.render.compose import encode_image
from soclake.stages.base import Stage, StageOutput
from soclake.stages.relight.labblend import area_ranked_lab_blend

BACKENDS = Registry("relight backend", {"classic": "soclake.stages.relight.classic",
                                        "iclight": "soclake.stages.relight.iclight"}, extras={"iclight": "relight"})
GPU_BACKENDS = ("iclight",)


def _split_members(members: dict[str, bytes]) -> tuple[str, bytes]:
    for ext, data in members.items():
        if ext.split(".")[-1] in ("jpg", "png", "webp") and not ext.startswith(("pan.", "fg.")):
            return ext, data
    raise SoclakeError("sample has no composite image member")


def prepare_sample(members: dict[str, bytes], seed: int) -> dict:
    """Decoded inputs of one sample: composite, alpha, shadow shape, segment ids."""
    ext, data = _split_members(members)
    im = Image.open(io.BytesIO(data))
    has_background = ext.split(".")[0] != "rgba"
    if has_background:
        rgb = np.asarray(im.convert("RGB"))
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
    else:
        rgba = np.asarray(im.convert("RGBA"))
        rgb, alpha = np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    info = json.loads(members["json"])
    segments = np.zeros(alpha.shape, np.int32)
    if "pan.png" in members:
        pan = np.asarray(Image.open(io.BytesIO(members["pan.png"])).convert("RGB")).astype(np.int32)
        segments = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    whole = not segments.any()
    # the objects' shape casts the shadows: the composite's alpha, or on a background the
    # soft foreground mask (fg.png) or else the labelled pixels
    if not has_background:
        shape = alpha
    elif "fg.png" in members:
        shape = np.asarray(Image.open(io.BytesIO(members["fg.png"])).convert("L"))
    else:
        shape = np.where(segments > 0, 255, 0).astype(np.uint8)
    return {"ext": ext, "rgb": rgb, "alpha": alpha, "shape": shape, "segments": segments, "whole": whole,
            "has_background": has_background, "info": info, "seed": seed, "rng": np.random.default_rng(seed)}


def finish_sample(members: dict[str, bytes], s: dict, relit: np.ndarray, drawn: dict, params: dict) -> dict[str, bytes]:
    """Blend the relit image back per segment and encode the new members."""
    ext, rgb, alpha, segments, whole, info = s["ext"], s["rgb"], s["alpha"], s["segments"], s["whole"], s["info"]
    has_background, seed = s["has_background"], s["seed"]
    if relit.shape != rgb.shape:
        relit = cv2.resize(relit, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_AREA)
    blended = relit if whole else area_ranked_lab_blend(rgb, relit, segments, tuple(params["blend_alpha"]),
                                                        params["blend_steepness"])
    if not has_background:
        blended = cv2.bitwise_and(blended, blended, mask=alpha)  # keep transparent pixels colourless
        out = np.dstack([blended, alpha])
    else:
        out = blended
    info["relight"] = {"backend": params["backend"], "seed": seed, "relit_whole_image": whole, **drawn}
    new = dict(members)
    new[ext] = encode_image(out, ext.split(".")[-1], 95)
    scene_facts.recolour(info, _as_read(new[ext], ext, blended), segments)
    new["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    return new


def _as_read(data: bytes, ext: str, rgb: np.ndarray) -> np.ndarray:
    """The RGB a reader decodes from an encoded composite: decoded (Pillow) when lossy, else `rgb`."""
    return decode_rgb(data) if ext.split(".")[-1] == "jpg" else rgb


def relight_samples(samples: list[tuple[str, dict]], backend, params: dict, seed: int) -> list[tuple[str, dict]]:
    """Relight a shard's samples, in batches when the backend offers relight_batch."""
    prepared = [prepare_sample(m, int(np.random.SeedSequence([seed, int(key)]).generate_state(1)[0]))
                for key, m in samples]
    items = [(p["rgb"], p["shape"], p["segments"], p["has_background"], p["rng"]) for p in prepared]
    if hasattr(backend, "relight_batch"):
        results = backend.relight_batch(items, params)
    else:
        results = [backend.relight(*item, params) for item in items]
    return [(key, finish_sample(m, p, relit, drawn, params))
            for (key, m), p, (relit, drawn) in zip(samples, prepared, results)]


class Relight(Stage):
    """The relight stage: every composite relit by a backend, blended back per segment."""

    name = "relight"

    def check(self, params: dict) -> None:
        backend = BACKENDS.get(params["backend"])
        if hasattr(backend, "check"):
            backend.check(params)

    def actor_options(self, params: dict) -> dict:
        """Relight runs on long-lived workers that keep the backend loaded (the iclight model, the
        classic shading-field cache); only iclight asks for GPUs ([relight] num_gpus per worker)."""
        return {"num_gpus": params["num_gpus"] if params["backend"] in GPU_BACKENDS else 0.0}

    def process(self, samples: list[tuple[str, dict]], params: dict, seed: int, context: dict) -> StageOutput:
        out = relight_samples(samples, BACKENDS.get(params["backend"]), params, seed)
        return StageOutput(out, flagged=sum(json.loads(m["json"])["relight"]["relit_whole_image"] for _, m in out))


STAGE = Relight()
