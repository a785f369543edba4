"""`soclake app`: browse a lake in a web browser (read-only; 127.0.0.1 by default)."""
from __future__ import annotations

from soclake.app import serve
from soclake.cli.common import add_command, lake_arg, lake_of


def add_parser(sub) -> None:
    p = add_command(sub, "app", "browse a lake in a web browser: pool gallery, SQL console, jobs, images, audit",
                    "A local web application over the lake; it never writes to it. It binds to 127.0.0.1 (this "
                    "machine only) unless --host says otherwise; it has no login, so bind elsewhere only on a "
                    "network you trust (or reach it through an SSH tunnel). JSON endpoints: docs/app.md.")
    lake_arg(p)
    p.add_argument("--port", type=int, default=8000, help="port to listen on")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1: this machine only)")
    p.add_argument("--query-seconds", type=float, default=10.0, help="time limit of one SQL console query")
    p.add_argument("--max-rows", type=int, default=10_000, help="rows of a console result kept for paging")
    p.add_argument("--max-download-rows", type=int, default=1_000_000, help="rows of a console download")
    p.add_argument("--cache-mb", type=int, default=256, help="memory for thumbnails and pyramid levels already served")


def run(args) -> int:
    lake = lake_of(args)
    print(f"soclake app on {lake.uri}: http://{args.host}:{args.port}/ (Ctrl-C to stop)", flush=True)
    serve(lake, args.host, args.port, args.query_seconds, args.max_rows, args.max_download_rows, args.cache_mb)
    return 0
