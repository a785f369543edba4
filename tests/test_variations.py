"""One-factor variation sets: each variant differs from its base in exactly the stated factor,
in the plan, in the pixels, in the annotations, in SQL and in the variation QA."""
import contextlib
import io
import json
import os

import numpy as np
import pytest
from conftest import forget_job, job_spec
from PIL import Image
from pycocotools import mask as mask_utils

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.shards.tar import read_samples
from soclake.spec.load import resolve
from soclake.stages import runner as stage
from soclake.stages.refexp.programs import plural

FACTORS = ["size", "position", "existence", "count"]
BASES = 4
GROUP = 1 + 2 + 3 + 1 + 2  # base, two sizes, three positions, removed, two counts


def variation_spec(name="vary", **sections):
    values = {"job": {"images": BASES, "shard_size": 20}, "sampling": {"objects": [2, 5]},
              "layout": {"width": 192, "height": 160},
              "render": {"background": "pool", "format": "png", "blend": ["none"], "fg_mask": True},
              "variations": {"factors": FACTORS, "size": [0.5, 1.5], "position": ["left", "bottom", "0.3,-0.2"],
                             "count": [1, 2]}}
    for section, extra in sections.items():
        values[section] = {**values.get(section, {}), **extra}
    return job_spec(name, **values)


@pytest.fixture(scope="module")
def vary(sample_lake):
    spec = variation_spec()
    summary = jobs.run(sample_lake, spec, workers=2, progress=False)
    assert not summary.failed
    plan = {r["image_id"]: r for r in sample_lake.query("SELECT * FROM plan WHERE fingerprint = $fp",
                                                        {"fp": summary.fingerprint}).to_pylist()}
    samples = {}
    for shard in sorted(os.listdir(os.path.join(sample_lake.root, summary.folder, "shards"))):
        with open(os.path.join(sample_lake.root, summary.folder, "shards", shard), "rb") as f:
            samples.update(read_samples(f.read()))
    return sample_lake, spec, summary, plan, samples


def variant_pairs(plan):
    """(base row, variant row) for every variant."""
    return [(plan[r["base_id"]], r) for r in plan.values() if r["factor"] is not None]


def by_pid(row):
    return {o["panoptic_id"]: o for o in row["objects"] if o["role"] == "object"}


def decode(members):
    info = json.loads(members["json"])
    rgb = np.asarray(Image.open(io.BytesIO(members["pan.png"])).convert("RGB")).astype(np.int64)
    pan = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
    image = np.asarray(Image.open(io.BytesIO(members["png"])))
    fg = np.asarray(Image.open(io.BytesIO(members["fg.png"])))
    return info, pan, image, fg


def changed_region(base, var, margin=0):
    """Union of the boxes the variant changes: the target's old and new box, or the added ones."""
    H, W = base["height"], base["width"]
    region = np.zeros((H, W), bool)
    boxes = []
    if var["factor"] == "count":
        boxes = [by_pid(var)[p] for p in var["added_ids"]]
    else:
        boxes = [by_pid(base)[var["target_id"]]] + ([by_pid(var)[var["target_id"]]] if var["factor"] != "existence" else [])
    for o in boxes:
        region[max(o["y"] - margin, 0):o["y"] + o["h"] + margin, max(o["x"] - margin, 0):o["x"] + o["w"] + margin] = True
    return region


def where(bbox, W, H):
    """The answer a "where is" question must get, from thirds of the box centre."""
    x, y, w, h = bbox
    col = ("left", "", "right")[min(2, int(3 * (x + w / 2) / W))]
    row = ("top", "", "bottom")[min(2, int(3 * (y + h / 2) / H))]
    if col and row:
        return f"at the {row} {col}"
    return f"on the {col}" if col else f"at the {row}" if row else "in the middle"


def mask(inst):
    return mask_utils.decode({"size": inst["segmentation"]["size"], "counts": inst["segmentation"]["counts"]}).astype(bool)


