"""[sampling] size_feedback: the coco_sizes size mix reweighted by the feedback's ap_small /
ap_medium / ap_large, computed by the planner, recorded in job.json and the audit, part of the
fingerprint; and the errors of specs and feedback that cannot use it."""
import json
import shutil

import numpy as np
import pytest
from conftest import job_spec

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.outputs.feedback import load_feedback
from soclake.plan import layouts

W, H = 640, 480
MIX = [0.42, 0.34, 0.24]
# per category: ap, ap_small, ap_medium, ap_large (None: no ground truth of that size)
SIZE_AP = {"ball": (0.5, 0.10, 0.50, 0.80), "box": (0.6, 0.20, 0.60, None), "star": (0.4, 0.05, 0.40, 0.70),
           "ring": (0.5, None, 0.55, 0.90), "heart": (0.3, 0.95, 0.0, 0.0)}  # heart is not eligible below


@pytest.fixture(scope="module")
def lake(sample_lake, tmp_path_factory):
    root = tmp_path_factory.mktemp("sizes") / "lake"
    shutil.copytree(sample_lake.root, root)
    return Lake(str(root))


def load(lake, tmp_path, name, table=SIZE_AP):
    cats = [{"name": c, "ap": v[0], "ap_small": v[1], "ap_medium": v[2], "ap_large": v[3]} for c, v in table.items()]
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps({"categories": cats}))
    return load_feedback(lake, str(path), name=name)


def spec(name, feedback="sizes", size_feedback=True, images=1000, **layout):
    return job_spec(name, job={"images": images, "shard_size": 250},
                    pool={"filter": "filter_4", "where": "category <> 'heart'"},
                    sampling={"strategy": "hardness", "feedback": feedback, "size_feedback": size_feedback,
                              "gamma": 1.5, "floor": 0.05, "objects": [3, 3]},
                    layout={"kind": "coco_sizes", "width": W, "height": H, "size_mix": MIX, **layout})


def planned(lake, s):
    job = jobs.prepare(lake, s)
    with lake.writer_lock(wait=True):
        info = jobs.plan(lake, job)
    lake.refresh()
    return job, info


def bucket_shares(lake, job) -> tuple[np.ndarray, int]:
    """Shares of the planned objects' mask areas (box area x the segment's alpha fraction, as
    coco_sizes plans them) in the COCO buckets of coco_area_edges."""
    rows = lake.query("SELECT o.w * o.h * greatest(s.alpha_fraction, 0.05) AS area "
                      "FROM (SELECT unnest(objects) AS o FROM plan WHERE fingerprint = $fp) "
                      "JOIN segments s ON s.segment_id = o.segment_id WHERE o.role = 'object'",
                      {"fp": job.fingerprint}).column("area").to_numpy()
    edges = layouts.coco_area_edges(job.spec["layout"], W, H)
    bucket = np.clip(np.searchsorted(edges[1:3], rows, side="right"), 0, 2)
    return np.bincount(bucket, minlength=3) / len(rows), len(rows)


def test_small_share_rises_by_the_formula(lake, tmp_path):
    load(lake, tmp_path, "sizes")
    # AP_b: mean over the eligible categories the feedback gives it for (heart is filtered out)
    ap = np.array([np.mean([0.10, 0.20, 0.05]), np.mean([0.50, 0.60, 0.40, 0.55]), np.mean([0.80, 0.70, 0.90])])
    w = np.array(MIX) * np.maximum(0.05, 1 - ap) ** 1.5
    expected = w / w.sum()
    base_job, _ = planned(lake, spec("sizes-off", size_feedback=False))
    job, info = planned(lake, spec("sizes-on"))
    assert info["plan"]["size_ap"] == pytest.approx(ap.tolist(), rel=1e-12)
    assert info["plan"]["size_mix"] == pytest.approx(expected.tolist(), rel=1e-12)
    assert info["spec"]["layout"]["size_mix"] == MIX  # the spec is recorded as written
    base, n_base = bucket_shares(lake, base_job)
    got, n = bucket_shares(lake, job)
    assert n >= 2900 and n_base >= 2900  # nearly every drawn object was placed
    tol = 3 * np.sqrt(0.25 / n)  # 3 sigma of a share of n objects
    assert base == pytest.approx(np.array(MIX) / sum(MIX), abs=tol)
    assert got == pytest.approx(expected, abs=tol)
    assert expected[0] - MIX[0] > 0.15  # small objects are hard here: the rise is well above noise
    assert got[0] - base[0] == pytest.approx(expected[0] - MIX[0], abs=2 * tol)
    from soclake.outputs.audit import run_audit
    sizes = run_audit(lake, vocab=None, job="sizes-on")["sampling"]["sizes"]
    assert sizes["small"] == pytest.approx({"spec_share": 0.42, "feedback_ap": ap[0], "planned_share": expected[0]})
    assert run_audit(lake, vocab=None, job="sizes-off")["sampling"]["sizes"] is None


def test_fingerprint_follows_the_size_aps(lake, tmp_path):
    load(lake, tmp_path, "fp-sizes")
    s = spec("fp", feedback="fp-sizes", images=10)
    first = jobs.prepare(lake, s).fingerprint
    load(lake, tmp_path, "fp-sizes", {**SIZE_AP, "ball": (0.5, 0.15, 0.50, 0.80)})  # only ap_small differs
    second = jobs.prepare(lake, s).fingerprint
    load(lake, tmp_path, "fp-sizes")
    assert second != first and jobs.prepare(lake, s).fingerprint == first
    assert jobs.prepare(lake, spec("fp", feedback="fp-sizes", images=10, size_feedback=False)).fingerprint != first


def test_spec_errors():
    with pytest.raises(SoclakeError, match=r"size_feedback works only with strategy = \"hardness\""):
        job_spec("bad", sampling={"strategy": "temperature", "size_feedback": True})
    with pytest.raises(SoclakeError, match=r"size_feedback reweights \[layout\] size_mix, which layout 'grid'"):
        job_spec("bad", sampling={"strategy": "hardness", "feedback": "f", "size_feedback": True},
                 layout={"kind": "grid"})
    assert job_spec("ok", sampling={"strategy": "hardness", "feedback": "f"})["sampling"]["size_feedback"] is False


def test_feedback_without_size_aps_is_an_error(lake, tmp_path):
    (tmp_path / "plain.csv").write_text("category,score\nball,0.3\nbox,0.6\n")
    load_feedback(lake, str(tmp_path / "plain.csv"), name="plain")
    with pytest.raises(SoclakeError, match="'plain' has no ap_small / ap_medium / ap_large.*size_feedback = false"):
        planned(lake, spec("plain", feedback="plain", images=4))
    # a bucket without any value among the eligible categories: an error unless its share is 0
    load(lake, tmp_path, "no-large", {"ball": (0.5, 0.1, 0.5, None), "heart": (0.5, 0.1, 0.5, 0.9)})
    with pytest.raises(SoclakeError, match="feedback 'no-large' gives no ap_large"):
        planned(lake, spec("nolarge", feedback="no-large", images=4))
    _, info = planned(lake, spec("nolarge0", feedback="no-large", images=4, size_mix=[0.5, 0.5, 0.0]))
    w = np.array([0.5 * 0.9 ** 1.5, 0.5 * 0.5 ** 1.5, 0.0])
    assert info["plan"]["size_mix"] == pytest.approx((w / w.sum()).tolist())
    assert info["plan"]["size_ap"] == pytest.approx([0.1, 0.5, None])
