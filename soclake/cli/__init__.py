"""The `soclake` command line: one module per command (add_parser, run), each parsing its
arguments and calling the Python API, nothing more. Errors a user can act on exit 2."""
from __future__ import annotations

import argparse
import errno
import sys
import warnings

import duckdb

from soclake import __version__
from soclake.cli import (
    app,
    audit,
    export,
    feedback,
    info,
    ingest,
    jobs,
    plan,
    run,
    sample_pool,
    serve,
    shards_from_coco,
    show,
    sql,
    stats,
    verify,
)
from soclake.cli.common import HelpFormatter
from soclake.errors import SoclakeError
from soclake.outputs.verify import damaged_parts_note

COMMANDS = {"ingest": ingest, "sql": sql, "info": info, "plan": plan, "run": run, "jobs": jobs, "show": show,
            "export": export, "stats": stats, "audit": audit, "feedback": feedback, "verify": verify,
            "serve": serve, "app": app, "shards-from-coco": shards_from_coco, "sample-pool": sample_pool}

STORAGE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="soclake", description="A data lakehouse for synthetic object-composition "
                                 "datasets.", allow_abbrev=False, formatter_class=HelpFormatter)
    ap.add_argument("--version", action="version", version=f"soclake {__version__}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS.values():
        module.add_parser(sub)
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with warnings.catch_warnings():  # restores the caller's warning display afterwards
        warnings.showwarning = lambda message, *_args, **_kw: print(f"soclake: warning: {message}", file=sys.stderr)
        return _dispatch(args)


def _dispatch(args) -> int:
    try:
        return COMMANDS[args.command].run(args)
    except SoclakeError as e:
        print(f"soclake: error: {e}", file=sys.stderr)
        return 2
    except duckdb.Error as e:
        print(f"soclake: SQL error: {e}{damaged_parts_note(getattr(args, 'lake', None))}", file=sys.stderr)
        return 2
    except OSError as e:
        if e.errno not in STORAGE_ERRNOS:
            raise
        print(f"soclake: error: {e.filename or 'the lake'}: {e.strerror}. Nothing committed was changed (every "
              "write is atomic and commits last); free space or make the lake writable, then rerun.", file=sys.stderr)
        return 2
