"""`soclake serve`: a lake's files over HTTP with byte ranges, for streaming to training."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.serve import make_server


def add_parser(sub) -> None:
    p = add_command(sub, "serve", "serve a lake's files over HTTP with byte ranges (127.0.0.1 by default)")
    lake_arg(p)
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")


def run(args) -> int:
    lake = lake_of(args)
    server = make_server(lake.root, args.port, args.host)
    print(f"serving {lake.root} at http://{args.host}:{server.server_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
