"""The compose job end to end: exact annotations, determinism, resume, shards readable."""
import glob
import io
import json
import os
import tarfile

import numpy as np
import pytest
from conftest import forget_job, job_spec
from PIL import Image
from pycocotools import mask as mask_utils

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.lake import catalog


def samples_of(tar_path):
    from soclake.shards.tar import read_samples
    return dict(read_samples(open(tar_path, "rb").read()))


def panoptic(png: bytes) -> np.ndarray:
    rgb = np.asarray(Image.open(io.BytesIO(png)).convert("RGB")).astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def check_sample_exact(members: dict, plan_row: dict) -> int:
    """Every RLE equals its panoptic region; boxes tight; areas exact; ids stay in their box."""
    info = json.loads(members["json"])
    pan = panoptic(members["pan.png"])
    H, W = pan.shape
    assert (info["width"], info["height"]) == (W, H)
    ids = {inst["panoptic_id"] for inst in info["instances"]}
    assert set(np.unique(pan)) - {0} == ids
    objects = [o for o in plan_row["objects"] if o["role"] == "object"]
    for inst in info["instances"]:
        m = mask_utils.decode({"size": inst["segmentation"]["size"], "counts": inst["segmentation"]["counts"]})
        assert m.shape == (H, W)
        assert np.array_equal(m.astype(bool), pan == inst["panoptic_id"]), "RLE and panoptic map disagree"
        ys, xs = np.nonzero(m)
        assert inst["area"] == len(ys) > 0
        assert inst["bbox"] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        assert 0 < inst["visible_fraction"] <= 1
        o = objects[inst["layer"]]
        pad = 8 if inst["blend"] == "motion" else 0
        grow = max(o["w"], o["h"]) if o["angle"] else 0
        assert xs.min() >= o["x"] - pad - grow and xs.max() < o["x"] + o["w"] + pad + grow
        assert ys.min() >= o["y"] - pad - grow and ys.max() < o["y"] + o["h"] + pad + grow
        assert inst["category_id"] == o["category_id"] and inst["segment_id"] == o["segment_id"]
    comp = Image.open(io.BytesIO(members[info["file_name"].split(".", 1)[1]]))
    assert comp.size == (W, H)
    if "fg.png" in members:  # one rule for both masks: fg >= 128 exactly where pan names an instance
        fg = np.asarray(Image.open(io.BytesIO(members["fg.png"])))
        assert np.array_equal(fg >= 128, pan != 0)
    assert info["unseen"] <= info["dropped"]
    assert all(0.5 <= inst["shown_fraction"] <= 1 for inst in info["instances"])
    return len(info["instances"])


def run_and_check(lake, spec, workers=1):
    summary = jobs.run(lake, spec, workers=workers, progress=False)
    plan = {r["key"]: r for r in lake.query("SELECT * FROM plan WHERE fingerprint = $fp",
                                            {"fp": summary.fingerprint}).to_pylist()}
    shards = sorted(glob.glob(os.path.join(lake.root, summary.folder, "shards", "*.tar")))
    n = 0
    for shard in shards:
        for key, members in samples_of(shard).items():
            n += check_sample_exact(members, plan[key])
    assert n == summary.instances or summary.shards_rendered == 0
    return summary, shards


@pytest.mark.parametrize("blend", ["none", "gaussian", "motion", "poisson"])
def test_every_blend_mode_renders_exact_annotations(sample_lake, blend):
    spec = job_spec(f"blend-{blend}", render={"background": "pool", "blend": [blend], "fg_mask": True},
                    sampling={"objects": [3, 6]})
    summary, shards = run_and_check(sample_lake, spec)
    assert summary.images == 6 and summary.instances > 0
    used = sample_lake.query("SELECT DISTINCT blend FROM annotations WHERE fingerprint = $fp",
                             {"fp": summary.fingerprint}).to_pylist()
    assert {u["blend"] for u in used} <= {blend, "none"}
    if blend != "poisson":
        assert {u["blend"] for u in used} == {blend}


def test_transparent_canvas_keeps_alpha_and_fg_matches(sample_lake):
    spec = job_spec("rgba", render={"background": "none", "fg_mask": True}, layout={"rotate": 20.0})
    summary, shards = run_and_check(sample_lake, spec)
    members = samples_of(shards[0])["000000000"]
    assert "rgba.png" in members and "jpg" not in members
    rgba = np.asarray(Image.open(io.BytesIO(members["rgba.png"])))
    pan = panoptic(members["pan.png"])
    fg = np.asarray(Image.open(io.BytesIO(members["fg.png"])))
    assert rgba.shape[2] == 4
    # every labelled pixel is opaque enough to be one, and unlabelled transparent pixels carry no colour
    assert (rgba[..., 3][pan > 0] >= 128).all()
    assert (rgba[rgba[..., 3] == 0, :3] == 0).all()
    assert (fg[pan > 0] >= 128).all()


