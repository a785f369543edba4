"""The demo path (`make demo`): sample pool -> ingest -> info -> SQL, through the CLI."""
import hashlib

import pytest

from soclake import Lake
from soclake.cli import main


def digest(folder):
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(p.name.encode() + p.read_bytes())
    return h.hexdigest()


@pytest.mark.slow
def test_demo_path(tmp_path, capsys):
    pool, lake = tmp_path / "pool", str(tmp_path / "lake")
    assert main(["sample-pool", str(pool)]) == 0
    assert main(["ingest", "soc", str(pool / "segments"), "--lake", lake, "--source-name", "sample",
                 "--quality", str(pool / "segments" / "segment_quality.json"), "--workers", "2"]) == 0
    assert main(["ingest", "backgrounds", str(pool / "backgrounds"), "--lake", lake]) == 0
    assert main(["info", "--lake", lake]) == 0
    l = Lake(lake)
    summary = l.query("SELECT count(*) n, count(DISTINCT category) c, count(short_phrase) p FROM segments").to_pylist()[0]
    assert summary == {"n": 96, "c": 8, "p": 96}
    assert l.query("SELECT count(*) n FROM backgrounds").to_pylist()[0]["n"] >= 5
    # the attribute words of the sample pool are true of the pixels: the named colour dominates
    agree = l.query("SELECT avg((dominant_color = features[1])::INT) a FROM segments").to_pylist()[0]["a"]
    assert agree > 0.8
    demo_job = str(__import__("pathlib").Path(__file__).parent.parent / "jobs" / "demo.toml")
    assert main(["run", demo_job, "--lake", lake, "--workers", "2"]) == 0
    assert "24 images" in capsys.readouterr().out
    assert main(["show", "demo", "--lake", lake, "--out", str(tmp_path / "demo.png")]) == 0
    assert main(["sample-pool", str(tmp_path / "again")]) == 0
    assert digest(pool / "segments") == digest(tmp_path / "again" / "segments")
