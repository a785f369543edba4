"""The relight stage: reads a compose job's committed shards and writes new shards with the
same keys, the composite relit and then blended back per segment in Lab (SOC), annotations
carried over unchanged (masks do not move), lineage in the manifest. Fingerprinted and
resumable like compose. Backends are a registry imported when used.
"""
from __future__ import annotations

import hashlib
import importlib
import io
import json
import os
import sys
import tarfile
import time
from dataclasses import dataclass, field

import cv2
import numpy as np
from PIL import Image
from tqdm import tqdm

from soclake import executors, jobspec, storage
from soclake.errors import SoclakeError
from soclake.jobspec import JobSpec
from soclake.lake import Lake
from soclake.relight.labblend import area_ranked_lab_blend
from soclake.render.compose import encode_image
from soclake.shards import commit_shard, committed_shards, tar_bytes

BACKENDS = {"classic": "soclake.relight.classic", "iclight": "soclake.relight.iclight"}
STAGE = "relight"


@dataclass
class RelightSummary:
    job: str
    fingerprint: str
    input: str
    folder: str
    shards_total: int
    shards_rendered: int
    images: int = 0
    flagged: int = 0
    seconds: float = 0.0
    failed: dict = field(default_factory=dict)

    def describe(self) -> str:
        rate = self.images / self.seconds if self.seconds else 0.0
        return (f"relight {self.job} [{self.fingerprint}] of {self.input}: relit {self.shards_rendered} shard(s) "
                f"({self.shards_total - self.shards_rendered} already committed): {self.images} images "
                f"({self.flagged} without segments, relit whole), {self.seconds:.1f}s ({rate:.2f} images/s)\n"
                f"shards: {self.folder}/shards/"
                + "".join(f"\nFAILED shard {s}: {e} (rerun to retry it)" for s, e in sorted(self.failed.items())))


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
    new["json"] = json.dumps(info, sort_keys=True, separators=(",", ":")).encode()
    return new


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


def _read_samples(data: bytes) -> list[tuple[str, dict[str, bytes]]]:
    samples: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar:
            key, _, ext = m.name.partition(".")
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = tar.extractfile(m).read()
    return samples


def relight_shard(task: dict) -> dict:
    """Worker: relight every sample of one input shard and commit the output shard."""
    try:
        lake = Lake(task["lake"])
        backend = importlib.import_module(BACKENDS[task["params"]["backend"]])
        data = lake.fs.cat_file(lake.path(task["input_uri"]))
        if hashlib.sha256(data).hexdigest() != task["input_sha256"]:
            raise SoclakeError(f"input shard {task['input_uri']} does not match its manifest sha256")
        out = relight_samples(_read_samples(data), backend, task["params"], task["seed"])
        flagged = sum(json.loads(m["json"])["relight"]["relit_whole_image"] for _, m in out)
        commit_shard(lake, task["job"], task["fingerprint"], STAGE, task["shard"], task["output_uri"],
                     tar_bytes(out), {}, [f"{task['input_uri']}#{task['input_sha256']}"], task["code_version"],
                     task["params_json"], samples=len(out))
        return {"images": len(out), "flagged": flagged}
    except Exception as e:  # reported per shard; it stays uncommitted and is retried next run
        return {"shard": task["shard"], "error": f"{type(e).__name__}: {e}"}


def run(lake: Lake, spec: JobSpec, workers: int | None = None, progress: bool | None = None) -> RelightSummary:
    """Relight every committed shard of the input job not relit yet."""
    if spec.kind != "relight":
        raise SoclakeError("not a relight spec (it needs a [relight] section)")
    t0 = time.perf_counter()
    backend = importlib.import_module(BACKENDS[spec["relight"]["backend"]])
    if hasattr(backend, "check"):
        backend.check(spec["relight"])  # a missing model is an error before any shard is read
    from soclake.export import resolve_job
    input_fp, missing = resolve_job(lake, spec["job"]["input"])
    fp = jobspec.fingerprint(spec, input_fp)
    name = spec.name
    folder = f"jobs/{name}/{fp}"
    inputs = lake.query("SELECT shard, shard_uri, sha256 FROM manifest WHERE fingerprint = $fp AND stage = 'compose' "
                        "ORDER BY shard", {"fp": input_fp}).to_pylist()
    done = committed_shards(lake, fp, STAGE)
    todo = [r for r in inputs if r["shard"] not in done]
    summary = RelightSummary(name, fp, f"{spec['job']['input']} [{input_fp}]", folder, len(inputs), len(todo))
    params = {**spec["relight"]}
    tasks = [{"lake": lake.uri, "job": name, "fingerprint": fp, "shard": r["shard"], "input_uri": r["shard_uri"],
              "input_sha256": r["sha256"], "output_uri": f"{folder}/shards/shard-{r['shard']:06d}.tar",
              "seed": spec["job"]["seed"], "params": params, "params_json": spec.canonical_json(),
              "code_version": jobspec.code_version()} for r in todo]
    storage.write_bytes(lake.fs, lake.path(folder, "job.json"), json.dumps(
        {"job": name, "fingerprint": fp, "stage": STAGE, "input": spec["job"]["input"], "input_fingerprint": input_fp,
         "spec": spec.values}, indent=1, sort_keys=True).encode())
    workers = workers or os.cpu_count() or 1
    bar = tqdm(total=len(tasks), desc=f"relight {name}", unit="shard", file=sys.stderr,
               disable=None if progress is None else not progress)
    for res in executors.get("local").run(relight_shard, tasks, workers):
        if "error" in res:
            summary.failed[res["shard"]] = res["error"]
        else:
            summary.images += res["images"]
            summary.flagged += res["flagged"]
        bar.update(1)
    bar.close()
    lake.refresh()
    from soclake.stream import write_index
    write_index(lake, name, fp, stage=STAGE)
    summary.seconds = time.perf_counter() - t0
    return summary
