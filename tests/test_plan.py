"""Property tests over every sampler and every layout, and plan determinism."""
import numpy as np
import pytest
from conftest import job_spec
from hypothesis import given, settings
from hypothesis import strategies as st

from soclake.jobs import compose as jobs
from soclake.plan import layouts, sampling
from soclake.plan.pool import CategoryCounts
from soclake.spec.load import resolve

LAYOUT_PARAMS = resolve({"job": {"name": "x"}})["layout"]
SAMPLING_PARAMS = resolve({"job": {"name": "x"}})["sampling"]


def counts_fixture(rng, n_cats=12):
    n = rng.integers(1, 40, n_cats)
    subs = [np.array([c // 3 + 1] * 3 + ([c - 3 * (c // 3 + 1)] if c - 3 * (c // 3 + 1) > 0 else []))
            if c >= 3 else np.array([c]) for c in n]
    n = np.array([s.sum() for s in subs])
    return CategoryCounts(np.arange(1, n_cats + 1, dtype=np.int32), n, subs)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), strategy=st.sampled_from(sorted(sampling.STRATEGIES)),
       single=st.booleans(), lo=st.integers(1, 4), extra=st.integers(0, 5))
def test_every_sampler_draws_only_eligible_segments(seed, strategy, single, lo, extra):
    rng = np.random.default_rng(seed)
    counts = counts_fixture(rng)
    params = {**SAMPLING_PARAMS, "strategy": strategy, "feedback": "f", "objects": [lo, lo + extra],
              "single_category": single, "quotas": {} if single else {"c3": 4}, "bucket_weights": {"r": 3.0}}
    ap = np.where(rng.random(len(counts.n)) < 0.3, np.nan, rng.random(len(counts.n)))
    ap[0] = rng.random()  # the feedback covers at least one category
    ctx = sampling.Context(counts.category_id, ap, rng.choice(["rare", "common", "frequent"], len(counts.n)))
    k = sampling.objects_per_image(rng, 20, params)
    index = {f"c{i}": i for i in range(len(counts.n))}
    d = sampling.draw(rng, counts, k, params, index, ctx)
    assert (d.rank >= 0).all() and (d.rank < counts.n[d.cat]).all()
    assert (np.diff(d.image) >= 0).all()
    per_image = np.bincount(d.image, minlength=20)
    if single:
        for i in range(20):
            cats = d.cat[d.image == i]
            assert len(set(cats)) == 1 and len(cats) == min(k[i], counts.n[cats[0]])
            assert len(set(d.rank[d.image == i])) == len(cats)  # no segment twice
            assert counts.n[cats[0]] >= lo
    else:
        assert (per_image == k).all()
        assert (d.cat == 3).sum() >= 4  # the quota holds


def test_strategies_shape_category_frequencies():
    counts = CategoryCounts(np.array([1, 2], np.int32), np.array([90, 10]), [np.array([90]), np.array([10])])
    freq = {}
    ctx = sampling.Context(counts.category_id, np.array([0.9, 0.5]))
    for strategy in sampling.STRATEGIES:
        rng = np.random.default_rng(0)
        params = {**SAMPLING_PARAMS, "strategy": strategy, "temperature": 0.5, "objects": [1, 1], "feedback": "f"}
        d = sampling.draw(rng, counts, np.ones(20000, np.int64), params, {}, ctx)
        freq[strategy] = (d.cat == 0).mean()
    assert freq["uniform_segments"] == pytest.approx(0.9, abs=0.01)
    assert freq["uniform_categories"] == pytest.approx(0.5, abs=0.015)
    assert freq["temperature"] == pytest.approx(3 / 4, abs=0.015)  # sqrt(90) : sqrt(10) = 3 : 1
    assert freq["hardness"] == pytest.approx(3 * 0.1 / (3 * 0.1 + 0.5), abs=0.015)  # times 1 - AP


