"""Streaming: exactly once across ranks x workers, seeded order, resume, HTTP, S3, bad shards."""
import json
import os

import numpy as np
import pytest
from conftest import job_spec

from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.loader.stream import Stream, slot_pieces
from soclake.loader.torch import torch_loader, worker_skips

JOB = "streamed"


@pytest.fixture(scope="module")
def streamed(sample_lake):
    spec = job_spec(JOB, job={"images": 22, "shard_size": 4}, layout={"width": 64, "height": 48},
                    sampling={"objects": [1, 4]})
    summary = jobs.run(sample_lake, spec, workers=1, progress=False)
    return sample_lake, summary


def all_keys(summary):
    return {f"{i:09d}" for i in range(summary.images)}


@pytest.mark.parametrize("pad", [False, True])
def test_exactly_once_over_two_ranks_and_two_workers(streamed, pad):
    lake, summary = streamed
    orders = []
    for epoch in range(3):
        seen, sizes, padded = [], [], 0
        for rank in range(2):
            st = Stream(lake.root, JOB, rank=rank, world_size=2, task="raw", pad=pad, seed=5)
            st.set_epoch(epoch)
            for worker in range(2):
                got = list(st.iter_worker(worker, 2))
                sizes.append(len(got))
                seen += [s["__key__"] for s in got if not s.get("__padded__")]
                padded += sum(1 for s in got if s.get("__padded__"))
        assert sorted(seen) == sorted(all_keys(summary)) and len(seen) == len(set(seen))
        if pad:
            assert len(set(sizes)) == 1 and padded == 4 * 6 - 22  # every slot the same size
        else:
            assert max(sizes) - min(sizes) <= 1
        orders.append(seen)
    assert orders[0] != orders[1]  # a new epoch reshuffles


def test_order_is_a_function_of_seed_and_epoch(streamed):
    lake, _ = streamed
    keys = lambda seed: [s["__key__"] for s in Stream(lake.root, JOB, task="raw", seed=seed)]
    assert keys(1) == keys(1) and keys(1) != keys(2)
    plain = [s["__key__"] for s in Stream(lake.root, JOB, task="raw", shuffle=False)]
    assert plain == sorted(plain)


def test_resume_with_skip_continues_exactly(streamed):
    lake, summary = streamed
    st = Stream(lake.root, JOB, task="raw", seed=3)
    full = [s["__key__"] for s in st.iter_worker(0, 2)]
    resumed = [s["__key__"] for s in Stream(lake.root, JOB, task="raw", seed=3).iter_worker(0, 2, skip=4)]
    assert resumed == full[4:]


def test_worker_skips_follow_round_robin():
    assert worker_skips(3, [10, 10], 2) == [4, 2]
    assert worker_skips(5, [2, 10], 2) == [2, 8]   # worker 0 ran out after one batch
    assert worker_skips(0, [5, 5], 2) == [0, 0]


def test_torch_loader_resume_mid_epoch(streamed):
    torch = pytest.importorskip("torch")
    from soclake.loader.torch import torch_loader
    lake, summary = streamed
    make = lambda: torch_loader(Stream(lake.root, JOB, task="detection", seed=9, pad=False), batch_size=3, num_workers=2)
    first = make()
    seen = []
    for i, batch in enumerate(first):
        seen += batch["__key__"]
        assert isinstance(batch["image"], torch.Tensor) and batch["image"].shape[1:] == (48, 64, 3)
        if i == 3:
            state = first.state_dict()
            break
    second = make()
    second.load_state_dict(json.loads(json.dumps(state)))
    rest = [k for batch in second for k in batch["__key__"]]
    assert sorted(seen + rest) == sorted(all_keys(summary)) and len(seen + rest) == 22
    assert seen + rest == [k for batch in make() for k in batch["__key__"]]  # the uninterrupted order


def test_decoding_for_each_task(streamed):
    lake, _ = streamed
    seg = next(iter(Stream(lake.root, JOB, task="segmentation", shuffle=False)))
    n = len(seg["labels"])
    assert seg["image"].shape == (48, 64, 3) and seg["boxes"].shape == (n, 4) and seg["masks"].shape == (n, 48, 64)
    for box, m in zip(seg["boxes"], seg["masks"]):
        ys, xs = np.nonzero(m)
        assert list(box) == [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]
    g = next(iter(Stream(lake.root, JOB, task="grounding", shuffle=False, resize=(128, 96))))
    assert g["image"].shape == (96, 128, 3)
    assert sum(len(e["boxes"]) for e in g["expressions"]) == len(g["labels"])
    assert np.allclose(g["boxes"], seg["boxes"] * 2) if len(g["labels"]) == n else True


