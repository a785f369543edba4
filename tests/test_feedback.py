"""Targeted generation: feedback tables (per-category AP, per-image losses), the hardness and
LVIS-bucket sampling weights, fingerprints that follow feedback, the audit's sampling shift,
and the example job specs that use them."""
import json
import os
import shutil

import numpy as np
import pytest
from conftest import job_spec

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.outputs.feedback import from_cocoeval, load_feedback
from soclake.plan import sampling
from soclake.plan.pool import CategoryCounts
from soclake.spec import load as jobspec

JOBS = os.path.join(os.path.dirname(__file__), "..", "jobs")
SAMPLING = jobspec.resolve({"job": {"name": "x"}})["sampling"]


@pytest.fixture(scope="module")
def lake(sample_lake, tmp_path_factory):
    """A private copy of the sample lake: feedback loads and rejects stay out of other tests."""
    root = tmp_path_factory.mktemp("feedback") / "lake"
    shutil.copytree(sample_lake.root, root)
    return Lake(str(root))


def write(path, text):
    path.write_text(text)
    return str(path)


def counts(n):
    n = np.asarray(n, np.int64)
    return CategoryCounts(np.arange(1, len(n) + 1, dtype=np.int32), n, [np.array([v]) for v in n])


def shares(c, params, ctx, draws=20000, seed=0):
    d = sampling.draw(np.random.default_rng(seed), c, np.ones(draws, np.int64), params, {}, ctx)
    return np.bincount(d.cat, minlength=len(c.n)) / draws


# ---------------------------------------------------------------------------- weights
def test_hardness_draws_follow_the_documented_formula():
    c = counts([40, 10, 25, 5])
    ap = np.array([0.9, 0.2, np.nan, 1.0])
    params = {**SAMPLING, "strategy": "hardness", "feedback": "x", "temperature": 0.5, "gamma": 2.0, "floor": 0.05}
    ctx = sampling.Context(c.category_id, ap)
    mean_ap = (0.9 + 0.2 + 1.0) / 3  # the uncovered category gets the covered categories' mean
    w = np.array([40 ** 0.5 * 0.1 ** 2, 10 ** 0.5 * 0.8 ** 2, 25 ** 0.5 * (1 - mean_ap) ** 2, 5 ** 0.5 * 0.05 ** 2])
    assert sampling.category_probabilities(c, params, ctx) == pytest.approx(w / w.sum(), rel=1e-12)
    got = shares(c, params, ctx)
    assert got == pytest.approx(w / w.sum(), abs=0.01)
    temperature = np.sqrt(c.n) / np.sqrt(c.n).sum()
    assert got[1] > 2 * temperature[1] and got[0] < temperature[0] / 2  # hard up, easy down
    assert got[3] > 0  # the floor keeps a solved category alive
    # missing = a number, min or max of the covered APs
    for missing, fill in ((0.0, 0.0), ("min", 0.2), ("max", 1.0)):
        p = sampling.category_probabilities(c, {**params, "missing": missing}, ctx)
        w2 = w.copy()
        w2[2] = 5 * max(0.05, 1 - fill) ** 2
        assert p == pytest.approx(w2 / w2.sum(), rel=1e-12)
    # gamma = 0 ignores the feedback: temperature sampling
    assert sampling.category_probabilities(c, {**params, "gamma": 0.0}, ctx) == pytest.approx(temperature)
    with pytest.raises(SoclakeError, match="covers none"):
        sampling.category_probabilities(c, params, sampling.Context(c.category_id, np.full(4, np.nan)))


