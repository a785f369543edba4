"""Category names with quotes, semicolons, SQL comments, backslashes, braces and unicode are
data: they are ingested, a compose job restricted to one of them (through [pool] where, or a
vocabulary file and quotas) plans and renders, `soclake sql` and `soclake audit` work, and the
name round-trips exactly through the categories table, the shards and the COCO export.
"""
from __future__ import annotations

import json
import os
import re

import pytest
from conftest import blob_rgba, save_png

from soclake import Lake
from soclake.cli import main
from soclake.ingestion import ingest
from soclake.shards.tar import read_samples

TARGET = "'); drop table segments; --"
NAMES = [TARGET, 'say "hi"; ok', "back\\slash", "猫 café", "{where} {filter}", "50% off", "a/b"]


def toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string (escaped quotes, backslashes, \\u) is a TOML basic string


def sql_string(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@pytest.fixture(scope="module")
def names_lake(tmp_path_factory):
    """Three segments per name: folder categories, plus "a/b" from a COCO file (a folder
    cannot carry a slash)."""
    root = tmp_path_factory.mktemp("names")
    for c, name in enumerate(NAMES[:-1]):
        for i in range(3):
            save_png(root / "src" / name / f"{i}.png", blob_rgba(30 * c + i, 40))
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "folders", str(root / "src"), workers=1, progress=False)
    import numpy as np
    from PIL import Image
    (root / "coco" / "images").mkdir(parents=True)
    Image.fromarray(np.random.default_rng(5).integers(0, 256, (40, 60, 3), dtype=np.uint8)).save(
        root / "coco" / "images" / "p.png")
    anns = [{"id": i, "image_id": 1, "category_id": 1, "bbox": [2 + 18 * i, 5, 14, 14], "iscrowd": 0,
             "segmentation": [[2 + 18 * i, 5, 16 + 18 * i, 5, 16 + 18 * i, 19, 2 + 18 * i, 19]]} for i in range(3)]
    (root / "coco" / "inst.json").write_text(json.dumps({
        "images": [{"id": 1, "file_name": "p.png", "width": 60, "height": 40}],
        "categories": [{"id": 1, "name": "a/b"}], "annotations": anns}))
    ingest(lake, "coco", str(root / "coco" / "inst.json"), workers=1, progress=False)
    return lake, root


def run_job(lake: Lake, root, name: str, extra: str, capsys) -> str:
    """Run a 4-image job with the given TOML tail through the CLI; its fingerprint."""
    spec = root / f"{name}.toml"
    spec.write_text(f'[job]\nname = "{name}"\nimages = 4\nshard_size = 4\n'
                    f'[layout]\nwidth = 96\nheight = 96\n[sampling]\nobjects = [2, 4]\n{extra}')
    assert main(["run", str(spec), "--lake", lake.root, "--workers", "1", "--no-progress"]) == 0, capsys.readouterr()
    capsys.readouterr()
    lake.refresh()
    return lake.query("SELECT fingerprint FROM manifest WHERE job = $j", {"j": name}).to_pylist()[0]["fingerprint"]


def shard_categories(lake: Lake, fp: str) -> list[str]:
    out = []
    for r in lake.query("SELECT shard_uri FROM manifest WHERE fingerprint = $fp", {"fp": fp}).to_pylist():
        for _, members in read_samples(open(lake.path(r["shard_uri"]), "rb").read()):
            out += [i["category"] for i in json.loads(members["json"])["instances"]]
    return out


