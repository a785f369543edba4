"""A lake on object storage: the whole pipeline against s3:// on a moto server started on
127.0.0.1 by the test: ingest, sql, info, compose with one and two workers, verify, COCO
export, streaming. Writes are whole-object PUTs; a failed write publishes nothing."""
import json
import logging
import os

import pytest
from conftest import job_spec

from soclake import Lake, storage
from soclake.cli import main
from soclake.errors import NoLockWarning
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.loader.stream import Stream
from soclake.outputs.verify import verify
from soclake.sample_pool import write_sample_pool

moto_server = pytest.importorskip("moto.server")
s3fs = pytest.importorskip("s3fs")

URI = "s3://soclake-test/lake"
pytestmark = pytest.mark.filterwarnings("ignore::soclake.errors.NoLockWarning")  # expected on s3; asserted once


@pytest.fixture(scope="module")
def s3(tmp_path_factory):
    """A moto S3 server; credentials in the environment, the endpoint only in storage options."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    with pytest.MonkeyPatch.context() as mp:
        for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
                     "AWS_DEFAULT_REGION": "us-east-1"}.items():
            mp.setenv(k, v)
        mp.delenv("AWS_ENDPOINT_URL", raising=False)
        server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
        server.start()
        try:
            host, port = server.get_host_and_port()
            yield {"endpoint": f"http://{host}:{port}",
                   "options": {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}}
        finally:
            server.stop()


@pytest.fixture(scope="module")
def s3_lake(s3, tmp_path_factory):
    pool = tmp_path_factory.mktemp("s3pool")
    write_sample_pool(str(pool), seed=2, ids=1, subcategories=2)
    for photo in sorted(os.listdir(pool / "backgrounds"))[3:]:  # three backgrounds are plenty
        os.unlink(pool / "backgrounds" / photo)
    lake = Lake(URI, create=True, storage_options=s3["options"])
    with pytest.warns(NoLockWarning, match="no writer lock"):
        summary = ingest(lake, "soc", str(pool / "segments"), source_name="sample", workers=1, progress=False)
    assert summary.accepted == 16 and summary.rejected == 0
    with pytest.warns(NoLockWarning):
        ingest(lake, "backgrounds", str(pool / "backgrounds"), source_name="bg", workers=1, progress=False)
    return lake


def test_sql_and_info_through_duckdb_on_s3(s3_lake, s3, capsys, monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])  # the CLI way: the usual botocore environment
    assert main(["sql", "--lake", URI, "--format", "json",
                 "SELECT count(*) AS n, count(DISTINCT category) AS c FROM segments"]) == 0
    assert json.loads(capsys.readouterr().out) == {"n": 16, "c": 8}
    assert main(["info", "--lake", URI]) == 0
    out = capsys.readouterr().out
    assert "segments" in out and "backgrounds" in out and "sample" in out


@pytest.mark.slow
def test_compose_on_s3_with_one_and_two_workers(s3_lake, s3, monkeypatch, tmp_path):
    two = jobs.run(s3_lake, job_spec("s3-two", job={"images": 4, "shard_size": 2},
                                     render={"background": "pool", "fg_mask": True}), workers=2, progress=False)
    assert two.shards_rendered == 2 and not two.failed and two.images == 4 and two.instances > 0
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])
    spec = tmp_path / "s3-one.toml"
    spec.write_text('[job]\nname = "s3-one"\nimages = 4\nshard_size = 2\n[layout]\nwidth = 96\nheight = 96\n')
    assert main(["run", str(spec), "--lake", URI, "--workers", "1", "--no-progress"]) == 0
    s3_lake.refresh()
    committed = s3_lake.query("SELECT job, count(*) n, sum(samples) s FROM manifest WHERE job LIKE 's3-%' "
                              "GROUP BY 1 ORDER BY 1").to_pylist()
    assert committed == [{"job": "s3-one", "n": 2, "s": 4}, {"job": "s3-two", "n": 2, "s": 4}]
    checked, problems = verify(s3_lake, deep=True)
    assert checked == 4 and problems == []
    assert jobs.run(s3_lake, job_spec("s3-two", job={"images": 4, "shard_size": 2},
                                      render={"background": "pool", "fg_mask": True}),
                    workers=2, progress=False).shards_rendered == 0
    keys = s3_lake.fs.find(s3_lake.root)
    assert not [k for k in keys if "/." in k or ".tmp" in k]  # no renames, no temporary objects


def test_export_and_stream_from_s3(s3_lake, s3, monkeypatch, tmp_path):
    if not s3_lake.query("SELECT 1 FROM manifest WHERE job = 's3-two'").num_rows:
        jobs.run(s3_lake, job_spec("s3-two", job={"images": 4, "shard_size": 2},
                                   render={"background": "pool", "fg_mask": True}), workers=2, progress=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3["endpoint"])
    assert main(["export", "--lake", URI, "--job", "s3-two", "--format", "coco", "--out", str(tmp_path / "coco"),
                 "--images"]) == 0
    coco = json.loads((tmp_path / "coco" / "annotations.json").read_text())
    n_anns = s3_lake.query("SELECT count(*) n FROM committed_annotations WHERE job = 's3-two'").to_pylist()[0]["n"]
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == n_anns > 0
    assert sorted(os.listdir(tmp_path / "coco" / "images")) == sorted(i["file_name"] for i in coco["images"])
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    samples = list(Stream(URI, "s3-two", task="segmentation", shuffle=False, storage_options=s3["options"]))
    assert [s["__key__"] for s in samples] == [f"{i:09d}" for i in range(4)]
    assert sum(len(s["boxes"]) for s in samples) == n_anns
    assert all(s["masks"].shape[1:] == s["image"].shape[:2] for s in samples)


def test_a_failed_write_publishes_nothing(s3_lake):
    path = s3_lake.path("tables", "images", "part-never.parquet")
    with pytest.raises(RuntimeError):
        with storage.atomic_open(s3_lake.fs, path) as f:
            f.write(b"half a part" * 1000)
            raise RuntimeError("the writer died")
    s3_lake.refresh()
    assert not s3_lake.fs.exists(path)
