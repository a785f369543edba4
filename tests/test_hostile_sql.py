"""Hostile SQL: a job spec's [pool] where and a sandboxed console query (`soclake sql --safe`,
Lake.safe_query) read nothing outside the lake: files (read_text, read_csv, read_parquet, glob),
other databases (ATTACH), writes (COPY), extensions (INSTALL, LOAD), URLs, settings and SET are
refused with an error that echoes nothing read. Every DuckDB connection soclake opens never
downloads or auto-loads an extension; the operator's plain `soclake sql` keeps full power.
"""
from __future__ import annotations

import os
import pathlib
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import folders_lake, job_spec

from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.jobs import compose

SECRET = "SECRET-7c1e-do-not-print"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A lake, and beside it files it must never read: a text secret and a Parquet file."""
    root = tmp_path_factory.mktemp("sql")
    lake = folders_lake(root, seed_step=10)
    secret = root / "secret.txt"
    secret.write_text(f"{SECRET}\n")
    outside = root / "outside.parquet"
    pq.write_table(pa.table({"secret": [SECRET]}), outside)
    return lake, str(secret), str(outside)


def attacks(secret: str, outside: str, db: str) -> dict[str, str]:
    """Queries a sandboxed console must refuse, by what they try."""
    return {
        "read_text": f"SELECT content FROM read_text('{secret}')",
        "read_csv": f"SELECT * FROM read_csv('{secret}', header=false)",
        "read_parquet outside": f"SELECT * FROM read_parquet('{outside}')",
        "read_parquet via ..": f"SELECT * FROM read_parquet('{os.path.dirname(outside)}/lake/../outside.parquet')",
        "glob": "SELECT * FROM glob('/etc/*')",
        "attach": f"ATTACH '{db}' AS other",
        "copy": f"COPY (SELECT 1) TO '{db}.csv'",
        "install": "INSTALL httpfs",
        "load": "LOAD httpfs",
        "http": "SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')",
        "https": "SELECT * FROM read_parquet('https://127.0.0.1:1/x.parquet')",
        "current_setting": "SELECT current_setting('allowed_directories')",
        "duckdb_settings": "SELECT * FROM duckdb_settings()",
        "set": "SET enable_external_access = true",
        "dynamic sql": f"SELECT * FROM query('SELECT content FROM read_text(''{secret}'')')",
        "two statements": "SELECT 1; SELECT 2",
    }


def test_pool_where_cannot_read_files_urls_or_settings(world):
    """The attacks of issue 15 through a job spec's predicate: each a clear error before any
    plan is written, and never the secret in the message."""
    lake, secret, outside = world
    predicates = {
        "cast read_text": f"CAST((SELECT content FROM read_text('{secret}')) AS INTEGER) > 0",
        "read_csv": f"(SELECT count(*) FROM read_csv('{secret}', header=false)) > 0",
        "read_parquet": f"(SELECT count(*) FROM read_parquet('{outside}')) > 0",
        "glob": "(SELECT count(*) FROM glob('/etc/*')) > 0",
        "http": "(SELECT count(*) FROM read_csv('http://127.0.0.1:1/x.csv')) > 0",
        "setting": "current_setting('allowed_directories') IS NOT NULL",
        "dynamic sql": "(SELECT count(*) FROM query('SELECT 1')) > 0",
    }
    for what, where in predicates.items():
        with pytest.raises(SoclakeError) as e:
            compose.run(lake, job_spec(f"w{len(what)}", pool={"where": where}), workers=1, progress=False)
        message = str(e.value)
        assert SECRET not in message, what
        assert "[pool] where" in message and re.search(r"sandbox", message), (what, message)
        assert "install" not in message.lower(), (what, message)  # nothing is ever downloaded
    assert lake.query("SELECT count(*) AS n FROM plan")["n"][0].as_py() == 0


def test_pool_where_over_the_lake_still_works(world):
    lake = world[0]
    summary = compose.run(lake, job_spec("fine", job={"images": 2, "shard_size": 2},
                                         pool={"where": "category = 'apple' AND alpha_fraction > 0"},
                                         layout={"width": 64, "height": 64}), workers=1, progress=False)
    assert summary.images == 2 and not summary.failed


def test_safe_query_refuses_each_attack_without_echoing(world, tmp_path):
    lake, secret, outside = world
    for what, sql in attacks(secret, outside, str(tmp_path / "other.db")).items():
        with pytest.raises(SoclakeError) as e:
            lake.safe_query(sql)
        assert SECRET not in str(e.value), what
        assert "install" not in str(e.value).lower(), what
    assert not list(tmp_path.iterdir())  # neither ATTACH nor COPY created anything
    assert lake.safe_query("SELECT count(*) AS n FROM segments")["n"][0].as_py() == 6
    own = lake.table_parts("segments")[0]
    assert lake.safe_query(f"SELECT count(*) AS n FROM read_parquet('{own}')")["n"][0].as_py() > 0


def test_the_sandbox_holds_without_the_query_check(world):
    """DuckDB's own boundary, on the raw safe connection (no statement check in front): files
    outside the lake and URLs are PermissionErrors, and no setting can be changed back."""
    import duckdb
    lake, secret, outside = world
    con = lake.safe_connection()
    settings = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN ('enable_external_access', "
                                "'lock_configuration', 'autoinstall_known_extensions', "
                                "'autoload_known_extensions')").fetchall())
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}
    for sql in (f"SELECT * FROM read_text('{secret}')", f"SELECT * FROM read_parquet('{outside}')",
                "SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')", "SELECT * FROM glob('/etc/*')"):
        with pytest.raises(duckdb.PermissionException) as e:
            con.execute(sql).fetchall()
        assert SECRET not in str(e.value)
    for sql in ("SET enable_external_access = true", "RESET lock_configuration", "SET allowed_directories = ['/']"):
        with pytest.raises(duckdb.Error):
            con.execute(sql)
    assert con.execute("SELECT count(*) FROM segments").fetchall() == [(6,)]
    con.close()


def test_sql_safe_flag_and_the_operator_console(world, capsys):
    lake, secret, outside = world
    assert main(["sql", f"SELECT content FROM read_text('{secret}')", "--lake", lake.root, "--safe"]) == 2
    err = capsys.readouterr().err
    assert "sandbox" in err and SECRET not in err
    assert main(["sql", "SELECT count(*) AS n FROM segments", "--lake", lake.root, "--safe", "--format", "csv"]) == 0
    assert capsys.readouterr().out.split() == ["\"n\"", "6"]
    # without --safe the operator keeps DuckDB's full power (documented)
    assert main(["sql", f"SELECT content FROM read_text('{secret}')", "--lake", lake.root, "--format", "csv"]) == 0
    assert SECRET in capsys.readouterr().out


def test_no_connection_ever_downloads_an_extension(world):
    """Every connection soclake opens goes through soclake.lake.sandbox.connect: the operator's
    too refuses to auto-install httpfs for an http URL."""
    lake = world[0]
    assert lake.con.execute("SELECT current_setting('autoinstall_known_extensions'), "
                            "current_setting('autoload_known_extensions')").fetchall() == [(False, False)]
    with pytest.raises(Exception) as e:
        lake.con.execute("SELECT * FROM read_csv('http://127.0.0.1:1/x.csv')").fetchall()
    assert "automatically install" not in str(e.value)
    package = pathlib.Path(__file__).parent.parent / "soclake"
    direct = [str(p.relative_to(package)) for p in package.rglob("*.py")
              if "duckdb.connect(" in p.read_text() and p.name != "sandbox.py"]
    assert direct == []
