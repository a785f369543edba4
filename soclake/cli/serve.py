"""`soclake serve`: a lake's job shards and indexes over HTTP with byte ranges, for streaming to
training."""
from __future__ import annotations

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.errors import SoclakeError
from soclake.outputs.serve import TIMEOUT, WORKERS, make_server
from soclake.storage import is_local


def add_parser(sub) -> None:
    p = add_command(sub, "serve", "serve a lake's job shards and indexes over HTTP with byte ranges (127.0.0.1 by "
                    "default)", "Serves only what a reader needs (jobs/J/index.json, jobs/J/FP/index.json and "
                    "committed-shard files), never a folder listing, a lock, a claim, a temporary or a link out of "
                    "the lake. For anything beyond a trusted network put nginx in front (README).")
    lake_arg(p)
    p.add_argument("--port", type=int, default=8765, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--all", action="store_true", help="also serve the tables and packs (every regular file of the "
                   "lake but its lock, claims and temporaries)")
    p.add_argument("--workers", type=int, default=WORKERS, help="connections served at once (the rest wait)")
    p.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds a connection may stay silent")


def run(args) -> int:
    lake = lake_of(args)
    if not is_local(lake.fs):
        raise SoclakeError(f"soclake serve serves a local lake folder; {lake.uri} is on an object store, which "
                           "readers can stream from directly (Stream('s3://...'))")
    if args.workers < 1 or args.timeout <= 0:
        raise SoclakeError("--workers must be at least 1 and --timeout positive")
    server = make_server(lake.root, args.port, args.host, args.all, args.workers, args.timeout)
    print(f"serving {lake.root} at http://{args.host}:{server.server_port}/ (Ctrl-C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