def test_rerun_is_a_no_op_and_outputs_are_byte_identical(sample_lake, tmp_path):
    spec = job_spec("determinism", render={"background": "pool", "blend": ["none", "gaussian", "motion"]})
    first, shards = run_and_check(sample_lake, spec, workers=2)
    data = [open(s, "rb").read() for s in shards]
    again = jobs.run(sample_lake, spec, workers=2, progress=False)
    assert again.shards_rendered == 0 and again.fingerprint == first.fingerprint
    # delete everything the job wrote and render again, with another worker count
    lake = sample_lake
    forget_job(lake, first.fingerprint, first.folder)
    third = jobs.run(lake, spec, workers=1, progress=False)
    assert third.fingerprint == first.fingerprint and third.shards_rendered == 2
    assert [open(s, "rb").read() for s in shards] == data


def test_resume_renders_only_missing_shards(sample_lake):
    spec = job_spec("resume", job={"images": 9, "shard_size": 3})
    first = jobs.run(sample_lake, spec, workers=1, progress=False)
    lake = sample_lake
    # simulate a crash of shard 1 before its commit: its manifest part never landed
    manifest = [p for p in lake.table_parts("manifest") if f"{first.fingerprint}-000001" in p]
    shard1 = lake.path(first.folder, "shards", "shard-000001.tar")
    before = open(shard1, "rb").read()
    os.unlink(manifest[0])
    os.unlink(shard1)
    lake.refresh()
    n_committed = lake.query("SELECT count(*) n FROM committed_images WHERE fingerprint = $fp",
                             {"fp": first.fingerprint}).to_pylist()[0]["n"]
    assert n_committed == 6  # readers no longer see shard 1's rows
    again = jobs.run(lake, spec, workers=1, progress=False)
    assert again.shards_rendered == 1 and again.images == 3
    assert open(shard1, "rb").read() == before
    counts = lake.query("SELECT count(*) n, count(DISTINCT image_id) d FROM committed_images WHERE fingerprint = $fp",
                        {"fp": first.fingerprint}).to_pylist()[0]
    assert counts == {"n": 9, "d": 9}


def test_changed_spec_gets_a_new_folder(sample_lake):
    a = jobs.run(sample_lake, job_spec("changes", job={"images": 3}), workers=1, progress=False)
    b = jobs.run(sample_lake, job_spec("changes", job={"images": 3, "seed": 1}), workers=1, progress=False)
    assert a.fingerprint != b.fingerprint and a.folder != b.folder and b.shards_rendered == 1
    status = {r["fingerprint"]: r["state"] for r in catalog.list_jobs(sample_lake).to_pylist() if r["job"] == "changes"}
    assert status == {a.fingerprint: "complete", b.fingerprint: "complete"}


def test_shards_read_with_webdataset_and_tarfile(sample_lake):
    import webdataset as wds
    summary, shards = run_and_check(sample_lake, job_spec("wds", render={"background": "pool"}))
    ds = wds.WebDataset(shards, shardshuffle=False)
    keys = []
    for sample in ds:
        keys.append(sample["__key__"])
        info = json.loads(sample["json"])
        assert info["key"] == sample["__key__"] and "pan.png" in sample and "jpg" in sample
    assert keys == [f"{i:09d}" for i in range(6)]
    with tarfile.open(shards[0]) as tar:
        for m in tar:
            assert m.isfile() and m.mtime == 0 and "/" not in m.name and ".." not in m.name


def test_failed_segment_read_uses_fallback(sample_lake, tmp_path):
    from soclake.render.compose import UnreadablePixels, render_image
    spec = job_spec("fallback", job={"images": 2, "shard_size": 2}, render={"on_unreadable": "replace"})
    job = jobs.prepare(sample_lake, spec)
    with sample_lake.writer_lock():
        jobs.plan(sample_lake, job)
    sample_lake.refresh()
    task = jobs.shard_task(sample_lake, job, 0)
    row = task["plan"][0]
    broken = row["objects"][0]["segment_id"]
    segs = {k: ({**v, "levels": [{**lv, "offset": 0, "length": 10} for lv in v["levels"]]} if k == broken else v)
            for k, v in task["segments"].items()}
    out = render_image(row, segs, task["backgrounds"], sample_lake.read_range, task["render"], {})
    again = render_image(row, segs, task["backgrounds"], sample_lake.read_range, task["render"], {})
    assert out.members == again.members  # deterministic replacement
    replaced = [a for a in out.annotations if a["replaced_segment_id"] == broken]
    fallback = row["objects"][0]["fallback_id"]
    if fallback != broken:
        assert out.replaced >= 1 and (not replaced or replaced[0]["segment_id"] == fallback)
    assert out.info["failed_reads"][0]["segment_id"] == broken
    with pytest.raises(UnreadablePixels, match=f"segment {broken} cannot be read"):  # the default: fail
        render_image(row, segs, task["backgrounds"], sample_lake.read_range, {**task["render"], "on_unreadable": "fail"}, {})


