"""The relight stage (see soclake.stages.base): every sample's composite relit by a backend, then
blended back per segment in Lab (SOC), annotations, pan.png and fg.png carried over unchanged
(masks do not move) except the measured colours, taken again from the relit pixels. A
composite without background comes out as an RGB JPEG of the whole scene (KEY.jpg): iclight keeps the background the model paints, classic first composes the
objects on a lake background or a generated backdrop (backdrop.py). Backends are a registry
imported when used.
"""
from __future__ import annotations

import hashlib
import io
import json
import os

import cv2
import numpy as np
from PIL import Image

from soclake.errors import SoclakeError
from soclake.imaging import decode_rgb
from soclake.registry import Registry
from soclake.render import scene_facts
from soclake.render.compose import encode_image
from soclake.shards.tar import composite_member
from soclake.stages.base import Stage, StageOutput
from soclake.stages.relight import backdrop
from soclake.stages.relight.labblend import area_ranked_lab_blend

BACKENDS = Registry("relight backend", {"classic": "soclake.stages.relight.classic",
                                        "iclight": "soclake.stages.relight.iclight"}, extras={"iclight": "relight"})
GPU_BACKENDS = ("iclight",)


def _split_members(members: dict[str, bytes]) -> tuple[str, bytes]:
    ext = composite_member(members)
    if ext is None:
        raise SoclakeError("sample has no composite image member")
    return ext, members[ext]


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


def scene_of(s: dict, backend, params: dict, read) -> None:
    """For a composite without background: the scene the backend relights and the original the
    blend keeps the objects' chroma from. A backend that paints the background (iclight) relights
    the objects on grey and is blended against that input, as SOC; otherwise (classic) the
    objects are composed on a background drawn for the sample, recorded in s["background"]."""
    if s["has_background"]:
        return
    if getattr(backend, "PAINTS_BACKGROUND", False):
        s["original"] = backend.gray_backed(s["rgb"], s["alpha"])
        return
    H, W = s["alpha"].shape
    if params["background"] == "pool":
        bg, s["background"] = backdrop.draw(s["rng"], W, H, params.get("backgrounds"), read)
    else:
        bg, s["background"] = backdrop.generated(s["rng"], W, H)
    s["rgb"] = s["original"] = backdrop.compose_on(s["rgb"], s["alpha"], bg)
    s["scene_has_background"] = True


def finish_sample(members: dict[str, bytes], s: dict, relit: np.ndarray, drawn: dict, params: dict) -> dict[str, bytes]:
    """Blend the relit image back per segment and encode the new members: the same composite
    member for an input with background, KEY.jpg (RGB) for one without."""
    ext, rgb, segments, whole, info = s["ext"], s["rgb"], s["segments"], s["whole"], s["info"]
    original = s.get("original", rgb)
    if relit.shape != original.shape:
        relit = cv2.resize(relit, (original.shape[1], original.shape[0]), interpolation=cv2.INTER_AREA)
    blended = relit if whole else area_ranked_lab_blend(original, relit, segments, tuple(params["blend_alpha"]),
                                                        params["blend_steepness"])
    out_ext = ext if s["has_background"] else "jpg"
    info["relight"] = {"backend": params["backend"], "seed": s["seed"], "relit_whole_image": whole, **drawn}
    if "background" in s:
        info["relight"]["background"] = s["background"]
    if out_ext != ext:
        info["file_name"] = f"{s['key']}.{out_ext}"
    new = {out_ext: encode_image(blended, out_ext.split(".")[-1], params["quality"])}
    new.update((k, v) for k, v in members.items() if k != ext)
    scene_facts.recolour(info, _as_read(new[out_ext], out_ext, blended), segments)
    new["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    return new


def _as_read(data: bytes, ext: str, rgb: np.ndarray) -> np.ndarray:
    """The RGB a reader decodes from an encoded composite: decoded (Pillow) when lossy, else `rgb`."""
    return decode_rgb(data) if ext.split(".")[-1] == "jpg" else rgb


def relight_samples(samples: list[tuple[str, dict]], backend, params: dict, seed: int,
                    read=None) -> list[tuple[str, dict]]:
    """Relight a shard's samples, in batches when the backend offers relight_batch. `read`
    (pack, offset, length) -> bytes reads the lake's backgrounds."""
    prepared = [prepare_sample(m, int(np.random.SeedSequence([seed, int(key)]).generate_state(1)[0]))
                for key, m in samples]
    for (key, _), p in zip(samples, prepared):
        p["key"] = key
        scene_of(p, backend, params, read)
    items = [(p["rgb"], p["shape"], p["segments"], p.get("scene_has_background", p["has_background"]), p["rng"])
             for p in prepared]
    if hasattr(backend, "relight_batch"):
        results = backend.relight_batch(items, params)
    else:
        results = [backend.relight(*item, params) for item in items]
    return [(key, finish_sample(m, p, relit, drawn, params))
            for (key, m), p, (relit, drawn) in zip(samples, prepared, results)]


SPEC_FILES = ("prompts", "model", "offset")


def with_spec_files(params: dict) -> dict:
    """params with the files its keys name made relative to the spec's folder ("" stays "")."""
    def resolve(value: str) -> str:
        return value if not value or os.path.isabs(value) else os.path.join(params.get("spec_dir", "."), value)
    return {**params, **{k: resolve(params.get(k) or "") for k in SPEC_FILES}}


class Relight(Stage):
    """The relight stage: every composite relit by a backend, blended back per segment."""

    name = "relight"

    def check(self, params: dict) -> None:
        backend = BACKENDS.get(params["backend"])
        if hasattr(backend, "check"):
            backend.check(with_spec_files(params))

    def prepare_params(self, lake, params: dict) -> dict:
        """Resolve the files the spec names against its folder; for classic, the lake's
        backgrounds a composite without one may be given."""
        params = with_spec_files(params)
        if params["backend"] == "classic" and params["background"] == "pool":
            params["backgrounds"] = backdrop.pool(lake, params["background_sources"])
        return params

    def inputs_digest(self, params: dict) -> str:
        """What the outputs read besides the input shards: the backgrounds drawn from and the
        prompts file's content."""
        h = hashlib.sha256()
        if params.get("backgrounds"):
            h.update(backdrop.digest(params["backgrounds"]).encode())
        if params["backend"] == "iclight" and params["prompts"]:
            with open(params["prompts"], "rb") as f:
                h.update(hashlib.sha256(f.read()).digest())
        return h.hexdigest()

    def actor_options(self, params: dict) -> dict:
        """Relight runs on long-lived workers that keep the backend loaded (the iclight model, the
        classic shading-field cache); only iclight asks for GPUs ([relight] num_gpus per worker)."""
        return {"num_gpus": params["num_gpus"] if params["backend"] in GPU_BACKENDS else 0.0}

    def process(self, samples: list[tuple[str, dict]], params: dict, seed: int, context: dict) -> StageOutput:
        out = relight_samples(samples, BACKENDS.get(params["backend"]), params, seed, context.get("read"))
        return StageOutput(out, flagged=sum(json.loads(m["json"])["relight"]["relit_whole_image"] for _, m in out))


STAGE = Relight()