# ---------------------------------------------------------------------------- plan
def test_plan_variants_change_exactly_one_factor(vary):
    lake, spec, summary, plan, _ = vary
    pairs = variant_pairs(plan)
    info = json.loads(open(lake.path(summary.folder, "job.json")).read())
    assert len(pairs) == info["plan"]["variants"] == BASES * (GROUP - 1) - info["plan"]["variants_skipped"]
    assert info["plan"]["variants_skipped"] <= 4  # count variants that do not fit, targets that cannot move or grow
    seen = set()
    for base, var in pairs:
        seen.add(var["factor"])
        assert var["image_id"] // GROUP == base["image_id"] // GROUP and base["image_id"] % GROUP == 0
        for k in ("seed", "background_id", "background_crop", "width", "height", "shard", "target_id"):
            assert var[k] == base[k], k
        assert var["objects"] != base["objects"]
        old, new = by_pid(base), by_pid(var)
        t = var["target_id"]
        others = [o for o in base["objects"] if o["panoptic_id"] != t]
        if var["factor"] == "existence":
            assert var["objects"] == others
            continue
        if var["factor"] == "count":
            k = int(var["factor_value"])
            n = len(base["objects"])
            assert var["objects"][:n] == base["objects"] and len(var["objects"]) == n + k
            assert [o["panoptic_id"] for o in var["objects"][n:]] == var["added_ids"]
            for o in var["objects"][n:]:
                assert o["category_id"] == old[t]["category_id"] and o["role"] == "object"
                assert 0 <= o["x"] <= base["width"] - o["w"] and 0 <= o["y"] <= base["height"] - o["h"]
            continue
        assert [o for o in var["objects"] if o["panoptic_id"] != t] == others
        a, b = old[t], new[t]
        same = {k for k in a if a[k] == b[k]}
        assert set(a) - same <= {"x", "y", "w", "h"}
        assert 0 <= b["x"] <= base["width"] - b["w"] and 0 <= b["y"] <= base["height"] - b["h"]
        if var["factor"] == "size":
            f = float(var["factor_value"])
            fit = min(1.0, base["width"] / (a["w"] * f), base["height"] / (a["h"] * f))
            assert abs(b["w"] - a["w"] * f * fit) <= 1 and abs(b["h"] - a["h"] * f * fit) <= 1
        else:
            assert (b["w"], b["h"]) == (a["w"], a["h"])
            cx, cy = a["x"] + a["w"] / 2, a["y"] + a["h"] / 2
            want = {"left": (base["width"] / 6, cy), "bottom": (cx, base["height"] * 5 / 6),
                    "0.3,-0.2": (cx + 0.3 * base["width"], cy - 0.2 * base["height"])}[var["factor_value"]]
            x = min(max(round(want[0] - a["w"] / 2), 0), base["width"] - a["w"])
            y = min(max(round(want[1] - a["h"] / 2), 0), base["height"] - a["h"])
            assert abs(b["x"] - x) <= 1 and abs(b["y"] - y) <= 1
    assert seen == set(FACTORS)


def test_groups_share_a_shard_and_query_by_base_id(vary):
    lake, spec, summary, plan, _ = vary
    rows = lake.query(
        "SELECT base_id, count(*) n, count(DISTINCT shard) shards, count(*) FILTER (WHERE factor IS NULL) bases, "
        "bool_and(factor IS NOT NULL OR image_id = base_id) base_is_own, list(DISTINCT factor ORDER BY factor) f "
        "FROM committed_images WHERE fingerprint = $fp GROUP BY base_id ORDER BY base_id",
        {"fp": summary.fingerprint}).to_pylist()
    assert [r["base_id"] for r in rows] == [GROUP * i for i in range(BASES)]
    assert all(r["shards"] == 1 and r["bases"] == 1 and r["base_is_own"] for r in rows)
    assert sum(r["n"] for r in rows) == len(plan) == summary.images
    assert all({"size", "position", "existence"} <= set(r["f"]) for r in rows)
    # groups of 9 in shards of 20: two groups per shard
    assert sorted({p["shard"] for p in plan.values()}) == [0, 1] and summary.shards_total == 2


# ---------------------------------------------------------------------------- pixels
def test_variant_pixels_differ_only_in_the_changed_region(vary):
    _, _, _, plan, samples = vary
    changed_somewhere = 0
    for base, var in variant_pairs(plan):
        region = changed_region(base, var)
        _, pan_b, img_b, fg_b = decode(samples[base["key"]])
        _, pan_v, img_v, fg_v = decode(samples[var["key"]])
        for a, b in ((img_b, img_v), (pan_b, pan_v), (fg_b, fg_v)):
            diff = a != b
            if diff.ndim == 3:
                diff = diff.any(axis=2)
            assert not (diff & ~region).any(), (var["key"], var["factor"], var["factor_value"])
            changed_somewhere += int(diff.any())
        if var["factor"] in ("existence", "count"):
            assert (img_b != img_v).any()
    assert changed_somewhere > 0