def test_unsatisfiable_constraints_fail_before_rendering(sample_lake):
    with pytest.raises(SoclakeError, match="quotas"):
        jobs.run(sample_lake, job_spec("q", sampling={"quotas": {"unicorn": 3}}), progress=False)
    with pytest.raises(SoclakeError, match="quotas ask for"):
        jobs.run(sample_lake, job_spec("q2", sampling={"quotas": {"ball": 500}}), progress=False)
    with pytest.raises(SoclakeError, match="single-category mode needs"):
        jobs.run(sample_lake, job_spec("s", sampling={"single_category": True, "objects": [50, 60]}), progress=False)
    with pytest.raises(SoclakeError, match="no segment is eligible"):
        jobs.run(sample_lake, job_spec("w", pool={"where": "width > 100000"}), progress=False)
    with pytest.raises(SoclakeError, match="not a valid predicate"):
        jobs.run(sample_lake, job_spec("w2", pool={"where": "nonsense_column = 1"}), progress=False)
    with pytest.raises(SoclakeError, match="unknown filter"):
        jobs.run(sample_lake, job_spec("f", pool={"filter": "filter_7"}), progress=False)
    assert not sample_lake.fs.exists(sample_lake.path("jobs", "q"))


def test_distractors_are_void_in_the_panoptic_map(tmp_path):
    from conftest import blob_rgba, save_png

    from soclake.ingestion import ingest
    src = tmp_path / "cut"
    for i in range(4):
        save_png(src / "cup" / f"{i}.png", blob_rgba(i, 64, soft=False))
        save_png(tmp_path / "junk" / f"{i}.png", blob_rgba(100 + i, 64, soft=False))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(src), distractors=str(tmp_path / "junk"), workers=1, progress=False)
    spec = job_spec("distract", job={"images": 4, "shard_size": 4}, sampling={"objects": [2, 3], "distractors": [3, 3]},
                    layout={"min_visible": 0.0, "min_mean_visible": 0.0})
    summary, shards = run_and_check(lake, spec)
    void_but_opaque = 0
    for members in samples_of(shards[0]).values():
        rgba = np.asarray(Image.open(io.BytesIO(members["rgba.png"])))
        void_but_opaque += int(((rgba[..., 3] >= 128) & (panoptic(members["pan.png"]) == 0)).sum())
    assert void_but_opaque > 0  # distractor pixels are drawn but belong to no instance
    cats = lake.query("SELECT DISTINCT category_id FROM annotations").to_pylist()
    assert cats == [{"category_id": 1}]


def test_a_failing_shard_is_reported_and_retried(sample_lake):
    spec = job_spec("flaky", job={"images": 6, "shard_size": 2}, render={"background": "pool"})
    job = jobs.prepare(sample_lake, spec)
    with sample_lake.writer_lock():
        jobs.plan(sample_lake, job)
    sample_lake.refresh()
    bg = sample_lake.query("SELECT background_id FROM plan WHERE fingerprint = $fp AND shard = 1 LIMIT 1",
                           {"fp": job.fingerprint}).to_pylist()[0]["background_id"]
    original = jobs.shard_task

    def broken_task(lake, job_, shard):
        task = original(lake, job_, shard)
        if shard == 1:
            task["backgrounds"][bg] = {**task["backgrounds"][bg], "length": 7}
        return task

    jobs.shard_task = broken_task
    try:
        first = jobs.run(sample_lake, spec, workers=1, progress=False)
    finally:
        jobs.shard_task = original
    assert set(first.failed) == {1} and first.images == 4 and "FAILED shard 1" in first.describe()
    again = jobs.run(sample_lake, spec, workers=1, progress=False)
    assert again.shards_rendered == 1 and not again.failed and again.images == 2


def test_concurrent_split_runners_share_one_plan(sample_lake, tmp_path):
    """Three processes start the three splits at once: one plans, all render, nothing twice."""
    import subprocess
    import sys
    spec_path = tmp_path / "job.toml"
    spec_path.write_text('[job]\nname = "parallel-splits"\nimages = 6\nshard_size = 1\n[layout]\nwidth = 64\nheight = 64\n')
    procs = [subprocess.Popen([sys.executable, "-m", "soclake.cli", "run", str(spec_path), "--lake", sample_lake.root,
                               "--workers", "1", "--split", f"{i}/3", "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(3)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], [o[1].decode()[-500:] for o in outs]
    sample_lake.refresh()
    rows = sample_lake.query("SELECT shard, count(*) n FROM manifest WHERE job = 'parallel-splits' GROUP BY 1 ORDER BY 1")
    assert rows.to_pylist() == [{"shard": s, "n": 1} for s in range(6)]
    plans = sample_lake.query("SELECT count(DISTINCT fingerprint) f, count(*) n FROM plan WHERE job = 'parallel-splits'")
    assert plans.to_pylist() == [{"f": 1, "n": 6}]
