"""Lakes at fsspec URIs: the same ingest, SQL and compose on file:// and memory://."""
import threading
import uuid

import pyarrow as pa
import pytest
from conftest import job_spec

from soclake import Lake, imaging
from soclake.errors import SoclakeError
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.lake.schemas import table_schema


@pytest.mark.parametrize("scheme", ["file", "memory"])
def test_lake_at_a_uri(scheme, tmp_path, soc_pool):
    uri = f"file://{tmp_path}/lake" if scheme == "file" else f"memory://lake-{uuid.uuid4().hex}"
    lake = Lake(uri, create=True)
    s = ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    assert s.accepted == 8
    again = Lake(uri)  # a fresh handle sees what was committed
    rows = again.query("SELECT source_uri, levels FROM segments ORDER BY source_uri").to_pylist()
    assert len(rows) == 8
    lv = rows[0]["levels"][0]
    px = imaging.decode_level(again.read_range(lv["pack"], lv["offset"], lv["length"]))
    assert px.shape == (lv["height"], lv["width"], 4)
    summary = jobs.run(again, job_spec("uri", job={"images": 4, "shard_size": 2}, layout={"width": 96, "height": 96}),
                       workers=2, progress=False)
    assert summary.images == 4 and summary.shards_rendered == 2
    assert again.query("SELECT count(*) n FROM committed_images").to_pylist()[0]["n"] == 4
    if scheme == "file":
        from soclake.loader.stream import Stream
        assert len(list(Stream(str(tmp_path / "lake"), "uri", task="raw"))) == 4


def test_missing_lake_is_a_clear_error(tmp_path):
    with pytest.raises(SoclakeError, match=r"no lake at .*--lake .*missing"):
        Lake(str(tmp_path / "missing"))


def _rejects(source: str) -> pa.Table:
    row = {name: None for name in table_schema("rejects").names}
    return pa.Table.from_pylist([{**row, "source": source, "layout": "folders", "stage": "ingest",
                                  "source_uri": "x.png", "reason": "bad", "ingest_run": "r"}],
                                schema=table_schema("rejects"))


def test_open_connections_follow_new_parts_without_defining_their_views_again(tmp_path):
    """A lake's views read whole table folders, so parts appended by this handle or by another
    process are seen by the open connections (an empty table's view is defined again when its
    first part appears), and a run does not pay for the views of sql/*.sql more than once."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    con, safe = lake.con, lake.safe_con
    lake.append("rejects", _rejects("a"))  # this handle: its first part
    other = Lake(lake.root)
    other.append("rejects", _rejects("b"))  # another handle (another process): a second part
    other.append("feedback", pa.Table.from_pylist([], schema=table_schema("feedback")))  # empty: no part
    for q in (lake.query, lambda sql: lake.safe_query(sql)):
        assert sorted(q("SELECT source FROM rejects")["source"].to_pylist()) == ["a", "b"]
    assert lake.con is con and lake.safe_con is safe
    assert lake.query("SELECT count(*) n FROM category_counts").to_pylist()[0]["n"] == 0  # sql/ views still there


def test_a_run_defines_the_lake_views_once(tmp_path, soc_pool, monkeypatch):
    """A compose run reads the lake through one connection, the sandboxed one its planner
    needs, and keeps it as parts arrive: the views are defined once (about 0.2 s each)."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    defined = []
    real = Lake._define_views
    monkeypatch.setattr(Lake, "_define_views", lambda self, con, sources: defined.append(1) or real(self, con, sources))
    run_lake = Lake(lake.root)
    summary = jobs.run(run_lake, job_spec("once", job={"images": 4, "shard_size": 2}, layout={"width": 64, "height": 64}),
                       workers=1, progress=False)
    assert summary.images == 4 and len(defined) == 1
    assert run_lake.read("SELECT count(*) n FROM committed_images")["n"][0].as_py() == 4


def test_a_damaged_first_part_from_another_process_is_named_with_the_fix(tmp_path):
    """A table that was empty when the views were defined gets a junk part from elsewhere: the
    next query names the table and `soclake verify --repair`, on both connections."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    lake.con, lake.safe_con
    folder = tmp_path / "lake" / "tables" / "rejects"
    folder.mkdir(parents=True)
    (folder / "part-junk.parquet").write_bytes(b"not parquet at all")
    for open_con in (lambda: lake.con, lambda: lake.safe_con):
        with pytest.raises(SoclakeError, match="rejects.*verify --repair"):
            open_con()


def test_a_damaged_part_among_others_is_named_after_refresh(tmp_path):
    """refresh() defines again the view of a table whose parts changed, so a junk part written
    beside good ones is named with the fix, as a fresh connection would name it."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    lake.append("rejects", _rejects("a"))
    lake.query("SELECT count(*) FROM rejects")
    (tmp_path / "lake" / "tables" / "rejects" / "part-junk.parquet").write_bytes(b"junk")
    lake.refresh()
    with pytest.raises(SoclakeError, match="rejects.*verify --repair"):
        lake.query("SELECT count(*) FROM rejects")


def test_a_first_part_noticed_by_one_connection_leaves_the_other_alone(tmp_path):
    """The app guards its two connections with two locks: noticing a table's first part while
    using one connection must not redefine (or close) the other, busy in another thread."""
    lake = Lake(str(tmp_path / "lake"), create=True)
    safe = lake.safe_con
    lake.con
    errors = []

    def busy():
        try:
            safe.execute("SELECT sum(i * j) FROM range(30000) t(i), range(30000) u(j)").fetchall()
        except Exception as e:  # reported below
            errors.append(e)
    worker = threading.Thread(target=busy)
    worker.start()
    Lake(lake.root).append("rejects", _rejects("b"))
    assert lake.query("SELECT source FROM rejects")["source"].to_pylist() == ["b"]
    worker.join()
    assert errors == [] and lake.safe_con is safe
    assert lake.safe_query("SELECT source FROM rejects")["source"].to_pylist() == ["b"]
