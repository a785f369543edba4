"""The free-placement layouts' vectorised rejection sampling (plan/layouts.py
Occupancy.first_fit) takes exactly the candidate a one-by-one `fits` scan takes, and a plan
is the same whatever the worker count, DuckDB's thread count and OpenCV's thread count."""
import cv2
import numpy as np
import pytest
from conftest import job_spec

from soclake.jobs import compose as jobs
from soclake.plan import layouts, make_plan


def one_by_one(occ: layouts.Occupancy, xs, ys, w, h, min_visible):
    """The reference: `fits` on each candidate in turn."""
    for i, (x, y) in enumerate(zip(xs.tolist(), ys.tolist())):
        ok, shown, size = occ.fits((x, y, w, h), min_visible)
        if ok:
            return i, shown, size
    return None


@pytest.mark.parametrize("seed", range(30))
def test_first_fit_takes_the_candidate_fits_takes(seed):
    rng = np.random.default_rng(seed)
    W, H = int(rng.integers(64, 1500)), int(rng.integers(64, 1500))
    min_visible = float(rng.choice([0.0, 0.3, 0.6, 0.95]))
    occ = layouts.Occupancy(W, H, 40)
    for _ in range(int(rng.integers(1, 30))):
        w, h = int(rng.integers(1, W)), int(rng.integers(1, H))
        xs, ys = rng.integers(-(w // 2), W - w // 2 + 1, 25), rng.integers(-(h // 2), H - h // 2 + 1, 25)
        expected = one_by_one(occ, xs, ys, w, h, min_visible)
        cells = np.stack(occ.cells(xs, ys, np.int64(w), np.int64(h)))
        area = (cells[1] - cells[0]) * (cells[3] - cells[2])
        keep = np.flatnonzero(area >= min_visible * max(w * h / occ.cell ** 2, 1e-9))
        hit = occ.first_fit(cells[:, keep], min_visible)
        if expected is None:
            assert hit is None
            continue
        assert hit is not None
        i = int(keep[hit[0]])
        assert i == expected[0] and np.array_equal(hit[1], expected[1]) and int(area[i]) == expected[2]
        occ.add((int(xs[i]), int(ys[i]), w, h), hit[1], int(area[i]))


def test_plan_is_the_same_for_any_worker_duckdb_and_opencv_thread_count(sample_lake, monkeypatch):
    import soclake.plan as planner
    monkeypatch.setattr(planner, "CHUNK", 5)
    spec = job_spec("plan-threads", job={"images": 20, "shard_size": 10}, sampling={"objects": [3, 9]})
    fp = jobs.prepare(sample_lake, spec).fingerprint
    threads, cv_threads = sample_lake.con.execute("SELECT current_setting('threads')").fetchall()[0][0], cv2.getNumThreads()
    plans = []
    try:
        for workers, duck, cv in ((1, 1, 1), (2, 4, 2)):
            sample_lake.con.execute(f"SET threads = {duck}")
            cv2.setNumThreads(cv)
            plans.append(make_plan(sample_lake, spec, fp, workers=workers)[0])
            sample_lake.refresh()
    finally:
        sample_lake.con.execute(f"SET threads = {threads}")
        cv2.setNumThreads(cv_threads)
    assert plans[0].num_rows == 20 and all(p.equals(plans[0]) for p in plans[1:])
