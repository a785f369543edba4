"""`soclake ingest --level-codec`: segment levels stored as lossless WebP (the default, the
most compact) or raw RGBA in zstd (the fastest to decode) compose into the same pixels and
annotations; the codec column and the pack members say which."""
import io
import tarfile

import numpy as np
import pytest
from conftest import job_spec

from soclake import Lake, imaging
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.shards.tar import read_samples


def composed(lake: Lake) -> dict:
    spec = job_spec("codecs", render={"background": "none", "fg_mask": True}, sampling={"objects": [2, 5]},
                    layout={"rotate": 15.0})
    summary = jobs.run(lake, spec, workers=1, progress=False)
    rows = lake.query("SELECT shard_uri FROM manifest WHERE fingerprint = $fp ORDER BY shard",
                      {"fp": summary.fingerprint}).to_pylist()
    out = {}
    for r in rows:
        out.update(read_samples(lake.fs.cat_file(lake.path(r["shard_uri"]))))
    assert summary.instances > 0
    return out


def test_zstd_levels_compose_the_same_pixels_as_webp(soc_pool, tmp_path):
    webp = Lake(str(tmp_path / "webp"), create=True)
    ingest(webp, "soc", str(soc_pool), workers=1, progress=False)
    zstd = str(tmp_path / "zstd")
    assert main(["ingest", "soc", str(soc_pool), "--lake", zstd, "--workers", "1", "--level-codec", "zstd"]) == 0
    zstd = Lake(zstd)
    for lake, codec, ext in ((webp, "webp", ".webp"), (zstd, "zstd", ".rgba.zst")):
        rows = lake.query("SELECT codec, levels FROM segments").to_pylist()
        assert {r["codec"] for r in rows} == {codec}
        pack = rows[0]["levels"][0]["pack"]
        with tarfile.open(fileobj=io.BytesIO(lake.fs.cat_file(lake.path(pack)))) as tar:
            assert all(m.name.endswith(ext) for m in tar)
    a, b = composed(webp), composed(zstd)
    assert a.keys() == b.keys() and a
    for key in a:
        for member in ("rgba.png", "pan.png", "fg.png", "json"):  # json: the same fingerprint too
            assert a[key][member] == b[key][member], (key, member)


def test_an_unknown_level_codec_is_refused(soc_pool, tmp_path):
    with pytest.raises(SoclakeError, match="level codec 'png'"):
        ingest(Lake(str(tmp_path / "l"), create=True), "soc", str(soc_pool), level_codec="png", progress=False)
    with pytest.raises(SystemExit):
        main(["ingest", "soc", str(soc_pool), "--lake", str(tmp_path / "m"), "--level-codec", "png"])


def test_a_damaged_raw_level_is_a_value_error_and_never_allocates_beyond_its_header():
    rgba = np.random.default_rng(0).integers(0, 256, (40, 30, 4), np.uint8)
    good = imaging.encode_level(rgba, "zstd")
    assert np.array_equal(imaging.decode_level(good), rgba)
    header = imaging.RAW_HEADER
    huge = header.pack(imaging.RAW_MAGIC, 100_000, 100_000, 4) + good[header.size:]
    for bad in (good[:-5], good[:12], good + b"x", good[:header.size] + b"junk" * 40,
                header.pack(imaging.RAW_MAGIC, 30, 40, 3) + good[header.size:], huge):
        with pytest.raises(ValueError, match="raw level"):
            imaging.decode_level(bad)


def test_verify_deep_and_compose_name_a_damaged_zstd_level(soc_pool, tmp_path, capsys):
    root = str(tmp_path / "zstd")
    assert main(["ingest", "soc", str(soc_pool), "--lake", root, "--workers", "1", "--level-codec", "zstd"]) == 0
    lake = Lake(root)
    level = lake.query("SELECT levels FROM segments ORDER BY segment_id LIMIT 1").to_pylist()[0]["levels"][0]
    with open(lake.path(level["pack"]), "r+b") as f:  # the frame's middle overwritten
        f.seek(level["offset"] + level["length"] // 2)
        f.write(b"\xff" * 64)
    capsys.readouterr()
    assert main(["verify", "--lake", root, "--deep", "--all"]) == 1
    assert level["pack"] in capsys.readouterr().out
    spec = job_spec("damaged", render={"background": "none", "on_unreadable": "drop"}, sampling={"objects": [2, 5]},
                    job={"images": 12})
    summary = jobs.run(Lake(root), spec, workers=1, progress=False)
    assert summary.unreadable > 0 and summary.instances > 0


@pytest.mark.parametrize("codec", ["webp", "zstd"])
def test_verify_deep_all_finds_one_changed_byte_in_a_native_level(soc_pool, tmp_path, capsys, codec):
    root = str(tmp_path / codec)
    assert main(["ingest", "soc", str(soc_pool), "--lake", root, "--workers", "1", "--level-codec", codec]) == 0
    lake = Lake(root)
    assert main(["verify", "--lake", root, "--deep", "--all"]) == 0
    row = lake.query("SELECT segment_id, width, height, levels FROM segments ORDER BY segment_id LIMIT 1").to_pylist()[0]
    level = row["levels"][0]
    assert (level["width"], level["height"]) == (row["width"], row["height"])
    path = lake.path(level["pack"])
    with open(path, "rb") as f:
        data = bytearray(f.read())
    original = bytes(data)
    for at in range(level["offset"] + level["length"] - 1, level["offset"] + 24, -97):
        data[at] ^= 0x01  # one bit of one byte
        with open(path, "wb") as f:
            f.write(data)
        capsys.readouterr()
        assert main(["verify", "--lake", root, "--deep", "--all"]) == 1, at
        assert row["segment_id"] in capsys.readouterr().out
        data[:] = original
    with open(path, "wb") as f:
        f.write(original)
