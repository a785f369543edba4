"""SOC's formats in and out: `export --format soc` writes SOC's layout with true areas and boxes
(checked by decoding the PNGs written), SOC grounding JSONL for refexp jobs; `ingest soc-output`
reads such a folder (or one with SOC's defects) back into a job, fixes what the pixels allow,
skips bad entries and gives back the same annotations."""
import io
import json
import os

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image
from pycocotools.coco import COCO

from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.ingestion import soc_output
from soclake.jobs import compose as jobs
from soclake.lake import catalog
from soclake.loader.stream import Stream
from soclake.outputs.export import export
from soclake.shards.tar import read_samples
from soclake.spec.load import resolve
from soclake.stages.runner import run as stage_run


@pytest.fixture(scope="module")
def chain(sample_lake):
    jobs.run(sample_lake, job_spec("s-fc", job={"images": 4, "shard_size": 2}, render={"background": "none"},
                                   layout={"kind": "soc", "width": 160, "height": 128}, sampling={"objects": [5, 8]}),
             workers=1, progress=False)
    stage_run(sample_lake, resolve({"job": {"name": "s-relit", "input": "s-fc"}, "relight": {}}), workers=1,
              progress=False)
    stage_run(sample_lake, resolve({"job": {"name": "s-refexp", "input": "s-relit"}, "refexp": {}}), workers=1,
              progress=False)
    return sample_lake


def pan_ids(path) -> np.ndarray:
    rgb = np.asarray(Image.open(path).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def test_soc_layout_export_has_socs_files_with_true_areas_and_boxes(chain, tmp_path):
    out = tmp_path / "soc"
    s = export(chain, "s-relit", "soc", str(out))
    assert s.images == 4
    ann = out / "annotations"
    names = json.load(open(ann / "categories.json"))
    assert names == sorted(names) and json.load(open(ann / "categories_to_idx.json")) == {n: i for i, n in enumerate(names)}
    assert json.load(open(ann / "idx_to_categories.json")) == {str(i): n for i, n in enumerate(names)}
    merged = json.load(open(ann / "panoptic_train.json"))
    assert [c["name"] for c in merged["categories"]] == names and all(c["isthing"] == 1 for c in merged["categories"])
    assert [i["id"] for i in merged["images"]] == sorted(i["id"] for i in merged["images"])
    for image, entry in zip(merged["images"], merged["annotations"]):
        i = image["id"]
        assert entry["image_id"] == i and entry["file_name"] == f"{i}.png" and image["file_name"] == f"{i}.jpg"
        assert json.load(open(ann / "separate_annotations" / f"{i}.json")) == entry
        assert Image.open(out / "train" / image["file_name"]).format == "JPEG"
        ids = pan_ids(out / "panoptic_train" / f"{i}.png")
        assert ids.shape == (image["height"], image["width"])
        for seg in entry["segments_info"]:
            assert list(seg) == ["id", "category_id", "iscrowd", "bbox", "category", "sub_category", "description",
                                 "features", "short_phrase", "area"]  # SOC's keys, in SOC's order
            m = ids == seg["id"]
            ys, xs = np.nonzero(m)
            assert seg["area"] == int(m.sum()) > 1
            assert seg["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
            assert names[seg["category_id"]] == seg["category"]
    compose = export(chain, "s-fc", "soc", str(tmp_path / "rgba"))
    assert compose.images == 4
    for i in range(4):
        im = Image.open(tmp_path / "rgba" / "train" / f"{i}.png")
        assert im.mode == "RGBA"  # the composite SOC's relight script reads


def test_refexp_job_in_socs_grounding_format(chain, tmp_path):
    out = tmp_path / "soc"
    export(chain, "s-refexp", "soc", str(out), seed=3)
    records = [json.loads(line) for line in open(out / "refexp" / "job_0.jsonl")]
    assert records and os.path.isfile(out / "odvg.jsonl")
    merged = json.load(open(out / "annotations" / "panoptic_train.json"))
    boxes = {e["image_id"]: {tuple(s["bbox"]) for s in e["segments_info"]} for e in merged["annotations"]}
    by_image: dict = {}
    for r in records:
        g = r["grounding"]
        assert g["caption"].endswith(". ")
        assert g["caption"] == ". ".join(x["phrase"] for x in g["regions"]) + ". "
        for region in g["regions"]:
            (s, e), = region["tokens_positive"]
            assert g["caption"][s:e + 1] == region["phrase"]      # the end is inclusive
            assert not region["phrase"].endswith(("?", ".", " "))
            image_id = int(r["filename"].split(".")[0])
            assert region["bboxes"] and all(tuple(b) in boxes[image_id] for b in region["bboxes"])  # XYWH of segments
        if len(g["regions"]) > 1:
            assert len(g["caption"]) <= 255
        by_image.setdefault(r["filename"], []).append(g)
    for chunks in by_image.values():
        for a, b in zip(chunks, chunks[1:]):   # a chunk closes only when the next phrase would pass 150+
            assert len(a["caption"]) + len(b["regions"][0]["phrase"]) + 2 > 150
    again = tmp_path / "again"
    export(chain, "s-refexp", "soc", str(again), seed=3)
    assert open(again / "refexp" / "job_0.jsonl").read() == open(out / "refexp" / "job_0.jsonl").read()


def shard_samples(path) -> dict:
    return dict(read_samples(open(path, "rb").read()))


def decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)))


