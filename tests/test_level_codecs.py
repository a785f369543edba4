"""`soclake ingest --level-codec`: segment levels stored as lossless WebP (the default, the
most compact) or raw RGBA in zstd (the fastest to decode) compose into the same pixels and
annotations; the codec column and the pack members say which."""
import io
import tarfile

import pytest
from conftest import job_spec

from soclake import Lake
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
        for member in ("rgba.png", "pan.png", "fg.png"):
            assert a[key][member] == b[key][member], (key, member)


def test_an_unknown_level_codec_is_refused(soc_pool, tmp_path):
    with pytest.raises(SoclakeError, match="level codec 'png'"):
        ingest(Lake(str(tmp_path / "l"), create=True), "soc", str(soc_pool), level_codec="png", progress=False)
    with pytest.raises(SystemExit):
        main(["ingest", "soc", str(soc_pool), "--lake", str(tmp_path / "m"), "--level-codec", "png"])
