"""Quality flags per source, stated: the source_filters view says which sources have flags and
what each filter keeps of them; a job whose filter leaves out a whole source says so (an error
when the spec names that source or nothing is eligible, a warning otherwise); example specs meant
for any pool use filter_0.
"""
from __future__ import annotations

import os

import pytest
from conftest import blob_rgba, job_spec, save_png

from soclake import Lake
from soclake.errors import SoclakeError
from soclake.ingestion import ingest
from soclake.plan.pool import open_eligible
from soclake.spec.load import load

JOBS = os.path.join(os.path.dirname(__file__), "..", "jobs")


@pytest.fixture
def two_sources(tmp_path, soc_pool):
    """'soc': SOC's pool with quality flags; 'real': the user's own cut-outs, without flags."""
    for i in range(3):
        save_png(tmp_path / "real" / "mug" / f"{i}.png", blob_rgba(60 + i, 40))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(soc_pool), source_name="soc", workers=1, progress=False)
    ingest(lake, "folders", str(tmp_path / "real"), source_name="real", workers=1, progress=False)
    return lake


def test_source_filters_view(two_sources):
    got = {r["source"]: r for r in two_sources.query("SELECT * FROM source_filters").to_pylist()}
    assert got["real"] == {"source": "real", "layout": "folders", "has_quality_flags": False, "flagged": 0,
                           "filter_0": 3, "filter_1": 0, "filter_2": 0, "filter_3": 0, "filter_4": 0}
    assert got["soc"]["has_quality_flags"] and (got["soc"]["filter_0"], got["soc"]["filter_4"]) == (8, 2)


def test_a_named_source_the_filter_leaves_out_is_an_error(two_sources):
    spec = job_spec("own-data", pool={"filter": "filter_4", "sources": ["soc", "real"]})
    with pytest.raises(SoclakeError, match="source 'real' has no quality flags: it appears only in filter_0"):
        open_eligible(two_sources, spec)
    open_eligible(two_sources, job_spec("own-data", pool={"filter": "filter_0", "sources": ["soc", "real"]}))


def test_nothing_eligible_names_the_sources_without_flags(tmp_path):
    for i in range(2):
        save_png(tmp_path / "real" / "mug" / f"{i}.png", blob_rgba(i, 40))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(tmp_path / "real"), workers=1, progress=False)
    with pytest.raises(SoclakeError, match="no segment is eligible.*source 'real' has no quality flags"):
        open_eligible(lake, job_spec("mine", pool={"filter": "filter_4"}))


def test_all_sources_with_one_left_out_warns(two_sources):
    with pytest.warns(UserWarning, match="source 'real' has no quality flags"):
        counts = open_eligible(two_sources, job_spec("all", pool={"filter": "filter_4"}))
    assert counts.n.sum() == 2


def test_example_specs_meant_for_any_pool_use_filter_0():
    for name in ("demo.toml", "hardness.toml", "replay.toml"):
        assert load(os.path.join(JOBS, name))["pool"]["filter"] == "filter_0", name