def test_split_selection(streamed):
    lake, summary = streamed
    parts = {sp: {s["__key__"] for s in Stream(lake.root, JOB, task="raw", split=sp, val_fraction=0.3,
                                              test_fraction=0.3)} for sp in ("train", "val", "test")}
    assert sum(map(len, parts.values())) == 22 and set().union(*parts.values()) == all_keys(summary)
    sql = lake.query("SELECT key, split FROM image_splits(val_fraction := 0.3, test_fraction := 0.3) "
                     "WHERE fingerprint = $fp", {"fp": summary.fingerprint}).to_pylist()
    assert all(r["key"] in parts[r["split"]] for r in sql)  # Python and SQL agree


def test_http_streaming_matches_local(streamed):
    from soclake.outputs.serve import serve_in_background
    lake, _ = streamed
    server = serve_in_background(lake.root)
    try:
        url = f"http://127.0.0.1:{server.server_port}"
        local = [s["__key__"] for s in Stream(lake.root, JOB, task="raw", seed=1)]
        remote = [s["__key__"] for s in Stream(url, JOB, task="raw", seed=1)]
        assert remote == local
        import urllib.request
        req = urllib.request.Request(f"{url}/jobs/{JOB}/index.json", headers={"Range": "bytes=2-9"})
        with urllib.request.urlopen(req) as r:
            assert r.status == 206 and r.read() == (lake.fs.cat_file(lake.path("jobs", JOB, "index.json")))[2:10]
    finally:
        server.shutdown()
        server.server_close()


def test_bad_shards_are_skipped_and_counted(streamed, tmp_path):
    import shutil
    lake, summary = streamed
    copy = tmp_path / "lake"
    shutil.copytree(lake.root, copy, ignore=shutil.ignore_patterns("packs"))
    index = json.loads((copy / "jobs" / JOB / "index.json").read_text())
    first, second = (copy / "jobs" / JOB / index["shards"][0]["url"]), (copy / "jobs" / JOB / index["shards"][1]["url"])
    first.write_bytes(first.read_bytes()[:3000])                  # truncated
    data = bytearray(second.read_bytes())
    data[-1024] ^= 0xFF                                            # one flipped byte: sha256 mismatch
    second.write_bytes(bytes(data))
    st = Stream(str(copy), JOB, task="raw", pad=False)
    with pytest.warns(UserWarning, match="skipping bad shard"):
        got = list(st)
    assert st.stats.bad_shards == 2 and len(got) == 22 - 8
    with pytest.raises(SoclakeError, match="sha256 mismatch|unreadable"):
        list(Stream(str(copy), JOB, task="raw", handler="raise", shuffle=False))
    # with DataLoader workers the counters live in the worker processes: the loader adds them up
    import warnings
    loader = torch_loader(Stream(str(copy), JOB, task="detection", pad=False, shuffle=False), batch_size=2,
                          num_workers=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batches = list(loader)
    assert sum(len(b["__key__"]) for b in batches) == 22 - 8
    assert loader.stats.samples == 22 - 8 and loader.stats.bad_shards == 2
    assert any("sha256 mismatch" in e or "unreadable" in e for e in loader.stats.errors)


def test_an_empty_split_is_warned_about(streamed):
    lake, _ = streamed
    with pytest.warns(UserWarning, match="split 'test' of job streamed has no sample"):
        assert list(Stream(lake.root, JOB, task="raw", split="test", test_fraction=0.0)) == []


def test_s3_streaming_from_a_local_moto_server(streamed, monkeypatch):
    moto_server = pytest.importorskip("moto.server")
    s3fs = pytest.importorskip("s3fs")
    lake, _ = streamed
    for k, v in {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(k, v)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0)
    server.start()
    try:
        host, port = server.get_host_and_port()
        opts = {"client_kwargs": {"endpoint_url": f"http://{host}:{port}"}}
        fs = s3fs.S3FileSystem(**opts)
        fs.mkdir("lake")
        fs.put(os.path.join(lake.root, "jobs", JOB), f"lake/jobs/{JOB}", recursive=True)
        remote = [s["__key__"] for s in Stream("s3://lake", JOB, task="raw", seed=2, storage_options=opts)]
        assert remote == [s["__key__"] for s in Stream(lake.root, JOB, task="raw", seed=2)]
    finally:
        server.stop()


def test_hf_datasets_reads_the_shards(streamed, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    lake, summary = streamed
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    shards = sorted(str(p) for p in (lake.path(summary.folder, "shards"),) for p in
                    __import__("glob").glob(os.path.join(p, "*.tar")))
    ds = datasets.load_dataset("webdataset", data_files={"train": shards}, split="train", cache_dir=str(tmp_path))
    assert len(ds) == 22 and "json" in ds.column_names and "pan.png" in ds.column_names


def test_slot_pieces_cover_the_sequence():
    counts, order = [5, 0, 7, 3], np.array([2, 0, 1, 3])
    for slots in (1, 2, 3, 4, 7):
        got = [(p.shard, i) for s in range(slots) for p in slot_pieces(counts, order, s, slots, False)
               for i in range(p.start, p.stop)]
        assert sorted(got) == sorted((sh, i) for sh, n in enumerate(counts) for i in range(n))
