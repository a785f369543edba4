"""`soclake serve` serves only what a reader needs: job shards and index.json files (tables and
packs with --all), never a listing, the lock, claims, temporaries or a link out of the lake; a
malformed Range or a NUL in the path is a 400; silent connections time out; at most `workers`
connections are served at once; nothing prints a traceback.
"""
from __future__ import annotations

import http.client
import os
import socket
import threading
import time

import pytest
from conftest import folders_lake, job_spec

from soclake import paths
from soclake.jobs import compose
from soclake.outputs.serve import serve_in_background


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    lake = folders_lake(root, seed_step=90)
    summary = compose.run(lake, job_spec("sv", job={"images": 2, "shard_size": 2}, layout={"width": 64, "height": 64}),
                          workers=1, progress=False)
    secret = root / "secret.txt"
    secret.write_text("SECRET-serve")
    shards = lake.path(paths.shards_folder("sv", summary.fingerprint))
    os.symlink(secret, os.path.join(shards, "shard-000099.tar"))                   # a link out of the lake
    os.symlink(os.path.join(shards, "shard-000000.tar"), os.path.join(shards, "shard-000098.tar"))  # one inside
    open(os.path.join(shards, f".shard-000001.tar.tmp-{'0' * 8}-1-{'0' * 12}"), "wb").write(b"partial")
    return lake, summary.fingerprint


@pytest.fixture
def server(served):
    servers = []

    def start(**options):
        s = serve_in_background(served[0].root, **options)
        servers.append(s)
        return s.server_port
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def get(port: int, path: str, headers: dict | None = None, method: str = "GET") -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, body


def raw(port: int, request: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(request)
        return s.recv(1 << 16)


def test_only_shards_and_indexes_are_served(served, server, capfd):
    lake, fp = served
    port = server()
    job = f"/jobs/sv/{fp}"
    shard = open(lake.path(paths.shard_uri("sv", fp, 0)), "rb").read()
    assert get(port, "/jobs/sv/index.json")[0] == 200
    assert get(port, f"{job}/index.json")[0] == 200
    assert get(port, f"{job}/shards/shard-000000.tar") == (200, shard)
    assert get(port, f"{job}/shards/shard-000098.tar") == (200, shard)  # a link that stays inside the lake
    never = ["/", "/jobs/", f"{job}/", f"{job}/shards/", "/.lock", f"{job}/claims/shard-000000.lock",
             f"{job}/shards/shard-000099.tar", f"{job}/shards/.shard-000001.tar.tmp-{'0' * 8}-1-{'0' * 12}"]
    all_only = ["/soclake.json", f"{job}/job.json", "/tables/manifest/" + os.path.basename(lake.table_parts("manifest")[0]),
                "/" + lake.query("SELECT levels[1].pack AS p FROM segments LIMIT 1")["p"][0].as_py()]
    for path in never + all_only:
        status, body = get(port, path)
        assert status == 404 and b"SECRET" not in body and b"<li>" not in body, path
    everything = server(everything=True)
    for path in all_only:
        assert get(everything, path)[0] == 200, path  # --all: tables, packs, markers
    for path in never:
        assert get(everything, path)[0] == 404, path  # never listings, locks, claims, links out, temporaries
    assert "Traceback" not in capfd.readouterr().err


def test_malformed_requests_are_400_never_a_traceback(served, server, capfd):
    lake, fp = served
    port = server()
    shard_path = f"/jobs/sv/{fp}/shards/shard-000000.tar"
    size = os.path.getsize(lake.path(paths.shard_uri("sv", fp, 0)))
    for bad in ("bytes=abc", "bytes=5-2", "bytes=1-2,4-5", "items=0-1", "bytes=-", "bytes=--1", "bytes= 1-2x"):
        assert get(port, shard_path, {"Range": bad})[0] == 400, bad
    assert get(port, shard_path, {"Range": f"bytes={size}-"})[0] == 416
    assert get(port, shard_path, {"Range": "bytes=-0"})[0] == 416
    status, body = get(port, shard_path, {"Range": "bytes=10-19"})
    assert status == 206 and body == open(lake.path(paths.shard_uri("sv", fp, 0)), "rb").read()[10:20]
    status, body = get(port, shard_path, {"Range": "bytes=-7"})
    assert status == 206 and len(body) == 7
    for path in ("/jobs/%00/index.json", "/jobs/sv/index.json%00", "/jobs/../soclake.json", "/jobs/%2e%2e/x",
                 "/jobs/sv%5cindex.json", "/jobs/%ff/index.json", "/jobs//sv/index.json"):
        assert get(port, path)[0] == 400, path
    assert raw(port, b"GET /jobs/sv/\x00index.json HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert b"Error code: 400" in raw(port, b"\x00\xff garbage\r\n\r\n")  # no version: the stdlib answers as HTTP/0.9
    assert get(port, "/jobs/sv/index.json", method="HEAD")[0] == 200
    assert "Traceback" not in capfd.readouterr().err


def test_silent_connections_time_out_and_workers_are_bounded(served, server):
    port = server(workers=2, timeout=1.0)
    before = threading.active_count()
    idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(10)]
    time.sleep(0.3)
    assert threading.active_count() - before <= 2  # two workers, the rest wait in the backlog
    with pytest.raises((TimeoutError, socket.timeout)):  # both workers are held by silent clients
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=0.5)
        c.request("GET", "/jobs/sv/index.json")
        c.getresponse()
    idle[0].settimeout(5)
    t0 = time.monotonic()
    assert idle[0].recv(1) == b""  # the server hung up on the silent client
    assert time.monotonic() - t0 < 4
    for s in idle:
        s.close()
    deadline = time.monotonic() + 20
    while True:  # the backlog drains as each silent connection times out
        try:
            assert get(port, "/jobs/sv/index.json")[0] == 200
            break
        except (TimeoutError, socket.timeout, ConnectionError):
            assert time.monotonic() < deadline
