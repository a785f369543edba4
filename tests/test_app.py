"""soclake app's JSON API over the test lake (tests/app_lake.py), checked against the lake's
files read independently (Parquet with pyarrow, shards and packs with tarfile, job.json as
written) and against the CLI (`soclake sql`, `soclake audit`): keyset pages, thumbnails as
stored, the segment page, jobs and lineage, samples and members, the console and its sandbox
and time limit, audit numbers; and the guarantees: no write to the lake, every path parameter
validated, links out of the lake refused, loopback by default."""
from __future__ import annotations

import base64
import csv
import glob
import io
import json
import os
import re
import shutil
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hostile_corpus import tree
from PIL import Image
from starlette.testclient import TestClient

from soclake import Lake
from soclake.app import create_app, jsonio, pool, server
from soclake.cli import build_parser, main

JOB, RELIT, REFEXP = "appj", "appj-relit", "appj-refexp"


@pytest.fixture(scope="module")
def client(app_lake):
    with TestClient(create_app(app_lake.root), base_url="http://127.0.0.1") as c:
        yield c


def segments_table(lake: Lake) -> pa.Table:
    """The segments table read from its Parquet parts with pyarrow (not through the lake's views)."""
    parts = sorted(glob.glob(os.path.join(lake.root, "tables", "segments", "*.parquet")))
    return pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")


def run_of(client, job: str) -> dict:
    return next(r for r in client.get("/api/jobs").json()["runs"] if r["job"] == job)


def walk(client, query: str, limit: int) -> list[dict]:
    rows, after = [], ""
    while True:
        page = client.get(f"/api/pool/segments?limit={limit}&after={after}&{query}").json()
        assert len(page["segments"]) <= limit
        rows += page["segments"]
        if page["next"] is None:
            return rows
        after = page["next"]


# ---------------------------------------------------------------------------- pool
@pytest.mark.parametrize("query, keep", [
    ("view=segments", lambda t: pc.equal(t["segment_id"], t["segment_id"])),
    ("", lambda t: pc.invert(t["is_distractor"])),  # filter_0, the default
    ("view=filter_4&colour=red", lambda t: pc.and_(pc.and_(pc.invert(t["is_distractor"]), pc.equal(t["dominant_color"], "red")),
                                                   pc.and_(pc.and_(t["is_instance"], t["integrity"]), t["quality_regularity"]))),
    ("view=segments&distractor=only&min_side=100", lambda t: pc.and_(t["is_distractor"],
                                                                     pc.greater_equal(pc.max_element_wise(t["width"], t["height"]), 100))),
    ("source=generated&category=ball", lambda t: pc.and_(pc.and_(pc.invert(t["is_distractor"]), pc.equal(t["source"], "generated")),
                                                         pc.equal(t["category"], "ball"))),
])
def test_keyset_pages_walk_every_filtered_row_once_in_order(client, app_lake, query, keep):
    table = segments_table(app_lake)
    expected = sorted(table.filter(pc.fill_null(keep(table), False))["segment_id"].to_pylist())
    assert expected, "the filter should keep rows"
    rows = walk(client, query, 7)
    ids = [r["segment_id"] for r in rows]
    assert ids == expected
    assert client.get(f"/api/pool/count?{query}").json()["segments"] == len(expected)


def test_sorted_by_size_pages_follow_alpha_area(client, app_lake):
    rows = walk(client, "view=segments&sort=largest", 9)
    table = segments_table(app_lake)
    pairs = sorted(zip((-a for a in table["alpha_area"].to_pylist()), table["segment_id"].to_pylist()))
    assert [r["segment_id"] for r in rows] == [sid for _, sid in pairs]


def test_category_suggestions_start_with_the_prefix_most_segments_first(client, app_lake):
    table = segments_table(app_lake).filter(pc.invert(pc.field("is_distractor")))
    counts = {}
    for c in table["category"].to_pylist():
        counts[c] = counts.get(c, 0) + 1
    want = sorted(((n, c) for c, n in counts.items() if c.startswith("b")), key=lambda x: (-x[0], x[1]))
    got = client.get("/api/pool/categories?prefix=B").json()
    assert [(r["segments"], r["category"]) for r in got] == want and want
    assert len(client.get("/api/pool/categories?limit=2").json()) == 2


