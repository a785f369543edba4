"""SOC presets (jobs/soc_*.toml), [pool] filter = "auto" per source, and --set overrides."""
import json
from pathlib import Path

import pytest
from conftest import blob_rgba, job_spec, save_png

from soclake import Lake
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.ingestion import ingest
from soclake.jobs import compose
from soclake.lake import catalog
from soclake.spec.load import load

JOBS = Path(__file__).resolve().parent.parent / "jobs"


@pytest.fixture
def two_source_lake(tmp_path, soc_pool):
    """Source 'flagged' (a SOC pool with its quality file) and 'plain' (SOC layout, no quality file)."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(soc_pool), source_name="flagged", workers=1, progress=False)
    plain = tmp_path / "plain"
    for i in range(3):
        save_png(plain / "pear" / "0" / f"{i}.png", blob_rgba(100 + i))
    (plain / "pool_metadata.json").write_text(json.dumps({"pear_0": {"description": "a pear", "short_phrase": "pear",
                                                                     "features": []}}))
    ingest(lake, "soc", str(plain), source_name="plain", workers=1, progress=False)
    return lake


def test_auto_filter_is_filter_4_where_a_source_has_flags_and_filter_0_where_not(two_source_lake):
    lake = two_source_lake
    flags = dict(lake.con.execute("SELECT source, has_quality_flags FROM source_quality_flags").fetchall())
    assert flags == {"flagged": True, "plain": False}
    want = {r[0] for r in lake.con.execute(
        "SELECT segment_id FROM filter_4 WHERE source = 'flagged' UNION ALL "
        "SELECT segment_id FROM filter_0 WHERE source = 'plain'").fetchall()}
    got = {r[0] for r in lake.con.execute("SELECT segment_id FROM filter_auto").fetchall()}
    assert got == want and len(got) == 2 + 3
    spec = job_spec("auto", job={"images": 6, "shard_size": 3}, pool={"filter": "auto"}, sampling={"objects": [2, 3]})
    job = compose.prepare(lake, spec)
    info = compose.plan(lake, job)
    assert info["plan"]["filters"] == [{"source": "flagged", "filter": "filter_4", "eligible": 2},
                                       {"source": "plain", "filter": "filter_0", "eligible": 3}]
    assert catalog.read_marker(lake, "auto", job.fingerprint)["plan"]["filters"] == info["plan"]["filters"]
    planned = {o["segment_id"] for objs in lake.query("SELECT objects FROM plan WHERE job = 'auto'")
               .column("objects").to_pylist() for o in objs}
    assert planned <= want


def test_soc_presets_are_socs_recipes():
    fc = load(JOBS / "soc_fc.toml")
    assert fc["layout"]["kind"] == "soc" and (fc["layout"]["width"], fc["layout"]["height"]) == (1024, 1024)
    assert fc["sampling"]["objects"] == [5, 19] and fc["sampling"]["strategy"] == "uniform_segments"
    assert fc["render"]["background"] == "none" and fc["pool"]["filter"] == "auto" and not fc["layout"]["flip"]
    for name, single in (("soc_gc", False), ("soc_sfc", True), ("soc_sgc", True)):
        spec = load(JOBS / f"{name}.toml")
        assert spec["sampling"]["single_category"] is single and spec["layout"] == fc["layout"]
        assert spec["render"] == fc["render"] and spec["pool"]["filter"] == "auto"
    relight = load(JOBS / "soc_fc_relight.toml")
    assert relight.kind == "relight" and relight["job"]["input"] == fc.name
    assert relight["relight"]["backend"] == "iclight" and relight["relight"]["seed"] == "fixed"
    refexp = load(JOBS / "soc_fc_refexp.toml")
    assert refexp.kind == "refexp" and refexp["job"]["input"] == relight.name
    r = refexp["refexp"]
    assert (r["backend"], r["request"], r["temperature"], r["retries"]) == ("llm", "soc", 0.1, 10)
    assert (r["single"], r["multi"]) == ([6, 6, 6], [3, 3, 3])


def test_set_overrides_keys_before_validation():
    spec = load(JOBS / "soc_fc.toml", ["job.images=8", "layout.width=256", "pool.filter=filter_0"])
    assert (spec["job"]["images"], spec["layout"]["width"], spec["pool"]["filter"]) == (8, 256, "filter_0")
    assert load(JOBS / "soc_fc_relight.toml", ["relight.backend=classic"])["relight"]["backend"] == "classic"
    with pytest.raises(SoclakeError, match="SECTION.KEY=VALUE"):
        load(JOBS / "soc_fc.toml", ["images=8"])
    with pytest.raises(SoclakeError, match="unknown key 'imagez'"):
        load(JOBS / "soc_fc.toml", ["job.imagez=8"])
    with pytest.raises(SoclakeError, match="must be an integer"):
        load(JOBS / "soc_fc.toml", ["job.images=many"])


def test_plan_command_states_the_auto_filters(two_source_lake, capsys):
    assert main(["plan", str(JOBS / "soc_fc.toml"), "--lake", two_source_lake.uri, "--set", "job.images=4",
                 "--set", "sampling.objects=[2, 3]", "--set", "layout.width=256", "--set", "layout.height=256"]) == 0
    out = capsys.readouterr().out
    assert "filter auto: source 'flagged' filter_4 (2 eligible), source 'plain' filter_0 (3 eligible)" in out
