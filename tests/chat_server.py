"""A local OpenAI-protocol chat server on 127.0.0.1 for the LLM tests (nothing leaves the
machine): POST /v1/chat/completions is answered by the test's own reply function."""
from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

Reply = Callable[[dict, str], "str | int"]
"""reply(request body, mode): the assistant message's content, or an HTTP status to fail with."""


class ChatServer:
    """Serves `reply` until stop(). Modes are consumed per request from `modes` (the last one
    repeats); every request body is kept in `bodies`; `url` is the base URL a client takes."""

    def __init__(self, reply: Reply):
        self.modes, self.bodies = ["good"], []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                mode = outer.modes.pop(0) if len(outer.modes) > 1 else outer.modes[0]
                content = reply(body, mode) if self.path == "/v1/chat/completions" else 404
                if isinstance(content, int):
                    self.send_response(content)
                    self.end_headers()
                    return
                data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