def test_bad_filters_and_cursors_are_clear_400s(client):
    for query, word in [("view=segments;drop", "view"), ("min_side=-3", "min_side"), ("after=zz", "cursor"),
                        ("sort=random", "sort"), ("limit=100000", "limit")]:
        r = client.get(f"/api/pool/segments?{query}")
        assert r.status_code == 400 and word in r.json()["error"], (query, r.text)


def pack_member(lake: Lake, pack: str, offset: int) -> bytes:
    """The pack member whose data starts at `offset`, read with tarfile."""
    with tarfile.open(os.path.join(lake.root, pack)) as tar:
        for m in tar:
            if m.offset_data == offset:
                return tar.extractfile(m).read()
    raise AssertionError(f"no member at {offset} in {pack}")


def test_thumbnails_are_the_smallest_covering_level_as_stored_never_decoded(client, app_lake, monkeypatch):
    from soclake import imaging
    page = client.get("/api/pool/segments?limit=12&view=segments").json()["segments"]
    levels = {r["segment_id"]: r["levels"] for r in segments_table(app_lake).select(["segment_id", "levels"]).to_pylist()}

    def no_decoding(*args, **kwargs):
        raise AssertionError("a thumbnail was decoded")
    monkeypatch.setattr(Image, "open", no_decoding)
    monkeypatch.setattr(imaging, "decode_level", no_decoding)
    for row in page:
        r = client.get(row["thumbnail"])
        assert r.status_code == 200 and r.headers["content-type"] == "image/webp"
        assert "immutable" in r.headers["cache-control"]
        fitting = [lv for lv in levels[row["segment_id"]] if lv["side"] >= pool.THUMB_SIDE]
        want = min(fitting, key=lambda lv: lv["side"]) if fitting else max(levels[row["segment_id"]], key=lambda lv: lv["side"])
        assert r.content == pack_member(app_lake, want["pack"], want["offset"])
    monkeypatch.undo()
    sid = page[0]["segment_id"]
    for side in (32, 64, 200):  # other sizes: the segment's own levels, the same rule
        r = client.get(f"/api/segments/{sid}/thumbnail?side={side}")
        fitting = [lv for lv in levels[sid] if lv["side"] >= side] or levels[sid][:1]
        assert Image.open(io.BytesIO(r.content)).size == (fitting[-1]["width"], fitting[-1]["height"])


def test_segment_page_has_every_level_its_duplicates_and_the_jobs_that_used_it(client, app_lake):
    dup = app_lake.query("SELECT detail FROM rejects WHERE reason = 'duplicate'").column(0)[0].as_py()
    sid = dup.rsplit("(", 1)[1].rstrip(")")
    data = client.get(f"/api/segments/{sid}").json()
    row = segments_table(app_lake).filter(pc.equal(pc.field("segment_id"), sid)).to_pylist()[0]
    assert data["segment"]["category"] == row["category"] and data["segment"]["width"] == row["width"]
    assert [lv["side"] for lv in data["segment"]["levels"]] == [lv["side"] for lv in row["levels"]]
    for i, lv in enumerate(row["levels"]):
        got = client.get(data["segment"]["levels"][i]["url"]).content
        assert got == pack_member(app_lake, lv["pack"], lv["offset"])
        assert Image.open(io.BytesIO(got)).size == (lv["width"], lv["height"])
    assert [(r["source"], r["reason"]) for r in data["rejects"]] == [("dup", "duplicate")]
    # the jobs: planned pastes in the plan parquet, rendered instances in the annotations parquet
    plans = pa.concat_tables([pq.read_table(p) for p in glob.glob(os.path.join(app_lake.root, "tables", "plan", "*.parquet"))])
    planned = sum(o["segment_id"] == sid for objs in plans["objects"].to_pylist() for o in objs)
    anns = pa.concat_tables([pq.read_table(p) for p in glob.glob(os.path.join(app_lake.root, "tables", "annotations", "*.parquet"))])
    drawn = anns.filter(pc.equal(anns["segment_id"], sid)).num_rows
    jobs = {j["job"]: j for j in data["jobs"]}
    if planned:
        assert jobs[JOB]["planned"] == planned and jobs[JOB]["instances"] == drawn
    else:
        assert JOB not in jobs


