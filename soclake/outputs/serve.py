"""`soclake serve`: a small HTTP server for a lake's files, with byte-range support (206), for
sharing shards and indexes quickly. Binds to 127.0.0.1 unless told otherwise; for
production, serve the lake folder with nginx (README)."""
from __future__ import annotations

import os
import re
import shutil
import threading
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus single byte ranges ("Range: bytes=a-b")."""

    def log_message(self, fmt, *args):  # quiet: a training job makes many requests
        pass

    def send_head(self):
        m = _RANGE.match(self.headers.get("Range", "").strip())
        path = self.translate_path(self.path)
        if not m or not os.path.isfile(path):
            return super().send_head()
        size = os.path.getsize(path)
        a, b = m.groups()
        start = int(a) if a else max(size - int(b or 0), 0)
        end = min(int(b), size - 1) if a and b else size - 1
        if start > end or start >= size:
            self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
            self.send_header("Content-Range", f"bytes */{size}")
            self.end_headers()
            return None
        f = open(path, "rb")
        f.seek(start)
        self.send_response(HTTPStatus.PARTIAL_CONTENT)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self._remaining = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        remaining = getattr(self, "_remaining", None)
        if remaining is None:
            return shutil.copyfileobj(source, outputfile)
        while remaining > 0:
            chunk = source.read(min(1 << 20, remaining))
            if not chunk:
                break
            outputfile.write(chunk)
            remaining -= len(chunk)
        self._remaining = None


def make_server(root: str, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """A server for `root` (not yet serving); port 0 picks a free port (server.server_port)."""
    handler = partial(RangeHandler, directory=os.path.abspath(root))
    return ThreadingHTTPServer((host, port), handler)


def serve_in_background(root: str, port: int = 0, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    server = make_server(root, port, host)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
