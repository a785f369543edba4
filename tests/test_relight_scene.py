"""Relight keeps the scene (SOC_FACTS 2.4): an input without background comes out as an RGB
JPEG of the whole scene for both backends; the Lab blend equals SOC's, checked against an
independent implementation with skimage; IC-Light's defaults are SOC's."""
import glob
import io
import json

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.shards.tar import read_samples
from soclake.spec.load import resolve
from soclake.stages.relight.labblend import area_ranked_lab_blend, segment_weights
from soclake.stages.runner import run as stage_run


def relight_params(**kw):
    return resolve({"job": {"name": "r", "input": "x"}, "relight": kw})["relight"]


def test_weights_are_socs():
    w = segment_weights(np.array([10, 20, 30, 40, 50]))
    assert np.allclose(w, [0.896, 0.854, 0.600, 0.346, 0.304], atol=1e-3)
    assert segment_weights(np.array([7]))[0] == pytest.approx(0.3 + 0.6 / (1 + np.exp(-5)))  # ~0.896
    # ties: stable in SOC's colour order (R, then G, then B of the panoptic colour), not by id
    ids = np.array([1 + 256 * 1, 2])  # colours (1, 1, 0) and (2, 0, 0): R decides, so id 257 ranks first
    w = segment_weights(np.array([100, 100]), ids=ids)
    assert w[0] > w[1]


def soc_blend_skimage(original, relit, segments):
    """SOC's blend written afresh from SOC_FACTS 2.4 with skimage (float64 Lab)."""
    from skimage.color import lab2rgb, rgb2lab
    ids, counts = np.unique(segments[segments > 0], return_counts=True)
    colours = np.stack([ids & 255, (ids >> 8) & 255, ids >> 16], 1)
    order = np.lexsort((colours[:, 2], colours[:, 1], colours[:, 0]))   # numpy unique order of colours
    ids, counts = ids[order], counts[order]
    rank = np.empty(len(ids))
    rank[np.argsort(counts / segments.size, kind="stable")] = np.arange(len(ids))
    r = rank / (len(ids) - 1) if len(ids) > 1 else np.zeros(1)
    w = 0.3 + 0.6 / (1 + np.exp(10 * (r - 0.5)))
    lo, lr = rgb2lab(original / 255.0), rgb2lab(relit / 255.0)
    out = lr.copy()
    for i, weight in zip(ids, w):
        m = segments == i
        out[m, 0] = weight * lr[m, 0] + (1 - weight) * lo[m, 0]
        out[m, 1:] = lo[m, 1:]
    return np.clip(lab2rgb(out) * 255, 0, 255)


def test_lab_blend_matches_an_independent_skimage_implementation():
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    relit = rng.integers(0, 256, (80, 90, 3), dtype=np.uint8)
    segments = np.zeros((80, 90), np.int32)
    segments[2:12, 2:12] = 1                 # 100 px
    segments[20:30, 2:12] = 300              # 100 px, a tie (colour (44, 1, 0))
    segments[40:70, 5:45] = 2                # large
    segments[15:35, 50:80] = 70000           # colour (112, 17, 1)
    segments[60:66, 60:66] = 5               # smallest
    out = area_ranked_lab_blend(original, relit, segments)
    want = soc_blend_skimage(original.astype(np.float64), relit.astype(np.float64), segments)
    inside = segments > 0
    diff = np.abs(out[inside].astype(float) - want[inside])
    # OpenCV's float32 Lab against skimage's float64, and rounding against SOC's truncation
    assert diff.max() <= 1.5 and diff.mean() < 0.3
    assert np.array_equal(out[~inside], relit[~inside])                     # outside: the relit image


@pytest.fixture(scope="module")
def rgba_job(sample_lake):
    spec = job_spec("to-relight-rgba", job={"images": 4, "shard_size": 2}, render={"background": "none", "fg_mask": True},
                    layout={"width": 96, "height": 80}, sampling={"objects": [2, 4]})
    jobs.run(sample_lake, spec, workers=1, progress=False)
    return sample_lake


def stage_samples(lake, job):
    fp = lake.query("SELECT fingerprint FROM manifest WHERE job = $j LIMIT 1", {"j": job}).column(0)[0].as_py()
    out = {}
    for path in sorted(glob.glob(lake.path("jobs", job, fp, "shards", "*.tar"))):
        out.update(dict(read_samples(open(path, "rb").read())))
    return out