def test_unknown_and_malformed_segment_ids(client):
    assert client.get("/api/segments/" + "0" * 32).status_code == 404
    for bad in ("zz", "%2e%2e", "%2e%2e%2f%2e%2e%2fetc%2fpasswd", "0" * 32 + "%00"):
        assert client.get(f"/api/segments/{bad}").status_code in (400, 404)
    assert client.get("/api/segments/" + "0" * 32 + "/levels/99").status_code == 404


# ---------------------------------------------------------------------------- jobs
def test_jobs_have_progress_lineage_and_their_job_json(client, app_lake):
    runs = {r["job"]: r for r in client.get("/api/jobs").json()["runs"]}
    assert set(runs) == {JOB, RELIT, REFEXP, "appt", "appt-relit"}
    compose, relit, refexp = runs[JOB], runs[RELIT], runs[REFEXP]
    assert (compose["stage"], relit["stage"], refexp["stage"]) == ("compose", "relight", "refexp")
    assert compose["shards"] == compose["shards_committed"] == 2 and compose["state"] == "complete"
    assert relit["input"]["fingerprint"] == compose["fingerprint"] and refexp["input"]["fingerprint"] == relit["fingerprint"]
    assert [o["job"] for o in compose["outputs"]] == [RELIT]
    detail = client.get(f"/api/jobs/{REFEXP}/{refexp['fingerprint']}").json()
    assert [x["job"] for x in detail["lineage"]] == [JOB, RELIT, REFEXP]
    marker = json.loads(open(os.path.join(app_lake.root, "jobs", REFEXP, refexp["fingerprint"], "job.json")).read())
    assert detail["marker"] == jsonio.plain(marker)
    assert detail["failures"]["missing_shards"] == [] and len(detail["shards"]) == 2
    current = client.get(f"/api/jobs/{JOB}").json()
    assert current["run"]["fingerprint"] == compose["fingerprint"]
    assert current["failures"]["degraded"]["replaced"] == 0
    assert client.get("/api/jobs/nope").status_code == 404
    assert "did you mean" in client.get("/api/jobs/appjj").json()["error"]
    assert client.get(f"/api/jobs/{JOB}/ffffffffffffffff").status_code == 404


def test_a_missing_shard_is_listed_as_a_failure(app_lake, tmp_path):
    copy = shutil.copytree(app_lake.root, tmp_path / "lake", symlinks=True)
    lake = Lake(str(copy))
    fp = lake.query("SELECT fingerprint FROM job_status WHERE job = 'appj'").column(0)[0].as_py()
    os.remove(next(p for p in glob.glob(os.path.join(copy, "tables", "manifest", "*.parquet")) if f"appj-{fp}-000001" in p))
    with TestClient(create_app(str(copy)), base_url="http://127.0.0.1") as c:
        run = c.get(f"/api/jobs/appj/{fp}").json()
        assert run["failures"]["missing_shards"] == [1] and run["run"]["state"] == "partial"
        relit = run_of(c, RELIT)
        assert c.get(f"/api/jobs/{RELIT}/{relit['fingerprint']}").json()["failures"]["missing_shards"] == []


# ---------------------------------------------------------------------------- samples
def shard_members(lake: Lake, job: str, fp: str) -> dict[str, dict[str, bytes]]:
    out: dict = {}
    for path in sorted(glob.glob(os.path.join(lake.root, "jobs", job, fp, "shards", "*.tar"))):
        with tarfile.open(path) as tar:
            for m in tar:
                key, _, ext = m.name.partition(".")
                out.setdefault(key, {})[ext] = tar.extractfile(m).read()
    return out


def test_samples_pages_and_members_are_the_shards_own(client, app_lake):
    for job in (JOB, RELIT, REFEXP):
        fp = run_of(client, job)["fingerprint"]
        members = shard_members(app_lake, job, fp)
        first = client.get(f"/api/jobs/{job}/{fp}/samples?limit=3").json()
        second = client.get(f"/api/jobs/{job}/{fp}/samples?limit=3&after={first['next']}").json()
        keys = [s["key"] for s in first["samples"] + second["samples"]]
        assert keys == sorted(members) and first["total"] == len(members) and second["next"] is None
        for key, exts in members.items():
            for ext, data in exts.items():
                r = client.get(f"/api/jobs/{job}/{fp}/samples/{key}/members/{ext}")
                assert r.status_code == 200 and r.content == data, (job, key, ext)
        thumb = Image.open(io.BytesIO(client.get(first["samples"][0]["thumbnail"]).content))
        assert max(thumb.size) <= 192


