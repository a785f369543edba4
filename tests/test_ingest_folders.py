import numpy as np
from conftest import blob_rgba, save_png

from soclake.ingestion import ingest


def test_folders_with_distractors(lake, tmp_path):
    src = tmp_path / "cutouts"
    save_png(src / "mug" / "a.png", blob_rgba(1))
    save_png(src / "mug" / "side" / "b.png", blob_rgba(2))
    save_png(src / "Teddy Bear" / "c.png", blob_rgba(3))
    save_png(src / "loose.png", blob_rgba(4))
    save_png(tmp_path / "junk" / "d.png", blob_rgba(5))
    s = ingest(lake, "folders", str(src), distractors=str(tmp_path / "junk"), workers=1, progress=False)
    assert (s.accepted, s.rejected) == (4, 1)
    rows = lake.query("SELECT source_uri, category, subcategory, is_distractor FROM segments "
                      "ORDER BY source_uri").to_pylist()
    assert rows == [
        {"source_uri": "Teddy Bear/c.png", "category": "teddy bear", "subcategory": None, "is_distractor": False},
        {"source_uri": "junk/d.png", "category": "distractor", "subcategory": None, "is_distractor": True},
        {"source_uri": "mug/a.png", "category": "mug", "subcategory": None, "is_distractor": False},
        {"source_uri": "mug/side/b.png", "category": "mug", "subcategory": "side", "is_distractor": False},
    ]
    assert lake.query("SELECT count(*) n FROM filter_0").to_pylist()[0]["n"] == 3
    assert lake.query("SELECT count(*) n FROM distractors").to_pylist()[0]["n"] == 1
    assert lake.query("SELECT reason FROM rejects").to_pylist() == [{"reason": "wrong_layout"}]


def test_backgrounds_ingest_and_round_trip(lake, tmp_path):
    import io

    from PIL import Image
    src = tmp_path / "bg"
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, (40, 60, 3), dtype=np.uint8)
    save_png(src / "a.png", photo)
    (src / "sub").mkdir()
    Image.fromarray(photo).save(src / "sub" / "b.jpg", quality=95)
    Image.fromarray(photo).save(src / "c.bmp")
    (src / "d.png").write_bytes(b"nope")
    s = ingest(lake, "backgrounds", str(src), workers=1, progress=False)
    assert (s.accepted, s.rejected) == (2, 2)  # c.bmp has a.png's pixels: a duplicate
    rows = {r["source_uri"]: r for r in lake.query("SELECT * FROM backgrounds").to_pylist()}
    assert set(rows) == {"a.png", "sub/b.jpg"}
    assert rows["sub/b.jpg"]["format"] == "jpeg" and (rows["a.png"]["width"], rows["a.png"]["height"]) == (60, 40)
    stored = lake.read_range(rows["a.png"]["pack"], rows["a.png"]["offset"], rows["a.png"]["length"])
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(stored))), photo)
    assert stored == (src / "a.png").read_bytes()
    reasons = sorted(r["reason"] for r in lake.query("SELECT reason FROM rejects").to_pylist())
    assert reasons == ["duplicate", "not_an_image"]