def test_bucket_weights_multiply_each_lvis_bucket():
    c = counts([5, 50, 500, 7])
    ctx = sampling.Context(c.category_id, None, np.array(["rare", "common", "frequent", "rare"]))
    params = {**SAMPLING, "strategy": "uniform_categories", "bucket_weights": {"r": 4.0, "c": 2.0, "f": 1.0}}
    assert shares(c, params, ctx) == pytest.approx(np.array([4, 2, 1, 4]) / 11, abs=0.01)
    params = {**SAMPLING, "strategy": "uniform_segments", "bucket_weights": {"rare": 10.0}}
    w = np.array([50, 50, 500, 70])
    assert sampling.category_probabilities(c, params, ctx) == pytest.approx(w / w.sum())


def test_spec_checks_for_targeted_sampling():
    ok = job_spec("ok", sampling={"strategy": "hardness", "feedback": "f", "missing": 0.3,
                                  "bucket_weights": {"r": 3, "frequent": 0.5}})
    assert ok["sampling"]["missing"] == 0.3 and ok["sampling"]["bucket_weights"] == {"r": 3.0, "frequent": 0.5}
    assert job_spec("d", sampling={"strategy": "hardness", "feedback": "f"})["sampling"]["missing"] == "mean"
    for sampling_values, message in (
            ({"strategy": "hardness"}, "needs feedback"),
            ({"strategy": "temperature", "feedback": "f"}, "read only by strategy"),
            ({"strategy": "hardness", "feedback": "f", "missing": "median"}, "missing must be one of"),
            ({"strategy": "hardness", "feedback": "f", "missing": 1.5}, "out of range"),
            ({"strategy": "hardness", "feedback": "f", "floor": 0.0}, "out of range"),
            ({"bucket_weights": {"rare": 2, "r": 3}}, "each once"),
            ({"bucket_weights": {"x": 2}}, "LVIS frequency buckets"),
            ({"bucket_weights": {"r": 0}}, "positive numbers")):
        with pytest.raises(SoclakeError, match=message):
            job_spec("bad", sampling=sampling_values)


# ---------------------------------------------------------------------------- loading
def test_category_csv_loads_matched_rows_and_rejects_the_rest(lake, tmp_path):
    path = write(tmp_path / "ap.csv", "# an evaluation\ncategory,score\nBall,0.5\nHot_Dog,0.4\nstar,nan\n"
                                      "ring,1.4\nkite,\nBALL,0.3\nbox,0.25\n\n")
    s = load_feedback(lake, path, name="csv-ap")
    assert (s.kind, s.entries, s.values) == ("category_ap", 2, 2)
    assert [(r, reason) for r, reason, _ in s.problems] == [
        (4, "unmatched_category"), (5, "bad_value"), (6, "bad_value"), (7, "missing_field"), (8, "duplicate")]
    assert "divide percentages by 100" in s.problems[2][2] and "row 3" in s.problems[4][2]
    rows = lake.query("SELECT f.category, c.name, f.value, f.row FROM feedback f JOIN categories c USING (category_id) "
                      "WHERE f.name = 'csv-ap' ORDER BY f.row").to_pylist()
    assert rows == [{"category": "Ball", "name": "ball", "value": 0.5, "row": 3},
                    {"category": "box", "name": "box", "value": 0.25, "row": 9}]
    rejects = lake.query("SELECT source_uri, reason FROM rejects WHERE source = 'feedback:csv-ap' "
                         "ORDER BY source_uri").to_pylist()
    assert [r["source_uri"] for r in rejects] == [f"ap.csv#row={i}" for i in (4, 5, 6, 7, 8)]
    assert lake.query("SELECT rejects FROM source_summary WHERE source LIKE 'feedback%'").num_rows == 0
    bad = write(tmp_path / "bad.csv", "category,score\nzebra,0.3\nball,-1\n")
    with pytest.raises(SoclakeError, match=r"no row of .*bad.csv could be loaded.*row 2: the lake has no category"):
        load_feedback(lake, bad)
    with pytest.raises(SoclakeError, match="cannot tell what"):
        load_feedback(lake, write(tmp_path / "odd.csv", "name,weight\nball,3\n"))