def test_sample_page_shows_the_lineage_and_expressions_by_bucket(client, app_lake):
    fp = run_of(client, RELIT)["fingerprint"]
    members = shard_members(app_lake, REFEXP, run_of(client, REFEXP)["fingerprint"])
    key = sorted(members)[0]
    data = client.get(f"/api/jobs/{RELIT}/{fp}/samples/{int(key)}").json()  # "0" means 000000000
    info = json.loads(members[key]["json"])
    assert [i["panoptic_id"] for i in data["instances"]] == [i["panoptic_id"] for i in info["instances"]]
    stages = {v["stage"]: v for v in data["views"]}
    assert set(stages) == {"compose", "relight", "refexp"} and stages["relight"]["this"]
    original = client.get(stages["compose"]["composite"]).content
    assert original == shard_members(app_lake, JOB, run_of(client, JOB)["fingerprint"])[key]["jpg"]
    doc = json.loads(members[key]["refexp.json"])
    got = [e for b in data["refexp"]["buckets"] for e in b["expressions"]]
    assert sorted(json.dumps(e, sort_keys=True) for e in got) == sorted(json.dumps(e, sort_keys=True) for e in doc["expressions"])
    for b in data["refexp"]["buckets"]:
        assert {f"{e['scope']} / {e['kind']}" for e in b["expressions"]} == {b["bucket"]}
    scopes = [b["bucket"].split(" / ")[0] for b in data["refexp"]["buckets"]]
    assert scopes == sorted(scopes, key=["single", "multi", "none"].index)
    assert data["refexp"]["qa"] == jsonio.plain(doc["qa"]) and data["refexp"]["caption"] == doc["caption"]
    pretty = client.get(f"{data['members']['json']}?pretty=1")
    assert json.loads(pretty.content) == info and b"\n" in pretty.content  # exact, big seeds included


def test_runs_of_a_lineage_show_their_own_composites(client, app_lake):
    """A transparent composite (KEY.rgba.png) is relit as a scene (KEY.jpg): each run's page,
    thumbnails and views name the composite that run's shard holds."""
    fps = {job: run_of(client, job)["fingerprint"] for job in ("appt", "appt-relit")}
    for job, ext in (("appt", "rgba.png"), ("appt-relit", "jpg")):
        members = shard_members(app_lake, job, fps[job])
        for key, exts in members.items():
            data = client.get(f"/api/jobs/{job}/{fps[job]}/samples/{key}").json()
            assert data["composite"].endswith(f"/members/{ext}")
            assert client.get(data["composite"]).content == exts[ext]
            for v in data["views"]:
                other = "rgba.png" if v["stage"] == "compose" else "jpg"
                assert client.get(v["composite"]).content == shard_members(app_lake, v["job"], v["fingerprint"])[key][other]
            assert client.get(f"/api/jobs/{job}/{fps[job]}/samples/{key}/thumbnail").status_code == 200


def test_sample_parameters_are_validated(client):
    fp = run_of(client, JOB)["fingerprint"]
    base = f"/api/jobs/{JOB}/{fp}/samples"
    assert client.get(f"{base}/999999").status_code == 404
    assert client.get(f"{base}/000000000/members/nope").status_code == 404
    for bad in ("..%2F..%2Fsoclake.json", "a.b", "%2e%2e"):
        assert client.get(f"{base}/{bad}").status_code in (400, 404)
        assert client.get(f"{base}/000000000/members/{bad}").status_code in (400, 404)
    assert client.get(f"/api/jobs/..%2F..%2F/{fp}/samples").status_code in (400, 404)
    assert client.get(f"/api/jobs/{JOB}/not-hex/samples").status_code == 400


