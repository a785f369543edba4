"""Hostile streams and documents: an instance mask whose size is not its image's is a bad
sample (never decoded at that size); an index entry without sha256 or with a negative, boolean
or huge sample count is an error naming the index; a shard host sending more than the index's
byte count is cut off after bytes + 1; deeply nested TOML/JSON (job specs, mix manifests,
feedback files, indexes) and integers beyond 64 bits are clean errors, never a RecursionError.
"""
from __future__ import annotations

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest import folders_lake, job_spec
from test_hostile_shards import commit_tampered

from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.jobs import compose
from soclake.loader.mix import load_mix
from soclake.loader.stream import Stream
from soclake.shards.tar import read_samples, tar_bytes

DEEP = 5000


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    root = tmp_path_factory.mktemp("stream")
    lake = folders_lake(root, seed_step=80)
    summary = compose.run(lake, job_spec("st", job={"images": 4, "shard_size": 2}, sampling={"objects": [1, 2]},
                                         layout={"width": 64, "height": 64}), workers=1, progress=False)
    assert summary.images == 4 and summary.instances >= 4
    return lake


def test_a_mask_of_another_size_is_a_bad_sample(streamed, tmp_path, capsys):
    lake = streamed
    uri = lake.query("SELECT shard_uri FROM manifest WHERE job = 'st' AND shard = 0")["shard_uri"][0].as_py()
    clean = open(lake.path(uri), "rb").read()
    samples = read_samples(clean)
    info = json.loads(samples[0][1]["json"])
    info["instances"][0]["segmentation"]["size"] = [4000, 4000]  # 16 MB if believed; [30000, 30000] is 900 MB
    samples[0][1]["json"] = json.dumps(info).encode()
    try:
        commit_tampered(lake, "st", "compose", 0, tar_bytes(samples))
        with pytest.warns(UserWarning, match="mask size"):
            got = list(Stream(lake.root, "st", task="segmentation", shuffle=False, pad=False))
        stream = Stream(lake.root, "st", task="segmentation", shuffle=False, pad=False)
        with pytest.warns(UserWarning):
            assert len(list(stream)) == 3 and stream.stats.bad_samples == 1
        assert all(s["masks"].shape[1:] == (64, 64) for s in got)
        with pytest.raises(SoclakeError, match="mask size"):
            list(Stream(lake.root, "st", task="segmentation", shuffle=False, pad=False, handler="raise"))
        assert main(["verify", "--lake", lake.root, "--job", "st", "--deep"]) == 1
        assert "has a mask of size [4000, 4000]" in capsys.readouterr().out
    finally:
        commit_tampered(lake, "st", "compose", 0, clean)


def write_index(folder, shards: list[dict]) -> str:
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "index.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "job": "x", "fingerprint": "f", "stage": "compose", "shards": shards}, f)
    return path


def test_index_entries_that_cannot_be_trusted_are_errors_naming_the_index(tmp_path):
    good = {"url": "shards/shard-000000.tar", "samples": 2, "bytes": 1000, "sha256": "a" * 64}
    bad = {"no sha256": {k: v for k, v in good.items() if k != "sha256"},
           "short sha256": {**good, "sha256": "abc"},
           "negative": {**good, "samples": -1},
           "boolean": {**good, "samples": True},
           "huge": {**good, "samples": 10 ** 30},
           "float": {**good, "samples": 2.0},
           "no bytes": {k: v for k, v in good.items() if k != "bytes"},
           "negative bytes": {**good, "bytes": -5}}
    for what, entry in bad.items():
        path = write_index(tmp_path / what.replace(" ", "_"), [good, entry])
        with pytest.raises(SoclakeError) as e:
            Stream(path)
        assert path in str(e.value) and "shard entry 1" in str(e.value), what


