import json
import os

import numpy as np
import pytest
from conftest import blob_rgba, save_png
from PIL import Image

from soclake import Lake, imaging
from soclake.errors import SoclakeError
from soclake.ingestion import ingest


def level_pixels(lake, level) -> np.ndarray:
    return imaging.decode_level(lake.read_range(level["pack"], level["offset"], level["length"]))


def test_soc_ingest_rows_and_pixels_round_trip(lake, soc_pool):
    s = ingest(lake, "soc", str(soc_pool), source_name="pool", workers=1, progress=False)
    assert (s.accepted, s.rejected, s.new_categories) == (8, 0, 2)
    rows = lake.query("SELECT * FROM segments ORDER BY source_uri").to_pylist()
    assert [r["source_uri"] for r in rows][:2] == ["Hot_Dog/0/0.png", "Hot_Dog/0/1.png"]
    for r in rows:
        src = np.asarray(Image.open(soc_pool / r["source_uri"]))
        crop, (x, y) = imaging.canonical_crop(src)
        assert (r["crop_x"], r["crop_y"], r["width"], r["height"]) == (x, y, crop.shape[1], crop.shape[0])
        assert r["segment_id"] == imaging.content_id(crop)
        assert np.array_equal(level_pixels(lake, r["levels"][0]), crop)  # lossless top level
        assert r["alpha_area"] == int((crop[..., 3] >= 128).sum())
        for lv in r["levels"][1:]:
            px = level_pixels(lake, lv)
            assert px.shape == (lv["height"], lv["width"], 4) and max(px.shape[:2]) == lv["side"]
        assert r["layout"] == "soc" and r["subcategory"] in ("0", "1")
    hot = [r for r in rows if r["category"] == "hot dog"]
    assert len(hot) == 4 and hot[0]["short_phrase"] == "red Hot_Dog" and hot[0]["features"] == ["red", "shiny"]
    cats = lake.query("SELECT name, category_id, synonyms FROM categories ORDER BY category_id").to_pylist()
    # ids follow the walk order (byte order: "Hot_Dog" < "apple")
    assert [c["name"] for c in cats] == ["hot dog", "apple"] and cats[0]["synonyms"] == ["Hot_Dog"]
    assert lake.query("SELECT coco_id FROM categories WHERE name = 'hot dog'").to_pylist()[0]["coco_id"] == 58


def test_quality_filters(lake, soc_pool):
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    count = lambda v: lake.query(f"SELECT count(*) AS n FROM {v}").to_pylist()[0]["n"]
    # fixture flags: IsInstance iff id 0; Integrity always; QualityAndRegularity iff subcategory 0
    assert [count(f"filter_{i}") for i in range(5)] == [8, 4, 8, 4, 2]
    assert lake.check_filter("filter_4") == "filter_4"
    with pytest.raises(SoclakeError, match="unknown filter 'filter_9'"):
        lake.check_filter("filter_9")


def test_without_quality_file_no_segment_passes_flag_filters(lake, soc_pool):
    os.unlink(soc_pool / "segment_quality.json")
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    n = lake.query("SELECT (SELECT count(*) FROM filter_0) a, (SELECT count(*) FROM filter_1) b").to_pylist()[0]
    assert n == {"a": 8, "b": 0}


def test_incremental_ingest_adds_only_new_items(lake, soc_pool):
    ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    again = ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    assert (again.accepted, again.skipped) == (0, 8)
    save_png(soc_pool / "apple" / "2" / "0.png", blob_rgba(99))
    save_png(soc_pool / "pear" / "0" / "0.png", blob_rgba(98))
    third = ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    assert (third.accepted, third.skipped, third.new_categories) == (2, 8, 1)
    ids = lake.query("SELECT name, category_id FROM categories ORDER BY category_id").to_pylist()
    assert ids == [{"name": "hot dog", "category_id": 1}, {"name": "apple", "category_id": 2},
                   {"name": "pear", "category_id": 3}]
    assert lake.query("SELECT count(*) n FROM segments").to_pylist()[0]["n"] == 10


def test_second_source_never_renumbers_categories(lake, soc_pool, tmp_path):
    ingest(lake, "soc", str(soc_pool), source_name="a", workers=1, progress=False)
    save_png(tmp_path / "f" / "zebra" / "z.png", blob_rgba(50))
    save_png(tmp_path / "f" / "apple" / "a.png", blob_rgba(51))
    ingest(lake, "folders", str(tmp_path / "f"), source_name="b", workers=1, progress=False)
    got = lake.query("SELECT name, category_id, first_source FROM categories ORDER BY category_id").to_pylist()
    assert got == [{"name": "hot dog", "category_id": 1, "first_source": "a"},
                   {"name": "apple", "category_id": 2, "first_source": "a"},
                   {"name": "zebra", "category_id": 3, "first_source": "b"}]


def test_parallel_ingest_matches_serial(tmp_path, soc_pool):
    a = Lake(str(tmp_path / "a"), create=True)
    b = Lake(str(tmp_path / "b"), create=True)
    ingest(a, "soc", str(soc_pool), workers=1, progress=False)
    ingest(b, "soc", str(soc_pool), workers=2, progress=False)
    cols = "segment_id, source_uri, category_id, alpha_area, dominant_color, is_instance"
    q = f"SELECT {cols} FROM segments ORDER BY segment_id"
    assert a.query(q).to_pylist() == b.query(q).to_pylist()


