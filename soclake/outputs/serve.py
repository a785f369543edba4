"""`soclake serve`: a small HTTP server for what a reader of a lake needs: job shards and
index.json files (with --all, every regular file of the lake but its locks, claims and
temporaries), single byte ranges (206), never a listing, never a link out of the lake. Each
connection has a read timeout and at most `workers` are served at once. Binds to 127.0.0.1 by
default; beyond a trusted network put nginx in front (README).
"""
from __future__ import annotations

import os
import re
import stat
import sys
import threading
import urllib.parse
from functools import partial
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from soclake import paths, storage

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_READER_FILE = re.compile(r"^" + paths.JOBS + r"/[^/]+/(?:index\.json|[^/]+/index\.json|[^/]+/shards/shard-\d{6}\.tar)$")
"""What a reader needs: jobs/J/index.json, jobs/J/FP/index.json, jobs/J/FP/shards/shard-N.tar."""
WORKERS, TIMEOUT = 16, 30.0


class BadRequest(Exception):
    """A request soclake will not parse (a NUL in the path, a malformed Range): 400."""


def allowed(relpath: str, everything: bool) -> bool:
    """Whether a path relative to the lake root may be served."""
    parts = relpath.split("/")
    if parts[-1] == ".lock" or "claims" in parts[:-1] or storage.TEMP_NAME.match(parts[-1]):
        return False  # never, even with --all: the writer lock, shard claims, temporaries of live writes
    return everything or bool(_READER_FILE.match(relpath))


def request_path(raw: str) -> str:
    """The lake-relative path of a request target (ending in '/' for a folder, which is never
    served); BadRequest for a NUL or a path that is not a plain relative one ('..', backslashes,
    empty segments, escapes that are not UTF-8)."""
    try:
        path = urllib.parse.unquote(urllib.parse.urlsplit(raw).path, errors="strict")
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("bad path") from None
    if "\x00" in path or "\\" in path:
        raise BadRequest("bad path")
    body = path.lstrip("/")
    parts = body.rstrip("/").split("/") if body.rstrip("/") else []
    if any(p in ("", ".", "..") for p in parts):
        raise BadRequest("bad path")
    return "/".join(parts) + ("/" if body.endswith("/") or not parts else "")  # a folder: never served


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(start, end inclusive) of a single "bytes=a-b" / "bytes=-n" range, None without a Range
    header; BadRequest when malformed; ValueError when it misses the file (416)."""
    if header is None:
        return None
    m = _RANGE.match(header.strip())
    if not m or m.groups() == ("", ""):
        raise BadRequest("malformed Range")
    a, b = m.groups()
    if a:
        start, end = int(a), min(int(b), size - 1) if b else size - 1
        if b and int(b) < start:
            raise BadRequest("malformed Range")
    else:
        start, end = max(size - int(b), 0), size - 1
        if int(b) == 0:
            raise ValueError("empty suffix range")
    if start >= size or start > end:
        raise ValueError("range outside the file")
    return start, end


class LakeHandler(BaseHTTPRequestHandler):
    """GET and HEAD of the files `allowed` lets through, with single byte ranges."""

    server_version = "soclake"
    protocol_version = "HTTP/1.1"

    def __init__(self, *args, root: str, everything: bool, **kwargs):
        self.root, self.everything = root, everything
        super().__init__(*args, **kwargs)

    def log_message(self, fmt, *args):  # quiet: a training job makes many requests
        pass

    def do_GET(self):
        self._serve(body=True)

    def do_HEAD(self):
        self._serve(body=False)

    def _serve(self, body: bool) -> None:
        try:
            self._respond(body)
        except BadRequest as e:
            self._error(HTTPStatus.BAD_REQUEST, str(e))
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            self.close_connection = True
        except Exception as e:  # one line, never a traceback, never the file system's words
            print(f"soclake serve: {type(e).__name__} on a request", file=sys.stderr)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error")

    def _error(self, status: HTTPStatus, message: str) -> None:
        try:
            self.send_error(status, message)
        except OSError:
            self.close_connection = True

    def _open(self, rel: str) -> tuple[int, int] | None:
        """(fd, size) of a servable regular file inside the lake, else None (404)."""
        if not allowed(rel, self.everything):
            return None
        real = os.path.realpath(os.path.join(self.root, rel))
        if os.path.commonpath([real, self.root]) != self.root:
            return None  # a link out of the lake
        try:
            fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
        except OSError:
            return None
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            return None
        return fd, st.st_size

    def _respond(self, body: bool) -> None:
        rel = request_path(self.path)
        opened = self._open(rel)
        if opened is None:
            self._error(HTTPStatus.NOT_FOUND, "not found")
            return
        fd, size = opened
        with os.fdopen(fd, "rb") as f:
            try:
                span = byte_range(self.headers.get("Range"), size)
            except ValueError:
                self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = span or (0, size - 1)
            self.send_response(HTTPStatus.PARTIAL_CONTENT if span else HTTPStatus.OK)
            self.send_header("Content-Type", "application/json" if rel.endswith(".json") else "application/octet-stream")
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Content-Length", str(end - start + 1))
            if span:
                self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
            self.end_headers()
            if body:
                f.seek(start)
                _copy(f, self.wfile, end - start + 1)


def _copy(source, sink, remaining: int) -> None:
    while remaining > 0:
        chunk = source.read(min(1 << 20, remaining))
        if not chunk:
            break
        sink.write(chunk)
        remaining -= len(chunk)


class BoundedServer(ThreadingHTTPServer):
    """ThreadingHTTPServer with at most `workers` connections served at once (the rest wait in
    the listen backlog) and a read timeout per connection."""

    daemon_threads = True

    def __init__(self, address, handler, workers: int = WORKERS):
        self._slots = threading.BoundedSemaphore(workers)
        super().__init__(address, handler)

    def process_request(self, request, client_address):
        self._slots.acquire()
        try:
            super().process_request(request, client_address)
        except Exception:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address):  # a dropped client: no traceback
        pass


def make_server(root: str, port: int = 0, host: str = "127.0.0.1", everything: bool = False,
                workers: int = WORKERS, timeout: float = TIMEOUT) -> BoundedServer:
    """A server for the lake at `root` (not yet serving); port 0 picks a free port
    (server.server_port). `everything`: every regular file of the lake (tables, packs), not
    only job shards and indexes."""
    handler = type("Handler", (LakeHandler,), {"timeout": timeout})
    return BoundedServer((host, port), partial(handler, root=os.path.realpath(root), everything=everything), workers)


def serve_in_background(root: str, port: int = 0, host: str = "127.0.0.1", **options) -> BoundedServer:
    server = make_server(root, port, host, **options)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
