"""The audit on a pool with planted findings (tests/audit_pool.py): it finds exactly the planted
near-duplicates, alpha and size problems, the thin, thin-in-diversity and over-represented
categories; the filter defaults to filter_0 (the job's with --job) and says why; the pool's own
categories come before the vocabulary's missing names; lakes from before the pixel columns
still audit and say what is unknown."""
import json
import re
import shutil
from collections import Counter

import numpy as np
import pyarrow.parquet as pq
import pytest
from audit_pool import build_lake, cutout, near_copy
from conftest import job_spec, save_png
from PIL import Image
from scipy import ndimage

from soclake import Lake
from soclake.cli import main
from soclake.ingestion import ingest
from soclake.outputs.audit import run_audit, write_report

PIXEL_COLUMNS = ("alpha_holes", "alpha_hole_fraction", "alpha_mean", "phash", "near_duplicate")


@pytest.fixture(scope="module")
def planted(tmp_path_factory):
    root = tmp_path_factory.mktemp("planted")
    lake, expected = build_lake(root)
    return lake, expected, root


def _uris(lake, view):
    return {r["source_uri"] for r in lake.query(f"SELECT source_uri FROM {view}").to_pylist()}


def test_findings_are_exactly_the_planted_ones(planted):
    lake, expected, _ = planted
    r = run_audit(lake, "coco", min_segments=5)
    members = lake.query("SELECT root, source || ':' || source_uri AS item FROM near_duplicate_members").to_pylist()
    groups = {}
    for m in members:
        groups.setdefault(m["root"], set()).add(m["item"])
    assert {frozenset(g) for g in groups.values()} == expected["near_duplicate_groups"]
    by_problem = {p["problem"]: p for p in r["pool"]["problems"]}
    for problem in ("holes", "faint_alpha", "soft_alpha", "many_components", "tiny", "extreme_aspect"):
        assert _uris(lake, by_problem[problem]["view_name"]) == expected[problem], problem
        flagged = {c["category"]: c["flagged"] for c in by_problem[problem]["by_category"]}
        assert flagged == Counter(u.split("/")[0] for u in expected[problem]), problem
    copies = {c["category"]: c["flagged"] for c in by_problem["near_duplicates"]["by_category"]}
    assert copies == {"teapot": 9, "dog": 1, "cat": 1}
    cats = {c["category"]: c for c in r["pool"]["categories"]}
    assert {n for n, c in cats.items() if c["status"] == "thin"} == expected["thin"]
    assert {n for n, c in cats.items() if c["thin_in_diversity"]} == expected["thin_in_diversity"]
    assert {n for n, c in cats.items() if c["over_represented"]} == expected["over_represented"]
    assert cats["teapot"]["distinct_looks"] == 1 and cats["teapot"]["kept"] == 10
    groups = {g["first"]: g for g in r["pool"]["near_duplicate_groups"]}
    assert groups["web:cat/3.png"]["across_sources"] and not groups["web:dog/3.png"]["across_sources"]
    h = r["headline"]
    assert h["near_duplicates"] == {"groups": 3, "segments": 14, "copies": 11, "across_sources": 1,
                                    "across_categories": 0}
    assert h["segments"] == 70 + 16 + 14 + 3 + 10 and h["categories"] == 5
    assert h["top_share"] == 1.0 and h["unknown"] == 0
    assert [p["problem"] for p in h["problems"]][:2] == ["near_duplicates", "faint_alpha"]


def test_pixel_rules_agree_with_an_independent_decode(planted):
    """Holes, opacity and components recomputed from the source PNGs with scipy, not soclake."""
    lake, _, root = planted
    rows = lake.query("SELECT source, source_uri, alpha_holes, alpha_mean, alpha_components FROM segments").to_pylist()
    for r in rows:
        alpha = np.asarray(Image.open(root / "src" / r["source"] / r["source_uri"]).convert("RGBA"))[..., 3]
        mask = alpha >= 128
        filled = ndimage.binary_fill_holes(mask)  # background flooded 4-connected from the border
        _, holes = ndimage.label(filled & ~mask)  # 4-connected hole regions
        _, pieces = ndimage.label(mask, structure=np.ones((3, 3)))
        assert r["alpha_holes"] == holes, r["source_uri"]
        assert r["alpha_components"] == pieces, r["source_uri"]
        assert r["alpha_mean"] == pytest.approx(alpha[alpha > 0].mean() / 255, abs=1e-5), r["source_uri"]


