"""Exports read back by the field's own tools, and the statistics and splits behind them."""
import contextlib
import io
import json
import os
import tarfile

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.outputs.export import export, grounding_caption, stats


@pytest.fixture(scope="module")
def exported_job(sample_lake):
    spec = job_spec("exp", job={"images": 12, "shard_size": 4}, sampling={"objects": [3, 7]},
                    render={"background": "pool", "blend": ["none", "gaussian"]})
    summary = jobs.run(sample_lake, spec, workers=1, progress=False)
    return sample_lake, summary


def test_coco_export_loads_and_evaluates_to_ap_1(exported_job, tmp_path):
    lake, summary = exported_job
    s = export(lake, "exp", "coco", str(tmp_path), images=True)
    assert s.images == 12 and s.annotations == summary.instances
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(tmp_path / "annotations.json"))
        dets = [{**a, "score": 1.0} for a in gt.dataset["annotations"]]
        for iou in ("bbox", "segm"):
            ev = COCOeval(gt, gt.loadRes(dets), iou)
            ev.evaluate()
            ev.accumulate()
            ev.summarize()
            assert ev.stats[0] == pytest.approx(1.0), iou
    for ann in gt.dataset["annotations"]:
        m = gt.annToMask(ann)
        assert m.sum() == ann["area"]
        ys, xs = np.nonzero(m)
        assert ann["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
    for img in gt.dataset["images"]:
        assert Image.open(tmp_path / "images" / img["file_name"]).size == (img["width"], img["height"])
    names = {c["id"]: c["name"] for c in gt.dataset["categories"]}
    assert set(names.values()) >= {"ball", "star"}


def test_panoptic_export_agrees_with_pngs(exported_job, tmp_path):
    lake, _ = exported_job
    export(lake, "exp", "panoptic", str(tmp_path))
    doc = json.loads((tmp_path / "panoptic.json").read_text())
    assert all(c["isthing"] == 1 and len(c["color"]) == 3 for c in doc["categories"])
    image_ids = {i["id"] for i in doc["images"]}
    assert {a["image_id"] for a in doc["annotations"]} == image_ids
    for ann in doc["annotations"]:
        rgb = np.asarray(Image.open(tmp_path / "panoptic" / ann["file_name"]).convert("RGB")).astype(np.int64)
        pid = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        assert set(np.unique(pid)) - {0} == {s["id"] for s in ann["segments_info"]}
        for seg in ann["segments_info"]:
            ys, xs = np.nonzero(pid == seg["id"])
            assert seg["area"] == len(ys)
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]


def test_odvg_spans_index_the_caption(exported_job, tmp_path):
    lake, summary = exported_job
    export(lake, "exp", "odvg", str(tmp_path))
    lines = [json.loads(x) for x in (tmp_path / "odvg.jsonl").read_text().splitlines()]
    assert len(lines) == 12
    n = 0
    for rec in lines:
        g = rec["grounding"]
        for region in g["regions"]:
            for s, e in region["tokens_positive"]:
                assert g["caption"][s:e] == region["phrase"]
            x0, y0, x1, y1 = region["bbox"]
            assert 0 <= x0 < x1 <= rec["width"] and 0 <= y0 < y1 <= rec["height"]
            n += 1
        assert len(rec["detection"]["instances"]) == len(g["regions"])
    assert n == summary.instances
    label_map = json.loads((tmp_path / "label_map.json").read_text())
    assert all(label_map[str(i["label"])] == i["category"] for rec in lines for i in rec["detection"]["instances"])


def test_grounding_caption():
    caption, spans = grounding_caption(["dog", "cat", "dog", "red ball"])
    assert caption == "cat. dog. red ball."
    assert {k: caption[s:e] for k, (s, e) in spans.items()} == {"cat": "cat", "dog": "dog", "red ball": "red ball"}


