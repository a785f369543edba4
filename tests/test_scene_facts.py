"""What compose records beyond the annotations (soclake/render/scene_facts.py): colours of the
visible pixels, the unlabelled objects that show, contacts and covers; checked against the
shard's own pixels with scipy, not with the module's own code."""
import io
import json

import numpy as np
import pytest
from conftest import blob_rgba, job_spec, save_png
from PIL import Image
from pycocotools import mask as mask_utils
from scipy import ndimage

from soclake import Lake, colour_names
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.render import scene_facts
from soclake.render.scene_facts import CONTACT_MAX_PX
from soclake.shards.tar import read_samples
from soclake.spec.load import resolve
from soclake.stages import runner as stage


def pan_ids(data: bytes) -> np.ndarray:
    pan = np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(np.int64)
    return pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]


def composite(members: dict) -> np.ndarray:
    ext = next(k for k in members if k.split(".")[-1] in ("jpg", "png") and not k.startswith(("pan", "fg")))
    return np.asarray(Image.open(io.BytesIO(members[ext])).convert("RGB"))


def samples_of(lake, fingerprint):
    out = {}
    for r in lake.query("SELECT shard_uri FROM manifest WHERE fingerprint = $fp", {"fp": fingerprint}).to_pylist():
        out.update(read_samples(lake.fs.cat_file(lake.path(r["shard_uri"]))))
    return out


@pytest.fixture(scope="module")
def distracted(tmp_path_factory):
    root = tmp_path_factory.mktemp("facts")
    for i in range(4):
        save_png(root / "cut" / "cup" / f"{i}.png", blob_rgba(i, 64, soft=False))
        save_png(root / "junk" / f"{i}.png", blob_rgba(100 + i, 64, soft=False))
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "folders", str(root / "cut"), distractors=str(root / "junk"), workers=1, progress=False)
    spec = job_spec("facts", job={"images": 8, "shard_size": 8}, sampling={"objects": [3, 5], "distractors": [2, 4]},
                    layout={"min_visible": 0.0, "min_mean_visible": 0.0}, render={"blend": ["none", "gaussian"]})
    s = jobs.run(lake, spec, workers=1, progress=False)
    plan = {r["key"]: r for r in lake.query("SELECT key, objects FROM plan WHERE fingerprint = $fp",
                                            {"fp": s.fingerprint}).to_pylist()}
    return lake, s, plan, samples_of(lake, s.fingerprint)


def visible_objects(info, ids):
    """(z, mask) of every recorded visible object: instances from pan.png, unlabelled from RLE."""
    out = [(i["z"], ids == i["panoptic_id"]) for i in info["instances"]]
    for u in info["scene"]["unlabelled"]:
        out.append((u["z"], mask_utils.decode({"size": u["segmentation"]["size"],
                                               "counts": u["segmentation"]["counts"].encode()}) > 0))
    return out


def test_unlabelled_objects_are_the_void_pixels_of_distractors(distracted):
    lake, s, plan, samples = distracted
    seen = 0
    for key, m in samples.items():
        info, ids = json.loads(m["json"]), pan_ids(m["pan.png"])
        rgba = np.asarray(Image.open(io.BytesIO(m["rgba.png"])))
        covered = np.zeros(ids.shape, bool)
        for u in info["scene"]["unlabelled"]:
            mask = mask_utils.decode({"size": u["segmentation"]["size"], "counts": u["segmentation"]["counts"].encode()}) > 0
            assert plan[key]["objects"][u["z"]]["role"] == u["role"] == "distractor"
            assert mask.sum() == u["area"] >= 16 and not (ids[mask] != 0).any() and not (mask & covered).any()
            assert (rgba[mask][:, 3] >= 128).all()  # drawn, opaque enough to show
            covered |= mask
            seen += 1
        # every opaque void pixel is a recorded unlabelled object or part of one too small to record
        left = (rgba[..., 3] >= 128) & (ids == 0) & ~covered
        assert left.sum() < 16 * len(plan[key]["objects"])
        for i in info["instances"]:
            assert plan[key]["objects"][i["z"]]["role"] == "object"
    assert seen > 5


def test_contacts_are_the_true_mask_gaps(distracted):
    _, _, _, samples = distracted
    pairs = 0
    for m in samples.values():
        info, ids = json.loads(m["json"]), pan_ids(m["pan.png"])
        objs = visible_objects(info, ids)
        recorded = {(a, b): g for a, b, g in info["scene"]["contacts"]}
        for i, (za, ma) in enumerate(objs):
            dist = ndimage.distance_transform_edt(~ma)
            for zb, mb in objs[i + 1:]:
                gap = float(dist[mb].min())
                key = (za, zb) if (za, zb) in recorded else (zb, za)
                if gap <= CONTACT_MAX_PX:
                    assert recorded.get(key) == pytest.approx(gap, abs=1e-3)
                    pairs += 1
                else:
                    assert key not in recorded
        for upper, lower in info["scene"]["covers"]:
            assert upper > lower
    assert pairs > 5


def test_colours_are_counted_on_the_visible_pixels(distracted):
    _, _, _, samples = distracted
    for m in samples.values():
        info, ids, rgb = json.loads(m["json"]), pan_ids(m["pan.png"]), composite(m)
        for inst in info["instances"]:
            assert sum(inst["colours"].values()) == inst["area"]
            mask = ids == inst["panoptic_id"]
            got = colour_names.counts_dict(colour_names.counts_by_label(rgb, mask.astype(np.int32), 1)[1])
            assert got == inst["colours"]
        assert "dominant_color" not in info["instances"][0]["attributes"]
        assert info["scene"]["colour_rule"]


def test_relight_measures_the_colours_again(sample_lake):
    c = jobs.run(sample_lake, job_spec("facts-bare", job={"images": 3, "shard_size": 3}), workers=1, progress=False)
    s = stage.run(sample_lake, resolve({"job": {"name": "facts-relit", "input": "facts-bare"},
                                        "relight": {"backend": "classic"}}), workers=1, progress=False)
    before, after = samples_of(sample_lake, c.fingerprint), samples_of(sample_lake, s.fingerprint)
    changed = 0
    for key, m in after.items():
        info, ids, rgb = json.loads(m["json"]), pan_ids(m["pan.png"]), composite(m)
        for inst, old in zip(info["instances"], json.loads(before[key]["json"])["instances"]):
            got = colour_names.counts_dict(colour_names.counts_by_label(
                rgb, (ids == inst["panoptic_id"]).astype(np.int32), 1)[1])
            assert got == inst["colours"]
            changed += inst["colours"] != old["colours"]
    assert changed > 0


def test_an_unlabelled_paste_that_shows_nowhere_among_hundreds():
    """Over 255 pastes the maps are int32; an unlabelled paste whose alpha never reaches the
    mask threshold is on no pixel, and the scene is measured without it."""
    tracker = scene_facts.PasteTracker(40, 30, 300)
    for z in range(299):
        tracker.record((slice(z % 30, z % 30 + 1), slice(z % 40, z % 40 + 1)), np.full((1, 1), 255, np.uint8), z, "decoy")
    tracker.record((slice(0, 5), slice(0, 5)), np.full((5, 5), 100, np.uint8), 299, "decoy")  # faint: on no pixel
    pan = np.zeros((30, 40), np.int32)
    scene = scene_facts.measure(np.zeros((30, 40, 3), np.uint8), pan, [], tracker, 1)
    assert 299 not in {u["z"] for u in scene["unlabelled"]} and len(scene["unlabelled"]) > 0