def test_cocoeval_json_round_trip(lake, tmp_path):
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval
    # ids 11 and 12 are the evaluation's own: names decide the lake category
    gt = {"images": [{"id": i, "width": 640, "height": 480} for i in (1, 2)],
          "categories": [{"id": 11, "name": "ball"}, {"id": 12, "name": "box"}], "annotations": []}
    boxes = {(1, 11): [10, 10, 200, 150], (2, 11): [300, 100, 180, 200], (1, 12): [400, 300, 20, 20],
             (2, 12): [50, 400, 25, 30]}
    for n, ((img, cat), b) in enumerate(boxes.items(), 1):
        gt["annotations"].append({"id": n, "image_id": img, "category_id": cat, "bbox": b, "area": b[2] * b[3],
                                  "iscrowd": 0})
    coco = COCO()
    coco.dataset = gt
    coco.createIndex()
    # balls found exactly; boxes detected in the wrong place
    dets = [{"image_id": img, "category_id": cat, "bbox": b if cat == 11 else [b[0] + 100, b[1] - 100, b[2], b[3]],
             "score": 0.9} for (img, cat), b in boxes.items()]
    E = COCOeval(coco, coco.loadRes(dets), "bbox")
    E.evaluate()
    E.accumulate()
    E.summarize()
    doc = from_cocoeval(E)
    ap = {c["name"]: c for c in doc["categories"]}
    assert ap["ball"]["ap"] == pytest.approx(1.0) and ap["box"]["ap"] == pytest.approx(0.0)
    assert ap["ball"]["ap_large"] == pytest.approx(1.0) and ap["ball"]["ap_small"] is None
    assert np.mean([c["ap"] for c in doc["categories"]]) == pytest.approx(E.stats[0])  # as summarize() averages
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(doc))
    s = load_feedback(lake, str(path), name="cocoeval")
    assert s.entries == 2 and not s.problems
    got = lake.query("SELECT c.name, f.ap, f.ap_small, f.ap_large FROM feedback_category_ap f "
                     "JOIN categories c USING (category_id) WHERE f.name = 'cocoeval' ORDER BY c.name").to_pylist()
    assert got == [{"name": "ball", "ap": 1.0, "ap_small": None, "ap_large": 1.0},
                   {"name": "box", "ap": 0.0, "ap_small": 0.0, "ap_large": None}]


def test_detectron2_results_in_percent(lake, tmp_path):
    doc = {"bbox": {"AP": 40.0, "AP50": 61.0, "AP-ball": 62.5, "AP-box": float("nan"), "AP-zebra": 10.0}}
    path = tmp_path / "d2.json"
    path.write_text(json.dumps(doc))  # json writes NaN, as detectron2 does for categories without data
    s = load_feedback(lake, str(path), name="d2")
    assert s.entries == 1 and sorted(r for _, r, _ in s.problems) == ["bad_value", "unmatched_category"]
    assert lake.query("SELECT ap FROM feedback_category_ap WHERE name = 'd2'").to_pylist() == [{"ap": 0.625}]
    path.write_text(json.dumps({"bbox": doc["bbox"], "segm": doc["bbox"]}))
    with pytest.raises(SoclakeError, match="several tasks"):
        load_feedback(lake, str(path), name="d2")


