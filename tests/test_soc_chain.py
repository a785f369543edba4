"""The soc_fc chain end to end, as a SOC user runs it, through the CLI and the presets: a SOC-layout
pool with no quality file -> soc_fc (compose) -> soc_fc_relight -> soc_fc_refexp -> COCO (with
images), panoptic, ODVG and SOC's layout, read back with pycocotools and by decoding the files;
`ingest soc-output` of the SOC export gives back the same annotations. The relight and refexp
presets run with their CPU backends (--set): no model weights or LLM exist here."""
import contextlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from soclake import Lake
from soclake.cli import main
from soclake.sample_pool import write_sample_pool

JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("chain")
    write_sample_pool(str(root / "pool"), seed=2, ids=2, subcategories=3)
    os.unlink(root / "pool" / "segments" / "segment_quality.json")  # as a SOC release without its quality file
    lake = str(root / "lake")
    assert main(["ingest", "soc", str(root / "pool" / "segments"), "--lake", lake, "--source-name", "fc_10m",
                 "--workers", "1", "--no-progress"]) == 0
    return root, lake


def run(*argv) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(list(argv)) == 0, out.getvalue()
    return out.getvalue()


@pytest.mark.slow
def test_the_soc_fc_chain_on_a_pool_without_quality_file(lake_root):
    root, lake = lake_root
    printed = run("run", str(JOBS / "soc_fc.toml"), "--lake", lake, "--set", "job.images=4", "--set", "job.shard_size=2",
                  "--workers", "1", "--no-progress")
    assert "4 images" in printed
    info = json.loads(next((Path(lake) / "jobs" / "soc-fc").glob("*/job.json")).read_text())
    assert info["plan"]["filters"] == [{"source": "fc_10m", "filter": "filter_0", "eligible": info["plan"]["filters"][0]["eligible"]}]
    run("run", str(JOBS / "soc_fc_relight.toml"), "--lake", lake, "--set", "relight.backend=classic", "--workers", "1",
        "--no-progress")
    run("run", str(JOBS / "soc_fc_refexp.toml"), "--lake", lake, "--set", "refexp.backend=graph", "--workers", "1",
        "--no-progress")
    out = root / "out"
    for job, fmt in (("soc-fc-relit", "coco"), ("soc-fc-refexp", "panoptic"), ("soc-fc-refexp", "odvg"),
                     ("soc-fc-refexp", "soc")):
        run("export", "--lake", lake, "--job", job, "--format", fmt, "--out", str(out / f"{job}-{fmt}"), "--images")
    # COCO with images: RGB JPEG scenes, no transparent pixel, masks that pycocotools decodes to the areas
    with contextlib.redirect_stdout(io.StringIO()):
        coco = COCO(str(out / "soc-fc-relit-coco" / "annotations.json"))
    assert len(coco.dataset["images"]) == 4 and coco.dataset["annotations"]
    for img in coco.dataset["images"]:
        im = Image.open(out / "soc-fc-relit-coco" / "images" / img["file_name"])
        assert im.format == "JPEG" and im.mode == "RGB" and im.size == (1024, 1024)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=img["id"])):
            assert coco.annToMask(a).sum() == a["area"] and a["description"] and a["category_name"]
    pan = json.loads((out / "soc-fc-refexp-panoptic" / "panoptic.json").read_text())
    for ann in pan["annotations"]:
        rgb = np.asarray(Image.open(out / "soc-fc-refexp-panoptic" / "panoptic" / ann["file_name"])).astype(np.int64)
        ids = rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]
        assert sorted(s["id"] for s in ann["segments_info"]) == sorted(set(np.unique(ids)) - {0})
    odvg = [json.loads(line) for line in open(out / "soc-fc-refexp-odvg" / "odvg.jsonl")]
    assert odvg and all(r["filename"].endswith(".jpg") for r in odvg)
    soc = out / "soc-fc-refexp-soc"
    assert sorted(os.listdir(soc / "train")) == [f"{i}.jpg" for i in range(4)]
    assert (soc / "refexp" / "job_0.jsonl").stat().st_size > 0
    # back in through SOC's format: the same annotations
    printed = run("ingest", "soc-output", str(soc), "--lake", lake, "--name", "soc-fc-back", "--shard-size", "2",
                  "--no-progress")
    assert "fixed" not in printed and "skipped" not in printed, printed
    l = Lake(lake)
    cols = "image_id, panoptic_id, category_id, bbox, area, rle_counts, subcategory, description, short_phrase, features"
    a = l.query(f"SELECT {cols} FROM committed_annotations WHERE job = 'soc-fc' ORDER BY image_id, panoptic_id")
    b = l.query(f"SELECT {cols} FROM committed_annotations WHERE job = 'soc-fc-back' ORDER BY image_id, panoptic_id")
    assert a.num_rows > 0 and a.equals(b)
