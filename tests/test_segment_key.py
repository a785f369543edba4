"""The integer segment key: derived from the content id alone, order-preserving, the same in
Python (ingest) and SQL (parts written before the column existed), and ranks by it are the
ranks by segment_id the planner always used."""
import os

import numpy as np
import pyarrow.parquet as pq
from conftest import job_spec

from soclake import Lake, imaging
from soclake.cli import main
from soclake.ingestion import ingest
from soclake.plan import pool


def test_key_is_order_preserving_and_spans_int64():
    ids = ["0" * 32, "7fffffffffffffff" + "0" * 16, "8000000000000000" + "f" * 16, "f" * 32,
           imaging.content_id(np.zeros((3, 2, 4), np.uint8))]
    keys = [imaging.segment_key(i) for i in ids]
    assert keys[0] == -(1 << 63) and keys[3] == (1 << 63) - 1 and keys[1] == -1 and keys[2] == 0
    assert sorted(ids) == [i for _, i in sorted(zip(keys, ids))]


def test_ingest_stores_the_key_sql_derives_the_same_and_old_parts_get_it(soc_pool, tmp_path):
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    rows = lake.query("SELECT segment_id, segment_key, segment_key_of(segment_id) AS derived FROM segments").to_pylist()
    assert len(rows) == 8
    assert all(r["segment_key"] == imaging.segment_key(r["segment_id"]) == r["derived"] for r in rows)
    # a part written before the column existed: the planner's view derives the key
    for part in lake.table_parts("segments"):
        t = pq.read_table(part)
        pq.write_table(t.drop_columns(["segment_key"]), part)
    lake = Lake(lake.root)
    assert main(["verify", "--lake", lake.root, "--repair"]) == 0  # such parts are sound, nothing is quarantined
    lake = Lake(lake.root)
    assert lake.query("SELECT count(*) AS n FROM segments").to_pylist() == [{"n": 8}]
    # the column reads as NULL of the schema's type there
    assert lake.query("SELECT count(*) AS n FROM segments WHERE segment_key IS NOT NULL").to_pylist() == [{"n": 0}]
    pool.open_eligible(lake, job_spec("keys", pool={"filter": "filter_0"}))
    got = lake.safe_query("SELECT segment_id, segment_key, rank, category_id, subcategory FROM _eligible").to_pylist()
    assert all(r["segment_key"] == imaging.segment_key(r["segment_id"]) for r in got)
    for cat in {r["category_id"] for r in got}:
        mine = [r for r in got if r["category_id"] == cat]
        by_id = sorted(mine, key=lambda r: (r["subcategory"] is not None, r["subcategory"] or "", r["segment_id"]))
        assert [r["rank"] for r in by_id] == list(range(len(mine)))
    assert os.path.isdir(lake.root)