# ---------------------------------------------------------------------------- console
def cli_json_rows(lake: Lake, sql: str, capsys) -> list[dict]:
    assert main(["sql", "--lake", lake.root, "--format", "json", sql]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_console_returns_the_rows_soclake_sql_returns(client, app_lake, capsys):
    sql = ("SELECT segment_id, category, width, alpha_fraction, is_distractor, features, levels[1].side AS top "
           "FROM segments ORDER BY segment_id")
    want = cli_json_rows(app_lake, sql, capsys)
    got, offset = [], 0
    while True:
        page = client.post("/api/sql", json={"sql": sql, "offset": offset, "limit": 100}).json()
        names = [c["name"] for c in page["columns"]]
        got += [dict(zip(names, r)) for r in page["rows"]]
        offset += len(page["rows"])
        if offset >= page["held"]:
            break
    assert not page["more"] and got == jsonio.plain(want) and len(got) == len(want) > 200
    via_get = client.get("/api/sql", params={"q": sql, "offset": 5, "limit": 3}).json()
    assert [dict(zip(names, r)) for r in via_get["rows"]] == jsonio.plain(want[5:8])


def test_console_downloads_csv_and_parquet_of_the_whole_result(client, app_lake, capsys, tmp_path):
    sql = "SELECT segment_id, category, width, dominant_color FROM segments ORDER BY segment_id"
    assert main(["sql", "--lake", app_lake.root, "--format", "csv", "--out", str(tmp_path / "cli.csv"), sql]) == 0
    r = client.get("/api/sql/download", params={"q": sql, "format": "csv"})
    assert r.status_code == 200 and "attachment" in r.headers["content-disposition"]
    assert list(csv.reader(io.StringIO(r.text))) == list(csv.reader(open(tmp_path / "cli.csv")))
    r = client.get("/api/sql/download", params={"q": sql, "format": "parquet"})
    assert pq.read_table(io.BytesIO(r.content)).to_pylist() == app_lake.query(sql).to_pylist()


def test_console_limits_rows_kept_and_downloads(app_lake):
    with TestClient(create_app(app_lake.root, max_rows=50, max_download_rows=60), base_url="http://127.0.0.1") as c:
        page = c.get("/api/sql", params={"q": "SELECT * FROM range(1000) t(i)", "limit": 100}).json()
        assert page["held"] == 50 and page["more"] and [r[0] for r in page["rows"]] == list(range(50))
        r = c.get("/api/sql/download", params={"q": "SELECT * FROM range(61) t(i)"})
        assert r.status_code == 413 and "60" in r.json()["error"]
        assert c.get("/api/sql/download", params={"q": "SELECT * FROM range(60) t(i)"}).status_code == 200


@pytest.mark.parametrize("sql, words", [
    ("SELECT * FROM read_text('/etc/passwd')", ["sandbox"]),
    ("SELECT * FROM read_csv('/etc/passwd')", ["sandbox"]),
    ("COPY segments TO '/tmp/soclake-app-leak.csv'", ["one SELECT", "COPY"]),
    ("ATTACH '/tmp/soclake-app-leak.db' AS x", ["one SELECT", "ATTACH"]),
    ("INSTALL httpfs", ["one SELECT"]),
    ("SET enable_external_access = true", ["one SELECT"]),
    ("SELECT current_setting('allowed_directories')", ["current_setting"]),
    ("SELECT 1; SELECT 2", ["one SELECT"]),
    ("SELEC 1", ["not valid SQL"]),
])
def test_console_refuses_what_the_sandbox_refuses(client, sql, words):
    for r in (client.get("/api/sql", params={"q": sql}), client.post("/api/sql", json={"sql": sql})):
        assert r.status_code == 400, r.text
        assert all(w in r.json()["error"] for w in words), r.json()
        assert "root:" not in r.text
    assert not os.path.exists("/tmp/soclake-app-leak.csv") and not os.path.exists("/tmp/soclake-app-leak.db")


def test_console_stops_a_query_at_the_time_limit_and_goes_on(app_lake):
    with TestClient(create_app(app_lake.root, query_seconds=0.5), base_url="http://127.0.0.1") as c:
        r = c.get("/api/sql", params={"q": "SELECT count(*) FROM range(100000000000) a"})
        assert r.status_code == 408 and "0.5 s limit" in r.json()["error"]
        assert c.get("/api/sql", params={"q": "SELECT 41 + 1 AS x"}).json()["rows"] == [[42]]


def test_console_post_needs_a_json_body(client):
    r = client.post("/api/sql", content="sql=SELECT 1", headers={"content-type": "application/x-www-form-urlencoded"})
    assert r.status_code == 415


# ---------------------------------------------------------------------------- audit
def test_audit_has_the_numbers_of_soclake_audit(client, app_lake, tmp_path):
    out = tmp_path / "audit.html"
    assert main(["audit", "--lake", app_lake.root, "--vocab", "coco", "--job", JOB, "--out", str(out)]) == 0
    cli = json.loads((tmp_path / "audit.json").read_text())
    got = client.get(f"/api/audit?vocab=coco&job={JOB}").json()
    assert json.loads(json.dumps(got["result"], default=str)) == json.loads(json.dumps(jsonio.plain(cli)))
    assert {p["title"] for p in got["plots"]} >= {"Long tail", "Quality-filter funnel", "Segment sizes",
                                                 "Vocabulary coverage", f"Dataset {JOB}"}
    assert all(base64_png(p["png"]).format == "PNG" for p in got["plots"])
    assert client.get("/api/audit?vocab=none").json()["result"].get("vocabulary") is None
    assert client.get("/api/audit?vocab=klingon").status_code == 400
    assert client.get("/api/audit?filter=filter_9").status_code == 400


def base64_png(text: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(text)))