def test_small_flushes_commit_several_packs(lake, soc_pool):
    s = ingest(lake, "soc", str(soc_pool), workers=1, progress=False, flush_rows=3)
    assert s.accepted == 8
    packs = lake.query("SELECT DISTINCT levels[1].pack AS p FROM segments").num_rows
    assert packs == 3 and len(lake.table_parts("segments")) == 3


def test_soc_rejects_bad_items_and_continues(lake, soc_pool):
    (soc_pool / "apple" / "0" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    good = (soc_pool / "apple" / "0" / "0.png").read_bytes()
    (soc_pool / "apple" / "0" / "truncated.png").write_bytes(good[: len(good) // 2])
    (soc_pool / "apple" / "0" / "empty.png").write_bytes(b"")
    Image.new("RGB", (20, 20), "red").save(soc_pool / "apple" / "0" / "opaque.jpg")
    save_png(soc_pool / "apple" / "0" / "clear.png", np.zeros((10, 10, 4), np.uint8))
    save_png(soc_pool / "apple" / "stray.png", blob_rgba(7))
    save_png(soc_pool / "apple" / "1" / "copy.png", np.asarray(Image.open(soc_pool / "apple" / "0" / "0.png")))
    Image.new("RGBA", (400, 400), (1, 2, 3, 255)).save(soc_pool / "apple" / "1" / "huge.png")
    s = ingest(lake, "soc", str(soc_pool), workers=2, progress=False, max_pixels=100_000)
    assert s.accepted == 8
    rejects = {r["source_uri"]: r["reason"] for r in
               lake.query("SELECT source_uri, reason FROM rejects").to_pylist()}
    assert rejects == {"apple/0/bad.png": "not_an_image", "apple/0/truncated.png": "corrupt",
                       "apple/0/empty.png": "empty_file", "apple/0/opaque.jpg": "no_alpha",
                       "apple/0/clear.png": "fully_transparent", "apple/stray.png": "wrong_layout",
                       "apple/1/copy.png": "duplicate", "apple/1/huge.png": "too_large"}
    # rejected items are remembered: a rerun neither re-adds them nor duplicates reject rows
    again = ingest(lake, "soc", str(soc_pool), workers=1, progress=False, max_pixels=100_000)
    assert (again.accepted, again.rejected) == (0, 0)
    assert lake.query("SELECT count(*) n FROM rejects").to_pylist()[0]["n"] == 8


def test_bad_metadata_entries_are_rejected_but_segments_kept(lake, soc_pool):
    meta = json.loads((soc_pool / "pool_metadata.json").read_text())
    meta["apple_0"] = {"description": 3, "short_phrase": "x", "features": []}
    meta["apple_1"] = {"description": "d" * 70_000, "short_phrase": "x", "features": []}
    (soc_pool / "pool_metadata.json").write_text(json.dumps(meta))
    q = json.loads((soc_pool / "segment_quality.json").read_text())
    q["apple/0/0.png"] = {"IsInstance": "yes"}
    (soc_pool / "segment_quality.json").write_text(json.dumps(q))
    s = ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    assert s.accepted == 8 and s.reasons == {"bad_metadata": 2, "bad_quality": 1}
    apple = lake.query("SELECT source_uri, description, is_instance FROM segments WHERE category = 'apple' "
                       "ORDER BY source_uri").to_pylist()
    assert all(r["description"] is None for r in apple)
    assert apple[0]["is_instance"] is None  # its flags entry was bad: unknown, not guessed


def test_malformed_metadata_file_is_one_reject(lake, soc_pool):
    (soc_pool / "pool_metadata.json").write_text('{"apple_0": {"description": "a", ')
    s = ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    assert s.accepted == 8 and s.reasons == {"malformed_json": 1}
    r = lake.query("SELECT source_uri, detail FROM rejects").to_pylist()[0]
    assert r["source_uri"] == "pool_metadata.json" and "pool_metadata.json" in r["detail"]


def test_missing_source_is_a_clear_error(lake, tmp_path):
    with pytest.raises(SoclakeError, match="does not exist"):
        ingest(lake, "soc", str(tmp_path / "nope"), workers=1)
    with pytest.raises(SoclakeError, match="unknown ingest layout"):
        ingest(lake, "zip", str(tmp_path), workers=1)


def test_make_soc_pool_layout_ingests(lake, tmp_path):
    """The shared benchmark generator's layout (metadata + quality) ingests as-is."""
    script = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "bench", "make_soc_pool.py")
    if not os.path.exists(script):
        pytest.skip("../shared/bench/make_soc_pool.py not present")
    import subprocess
    import sys
    subprocess.run([sys.executable, script, "--out", str(tmp_path / "p"), "--categories", "3",
                    "--subcategories", "2", "--ids", "2", "--size", "128", "--quality", "--workers", "1"],
                   check=True, capture_output=True)
    s = ingest(lake, "soc", str(tmp_path / "p"), workers=2, progress=False)
    assert (s.accepted, s.rejected) == (12, 0)
    r = lake.query("SELECT count(*) n, count(description) d, count(is_instance) q FROM segments").to_pylist()[0]
    assert r == {"n": 12, "d": 12, "q": 12}


def test_two_metadata_files_are_an_error_not_a_silent_none(lake, soc_pool):
    (soc_pool / "gc_object_segments_metadata.json").write_text("{}")
    with pytest.raises(SoclakeError, match="2 metadata files.*--metadata"):
        ingest(lake, "soc", str(soc_pool), workers=1, progress=False)
    s = ingest(lake, "soc", str(soc_pool), metadata=str(soc_pool / "pool_metadata.json"), workers=1, progress=False)
    assert (s.accepted, s.rejected) == (8, 0)  # JSON files beside the pool are its sidecars, not rejects