def test_names_round_trip_in_the_categories_table(names_lake, capsys):
    lake, _ = names_lake
    assert sorted(r["name"] for r in lake.query("SELECT name FROM categories").to_pylist()) == sorted(NAMES)
    assert lake.query("SELECT count(*) AS n FROM rejects").to_pylist() == [{"n": 0}]
    assert main(["sql", "--lake", lake.root, "--format", "json",
                 "SELECT name, count(*) AS n FROM segments JOIN categories USING (category_id) GROUP BY 1"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert {r["name"]: r["n"] for r in rows} == {n: 3 for n in NAMES}


def test_job_restricted_by_where_renders_only_that_category_and_exports_it(names_lake, capsys, tmp_path):
    lake, root = names_lake
    where = f"category = {sql_string(TARGET)}"
    fp = run_job(lake, root, "by-where", f"[pool]\nwhere = {toml_string(where)}\n", capsys)
    cats = shard_categories(lake, fp)
    assert cats and set(cats) == {TARGET}
    assert main(["export", "--lake", lake.root, "--job", "by-where", "--format", "coco", "--out", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "annotations.json").read_text())
    names = {c["id"]: c["name"] for c in doc["categories"]}
    assert sorted(names.values()) == sorted(NAMES)
    assert {names[a["category_id"]] for a in doc["annotations"]} == {TARGET}
    assert len(doc["annotations"]) == len(cats)


def test_job_restricted_by_vocabulary_and_quotas(names_lake, capsys):
    lake, root = names_lake
    chosen = [TARGET, 'say "hi"; ok', "{where} {filter}", "a/b"]
    (root / "vocab.txt").write_text("\n".join(chosen) + "\n", encoding="utf-8")
    quotas = ", ".join(f"{toml_string(n)} = 2" for n in chosen)
    fp = run_job(lake, root, "by-vocab", f'quotas = {{{quotas}}}\n[pool]\nvocab = "vocab.txt"\n', capsys)
    plan = lake.query("SELECT c.name, count(*) AS n FROM (SELECT unnest(objects) AS o FROM plan WHERE fingerprint = $fp) "
                      "JOIN categories c ON c.category_id = o.category_id WHERE o.role = 'object' GROUP BY 1",
                      {"fp": fp}).to_pylist()
    assert set(r["name"] for r in plan) <= set(chosen)
    assert all(r["n"] >= 2 for r in plan) and len(plan) == len(chosen)
    assert set(shard_categories(lake, fp)) <= set(chosen)


def test_audit_against_a_vocabulary_of_hostile_names(names_lake, capsys, tmp_path):
    lake, root = names_lake
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join([*NAMES, "missing'; --"]) + "\n", encoding="utf-8")
    out = tmp_path / "audit.html"
    code = main(["audit", "--lake", lake.root, "--vocab", str(vocab), "--min-segments", "2", "--filter", "filter_0",
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads((tmp_path / "audit.json").read_text())
    status = {r["name"]: r["status"] for r in result["vocabulary"]["coverage"]}
    assert status == {**{n: "covered" for n in NAMES}, "missing'; --": "missing"}
    assert result["vocabulary"]["unmatched_pool_categories"] == []
    page = out.read_text(encoding="utf-8")
    # the report's tables carry rows as JSON inside the page (drawn with textContent, never as markup)
    blocks = re.findall(r"<script type='application/json'>(.*?)</script>", page, re.S)
    cells = {c for b in blocks for row in json.loads(b)["rows"] for c in row if isinstance(c, str)}
    assert set(NAMES) <= cells and "<td>'); drop" not in page
    assert lake.query("SELECT count(*) AS n FROM segments").to_pylist() == [{"n": 3 * len(NAMES)}]
    assert sorted(os.listdir(tmp_path)) == ["audit.html", "audit.json", "vocab.txt"]


def test_a_lake_path_with_quotes_and_semicolons(tmp_path, capsys):
    """Lake paths reach DuckDB as parameters or quoted literals: a quote in the path breaks
    nothing (ingest twice: the second finds everything in the lake; query; run; export)."""
    for i in range(3):
        save_png(tmp_path / "src" / "it's" / f"{i}.png", blob_rgba(70 + i, 40))
    root = tmp_path / "o'brien \"q\"; --"
    lake = Lake(str(root / "lake"), create=True)
    assert ingest(lake, "folders", str(tmp_path / "src"), workers=1, progress=False).accepted == 3
    again = ingest(lake, "folders", str(tmp_path / "src"), workers=1, progress=False)
    assert (again.accepted, again.skipped) == (0, 3)
    fp = run_job(lake, root, "quoted", "", capsys)
    assert set(shard_categories(lake, fp)) == {"it's"}
    assert main(["export", "--lake", lake.root, "--job", "quoted", "--format", "coco", "--out", str(root / "out")]) == 0
    doc = json.loads((root / "out" / "annotations.json").read_text())
    assert [c["name"] for c in doc["categories"]] == ["it's"] and doc["annotations"]