def annotations_of(lake, job):
    fp = catalog.current(lake, job).fingerprint
    rows = lake.query("SELECT image_id, panoptic_id, ann_id, category_id, bbox, area, rle_counts, subcategory, "
                      "description, short_phrase, features FROM committed_annotations WHERE fingerprint = $fp "
                      "ORDER BY ann_id", {"fp": fp}).to_pylist()
    return rows


def test_ingest_soc_output_of_the_export_gives_back_the_same_annotations(chain, tmp_path, capsys):
    out = tmp_path / "soc"
    export(chain, "s-refexp", "soc", str(out))
    assert main(["ingest", "soc-output", str(out), "--lake", chain.uri, "--name", "s-back", "--shard-size", "2",
                 "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "imported job s-back" in printed and "skipped" not in printed
    chain.refresh()
    assert annotations_of(chain, "s-back") == annotations_of(chain, "s-fc")
    # the relit JPEGs come back byte for byte, the panoptic maps pixel for pixel
    relit, back = catalog.current(chain, "s-relit").fingerprint, catalog.current(chain, "s-back").fingerprint
    for shard in range(2):
        a = shard_samples(chain.path("jobs", "s-relit", relit, "shards", f"shard-{shard:06d}.tar"))
        b = shard_samples(chain.path("jobs", "s-back", back, "shards", f"shard-{shard:06d}.tar"))
        assert a.keys() == b.keys()
        for key in a:
            assert a[key]["jpg"] == b[key]["jpg"]
            assert np.array_equal(decode(a[key]["pan.png"]), decode(b[key]["pan.png"]))
    # and the expressions (SOC's cleaned text) with their targets
    src = {(r["image_id"], r["text"].rstrip("?. "), tuple(r["targets"]))
           for r in chain.query("SELECT * FROM refexps WHERE job = 's-refexp' AND scope != 'none'").to_pylist()}
    got = {(r["image_id"], r["text"], tuple(r["targets"]))
           for r in chain.query("SELECT * FROM refexps WHERE job = 's-back'").to_pylist()}
    assert got == src and got
    jobs_table = chain.query("SELECT job, state FROM job_status WHERE job = 's-back'").to_pylist()
    assert jobs_table == [{"job": "s-back", "state": "imported"}]
    exported = export(chain, "s-back", "coco", str(tmp_path / "coco"), images=True)
    assert exported.images == 4 and COCO(str(tmp_path / "coco" / "annotations.json")).getAnnIds()
    assert len(list(Stream(chain.root, "s-back", task="detection", shuffle=False))) == 4
    # importing again is recognised: same fingerprint, nothing new committed
    again = soc_output.ingest_job(chain, str(out), "s-back", shard_size=2, progress=False)
    assert again.fingerprint == back and again.images == 4


def write_soc_like(root, n_images=3):
    """A SOC output with SOC's defects: area 1, .jpg names for .png composites, a hidden segment
    with bbox [0, 0, 0, 0], 24-bit colour ids; plus an image whose mask is missing and one whose
    segment names an unknown category."""
    for d in ("train", "panoptic_train", "annotations/separate_annotations"):
        os.makedirs(root / d, exist_ok=True)
    cats = [{"id": 0, "name": "Hot_Dog"}, {"id": 1, "name": "apple"}]
    images, anns = [], []
    rng = np.random.default_rng(0)
    for i in range(n_images + 2):
        H, W = 48, 64
        colours = [(17, 200, 3), (250, 1, 99), (5, 5, 5)]
        ids = [r + 256 * g + 65536 * b for r, g, b in colours]
        pan = np.zeros((H, W, 3), np.uint8)
        pan[5:20, 4:30] = colours[0]
        pan[25:40, 30:60] = colours[1]          # colours[2] is hidden: no pixel
        rgba = np.zeros((H, W, 4), np.uint8)
        rgba[..., :3] = rng.integers(0, 255, (H, W, 3))
        rgba[..., 3] = np.where(pan.any(-1), 255, 0)
        Image.fromarray(rgba).save(root / "train" / f"{i}.png")
        if i != n_images:  # image n_images: its panoptic PNG is missing
            Image.fromarray(pan).save(root / "panoptic_train" / f"{i}.png")
        segs = [{"id": ids[k], "category_id": 0 if k == 0 else 1, "iscrowd": 0,
                 "bbox": [4, 5, 26, 15] if k == 0 else [0, 0, 0, 0] if k == 2 else [1, 1, 1, 1], "category": "x",
                 "sub_category": f"s{k}", "description": f"thing {k}", "features": ["red"], "short_phrase": f"p{k}",
                 "area": 1} for k in range(3)]
        if i == n_images + 1:
            segs[1]["category_id"] = 7  # not in the categories list
        anns.append({"segments_info": segs, "file_name": f"{i}.png", "image_id": i})
        images.append({"file_name": f"{i}.jpg", "height": 1024, "width": 1024, "id": i})
    (root / "annotations" / "panoptic_train.json").write_text(json.dumps(
        {"images": images, "annotations": anns, "categories": cats}, indent=4))
    os.makedirs(root / "refexp", exist_ok=True)
    (root / "refexp" / "job_0.jsonl").write_text(json.dumps(
        {"filename": "0.png", "height": 1024, "width": 1024,
         "grounding": {"caption": "the hot dog. both. ", "regions": [
             {"phrase": "the hot dog", "bboxes": [[4, 5, 26, 15]], "tokens_positive": [[0, 10]]},
             {"phrase": "ghost", "bboxes": [[9, 9, 9, 9]], "tokens_positive": [[13, 17]]}]}}) + "\n")


def test_ingest_soc_output_fixes_socs_defects_and_skips_bad_entries(lake, tmp_path):
    root = tmp_path / "socout"
    write_soc_like(root)
    s = soc_output.ingest_job(lake, str(root), "soc-import", progress=False)
    assert s.images == 3 and s.instances == 6 and s.expressions == 1
    whats = {f["what"] for f in s.fixed}
    assert {"area", "bbox", "file_name", "size", "hidden_segment"} <= whats
    skipped = {(k["what"], k["item"]) for k in s.skipped}
    assert ("missing_mask", "image 3") in skipped and ("bad_annotation", "image 4") in skipped
    assert any(k["what"] == "unmatched_region" for k in s.skipped)
    report = [json.loads(line) for line in open(s.report)]
    assert len(report) == len(s.fixed) + len(s.skipped)
    rows = lake.query("SELECT image_id, panoptic_id, bbox, area, category_id, description FROM committed_annotations "
                      "ORDER BY ann_id").to_pylist()
    names = dict(lake.con.execute("SELECT category_id, name FROM categories").fetchall())
    assert len(rows) == 6
    for r in rows:
        assert r["panoptic_id"] in (1, 2)  # 24-bit colour ids renumbered in segments_info order
        if r["panoptic_id"] == 1:
            assert (r["bbox"], r["area"], names[r["category_id"]]) == ([4.0, 5.0, 26.0, 15.0], 15 * 26, "hot dog")
        else:
            assert (r["bbox"], r["area"], names[r["category_id"]]) == ([30.0, 25.0, 30.0, 15.0], 15 * 30, "apple")
    imgs = lake.query("SELECT file_name, width, height FROM committed_images ORDER BY image_id").to_pylist()
    assert imgs[0] == {"file_name": "000000000.rgba.png", "width": 64, "height": 48}
    with pytest.raises(SoclakeError, match="panoptic_train.json is missing"):
        soc_output.ingest_job(lake, str(tmp_path), "nothing", progress=False)
    assert main(["ingest", "soc-output", str(root), "--lake", lake.uri]) == 2  # --name is required


def test_a_malformed_merged_json_is_an_error_naming_it(lake, tmp_path):
    root = tmp_path / "socout"
    write_soc_like(root, 1)
    path = root / "annotations" / "panoptic_train.json"
    path.write_text(path.read_text()[:-40])  # cut short
    with pytest.raises(SoclakeError, match="panoptic_train.json is not valid JSON"):
        soc_output.ingest_job(lake, str(root), "broken", progress=False)
