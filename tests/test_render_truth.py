"""An independent check of generated scenes: every annotated instance must look like its
object, not like the background. The check decodes the shard's own composite and pan.png,
rebuilds each object and the background from the pool's stored files with Pillow (never
the renderer's code), and compares gradients and colours inside each mask."""
import io
import json

import numpy as np
import pytest
from conftest import job_spec, save_png
from PIL import Image
from render_scene import disc, gradient_correlation

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.sample_pool import BACKGROUND_PHOTOS, write_sample_pool
from soclake.shards.tar import read_samples

MIN_PIXELS = 30  # fewer clean pixels than this: no verdict


def _decode(data: bytes, mode: str) -> Image.Image:
    return Image.open(io.BytesIO(data)).convert(mode)


def _object(lake, seg: dict, paste: dict) -> np.ndarray:
    """The cut-out at its planned size and flip, as straight RGBA float (Pillow resize of the
    premultiplied largest level)."""
    lv = seg["levels"][0]
    rgba = np.asarray(_decode(lake.read_range(lv["pack"], lv["offset"], lv["length"]), "RGBA"), np.float64)
    a = rgba[..., 3:] / 255
    prem = np.concatenate([rgba[..., :3] * a, a * 255], axis=2)
    chans = [np.asarray(Image.fromarray(prem[..., c].astype(np.float32), "F").resize((paste["w"], paste["h"]),
                                                                                     Image.BILINEAR)) for c in range(4)]
    out = np.dstack(chans)
    out[..., :3] /= np.maximum(out[..., 3:], 1e-3) / 255
    return out[:, ::-1] if paste["flip"] else out


def verdicts(lake, fingerprint: str) -> list[dict]:
    """Per annotated instance: gradient correlation and mean colour distance of the
    composite to its object and to the background, over mask pixels that no other paste's
    box touches (there, what lies under the object is the background itself)."""
    plans = {r["key"]: r for r in lake.query("SELECT * FROM plan WHERE fingerprint = $fp", {"fp": fingerprint}).to_pylist()}
    segs = {r["segment_id"]: r for r in lake.query("SELECT segment_id, levels FROM segments").to_pylist()}
    bgs = {r["background_id"]: r for r in lake.query("SELECT * FROM backgrounds").to_pylist()}
    out = []
    for r in lake.query("SELECT shard_uri FROM manifest WHERE fingerprint = $fp", {"fp": fingerprint}).to_pylist():
        for key, m in read_samples(lake.fs.cat_file(lake.path(r["shard_uri"]))):
            info, plan = json.loads(m["json"]), plans[key]
            comp = np.asarray(_decode(m[info["file_name"].split(".", 1)[1]], "RGB"), np.float64)
            rgb = np.asarray(_decode(m["pan.png"], "RGB")).astype(np.int64)
            pan = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
            H, W = pan.shape
            b = bgs[plan["background_id"]]
            x, y, cw, ch = plan["background_crop"]
            bg = np.asarray(_decode(lake.read_range(b["pack"], b["offset"], b["length"]), "RGB")
                            .crop((x, y, x + cw, y + ch)).resize((W, H), Image.BILINEAR), np.float64)
            pastes = plan["objects"]
            boxes = [(p["x"], p["y"], p["x"] + p["w"], p["y"] + p["h"]) for p in pastes]
            labelled = [i for i, p in enumerate(pastes) if p["role"] == "object"]
            for inst in info["instances"]:
                i = labelled[inst["layer"]]
                p = pastes[i]
                clean = pan == inst["panoptic_id"]
                for j, (x0, y0, x1, y1) in enumerate(boxes):
                    if j != i:
                        clean[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = False
                if clean.sum() < MIN_PIXELS:
                    continue
                obj = np.zeros((H, W, 3))
                o = _object(lake, segs[p["segment_id"]], p)
                x0, y0 = max(p["x"], 0), max(p["y"], 0)
                x1, y1 = min(p["x"] + p["w"], W), min(p["y"] + p["h"], H)
                obj[y0:y1, x0:x1] = o[y0 - p["y"]:y1 - p["y"], x0 - p["x"]:x1 - p["x"], :3]
                d_obj = np.linalg.norm(comp[clean] - obj[clean], axis=1).mean()
                d_bg = np.linalg.norm(comp[clean] - bg[clean], axis=1).mean()
                c_obj, c_bg = gradient_correlation(comp, obj, clean), gradient_correlation(comp, bg, clean)
                out.append({"key": key, "id": inst["panoptic_id"], "blend": inst["blend"], "pixels": int(clean.sum()),
                            "corr_object": c_obj, "corr_background": c_bg, "dist_object": d_obj, "dist_background": d_bg,
                            "like_background": c_bg >= c_obj and d_bg <= d_obj})
    return out


@pytest.fixture(scope="module")
def mixed_lake(tmp_path_factory):
    """Real background photos, the sample pool's flat-ish objects, and cut-outs of textured
    photo crops (what a Poisson clone keeps), so every blend mode has survivors to check."""
    root = tmp_path_factory.mktemp("truth")
    write_sample_pool(str(root / "pool"), seed=3, ids=1, subcategories=2)
    for i in range(8):
        photo = np.asarray(Image.open(root / "pool" / "backgrounds" / BACKGROUND_PHOTOS[i % 5]).convert("RGB"))
        y, x = (i * 37) % (photo.shape[0] - 90), (i * 53) % (photo.shape[1] - 90)
        save_png(root / "textured" / "patch" / f"{i}.png", disc(90, None, soft=2.0, texture=photo[y:y + 90, x:x + 90]))
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "soc", str(root / "pool" / "segments"), source_name="sample", workers=1, progress=False)
    ingest(lake, "folders", str(root / "textured"), source_name="textured", workers=1, progress=False)
    ingest(lake, "backgrounds", str(root / "pool" / "backgrounds"), source_name="bg", workers=1, progress=False)
    return lake


@pytest.mark.slow
def test_no_annotated_instance_looks_like_the_background(mixed_lake):
    found, unseen = [], 0
    for name, blends in (("truth-mixed", ["none", "gaussian", "motion", "poisson"]), ("truth-poisson", ["poisson"])):
        spec = job_spec(name, job={"images": 16, "shard_size": 8}, layout={"width": 256, "height": 192},
                        render={"background": "pool", "blend": blends, "format": "png"}, sampling={"objects": [3, 8]})
        summary = jobs.run(mixed_lake, spec, workers=1, progress=False)
        found += verdicts(mixed_lake, summary.fingerprint)
        unseen += summary.unseen
    checked = {b: sum(v["blend"] == b for v in found) for b in ("none", "gaussian", "motion", "poisson")}
    assert min(checked.values()) >= 10, checked
    assert [v for v in found if v["like_background"]] == []
    assert unseen > 0  # the scenes do hold objects the blend washed out
