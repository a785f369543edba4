"""`soclake sql QUERY`: SQL over a lake's tables and views, printed or written to a file."""
from __future__ import annotations

import sys

from soclake.cli.common import add_command, lake_arg, lake_of
from soclake.outputs.tables import query_reader, write_result


def add_parser(sub) -> None:
    p = add_command(sub, "sql", "run SQL over the lake's tables and views",
                    "Tables and views go by plain names: segments, backgrounds, categories, rejects, filter_0 ... "
                    "filter_4, category_counts, source_summary, ... This is the operator's console: the query has "
                    "DuckDB's full power over this machine's files (COPY, ATTACH, read_csv of any path). --safe runs "
                    "it in the SQL sandbox instead: one SELECT that reads only the lake's own files, no URL, "
                    "extension or setting (what any remote surface must use).")
    p.add_argument("query", help="one SQL query, or - to read it from standard input")
    lake_arg(p)
    p.add_argument("--format", choices=["table", "csv", "json", "parquet"], default="table",
                   help="json writes one object per line (JSON Lines)")
    p.add_argument("--out", help="write to this file instead of standard output (needed for parquet)")
    p.add_argument("--limit", type=int, default=100, help="rows shown by --format table")
    p.add_argument("--safe", action="store_true", help="run the query in the SQL sandbox (reads only the lake)")


def run(args) -> int:
    query = sys.stdin.read() if args.query == "-" else args.query
    write_result(query_reader(lake_of(args), query, args.safe), args.format, args.out, args.limit)
    return 0