def test_image_losses_become_per_category_hardness(lake, tmp_path):
    run = jobs.run(lake, job_spec("lossy", sampling={"objects": [2, 4]}), workers=1, progress=False)
    anns = lake.query("SELECT image_id, category_id FROM committed_annotations WHERE fingerprint = $fp",
                      {"fp": run.fingerprint}).to_pylist()
    loss = {i: 0.5 + i for i in range(6)}
    lines = ["key,loss,job"] + [f"{i:09d},{loss[i]},lossy" for i in range(6)]
    lines += ["000000099,1.0,lossy", "000000001,-2,lossy", "000000002,3,nojob", "x,1,lossy", "000000003,2,lossy"]
    s = load_feedback(lake, write(tmp_path / "losses.csv", "\n".join(lines) + "\n"), name="losses")
    assert s.kind == "image_loss" and s.entries == 6
    assert [(r, reason) for r, reason, _ in s.problems] == [
        (8, "unmatched_image"), (9, "bad_value"), (10, "unmatched_image"), (11, "bad_value"), (12, "duplicate")]
    # expected: mean loss of the images containing each category, scaled by the largest mean
    mean = {c: np.mean([loss[i] for i in sorted({a["image_id"] for a in anns if a["category_id"] == c})])
            for c in {a["category_id"] for a in anns}}
    top = max(mean.values())
    got = {r["category_id"]: r for r in lake.query("SELECT * FROM feedback_category_ap WHERE name = 'losses'").to_pylist()}
    assert set(got) == set(mean)
    for c, m in mean.items():
        assert got[c]["mean_loss"] == pytest.approx(m) and got[c]["ap"] == pytest.approx(1 - m / top)
    # the same losses as JSON Lines with --job give the same hardness
    jsonl = "\n".join(json.dumps({"image_id": i, "loss": loss[i]}) for i in range(6))
    s2 = load_feedback(lake, write(tmp_path / "losses.jsonl", jsonl), name="losses2", job="lossy")
    assert s2.entries == 6 and not s2.problems
    again = lake.query("SELECT category_id, ap FROM feedback_category_ap WHERE name = 'losses2'").to_pylist()
    assert {r["category_id"]: r["ap"] for r in again} == pytest.approx({c: r["ap"] for c, r in got.items()})
    with pytest.raises(SoclakeError, match="no job .never-ran. in .*known: .*lossy"):
        load_feedback(lake, write(tmp_path / "l.csv", "image_id,loss\n1,2\n"), job="never-ran")


# ---------------------------------------------------------------------------- planning
def test_hardness_plan_shifts_planned_shares_by_the_formula(lake, tmp_path):
    aps = {"ball": 0.8, "box": 0.6, "star": 0.1, "ring": 0.35, "kite": 0.5, "pill": 0.9, "heart": 0.2}
    csv = "category,score\n" + "".join(f"{k},{v}\n" for k, v in aps.items())
    load_feedback(lake, write(tmp_path / "shift.csv", csv), name="shift")
    params = {"strategy": "hardness", "feedback": "shift", "temperature": 0.7, "gamma": 1.5, "objects": [5, 5]}
    spec = job_spec("hard", job={"images": 800, "shard_size": 100}, pool={"filter": "filter_4"},
                    sampling=params, layout={"kind": "grid"})
    job = jobs.prepare(lake, spec)
    with lake.writer_lock(wait=True):
        jobs.plan(lake, job)
    lake.refresh()
    n = dict(lake.con.execute("SELECT category, count(*) FROM filter_4 GROUP BY 1").fetchall())
    mean_ap = np.mean([aps[c] for c in n if c in aps])  # "moon" has no feedback: the mean of the others
    w = {c: n[c] ** 0.7 * max(0.05, 1 - aps.get(c, mean_ap)) ** 1.5 for c in n}
    expected = {c: v / sum(w.values()) for c, v in w.items()}
    shift = {r["category"]: r for r in lake.query("SELECT * FROM sampling_shift WHERE fingerprint = $fp",
                                                  {"fp": job.fingerprint}).to_pylist()}
    assert sum(r["planned"] for r in shift.values()) == 4000
    for c, r in shift.items():
        assert r["target_share"] == pytest.approx(expected[c], rel=1e-9)
        assert r["planned_share"] == pytest.approx(expected[c], abs=0.02)  # 3 sigma of 4000 draws
        assert r["feedback_ap"] == aps.get(c) and r["ap_used"] == pytest.approx(aps.get(c, mean_ap))
    assert shift["star"]["boost"] > 1.3 and shift["pill"]["boost"] < 0.5
    from soclake.outputs.audit import run_audit
    audit = run_audit(lake, vocab=None, job="hard")  # planned, not rendered: the plan is audited
    assert "dataset" not in audit and audit["sampling"]["fingerprint"] == job.fingerprint
    assert audit["sampling"]["categories"][0]["category"] == "star"  # most boosted first