def check_scene_members(before: dict, after: dict, quality: int = 95):
    for key, b in before.items():
        a = after[key]
        assert "rgba.png" in b and "rgba.png" not in a and "jpg" in a
        assert set(a) == set(b) - {"rgba.png"} | {"jpg"}
        assert a["pan.png"] == b["pan.png"] and a["fg.png"] == b["fg.png"]
        ia, ib = json.loads(a["json"]), json.loads(b["json"])

        def masks(info):  # everything but the colours, which are measured again on the relit pixels
            return [{k: v for k, v in i.items() if k != "colours"} for i in info["instances"]]
        assert masks(ia) == masks(ib) and ia["file_name"] == f"{key}.jpg"
        assert all(sum(i["colours"].values()) == i["area"] for i in ia["instances"])
        im = Image.open(io.BytesIO(a["jpg"]))
        assert im.format == "JPEG" and im.mode == "RGB"      # no alpha channel: no transparent pixel
        ref = io.BytesIO()
        Image.new("RGB", (8, 8)).save(ref, "JPEG", quality=quality)
        assert im.quantization == Image.open(ref).quantization  # encoded at the configured quality
    return ia


def test_classic_relight_of_an_rgba_job_is_a_jpeg_scene_on_a_lake_background(rgba_job):
    lake = rgba_job
    spec = resolve({"job": {"name": "relit-rgba", "input": "to-relight-rgba", "seed": 1}, "relight": {}})
    summary = stage_run(lake, spec, workers=1, progress=False)
    assert summary.images == 4 and not summary.failed
    before, after = stage_samples(lake, "to-relight-rgba"), stage_samples(lake, "relit-rgba")
    ia = check_scene_members(before, after)
    bg = ia["relight"]["background"]
    known = {r[0] for r in lake.con.execute("SELECT background_id FROM backgrounds").fetchall()}
    assert bg["background_id"] in known and len(bg["crop"]) == 4
    for key in before:
        rgba = np.asarray(Image.open(io.BytesIO(before[key]["rgba.png"])))
        scene = np.asarray(Image.open(io.BytesIO(after[key]["jpg"])).convert("RGB")).astype(float)
        outside = rgba[..., 3] == 0
        assert scene[outside].std() > 5  # a photo behind the objects, not a flat or black canvas
    again = stage_run(lake, resolve({"job": {"name": "relit-rgba-q", "input": "to-relight-rgba", "seed": 1},
                                     "relight": {"quality": 70}}), workers=1, progress=False)
    assert again.images == 4
    check_scene_members(before, stage_samples(lake, "relit-rgba-q"), quality=70)


def test_classic_relight_without_lake_backgrounds_draws_a_generated_backdrop(tmp_path, soc_pool):
    lake = Lake(str(tmp_path / "nobg"), create=True)
    ingest(lake, "soc", str(soc_pool), source_name="p", workers=1, progress=False)
    jobs.run(lake, job_spec("c", job={"images": 2, "shard_size": 2}, render={"background": "none", "fg_mask": True},
                            layout={"width": 64, "height": 64}, sampling={"objects": [1, 2]}), workers=1, progress=False)
    stage_run(lake, resolve({"job": {"name": "c-relit", "input": "c"}, "relight": {}}), workers=1, progress=False)
    before, after = stage_samples(lake, "c"), stage_samples(lake, "c-relit")
    ia = check_scene_members(before, after)
    assert ia["relight"]["background"]["generated"]["top"] and ia["relight"]["background"]["generated"]["bottom"]


def test_background_generated_is_chosen_explicitly(rgba_job):
    lake = rgba_job
    stage_run(lake, resolve({"job": {"name": "relit-gen", "input": "to-relight-rgba"},
                             "relight": {"background": "generated"}}), workers=1, progress=False)
    info = json.loads(next(iter(stage_samples(lake, "relit-gen").values()))["json"])
    assert "generated" in info["relight"]["background"]


def test_relight_defaults_are_socs_iclight_settings():
    p = relight_params()
    assert (p["steps"], p["cfg"], p["highres_scale"], p["highres_denoise"], p["lowres_denoise"]) == (25, 2.0, 1.0, 0.5, 0.9)
    d = p["directions"]
    assert len(d) == 8 and d.count("none") == 4 and all(d.count(s) == 1 for s in ("left", "right", "top", "bottom"))
    assert p["quality"] == 95 and p["seed"] == "sample" and p["blend_alpha"] == [0.3, 0.9]
    assert p["blend_steepness"] == 10.0