def test_single_category_prefers_distinct_subcategories():
    counts = CategoryCounts(np.array([1], np.int32), np.array([12]), [np.array([4, 4, 4])])
    params = {"strategy": "uniform_segments", "temperature": 0.5, "objects": [3, 3], "single_category": True, "quotas": {}}
    d = sampling.draw(np.random.default_rng(1), counts, np.full(50, 3), params, {})
    for i in range(50):
        assert sorted(d.rank[d.image == i] // 4) == [0, 1, 2]


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(sorted(layouts.LAYOUTS)), n=st.integers(1, 19),
       W=st.integers(64, 700), H=st.integers(64, 700), truncate=st.booleans())
def test_every_layout_keeps_boxes_in_canvas_and_visible(seed, kind, n, W, H, truncate):
    rng = np.random.default_rng(seed)
    objs = layouts.Objects(rng.uniform(0.3, 3.0, n), rng.uniform(0.2, 1.0, n))
    params = {**LAYOUT_PARAMS, "truncate": truncate, "min_area": 16}
    template = [tuple(v) for v in rng.uniform(0, 1, (n, 4)) * [W * 0.8, H * 0.8, W * 0.2, H * 0.2]]
    p = layouts.LAYOUTS[kind](rng, objs, params, {"width": W, "height": H, "template": template})
    assert p.boxes.shape == (n, 4) and p.placed.any()
    for (x, y, w, h), ok in zip(p.boxes, p.placed):
        if not ok:
            continue
        assert w >= 1 and h >= 1
        if truncate and kind in ("coco_sizes", "random_centers"):
            assert x + w > 0 and y + h > 0 and x < W and y < H  # at least partly on the canvas
        else:
            assert 0 <= x and 0 <= y and x + w <= W + 1 and y + h <= H + 1
    if kind in ("coco_sizes", "random_centers"):
        assert (p.visible[p.placed] >= params["min_visible"] - 1e-9).all()
    if kind == "grid":
        boxes = p.boxes[p.placed]
        for i in range(len(boxes)):
            for j in range(i + 1, len(boxes)):
                a, b = boxes[i], boxes[j]
                assert a[0] + a[2] <= b[0] or b[0] + b[2] <= a[0] or a[1] + a[3] <= b[1] or b[1] + b[3] <= a[1]


def test_coco_size_mix_is_honoured():
    rng = np.random.default_rng(3)
    areas = layouts.sample_mask_areas(rng, 20000, LAYOUT_PARAMS, 1024, 1024)
    edges = layouts.coco_area_edges(LAYOUT_PARAMS, 1024, 1024)
    share = np.histogram(areas, bins=edges)[0] / len(areas)
    assert share == pytest.approx([0.42, 0.34, 0.24], abs=0.015)