def test_fingerprint_follows_feedback_content(lake, tmp_path):
    spec = job_spec("fp", sampling={"strategy": "hardness", "feedback": "fp-ap"})
    with pytest.raises(SoclakeError, match="no feedback of that name.*soclake feedback FILE --name fp-ap"):
        jobs.prepare(lake, spec)
    v1, v2 = "category,score\nball,0.3\nbox,0.6\n", "category,score\nball,0.3\nbox,0.65\n"
    load_feedback(lake, write(tmp_path / "a.csv", v1), name="fp-ap")
    first = jobs.prepare(lake, spec).fingerprint
    load_feedback(lake, write(tmp_path / "b.csv", v2), name="fp-ap")
    second = jobs.prepare(lake, spec).fingerprint
    load_feedback(lake, write(tmp_path / "c.csv", v1), name="fp-ap")  # same numbers as the first load
    assert second != first and jobs.prepare(lake, spec).fingerprint == first
    loads = lake.query("SELECT count(DISTINCT load_id) AS n FROM feedback WHERE name = 'fp-ap'").to_pylist()
    assert loads == [{"n": 3}]  # every load is kept; the newest is current
    assert lake.query("SELECT file FROM feedback_loads WHERE name = 'fp-ap'").to_pylist()[0]["file"].endswith("c.csv")


def test_cli_feedback(lake, tmp_path, capsys):
    from soclake.cli import main
    path = write(tmp_path / "cli.csv", "category,score\nball,0.4\nzebra,0.1\n")
    assert main(["feedback", path, "--lake", lake.uri, "--name", "cli"]) == 0
    out = capsys.readouterr().out
    assert "feedback cli (category_ap" in out and "1 unmatched_category" in out and "row 3: unmatched_category" in out
    assert main(["feedback", write(tmp_path / "none.csv", "category,score\nzebra,0.1\n"), "--lake", lake.uri]) == 2
    assert "no row of" in capsys.readouterr().err
    assert main(["feedback", str(tmp_path / "missing.csv"), "--lake", lake.uri]) == 2


# ---------------------------------------------------------------------------- example specs
@pytest.mark.parametrize("name", ["hardness", "rare_lvis", "sfc"])
def test_example_specs_plan_and_run_on_the_sample_pool(lake, name):
    import tomllib
    path = os.path.join(JOBS, f"{name}.toml")
    raw = tomllib.loads(open(path).read())
    raw["job"].update(images=4, shard_size=2)
    raw["layout"].update(width=192, height=160)
    spec = jobspec.resolve(raw, path, JOBS)
    if spec["sampling"]["feedback"]:
        load_feedback(lake, os.path.join(JOBS, "feedback_example.csv"), name=spec["sampling"]["feedback"])
    summary = jobs.run(lake, spec, workers=1, progress=False)
    assert summary.images == 4 and summary.instances > 0 and not summary.failed
    weights = lake.query("SELECT c.name, w.* FROM sampling_weights w JOIN categories c USING (category_id) "
                         "WHERE fingerprint = $fp", {"fp": summary.fingerprint}).to_pylist()
    assert sum(w["share"] for w in weights) == pytest.approx(1.0)
    if name == "hardness":  # "moon" is missing from the example file: it gets the mean AP
        covered = [w["feedback_ap"] for w in weights if w["feedback_ap"] is not None]
        moon = next(w for w in weights if w["name"] == "moon")
        assert moon["feedback_ap"] is None and moon["ap_used"] == pytest.approx(np.mean(covered))
    if name == "rare_lvis":  # the sample pool's categories are all rare (a few segments each)
        assert {w["frequency"] for w in weights} == {"rare"}