def test_splits_are_disjoint_cover_and_stable(sample_lake):
    small = jobs.run(sample_lake, job_spec("splits", job={"images": 20, "shard_size": 5}), workers=1, progress=False)
    big = jobs.run(sample_lake, job_spec("splits", job={"images": 40, "shard_size": 5}), workers=1, progress=False)
    q = ("SELECT image_id, split FROM image_splits(val_fraction := 0.2, test_fraction := 0.2) "
         "WHERE fingerprint = $fp ORDER BY image_id")
    a = {r["image_id"]: r["split"] for r in sample_lake.query(q, {"fp": small.fingerprint}).to_pylist()}
    b = {r["image_id"]: r["split"] for r in sample_lake.query(q, {"fp": big.fingerprint}).to_pylist()}
    assert set(a) == set(range(20)) and set(b) == set(range(40))
    assert all(b[i] == a[i] for i in a)  # adding images never moves one
    assert {"train", "val", "test"} <= set(b.values())
    strat = sample_lake.query("SELECT a.category_id FROM committed_annotations a JOIN image_splits(val_fraction := 0.0, "
                              "test_fraction := 0.0, stratify := true, min_images := 3) s USING (fingerprint, image_id) "
                              "WHERE a.fingerprint = $fp AND s.split = 'val' GROUP BY 1", {"fp": big.fingerprint})
    cats = sample_lake.query("SELECT category_id FROM category_stats WHERE fingerprint = $fp AND images >= 3",
                             {"fp": big.fingerprint})
    assert set(strat.column("category_id").to_pylist()) == set(cats.column("category_id").to_pylist())


def test_stats_agree_with_the_shards(exported_job):
    lake, summary = exported_job
    fp, missing, cats, splits = stats(lake, "exp")
    assert fp == summary.fingerprint and not missing
    from_shards: dict[int, list] = {}
    folder = lake.path(summary.folder, "shards")
    for name in sorted(os.listdir(folder)):
        with tarfile.open(os.path.join(folder, name)) as tar:
            for m in tar:
                if m.name.endswith(".json"):
                    info = json.loads(tar.extractfile(m).read())
                    for inst in info["instances"]:
                        from_shards.setdefault(inst["category_id"], []).append((info["image_id"], inst["area"]))
    rows = {r["category_id"]: r for r in cats.to_pylist()}
    assert set(rows) == set(from_shards)
    s2 = 160 * 128 / (640 * 480)
    for cid, items in from_shards.items():
        r = rows[cid]
        assert r["instances"] == len(items) and r["images"] == len({i for i, _ in items})
        assert r["small"] == sum(a < 1024 * s2 for _, a in items)
        assert r["large"] == sum(a >= 9216 * s2 for _, a in items)
    assert sum(r["images"] for r in splits.to_pylist()) == 12


def test_partial_jobs_export_what_is_committed(sample_lake, tmp_path, capsys):
    summary = jobs.run(sample_lake, job_spec("partial", job={"images": 6, "shard_size": 2}), workers=1, progress=False)
    part = [p for p in sample_lake.table_parts("manifest") if f"{summary.fingerprint}-000001" in p][0]
    os.unlink(part)
    sample_lake.refresh()
    s = export(sample_lake, "partial", "coco", str(tmp_path))
    assert s.missing_shards == [1] and s.images == 4
    assert "shards [1]" in capsys.readouterr().err
    doc = json.loads((tmp_path / "annotations.json").read_text())
    assert sorted(i["id"] for i in doc["images"]) == [0, 1, 4, 5]


def test_export_errors(exported_job, tmp_path):
    lake, _ = exported_job
    with pytest.raises(SoclakeError, match=r"no job 'never-ran' in .*\(known: .*exp"):
        export(lake, "never-ran", "coco", str(tmp_path))
    with pytest.raises(SoclakeError, match=r"did you mean 'exp'\?"):
        export(lake, "exq", "coco", str(tmp_path))
    with pytest.raises(SoclakeError, match="unknown export format"):
        export(lake, "exp", "voc", str(tmp_path))
    with pytest.raises(SoclakeError, match="unknown split"):
        export(lake, "exp", "coco", str(tmp_path), split="dev")