class _Flood(BaseHTTPRequestHandler):
    """index.json says the shard has 1000 bytes; the shard URL sends 64 MB (counted)."""
    sent: list[int] = []
    body = b"x" * (1 << 16)

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path.endswith("index.json"):
            doc = json.dumps({"version": 1, "job": "x", "stage": "compose", "fingerprint": "f", "shards": [
                {"url": "shards/shard-000000.tar", "samples": 1, "bytes": 1000, "sha256": "a" * 64}]}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(doc)))
            self.end_headers()
            self.wfile.write(doc)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(64 << 20))
        self.end_headers()
        sent = 0
        try:
            while sent < 64 << 20:
                self.wfile.write(self.body)
                sent += len(self.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            _Flood.sent.append(sent)


def test_a_shard_host_sending_more_than_the_index_says_is_cut_off(tmp_path):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Flood)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        stream = Stream(f"http://127.0.0.1:{server.server_port}/index.json", task="raw", shuffle=False)
        with pytest.warns(UserWarning, match="longer than the 1,000 bytes"):
            assert list(stream) == []
        assert stream.stats.bad_shards == 1
    finally:
        server.shutdown()
        server.server_close()
    assert _Flood.sent and _Flood.sent[0] < 16 << 20  # the client stopped reading at 1001 bytes


def test_a_local_shard_longer_than_its_index_is_a_bad_shard(streamed, tmp_path):
    lake = streamed
    folder = tmp_path / "copy"
    uri = lake.query("SELECT shard_uri, bytes FROM manifest WHERE job = 'st' AND shard = 0").to_pylist()[0]
    os.makedirs(folder / "shards")
    data = open(lake.path(uri["shard_uri"]), "rb").read()
    (folder / "shards" / "shard-000000.tar").write_bytes(data + b"\0" * 4096)
    import hashlib
    write_index(folder, [{"url": "shards/shard-000000.tar", "samples": 2, "bytes": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()}])
    stream = Stream(str(folder), task="raw", shuffle=False)
    with pytest.warns(UserWarning, match="longer than"):
        assert list(stream) == []


def test_deep_nesting_and_huge_integers_are_clean_errors(streamed, tmp_path, capsys):
    lake = streamed
    specs = {"nested.toml": f'[job]\nname = "n"\n[layout]\nwidth = {"[" * DEEP}1{"]" * DEEP}\n',
             "inline.toml": f'[job]\nname = "i"\nx = {"{a = " * DEEP}1{"}" * DEEP}\n',
             "dotted.toml": '[job]\nname = "d"\n' + ".".join(["k"] * DEEP) + " = 1\n",
             "huge.toml": f'[job]\nname = "h"\nimages = {2 ** 70}\n',
             "huge64.toml": f'[job]\nname = "h"\nseed = {2 ** 63}\n'}
    for name, text in specs.items():
        (tmp_path / name).write_text(text)
        assert main(["run", str(tmp_path / name), "--lake", lake.root]) == 2, name
        err = capsys.readouterr().err
        assert "RecursionError" not in err and "Traceback" not in err, name
        assert ("nests deeper than" in err or "64-bit integer" in err), (name, err)
    (tmp_path / "mix.json").write_text("[" * DEEP + "]" * DEEP)
    with pytest.raises(SoclakeError, match="nests deeper"):
        load_mix(str(tmp_path / "mix.json"))
    (tmp_path / "mix.toml").write_text(f"[mix]\nseed = {2 ** 64}\n")
    with pytest.raises(SoclakeError, match="64-bit"):
        load_mix(str(tmp_path / "mix.toml"))
    (tmp_path / "fb.json").write_text('{"categories": ' + "[" * DEEP + "]" * DEEP + "}")
    assert main(["feedback", str(tmp_path / "fb.json"), "--lake", lake.root]) == 2
    assert "nests deeper" in capsys.readouterr().err
    (tmp_path / "fb.jsonl").write_text('{"category": "apple", "ap": 0.5}\n' + "[" * DEEP + "]" * DEEP + "\n")
    main(["feedback", str(tmp_path / "fb.jsonl"), "--lake", lake.root])
    assert "RecursionError" not in capsys.readouterr().err
    deep_index = tmp_path / "deep"
    deep_index.mkdir()
    (deep_index / "index.json").write_text('{"version": 1, "shards": ' + "[" * DEEP + "]" * DEEP + "}")
    with pytest.raises(SoclakeError, match="nests deeper"):
        Stream(str(deep_index))