def test_default_filter_and_order_in_the_terminal(planted, capsys):
    lake, _, _ = planted
    assert main(["audit", "--lake", lake.uri, "--vocab", "coco", "--min-segments", "5"]) == 0
    out = capsys.readouterr().out
    head = out.splitlines()[1:6]
    assert head[0].strip().startswith("113 segments in 5 categories after filter_0 (the default without --job")
    assert "without quality flags" in head[1] and "studio" in head[1] and "web" in head[1]
    assert "vocabulary coco: covered 3, thin 1" in out and "missing 76" in out
    thin_row, missing = out.index("zebra"), out.index("vocabulary names with no segment (76)")
    assert out.index("person ") < missing and thin_row < missing  # the pool's own categories first
    assert out.index("\n", out.index("then covered, largest first")) < thin_row < out.index("person ")  # thin first


def test_filter_4_names_the_sources_it_drops(planted, capsys):
    lake, _, _ = planted
    r = run_audit(lake, "coco", filter_name="filter_4")
    assert r["filter"]["why"] == "given with --filter" and r["headline"]["segments"] == 0
    assert r["filter"]["sources_without_flags"] == ["studio", "web"]
    assert "filter_4 keeps none of their segments" in r["filter"]["note"]


def test_the_filter_of_a_job(sample_lake):
    from soclake.jobs import compose
    compose.plan(sample_lake, compose.prepare(sample_lake, job_spec("audit-f2", pool={"filter": "filter_2"})))
    r = run_audit(sample_lake, "coco", job="audit-f2")
    assert r["filter"]["name"] == "filter_2" and "audit-f2" in r["filter"]["why"]
    kept = sample_lake.query("SELECT count(*) AS n FROM filter_2").to_pylist()[0]["n"]
    assert r["headline"]["segments"] == kept
    assert run_audit(sample_lake, "coco", job="audit-f2", filter_name="filter_0")["filter"]["name"] == "filter_0"


def _tables(doc: str) -> list[dict]:
    blocks = re.findall(r"<div class='sl-table'><script type='application/json'>(.*?)</script>", doc, re.S)
    return [json.loads(b) for b in blocks]


def test_html_headline_first_and_every_row_kept(planted, tmp_path):
    lake, _, _ = planted
    path, _ = write_report(run_audit(lake, "coco", min_segments=5), str(tmp_path / "r.html"))
    doc = open(path, encoding="utf-8").read()
    body = doc[doc.index("<body>"):]
    assert body.index("id='headline'") < body.index("<h2>")  # the headline opens the report
    for anchor in set(re.findall(r"href='#([^']+)'", body)):
        assert f"id='{anchor}'" in body, anchor
    tables = _tables(doc)
    names = {row[0] for t in tables if t["columns"] == ["name"] for row in t["rows"]}
    assert len(names) == 76 and "unicorn" not in names and "person" not in names
    pool = next(t for t in tables if t["columns"][:2] == ["category", "status"])
    assert [row[0] for row in pool["rows"]] == ["zebra", "teapot", "cat", "dog", "person"]  # thin first, none cut
    assert "more rows in the JSON file" not in doc
    assert "https://" not in doc and "http://" not in doc and "<script src" not in doc  # self-contained
    assert body.index("id='pool-categories'") < body.index("id='missing'")


def test_a_lake_from_before_the_pixel_columns_still_audits(planted, tmp_path):
    lake, _, root = planted
    old = tmp_path / "old"
    shutil.copytree(lake.root, old)
    for part in (old / "tables" / "segments").glob("*.parquet"):  # as soclake wrote them before
        t = pq.read_table(part)
        pq.write_table(t.drop_columns([c for c in PIXEL_COLUMNS if c in t.column_names]), part)
    old_lake = Lake(str(old))
    r = run_audit(old_lake, "coco", min_segments=5)
    h = r["headline"]
    assert h["segments"] == 113 and h["unknown"] == 113 and "re-ingest" in h["unknown_note"]
    assert h["near_duplicates"]["groups"] == 0
    assert {p["problem"] for p in h["problems"]} == {"soft_alpha", "many_components", "tiny", "extreme_aspect"}
    # a new source goes in beside the old rows: hashed and searched; the old rows stay unknown
    mug = cutout(99, 80, 80)
    save_png(tmp_path / "extra" / "mug" / "0.png", mug)
    save_png(tmp_path / "extra" / "mug" / "1.png", near_copy(mug, 3))
    ingest(old_lake, "folders", str(tmp_path / "extra"), source_name="extra", workers=1, progress=False)
    old_lake.refresh()
    rows = old_lake.query("SELECT source, count(*) FILTER (WHERE phash IS NULL) AS unknown, "
                          "count(*) FILTER (WHERE near_duplicate IS NOT NULL) AS copies FROM segments "
                          "GROUP BY source ORDER BY source").to_pylist()
    assert rows == [{"source": "extra", "unknown": 0, "copies": 1}, {"source": "studio", "unknown": 11, "copies": 0},
                    {"source": "web", "unknown": 102, "copies": 0}]
