"""`soclake audit --suggest`: the written spec plans, and its plan shifts the shares as intended
(thin and rare categories up to the fair share, the over-represented one capped, near-duplicate
copies left out); with --job, a follow-up job fills what the composed dataset lacks."""
import pytest
from audit_pool import build_lake

from soclake.cli import main
from soclake.jobs import compose
from soclake.outputs.audit import run_audit, suggest_spec
from soclake.spec.load import load


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    return build_lake(tmp_path_factory.mktemp("suggest"))[0]


def _plan(lake, path):
    job = compose.prepare(lake, load(path))
    compose.plan(lake, job)
    rows = lake.query("SELECT * FROM sampling_shift WHERE fingerprint = $fp", {"fp": job.fingerprint}).to_pylist()
    return job, {r["category"]: r for r in rows}


def test_suggested_spec_plans_and_shifts_the_shares(planted, tmp_path):
    lake = planted
    result = run_audit(lake, "coco", min_segments=5)
    s = suggest_spec(lake, result, str(tmp_path / "fill.toml"), images=200)
    job, shift = _plan(lake, str(tmp_path / "fill.toml"))
    k = len(shift)
    assert k == 5 and shift["teapot"]["eligible"] == 1  # the nine teapot copies are not eligible
    copies = lake.query("SELECT count(*) AS n FROM (SELECT unnest(objects) AS o FROM plan WHERE fingerprint = $fp) p "
                        "JOIN segments s ON s.segment_id = p.o.segment_id WHERE s.near_duplicate IS NOT NULL",
                        {"fp": job.fingerprint}).to_pylist()[0]["n"]
    assert copies == 0
    assert set(s["quotas"]) <= set(shift) and "person" not in s["quotas"]
    assert s["boosted"]["zebra"] == "thin" and s["capped"] == ["person"]
    for name in ("zebra", "teapot"):  # thin / LVIS-rare: from ~3% and ~1% of the slots to the fair share
        r = shift[name]
        assert r["planned_share"] == pytest.approx(1 / k, abs=0.03) and r["planned_share"] > 5 * r["uniform_share"]
    person = shift["person"]  # over-represented: 69% of the eligible segments, capped
    assert person["uniform_share"] > 0.65 and person["planned_share"] <= 3 / k and person["planned_share"] < 0.3
    for name, r in shift.items():  # the plan does what the suggestion says it will
        assert r["planned_share"] == pytest.approx(s["intended_share"][name], abs=0.03), name


def test_suggest_for_a_composed_job(planted, tmp_path, capsys):
    lake = planted
    (tmp_path / "soc.toml").write_text('[job]\nname = "plain"\nimages = 40\nshard_size = 20\n'
                                       '[layout]\nwidth = 128\nheight = 128\n[sampling]\nobjects = [3, 5]\n')
    assert main(["run", str(tmp_path / "soc.toml"), "--lake", lake.uri, "--workers", "1"]) == 0
    out = tmp_path / "plain-fill.toml"
    assert main(["audit", "--lake", lake.uri, "--job", "plain", "--vocab", "coco", "--suggest", str(out),
                 "--suggest-images", "150"]) == 0
    assert "suggested spec" in capsys.readouterr().out
    lake.refresh()  # the CLI wrote the job's tables
    before = {r["category"]: r["instances"] for r in lake.query(
        "SELECT category, instances FROM category_stats WHERE job = 'plain'").to_pylist()}
    assert before["person"] > 0.5 * sum(before.values())  # SOC's uniform segments: person dominates
    job, shift = _plan(lake, str(out))
    assert "person" not in shift  # over-represented already: the follow-up draws none
    planned = {n: r["planned"] for n, r in shift.items()}
    total = sum(before.values()) + sum(planned.values())
    combined = {n: before.get(n, 0) + planned.get(n, 0) for n in before}
    fair = total / 5
    level = (sum(planned.values()) + sum(before[n] for n in planned)) / len(planned)
    for name in ("zebra", "teapot", "cat", "dog"):  # under-represented: filled up to one level
        assert before[name] < fair / 3 and combined[name] == pytest.approx(level, rel=0.1), name