# ---------------------------------------------------------------------------- guarantees
def test_no_endpoint_writes_to_the_lake(app_lake):
    before = tree(app_lake.root)
    with TestClient(create_app(app_lake.root), base_url="http://127.0.0.1") as c:
        endpoints = [e["path"] for e in c.get("/api").json()["endpoints"]]
        runs = c.get("/api/jobs").json()["runs"]
        seg = c.get("/api/pool/segments?limit=1").json()["segments"][0]["segment_id"]
        urls = ["/api", "/api/lake", "/api/pool/facets", "/api/pool/categories?prefix=b", "/api/pool/segments",
                "/api/pool/count?colour=red", f"/api/segments/{seg}", f"/api/segments/{seg}/thumbnail",
                f"/api/segments/{seg}/levels/0", "/api/jobs", f"/api/jobs/{JOB}", "/api/audit?vocab=lvis&job=" + JOB,
                "/api/sql?q=SELECT+1", "/api/sql/download?q=SELECT+1&format=parquet", "/pool", "/console", "/audit"]
        for r in runs:
            base = f"/api/jobs/{r['job']}/{r['fingerprint']}"
            sample = c.get(f"{base}/samples").json()["samples"][0]
            urls += [base, f"{base}/samples", f"{base}/samples/{sample['key']}", sample["thumbnail"],
                     f"{base}/samples/{sample['key']}/members/json", f"/images/{r['job']}/{r['fingerprint']}"]
        assert len(endpoints) == 19 and len(runs) == 5
        for url in urls:
            assert c.get(url).status_code == 200, url
        assert c.post("/api/sql", json={"sql": "SELECT 1"}).status_code == 200
    assert tree(app_lake.root) == before


def test_files_named_outside_the_lake_or_linked_out_are_never_read(app_lake, tmp_path):
    copy = shutil.copytree(app_lake.root, tmp_path / "lake", symlinks=True)
    secret = tmp_path / "secret.tar"
    secret.write_bytes(b"SECRET" * 1000)
    lake = Lake(str(copy))
    rows = lake.query("SELECT * FROM segments WHERE source = 'sample' ORDER BY segment_id LIMIT 2")
    pack = rows["levels"].to_pylist()[0][0]["pack"]
    os.remove(copy / pack)
    os.symlink(secret, copy / pack)  # a link planted in the lake, pointing out of it
    hostile = rows.slice(1, 1).to_pylist()[0]
    hostile["segment_id"] = "f" * 32
    hostile["levels"] = [{**lv, "pack": "../secret.tar", "offset": 0} for lv in hostile["levels"]]
    lake.append("segments", pa.Table.from_pylist([hostile], schema=rows.schema), part="hostile")
    linked = rows["segment_id"][0].as_py()
    with TestClient(create_app(str(copy)), base_url="http://127.0.0.1") as c:
        for url in (f"/api/segments/{linked}/thumbnail", f"/api/segments/{linked}/levels/0",
                    f"/api/segments/{'f' * 32}/thumbnail", f"/api/segments/{'f' * 32}/levels/1"):
            r = c.get(url)
            assert r.status_code == 404 and b"SECRET" not in r.content, url
            assert "verify" in r.json()["error"]


