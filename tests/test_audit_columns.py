"""The audit's ingest columns: the perceptual hash is imagehash's pHash of the composited square
(bit order included), holes are the mask's enclosed transparent regions, the pigeonhole keys
find every pair of hashes within 4 bits, and the near-duplicate search groups in ingest order
and keeps colours apart."""
import imagehash
import numpy as np
import pyarrow as pa
import pytest
from audit_pool import cutout, near_copy

from soclake import Lake
from soclake.ingestion import near_duplicates
from soclake.ingestion.audit_columns import HASH_BACKGROUND, composited_square, hole_stats, perceptual_hash


def test_hash_is_phash_of_the_crop_on_grey_in_a_square():
    rgba = cutout(5, 30, 90)
    square = composited_square(rgba)
    assert square.size == (90, 90)
    px = np.asarray(square)
    assert (px[0, 0] == HASH_BACKGROUND).all() and (px[-1, -1] == HASH_BACKGROUND).all()  # the padding
    y, x = 15, 45  # the crop's centre lands at the square's (30 + 15, 45)
    a = rgba[y, x, 3] / 255
    assert px[30 + y, x] == pytest.approx(rgba[y, x, :3] * a + HASH_BACKGROUND * (1 - a), abs=1)
    assert perceptual_hash(rgba) == int(str(imagehash.phash(square)), 16)


def test_hash_keeps_copies_close_and_others_far():
    crops = [cutout(s) for s in range(40)]
    hashes = [perceptual_hash(c) for c in crops]
    for c, h in zip(crops[:10], hashes):
        assert bin(perceptual_hash(near_copy(c, 1)) ^ h).count("1") <= 4
    far = [bin(a ^ b).count("1") for i, a in enumerate(hashes) for b in hashes[i + 1:]]
    assert min(far) > 8
    stick = cutout(1, 20, 160)
    assert bin(perceptual_hash(stick) ^ perceptual_hash(np.ascontiguousarray(stick.transpose(1, 0, 2)))).count("1") > 4


def test_holes_are_enclosed_transparent_regions():
    alpha = np.zeros((40, 40), np.uint8)
    alpha[5:35, 5:35] = 255
    alpha[10:14, 10:14] = 0        # a hole
    alpha[20:22, 25:27] = 100      # a hole: below the mask threshold
    alpha[5:8, 20:24] = 0          # a notch open to the outside: not a hole
    alpha[28, 28] = 0              # one pixel
    holes, fraction = hole_stats(alpha)
    assert holes == 3
    assert fraction == pytest.approx((16 + 4 + 1) / (900 - 12))
    ring = np.zeros((9, 9), np.uint8)
    ring[2:7, 2:7] = 255
    ring[4, 4] = 0
    ring[3, 3] = ring[5, 5] = 0    # diagonal neighbours: 4-connected holes, so three of them
    assert hole_stats(ring)[0] == 3


def test_pigeonhole_keys_find_every_pair_within_4_bits(lake):
    rng = np.random.default_rng(0)
    a = [int(x) for x in rng.integers(0, 2 ** 64, 3000, dtype=np.uint64)]
    b = [x ^ sum(1 << int(i) for i in rng.choice(64, int(rng.integers(0, 5)), replace=False)) for x in a]
    spread = [0, 12, 23, 34]  # one flip in each of four blocks (from bit 63): the pigeonhole's worst case
    a[0], b[0] = 0, sum(1 << (63 - i) for i in spread)
    lake.con.register("_pairs", pa.table({"a": pa.array(a, pa.uint64()), "b": pa.array(b, pa.uint64())}))
    rows = lake.con.execute("SELECT bit_count(xor(a, b)) AS d, len(list_intersect(near_duplicate_keys(a), "
                            "near_duplicate_keys(b))) AS shared FROM _pairs").fetchall()
    assert max(d for d, _ in rows) == 4 and all(shared > 0 for _, shared in rows)
    far = lake.con.execute("SELECT len(list_intersect(near_duplicate_keys(0::UBIGINT), "
                           "near_duplicate_keys(~(0::UBIGINT))))").fetchall()[0][0]
    assert far == 0


def _row(i, h, colour="green"):
    return {"segment_id": f"s{i}", "phash": h, "dominant_color": colour, "source": "src", "source_uri": f"{i}.png",
            "category_id": 1}


def test_search_groups_in_order_and_keeps_colours_apart(tmp_path):
    lake = Lake(str(tmp_path / "lake"), create=True)
    base = 0xF0F0_F0F0_0F0F_0F0F
    rows = [_row(0, base), _row(1, base ^ 0b11), _row(2, base ^ 0b1111), _row(3, base ^ 0b111111),
            _row(4, base, "red"), _row(5, ~base & (2 ** 64 - 1)), _row(6, None)]
    near_duplicates.mark(lake, rows)
    got = [(r["near_duplicate"]["of"], r["near_duplicate"]["bits"]) if "near_duplicate" in r else (None, None)
           for r in rows]
    # s2 is 4 bits from s0 and 2 from s1: it joins s1's group, named by s0; s3 is 6 from s0 but
    # 2 from s2, so it too; the red copy and the opposite hash start nothing
    assert got == [(None, None), ("s0", 2), ("s0", 2), ("s0", 2), (None, None), (None, None), (None, None)]
    assert rows[3]["near_duplicate"] == {"of": "s0", "bits": 2, "source": "src", "source_uri": "0.png",
                                         "category_id": 1}  # the first member's provenance travels along


def test_near_duplicates_across_ingests(tmp_path):
    from conftest import save_png

    from soclake.ingestion import ingest
    first = cutout(7)
    save_png(tmp_path / "a" / "mug" / "0.png", first)
    save_png(tmp_path / "b" / "cup" / "0.png", near_copy(first, 9))
    save_png(tmp_path / "b" / "cup" / "1.png", cutout(8))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(tmp_path / "a"), source_name="a", workers=1, progress=False)
    ingest(lake, "folders", str(tmp_path / "b"), source_name="b", workers=1, progress=False)
    lake.refresh()
    rows = lake.query("SELECT source_uri, (SELECT source_uri FROM segments r WHERE r.segment_id = s.near_duplicate.of) "
                      "AS of, near_duplicate.source_uri AS named FROM segments s ORDER BY source_uri").to_pylist()
    assert [r["named"] for r in rows] == [r["of"] for r in rows]
    assert [(r["source_uri"], r["of"]) for r in rows] == [("cup/0.png", "mug/0.png"), ("cup/1.png", None),
                                                          ("mug/0.png", None)]
    groups = lake.query("SELECT * FROM near_duplicate_groups").to_pylist()
    assert len(groups) == 1 and groups[0]["across_sources"] and groups[0]["across_categories"]