def test_same_spec_same_plan_whatever_duckdb_threads(sample_lake):
    spec = job_spec("plan-det", job={"images": 40, "shard_size": 10},
                    sampling={"strategy": "temperature", "objects": [2, 7]}, render={"background": "pool"})
    job = jobs.prepare(sample_lake, spec)
    from soclake.plan import make_plan
    sample_lake.con.execute("SET threads = 1")
    a, _ = make_plan(sample_lake, spec, job.fingerprint)
    sample_lake.refresh()
    sample_lake.con.execute("SET threads = 4")
    b, summary = make_plan(sample_lake, spec, job.fingerprint)
    sample_lake.refresh()
    assert a.equals(b) and summary.images == 40
    rows = a.to_pylist()
    assert all(r["background_id"] and len(r["background_crop"]) == 4 for r in rows)
    assert [r["shard"] for r in rows] == [i // 10 for i in range(40)]


def test_quotas_and_vocab_restrict_the_plan(sample_lake, tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("Ball\nstar\n# a comment\n")
    raw = {"job": {"name": "vocab", "images": 30, "shard_size": 10}, "layout": {"width": 200, "height": 200},
           "pool": {"vocab": "vocab.txt"}, "sampling": {"quotas": {"star": 40}, "objects": [2, 4]}}
    spec = resolve(raw, base_dir=str(tmp_path))
    job = jobs.prepare(sample_lake, spec)
    from soclake.plan import make_plan
    plan, _ = make_plan(sample_lake, spec, job.fingerprint)
    names = dict(sample_lake.con.execute("SELECT category_id, name FROM categories").fetchall())
    drawn = [names[o["category_id"]] for r in plan.to_pylist() for o in r["objects"]]
    assert set(drawn) <= {"ball", "star"} and drawn.count("star") >= 35  # a few may not fit the layout


def test_distractors_and_decoys_need_pool_support(sample_lake):
    from soclake.errors import SoclakeError
    with pytest.raises(SoclakeError, match="no distractor segments"):
        jobs.run(sample_lake, job_spec("d", sampling={"distractors": [1, 2]}), progress=False)
    with pytest.raises(SoclakeError, match="decoys need"):
        job_spec("d2", sampling={"decoys": [1, 2]})
    spec = job_spec("decoys", sampling={"decoys": [2, 2]}, render={"background": "pool"})
    summary = jobs.run(sample_lake, spec, workers=1, progress=False)
    decoys = sample_lake.query("SELECT count(*) n FROM (SELECT unnest(objects) o FROM plan WHERE fingerprint = $fp) "
                               "WHERE o.role = 'decoy'", {"fp": summary.fingerprint}).to_pylist()[0]["n"]
    assert decoys == 12 and summary.instances > 0


def test_plan_is_the_same_for_any_worker_count(sample_lake, monkeypatch):
    import soclake.plan as planner
    monkeypatch.setattr(planner, "CHUNK", 7)
    spec = job_spec("plan-workers", job={"images": 30, "shard_size": 10}, sampling={"objects": [2, 6]})
    job = jobs.prepare(sample_lake, spec)
    one, s1 = planner.make_plan(sample_lake, spec, job.fingerprint, workers=1)
    sample_lake.refresh()
    two, s2 = planner.make_plan(sample_lake, spec, job.fingerprint, workers=2)
    sample_lake.refresh()
    assert one.equals(two) and s1 == s2 and one.num_rows == 30


def test_replay_layout_places_objects_in_the_file_boxes(sample_lake):
    import os

    from soclake.spec import load as jobspec
    spec = jobspec.load(os.path.join(os.path.dirname(__file__), "..", "jobs", "replay.toml"))
    summary = jobs.run(sample_lake, spec, workers=1, progress=False)
    plan = sample_lake.query("SELECT image_id, objects FROM plan WHERE fingerprint = $fp ORDER BY image_id",
                             {"fp": summary.fingerprint}).to_pylist()
    assert [len([o for o in r["objects"] if o["role"] == "object"]) for r in plan] == [2, 1, 2, 1, 2, 1]
    first = [o for o in plan[0]["objects"]]
    for o, (bx, by, bw, bh) in zip(first, [(40, 60, 200, 150), (300, 200, 120, 220)]):
        assert bx - 1 <= o["x"] and o["x"] + o["w"] <= bx + bw + 1 and by - 1 <= o["y"] and o["y"] + o["h"] <= by + bh + 1
        assert o["w"] >= bw - 1 or o["h"] >= bh - 1  # fitted: touches two sides of its box
    # the 320x240 file image is scaled to the 640x480 canvas
    o = plan[1]["objects"][0]
    assert 20 - 1 <= o["x"] and o["x"] + o["w"] <= 220 + 1 and 20 - 1 <= o["y"] and o["y"] + o["h"] <= 180 + 1


def test_every_eligible_segment_can_be_drawn(sample_lake):
    """n_c counts segments, not subcategories: ranks cover every eligible segment."""
    spec = job_spec("plan-all", job={"images": 120, "shard_size": 60}, sampling={"objects": [5, 9]},
                    layout={"kind": "grid"})
    job = jobs.prepare(sample_lake, spec)
    from soclake.plan import make_plan
    plan, _ = make_plan(sample_lake, spec, job.fingerprint)
    sample_lake.refresh()
    drawn = {o["segment_id"] for r in plan.to_pylist() for o in r["objects"]}
    eligible = {r[0] for r in sample_lake.con.execute("SELECT segment_id FROM filter_0").fetchall()}
    assert drawn == eligible and len(eligible) == 48
