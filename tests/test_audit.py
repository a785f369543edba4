"""Audit: known missing / thin / duplicated categories, plural and synonym matching, the report."""
import base64
import io
import json
import re

import pytest
from conftest import blob_rgba, folders_lake, job_spec, save_png
from PIL import Image

from soclake.cli import main
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.outputs.audit import run_audit, write_report


@pytest.fixture
def audited(lake, tmp_path):
    src = tmp_path / "cutouts"
    seed = 0
    for folder, n in {"Dogs": 3, "cat": 1, "kitty": 1, "Zebra": 2, "teapot": 4}.items():
        for i in range(n):
            seed += 1
            save_png(src / folder / f"{i}.png", blob_rgba(seed))
    save_png(src / "Zebra" / "copy.png", blob_rgba(1))  # same pixels as Dogs/0.png
    ingest(lake, "folders", str(src), source_name="cut", workers=1, progress=False)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("# my vocabulary\ndog\ncat\nzebra\nunicorn\n")
    syn = tmp_path / "syn.txt"
    syn.write_text("cat: kitty, house cat\n")
    return lake, str(vocab), str(syn)


def test_findings_are_exactly_the_known_ones(audited):
    lake, vocab, syn = audited
    r = run_audit(lake, vocab, min_segments=3, filter_name="filter_0", synonyms=syn)
    cov = {c["name"]: c for c in r["vocabulary"]["coverage"]}
    assert {n: c["status"] for n, c in cov.items()} == {"unicorn": "missing", "cat": "thin", "zebra": "thin",
                                                         "dog": "covered"}
    assert cov["cat"]["segments"] == 2  # "cat" plus the synonym "kitty"
    assert cov["dog"]["segments"] == 3  # "Dogs" matched by the plural rule
    assert [c["name"] for c in r["vocabulary"]["coverage"]][0] == "unicorn"  # missing first
    assert [u["category"] for u in r["vocabulary"]["unmatched_pool_categories"]] == ["teapot"]
    assert r["vocabulary"]["counts"] == {"missing": 1, "thin": 2, "covered": 1}
    dups = r["pool"]["duplicates"]
    assert len(dups) == 1 and dups[0]["source_uri"] == "Zebra/copy.png"


def test_numbers_agree_with_sql(audited):
    lake, vocab, syn = audited
    r = run_audit(lake, "coco", min_segments=3, filter_name="filter_0")
    sql = lake.query("SELECT name, segments, status FROM vocab_coverage('coco', min_segments := 3, "
                     "filter_column := 'filter_0') ORDER BY vocab_id").to_pylist()
    got = sorted(({"name": c["name"], "segments": c["segments"], "status": c["status"]}
                  for c in r["vocabulary"]["coverage"]), key=lambda c: [x["name"] for x in sql].index(c["name"]))
    assert got == sql
    assert {c["name"]: c["status"] for c in sql if c["status"] != "missing"} == {"dog": "covered", "cat": "thin",
                                                                                 "zebra": "thin"}
    funnel = {f["filter"]: f["segments"] for f in r["pool"]["funnel"]}
    assert funnel["filter_0"] == 11 and funnel["filter_4"] == 0  # folders carry no quality flags


def test_lvis_vocabulary_ships_and_matches_qualified_names(audited):
    lake, _, _ = audited
    r = run_audit(lake, "lvis", min_segments=1, filter_name="filter_0")
    assert r["vocabulary"]["size"] == 1203
    cov = {c["name"]: c["status"] for c in r["vocabulary"]["coverage"]}
    assert cov["dog"] == "covered" and cov["teapot"] == "covered" and cov["zebra"] == "covered"


def test_report_renders_with_decodable_plots(audited, tmp_path, sample_lake):
    lake, vocab, syn = audited
    html_path, json_path = write_report(run_audit(lake, vocab, synonyms=syn), str(tmp_path / "r.html"))
    doc = open(html_path).read()
    images = re.findall(r"data:image/png;base64,([A-Za-z0-9+/=]+)", doc)
    assert len(images) >= 4
    for b in images:
        im = Image.open(io.BytesIO(base64.b64decode(b)))
        im.load()
        assert im.width > 100
    assert "unicorn" in doc and json.load(open(json_path))["vocabulary"]["counts"]["missing"] == 1


def test_audit_with_a_job_via_cli(sample_lake, tmp_path, capsys):
    from conftest import job_spec

    from soclake.jobs import compose as jobs
    jobs.run(sample_lake, job_spec("audited", job={"images": 6, "shard_size": 3}), workers=1, progress=False)
    out = tmp_path / "a.html"
    assert main(["audit", "--lake", sample_lake.uri, "--job", "audited", "--vocab", "coco", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "job audited" in text and "report:" in text
    r = json.load(open(tmp_path / "a.json"))
    d = r["dataset"]
    assert sum(c["instances"] for c in d["categories"]) == sum(p["rendered"] for p in d["planned_vs_rendered"])
    assert sum(b["instances"] for b in d["visibility"]) == sum(c["instances"] for c in d["categories"])
    assert main(["audit", "--lake", sample_lake.uri, "--vocab", str(tmp_path / "missing.txt")]) == 2


def test_a_job_drawing_from_filter_auto_is_audited_with_it(tmp_path, soc_pool):
    lake = folders_lake(tmp_path, 7)  # a source without quality flags ...
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)  # ... and one with them
    jobs.run(lake, job_spec("auto-job", pool={"filter": "auto"}), workers=1, progress=False)
    result = run_audit(lake, "coco", "auto-job")
    assert result["filter"]["name"] == "filter_auto" and "auto-job" in result["filter"]["why"]
    want = {r["category"]: r["n"] for r in lake.query(
        "SELECT category, count(*) AS n FROM filter_auto GROUP BY 1").to_pylist()}
    got = {c["category"]: c["kept"] for c in result["pool"]["categories"] if c["kept"]}
    assert got == want and {"apple", "pear"} <= set(got)  # the unflagged source kept whole
    assert result["headline"]["segments"] == sum(want.values())
    assert run_audit(lake, "coco", filter_name="auto")["filter"]["name"] == "filter_auto"
