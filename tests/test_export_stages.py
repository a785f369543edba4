"""Every stage is exportable: a relight job with its relit images and its input's annotations, a
refexp job as COCO / panoptic / ODVG grounding / captions; SOC's text fields on annotations and
segments_info, isthing and supercategory on categories. Read back with pycocotools and by
decoding the files written."""
import json
import os

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.outputs.export import export
from soclake.spec.load import resolve
from soclake.stages.runner import run as stage_run

TEXT = ("category_name", "sub_category", "description", "features", "short_phrase")


@pytest.fixture(scope="module")
def chain(sample_lake):
    """compose (no background) -> relight (classic) -> refexp (graph), 4 images in 2 shards."""
    jobs.run(sample_lake, job_spec("x-fc", job={"images": 4, "shard_size": 2}, render={"background": "none"},
                                   layout={"width": 128, "height": 96}, sampling={"objects": [2, 5]}),
             workers=1, progress=False)
    stage_run(sample_lake, resolve({"job": {"name": "x-relit", "input": "x-fc"}, "relight": {}}), workers=1,
              progress=False)
    stage_run(sample_lake, resolve({"job": {"name": "x-refexp", "input": "x-relit"}, "refexp": {}}), workers=1,
              progress=False)
    return sample_lake


def segment_texts(lake) -> dict:
    rows = lake.query("SELECT segment_id, c.name AS category, subcategory, description, features, short_phrase "
                      "FROM segments JOIN categories c USING (category_id)").to_pylist()
    return {r["segment_id"]: r for r in rows}


def test_a_relight_job_exports_its_relit_images_with_its_inputs_annotations(chain, tmp_path):
    lake = chain
    src = export(lake, "x-fc", "coco", str(tmp_path / "fc"))
    out = export(lake, "x-relit", "coco", str(tmp_path / "relit"), images=True)
    assert out.images == src.images == 4 and out.annotations == src.annotations > 0
    coco = COCO(str(tmp_path / "relit" / "annotations.json"))
    base = json.load(open(tmp_path / "fc" / "annotations.json"))
    doc = json.load(open(tmp_path / "relit" / "annotations.json"))
    assert [a["segmentation"] for a in doc["annotations"]] == [a["segmentation"] for a in base["annotations"]]
    assert [a["bbox"] for a in doc["annotations"]] == [a["bbox"] for a in base["annotations"]]
    for img in coco.dataset["images"]:
        assert img["file_name"].endswith(".jpg") and "/x-relit/" in img["shard_uri"]
        im = Image.open(tmp_path / "relit" / "images" / img["file_name"])
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (img["width"], img["height"])
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            assert coco.annToMask(a).sum() == a["area"]
    assert sorted(os.listdir(tmp_path / "relit" / "images")) == sorted(i["file_name"] for i in coco.dataset["images"])


def test_coco_and_panoptic_carry_the_segments_text_and_categories_isthing(chain, tmp_path):
    lake = chain
    texts = segment_texts(lake)
    seg_of = {r["ann_id"]: r["segment_id"] for r in lake.query("SELECT ann_id, segment_id FROM committed_annotations "
                                                              "WHERE job = 'x-fc'").to_pylist()}
    export(lake, "x-relit", "coco", str(tmp_path / "c"))
    doc = json.load(open(tmp_path / "c" / "annotations.json"))
    for a in doc["annotations"]:
        t = texts[seg_of[a["id"]]]
        assert (a["category_name"], a["sub_category"], a["description"], a["features"], a["short_phrase"]) == \
            (t["category"], t["subcategory"], t["description"], t["features"], t["short_phrase"])
    assert all(c["isthing"] == 1 and c["supercategory"] for c in doc["categories"])
    export(lake, "x-refexp", "panoptic", str(tmp_path / "p"))
    pan = json.load(open(tmp_path / "p" / "panoptic.json"))
    assert all(c["isthing"] == 1 and c["supercategory"] for c in pan["categories"])
    for ann in pan["annotations"]:
        png = np.asarray(Image.open(tmp_path / "p" / "panoptic" / ann["file_name"]).convert("RGB")).astype(np.int64)
        ids = png[..., 0] + 256 * png[..., 1] + 65536 * png[..., 2]
        for s in ann["segments_info"]:
            assert all(k in s for k in TEXT) and s["area"] == int((ids == s["id"]).sum())
            assert s["category_name"] == next(c["name"] for c in pan["categories"] if c["id"] == s["category_id"])


def test_a_refexp_job_exports_coco_odvg_grounding_and_captions(chain, tmp_path):
    lake = chain
    coco = export(lake, "x-refexp", "coco", str(tmp_path / "c"), images=True)
    assert coco.images == 4 and COCO(str(tmp_path / "c" / "annotations.json")).getAnnIds()
    assert all(n.endswith(".jpg") for n in os.listdir(tmp_path / "c" / "images"))
    odvg = export(lake, "x-refexp", "odvg", str(tmp_path / "o"))
    records = [json.loads(line) for line in open(tmp_path / "o" / "odvg.jsonl")]
    assert odvg.annotations > 0 and records
    for r in records:
        cap = r["grounding"]["caption"]
        for region in r["grounding"]["regions"]:
            (s, e), = region["tokens_positive"]
            assert cap[s:e] == region["phrase"]
    caps = export(lake, "x-refexp", "captions", str(tmp_path / "t"))
    lines = [json.loads(line) for line in open(tmp_path / "t" / "captions.jsonl")]
    assert caps.images == len(lines) == 4
    anns = json.load(open(tmp_path / "c" / "annotations.json"))["annotations"]
    for line in lines:
        assert line["caption"] and line["qa"] and line["file_name"].endswith(".jpg")
        mine = {str(a["id"]): a["area"] for a in anns if a["image_id"] == line["image_id"]}
        # every instance big enough to describe truthfully (refexp min_pixels, 150) has its caption
        assert {k for k, area in mine.items() if area >= 150} <= set(line["instances"]) <= set(mine)
        assert all(isinstance(v, str) and v for v in line["instances"].values())


def test_captions_need_a_refexp_job(chain, tmp_path):
    with pytest.raises(SoclakeError, match="captions come from a refexp job"):
        export(chain, "x-relit", "captions", str(tmp_path / "t"))


def test_rle_round_trip_of_a_relit_export(chain, tmp_path):
    export(chain, "x-relit", "coco", str(tmp_path / "r"))
    doc = json.load(open(tmp_path / "r" / "annotations.json"))
    for a in doc["annotations"]:
        m = mask_utils.decode(a["segmentation"])
        assert int(m.sum()) == a["area"] and [float(v) for v in mask_utils.toBbox(a["segmentation"])] == a["bbox"]
        assert a["iscrowd"] == 0