def test_unchanged_annotations_are_identical_and_the_change_is_as_stated(vary):
    _, _, _, plan, samples = vary
    checked = {f: 0 for f in FACTORS}
    for base, var in variant_pairs(plan):
        region = changed_region(base, var)
        ib = {i["panoptic_id"]: i for i in json.loads(samples[base["key"]]["json"])["instances"]}
        iv = {i["panoptic_id"]: i for i in json.loads(samples[var["key"]]["json"])["instances"]}
        t = var["target_id"]
        for pid in ib.keys() & iv.keys() - ({t} if var["factor"] != "count" else set()):
            mb, mv = mask(ib[pid]), mask(iv[pid])
            assert not ((mb ^ mv) & ~region).any()
            if not ((mb | mv) & region).any():
                for k in ("segmentation", "bbox", "area", "visible_fraction", "segment_id", "category_id"):
                    assert ib[pid][k] == iv[pid][k], k
        cat = lambda insts: sum(i["category_id"] == ib[t]["category_id"] for i in insts.values())  # noqa: E731
        if t not in ib:
            continue
        f, value = var["factor"], var["factor_value"]
        if f == "existence":
            assert t not in iv and cat(iv) == cat(ib) - 1
        elif f == "count":
            assert set(var["added_ids"]) <= set(iv) and cat(iv) == cat(ib) + int(value)
        elif f == "size" and t in iv:
            full_b = ib[t]["area"] / ib[t]["visible_fraction"]
            full_v = iv[t]["area"] / iv[t]["visible_fraction"]
            o, n = by_pid(base)[t], by_pid(var)[t]
            planned = n["w"] * n["h"] / (o["w"] * o["h"])  # factor^2 (unless shrunk to fit, see the plan test)
            assert full_v / full_b == pytest.approx(planned, rel=0.2)
        elif f == "position" and t in iv and ib[t]["visible_fraction"] == iv[t]["visible_fraction"] == 1.0:
            o, n = by_pid(base)[t], by_pid(var)[t]
            dx, dy = n["x"] - o["x"], n["y"] - o["y"]
            x, y, w, h = ib[t]["bbox"]
            assert iv[t]["bbox"] == [x + dx, y + dy, w, h]
            assert np.array_equal(np.roll(mask(ib[t]), (dy, dx), axis=(0, 1)), mask(iv[t]))
        checked[f] += 1
    assert all(checked.values()), checked


