"""Byte-identical across fresh lakes: the same sources ingested in the same order into two new
lakes, and the same spec run in each, give the same fingerprint, shards, manifest and exports;
a pool with one more segment gets another fingerprint."""
import hashlib
import os

from conftest import blob_rgba, job_spec, save_png

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.outputs.export import export
from soclake.sample_pool import write_sample_pool

SPEC = {"job": {"images": 6, "shard_size": 3},
        "render": {"background": "pool", "blend": ["none", "gaussian", "motion", "poisson"], "fg_mask": True},
        "sampling": {"objects": [3, 6], "decoys": [0, 1]}}


def fresh_lake(root, pool, workers: int, extra=None) -> Lake:
    lake = Lake(str(root), create=True)
    ingest(lake, "soc", str(pool / "segments"), source_name="sample", workers=workers, progress=False)
    ingest(lake, "backgrounds", str(pool / "backgrounds"), source_name="bg", workers=workers, progress=False)
    if extra is not None:
        ingest(lake, "folders", str(extra), source_name="extra", workers=1, progress=False)
    return lake


def outputs(lake: Lake, out) -> dict:
    """Everything a user takes from a job: shard bytes, manifest rows, exports, job files."""
    summary = jobs.run(lake, job_spec("twin", **SPEC), workers=1, progress=False)
    assert summary.shards_rendered == 2 and summary.instances > 0
    manifest = lake.query("SELECT shard, shard_uri, samples, bytes, sha256, inputs, code_version, params "
                          "FROM manifest WHERE fingerprint = $fp ORDER BY shard", {"fp": summary.fingerprint}).to_pylist()
    files = {}
    for fmt in ("coco", "panoptic", "odvg"):
        export(lake, "twin", fmt, str(out / fmt), images=fmt == "panoptic")
        for folder, _, names in os.walk(out / fmt):
            for n in names:
                path = os.path.join(folder, n)
                files[os.path.relpath(path, out)] = hashlib.sha256(open(path, "rb").read()).hexdigest()
    for name in ("job.json", "index.json"):  # the job's resolved spec and plan summary; its stream index
        files[name] = hashlib.sha256(lake.fs.cat_file(lake.path(summary.folder, name))).hexdigest()
    shards = {r["shard"]: lake.fs.cat_file(lake.path(r["shard_uri"])) for r in manifest}
    return {"fingerprint": summary.fingerprint, "manifest": manifest, "files": files, "shards": shards}


def test_two_fresh_lakes_give_byte_identical_outputs(tmp_path):
    pool = tmp_path / "pool"
    write_sample_pool(str(pool), seed=1, ids=2, subcategories=2)
    a = outputs(fresh_lake(tmp_path / "a", pool, workers=1), tmp_path / "out-a")
    b = outputs(fresh_lake(tmp_path / "b", pool, workers=2), tmp_path / "out-b")
    assert a["fingerprint"] == b["fingerprint"]
    assert a["shards"] == b["shards"]
    assert a["manifest"] == b["manifest"]
    assert len(a["files"]) > 3 and a["files"] == b["files"]
    for r in a["manifest"]:
        assert r["sha256"] == hashlib.sha256(a["shards"][r["shard"]]).hexdigest()
    # the snapshot is of content: one more segment is another pool
    save_png(tmp_path / "extra" / "apple" / "0.png", blob_rgba(3, 48))
    c = fresh_lake(tmp_path / "c", pool, workers=1, extra=tmp_path / "extra")
    assert jobs.prepare(c, job_spec("twin", **SPEC)).fingerprint != a["fingerprint"]
