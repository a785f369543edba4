"""Relight: the Lab blend's guarantees, the classic backend, and the stage end to end."""
import glob
import json
import os

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.spec.load import resolve
from soclake.stages.relight.classic import kelvin_rgb, relight
from soclake.stages.relight.labblend import area_ranked_lab_blend, segment_weights, to_lab
from soclake.stages.runner import run as relight_run


def test_weights_favour_small_segments_within_range():
    w = segment_weights(np.array([50, 5000, 500, 50000]))
    assert w[0] > w[2] > w[1] > w[3]
    assert 0.3 <= w.min() and w.max() <= 0.9
    assert segment_weights(np.array([10]))[0] == pytest.approx(0.896, abs=1e-3)  # SOC: a single segment has r = 0


def test_lab_blend_keeps_chroma_and_moves_lightness_by_the_weight():
    rng = np.random.default_rng(0)
    original = rng.integers(40, 200, (64, 64, 3), dtype=np.uint8)
    relit = np.clip(original.astype(int) + 40, 0, 255).astype(np.uint8)  # brighter
    segments = np.zeros((64, 64), np.int32)
    segments[4:20, 4:20] = 1      # small
    segments[24:60, 10:60] = 2    # large
    out = area_ranked_lab_blend(original, relit, segments)
    lo, lr, lb = to_lab(original), to_lab(relit), to_lab(out)
    w = segment_weights(np.array([(segments == 1).sum(), (segments == 2).sum()]))
    for sid, weight in zip((1, 2), w):
        m = segments == sid
        assert np.abs(lb[m][:, 1:] - lo[m][:, 1:]).mean() < 1.5          # chroma from the original
        expected = weight * lr[m][:, 0] + (1 - weight) * lo[m][:, 0]
        assert np.abs(lb[m][:, 0] - expected).mean() < 0.6               # lightness by the weight
    assert np.array_equal(out[segments == 0], relit[segments == 0])       # outside: relit as is


def test_kelvin_colours():
    warm, cool = kelvin_rgb(3000), kelvin_rgb(9000)
    assert warm[0] > warm[2] and cool[2] > cool[0]


def test_classic_changes_the_image_but_keeps_object_colour():
    rng = np.random.default_rng(1)
    rgb = np.full((96, 96, 3), 120, np.uint8)
    rgb[30:70, 30:70] = (200, 40, 40)  # a red object on grey
    alpha = np.zeros((96, 96), np.uint8)
    alpha[30:70, 30:70] = 255
    segments = (alpha > 0).astype(np.int32)
    params = resolve({"job": {"name": "r", "input": "x"}, "relight": {"directions": ["left"]}})["relight"]
    relit, drawn = relight(rgb, alpha, segments, True, rng, params)
    assert drawn["direction"] == "left" and not np.array_equal(relit, rgb)
    out = area_ranked_lab_blend(rgb, relit, segments)
    lab_in, lab_out = to_lab(rgb), to_lab(out)
    m = segments > 0
    assert np.abs(lab_out[m][:, 1:].mean(0) - lab_in[m][:, 1:].mean(0)).max() < 2  # still the same red


@pytest.fixture(scope="module")
def relit_job(sample_lake):
    jobs.run(sample_lake, job_spec("to-relight", job={"images": 6, "shard_size": 3},
                                   render={"background": "pool", "fg_mask": True}), workers=1, progress=False)
    spec = resolve({"job": {"name": "relit", "input": "to-relight", "seed": 3}, "relight": {}})
    return sample_lake, spec, relight_run(sample_lake, spec, workers=1, progress=False)


def shard_samples(path):
    from soclake.shards.tar import read_samples
    return dict(read_samples(open(path, "rb").read()))


def test_relight_stage_keeps_keys_and_annotations(relit_job):
    lake, spec, summary = relit_job
    assert summary.images == 6 and summary.shards_rendered == 2 and not summary.failed
    src = sorted(glob.glob(lake.path("jobs", "to-relight", "*", "shards", "*.tar")))
    dst = sorted(glob.glob(lake.path(summary.folder, "shards", "*.tar")))
    assert [os.path.basename(p) for p in src] == [os.path.basename(p) for p in dst]
    recoloured = 0
    for a, b in zip(src, dst):
        before, after = shard_samples(a), shard_samples(b)
        assert list(before) == list(after)
        for key in before:
            assert before[key].keys() == after[key].keys()
            assert before[key]["pan.png"] == after[key]["pan.png"]
            ia, ib = json.loads(before[key]["json"]), json.loads(after[key]["json"])
            def masks(info):  # everything but the colours, which are measured again on the relit pixels
                return [{k: v for k, v in i.items() if k != "colours"} for i in info["instances"]]
            assert masks(ia) == masks(ib) and ib["relight"]["backend"] == "classic"
            assert all(sum(i["colours"].values()) == i["area"] for i in ib["instances"])
            recoloured += sum(x["colours"] != y["colours"] for x, y in zip(ia["instances"], ib["instances"]))
            assert before[key]["jpg"] != after[key]["jpg"]
    assert recoloured > 0
    m = lake.query("SELECT inputs, samples FROM manifest WHERE stage = 'relight' AND fingerprint = $fp ORDER BY shard",
                   {"fp": summary.fingerprint}).to_pylist()
    assert len(m) == 2 and all(r["samples"] == 3 and r["inputs"][0].startswith("jobs/to-relight/") for r in m)
    from soclake.loader.stream import Stream
    assert len(list(Stream(lake.root, "relit", task="detection"))) == 6


def test_relight_resumes_byte_identically(relit_job):
    lake, spec, summary = relit_job
    shard = lake.path(summary.folder, "shards", "shard-000001.tar")
    before = open(shard, "rb").read()
    part = [p for p in lake.table_parts("manifest") if f"relit-{summary.fingerprint}-000001" in p][0]
    os.unlink(part)
    os.unlink(shard)
    lake.refresh()
    again = relight_run(lake, spec, workers=1, progress=False)
    assert again.shards_rendered == 1 and again.fingerprint == summary.fingerprint
    assert open(shard, "rb").read() == before
    assert relight_run(lake, spec, workers=1, progress=False).shards_rendered == 0


def test_relight_errors(sample_lake):
    with pytest.raises(SoclakeError, match="no job .nothing. in "):
        relight_run(sample_lake, resolve({"job": {"name": "r", "input": "nothing"}, "relight": {}}), progress=False)
    with pytest.raises(SoclakeError, match="directions"):
        resolve({"job": {"name": "r", "input": "x"}, "relight": {"directions": ["up"]}})
    with pytest.raises(SoclakeError, match="unknown key 'lamp'"):
        resolve({"job": {"name": "r", "input": "x"}, "relight": {"lamp": 1}})


def test_sample_without_segments_is_relit_whole_and_flagged():
    import io as _io

    from soclake.stages.relight import classic, relight_samples
    rgb = np.random.default_rng(0).integers(0, 255, (40, 60, 3), dtype=np.uint8)
    buf = _io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=95)
    members = {"jpg": buf.getvalue(), "json": json.dumps({"key": "000000000", "instances": []}).encode()}
    params = resolve({"job": {"name": "r", "input": "x"}, "relight": {}})["relight"]
    [(key, out)] = relight_samples([("000000000", members)], classic, params, seed=1)
    info = json.loads(out["json"])
    assert key == "000000000" and info["relight"]["relit_whole_image"] is True
    assert out["jpg"] != members["jpg"]