def test_hosts_other_than_this_machine_are_refused_and_binding_elsewhere_warns(app_lake, monkeypatch, capsys):
    with TestClient(create_app(app_lake.root), base_url="http://evil.example") as c:
        assert c.get("/api/lake").status_code == 400  # DNS rebinding: a page elsewhere naming 127.0.0.1
    with TestClient(create_app(app_lake.root), base_url="http://localhost:8000") as c:
        r = c.get("/pool")
        assert r.status_code == 200 and "default-src 'self'" in r.headers["content-security-policy"]
        assert "http" not in r.text.replace("http-equiv", "")  # no CDN: every asset from the app itself
    served = {}
    monkeypatch.setattr(server.uvicorn, "run", lambda app, host, port, **kw: served.update(host=host, port=port))
    server.serve(app_lake.root)
    assert served == {"host": "127.0.0.1", "port": 8000} and "warning" not in capsys.readouterr().err
    server.serve(app_lake.root, host="0.0.0.0", port=8123)
    assert served["host"] == "0.0.0.0" and "warning: bound to 0.0.0.0" in capsys.readouterr().err
    args = build_parser().parse_args(["app", "--lake", app_lake.root])
    assert (args.host, args.port, args.query_seconds) == ("127.0.0.1", 8000, 10.0)


def test_static_assets_ship_in_the_package_and_load_nothing_from_elsewhere(client):
    static = os.path.join(os.path.dirname(server.__file__), "static")
    for name in sorted(os.listdir(static)):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200, name
        text = r.text
        assert "http://" not in text and "https://" not in text, name
    assert client.get("/static/../routes.py").status_code == 404


def test_json_keeps_every_value_exact_for_a_browser():
    assert jsonio.plain({"a": 2 ** 60, "b": -(2 ** 53), "c": 2 ** 53 - 1, "d": float("nan"), "e": np.float32(0.5).item()}) == \
        {"a": str(2 ** 60), "b": str(-(2 ** 53)), "c": 2 ** 53 - 1, "d": "nan", "e": 0.5}
    assert json.loads(jsonio.dumps({"x": float("inf"), "y": b"\x00"})) == {"x": "inf", "y": "b'\\x00'"}


def test_docs_describe_every_endpoint():
    from soclake.app.routes import API_ROUTES
    doc = open(os.path.join(os.path.dirname(__file__), "..", "docs", "app.md")).read()
    paths = [re.sub(r":\w+}", "}", r.path) for r in API_ROUTES]
    missing = [p for p in paths if f"`GET {p}`" not in doc] + ([] if "`POST /api/sql`" in doc else ["POST /api/sql"])
    assert missing == [], "docs/app.md's API table misses " + ", ".join(missing)
    assert all((r.endpoint.__doc__ or "").strip() for r in API_ROUTES)


def test_zstd_levels_are_served_as_png_of_the_same_pixels(tmp_path):
    from soclake import imaging, ingest
    rng = np.random.default_rng(0)
    for name in ("mug", "teapot"):
        os.makedirs(tmp_path / "cut" / name)
        rgba = rng.integers(0, 256, (90, 70, 4), np.uint8)
        rgba[..., 3] = 255
        Image.fromarray(rgba, "RGBA").save(tmp_path / "cut" / name / f"{name}.png")
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(tmp_path / "cut"), level_codec="zstd", workers=1, progress=False)
    table = segments_table(lake).select(["segment_id", "codec", "levels"]).to_pylist()
    assert {r["codec"] for r in table} == {"zstd"}
    with TestClient(create_app(lake.root), base_url="http://127.0.0.1") as c:
        for row in table:
            for index, level in enumerate(row["levels"]):
                r = c.get(f"/api/segments/{row['segment_id']}/levels/{index}")
                assert r.status_code == 200 and r.headers["content-type"] == "image/png"
                stored = imaging.decode_level(pack_member(lake, level["pack"], level["offset"]))
                assert np.array_equal(np.asarray(Image.open(io.BytesIO(r.content)).convert("RGBA")), stored)
            r = c.get(f"/api/segments/{row['segment_id']}/thumbnail")
            assert r.headers["content-type"] == "image/png"