def test_per_object_seeds_keep_motion_blur_when_an_object_is_removed(vary):
    """With one render rng shared in paste order, removing the bottom object would change the
    blur angle of every object above it; with per-object seeds only its own region changes."""
    from soclake.render.compose import render_image
    lake, spec, summary, plan, _ = vary
    task = jobs.shard_task(lake, jobs.prepare(lake, spec), 0)
    render = {**task["render"], "blend": ["motion"]}
    tried = 0
    for base in task["plan"]:
        if base["factor"] is not None or len(base["objects"]) < 3:
            continue
        blurred = [{**o, "blend": "motion"} for o in base["objects"]]
        bottom = blurred[0]
        variant = {**base, "objects": blurred[1:], "factor": "existence", "target_id": bottom["panoptic_id"]}
        a, b = (render_image({**base, "objects": objs}, task["segments"], task["backgrounds"], lake.read_range,
                             render, {}).members["png"] for objs in (blurred, variant["objects"]))
        region = changed_region(base, variant, margin=render["motion"] // 2 + 1)
        diff = (np.asarray(Image.open(io.BytesIO(a))) != np.asarray(Image.open(io.BytesIO(b)))).any(axis=2)
        assert diff.any() and not (diff & ~region).any()
        tried += 1
    assert tried


# ---------------------------------------------------------------------------- language
def test_variation_qa_answers_are_true_of_each_image(vary):
    lake, _, summary, plan, samples = vary
    s = stage.run(lake, resolve({"job": {"name": "vary-qa", "input": "vary"}, "refexp": {}}), workers=1, progress=False)
    assert s.images == len(plan) and not s.failed
    docs = {}
    for shard in sorted(os.listdir(os.path.join(lake.root, s.folder, "shards"))):
        with open(os.path.join(lake.root, s.folder, "shards", shard), "rb") as f:
            for key, members in read_samples(f.read()):
                docs[key] = json.loads(members["refexp.json"])
    kinds = set()
    for row in plan.values():
        doc, info = docs[row["key"]], json.loads(samples[row["key"]]["json"])
        assert doc["variation"]["base_id"] == row["base_id"] and doc["variation"]["factor"] == row["factor"]
        by_ann = {i["ann_id"]: i for i in info["instances"]}
        for qa in doc["variation_qa"]:
            kinds.add(qa["type"])
            targets = [by_ann[a] for a in qa["targets"]]
            if qa["type"] == "count":
                same = [i for i in info["instances"] if qa["question"] == f"How many {plural(i['category'])} are there?"]
                assert qa["answer"] == str(len(same)) and sorted(i["ann_id"] for i in same) == qa["targets"]
            elif qa["type"] == "existence":
                assert qa["answer"] == ("yes" if targets else "no")
            elif qa["type"] == "size":
                a, b = (by_ann[i] for i in qa["compared"])
                assert targets == [a if a["area"] > b["area"] else b] and a["area"] != b["area"]
                assert qa["answer"] in qa["question"]
            else:
                assert qa["answer"] == where(targets[0]["bbox"], info["width"], info["height"])
    assert kinds == {"count", "existence", "size", "position"}
    # the factor shows in the answers: k more instances, the target gone
    for row in plan.values():
        if row["factor"] in ("count", "existence"):
            q = {(x["type"], x["question"]): x["answer"] for x in docs[row["key"]]["variation_qa"]}
            qb = {(x["type"], x["question"]): x["answer"] for x in docs[plan[row["base_id"]]["key"]]["variation_qa"]}
            for (kind, question), answer in q.items():
                if row["factor"] == "count" and kind == "count":
                    assert int(answer) == int(qb[(kind, question)]) + int(row["factor_value"])
                if row["factor"] == "existence" and kind == "existence":
                    assert (qb[(kind, question)], answer) == ("yes", "no")


# ---------------------------------------------------------------------------- outputs
def test_determinism_across_reruns_and_worker_counts(vary):
    lake, spec, summary, plan, _ = vary
    shards = sorted(os.path.join(lake.root, summary.folder, "shards", s)
                    for s in os.listdir(os.path.join(lake.root, summary.folder, "shards")))
    data = [open(s, "rb").read() for s in shards]
    forget_job(lake, summary.fingerprint, summary.folder)
    again = jobs.run(lake, spec, workers=1, progress=False)  # the fixture ran with 2 workers
    assert again.fingerprint == summary.fingerprint and again.shards_rendered == 2
    assert [open(s, "rb").read() for s in shards] == data
    replanned = {r["image_id"]: r for r in lake.query("SELECT * FROM plan WHERE fingerprint = $fp",
                                                      {"fp": summary.fingerprint}).to_pylist()}
    assert replanned == plan


def test_coco_export_loads_with_pycocotools(vary, tmp_path):
    from pycocotools.coco import COCO

    from soclake.outputs.export import export
    lake, _, summary, plan, _ = vary
    s = export(lake, "vary", "coco", str(tmp_path))
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "annotations.json"))
    assert len(gt.imgs) == s.images == len(plan) and len(gt.anns) == s.annotations == summary.instances
    for ann in gt.dataset["annotations"]:
        assert gt.annToMask(ann).sum() == ann["area"]


def test_example_spec_runs(sample_lake):
    from soclake.spec.load import load
    path = os.path.join(os.path.dirname(__file__), "..", "jobs", "variation_bench.toml")
    spec = load(path)
    small = resolve({**spec.values, "job": {**spec["job"], "images": 2, "name": "variation-bench-small"},
                     "layout": {**spec["layout"], "width": 256, "height": 256}}, path, os.path.dirname(path))
    s = jobs.run(sample_lake, small, workers=1, progress=False)
    assert not s.failed and s.images >= 2 * 8 and s.shards_total == 1
    rows = sample_lake.query("SELECT factor, count(*) n FROM committed_images WHERE fingerprint = $fp GROUP BY ALL",
                             {"fp": s.fingerprint}).to_pylist()
    n = {r["factor"]: r["n"] for r in rows}
    assert n[None] == 2 and n["size"] == 4 and n["position"] == 8 and n["existence"] == 2


def test_spec_errors_name_the_fix():
    with pytest.raises(SoclakeError, match=r"\[variations\] factors must be distinct values"):
        variation_spec("bad", variations={"factors": ["size", "colour"]})
    with pytest.raises(SoclakeError, match="position 'middle-ish'"):
        variation_spec("bad", variations={"position": ["middle-ish"]})
    with pytest.raises(SoclakeError, match="count values must be >= 1"):
        variation_spec("bad", variations={"count": [0]})
    with pytest.raises(SoclakeError, match="lists 'size' but"):
        variation_spec("bad", variations={"size": []})
    assert job_spec("plain")["variations"]["factors"] == []  # default: no variants
