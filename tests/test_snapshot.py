"""The pool snapshot is a function of the pool's rows only: not of part-file names, how
ingest split rows into parts, or the cache that spares recomputing it."""
import json

from conftest import blob_rgba, save_png

from soclake import Lake
from soclake.ingestion import ingest
from soclake.lake.snapshot import CACHE, pool_snapshot


def folders(root, n: int = 5):
    for i in range(n):
        save_png(root / ("apple" if i % 2 else "pear") / f"{i}.png", blob_rgba(i, 40))
    return root


def test_rows_not_parts_make_the_snapshot(tmp_path):
    src = folders(tmp_path / "src")
    one = Lake(str(tmp_path / "one"), create=True)
    ingest(one, "folders", str(src), workers=1, progress=False)
    many = Lake(str(tmp_path / "many"), create=True)
    ingest(many, "folders", str(src), workers=1, progress=False, flush_rows=2)  # rows split over 3 parts
    assert len(many.table_parts("segments")) > len(one.table_parts("segments")) == 1
    assert pool_snapshot(one) == pool_snapshot(many)
    save_png(src / "plum" / "0.png", blob_rgba(50, 40))
    ingest(many, "folders", str(src), workers=1, progress=False)
    many.refresh()
    assert pool_snapshot(many) != pool_snapshot(one)


def test_the_cache_never_changes_the_answer(tmp_path):
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(folders(tmp_path / "src")), workers=1, progress=False)
    cold = pool_snapshot(lake)
    cached = json.loads(open(lake.path(CACHE)).read())["parts"]
    assert set(k.split("/")[0] for k in cached) == {"segments", "categories"}
    assert pool_snapshot(lake) == cold
    open(lake.path(CACHE), "w").write("{not json")
    assert pool_snapshot(lake) == cold
