"""Writes query results and lake summaries for people (rich tables) and programs
(CSV, JSON Lines, Parquet), streaming record batches so large results stay bounded."""
from __future__ import annotations

import contextlib
import json
import os
import sys

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from rich import box
from rich.console import Console
from rich.table import Table

from soclake import storage
from soclake.errors import SoclakeError
from soclake.lake import Lake, sandbox
from soclake.lake.schemas import table_names


def _cell(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def plain_output() -> bool:
    """Plain text (no colour, no box drawing) when piped or when NO_COLOR is set."""
    return not sys.stdout.isatty() or bool(os.environ.get("NO_COLOR"))


def print_table(table: pa.Table, title: str | None = None, limit: int | None = None) -> None:
    plain = plain_output()
    t = Table(title=title, show_lines=False, box=None if plain else box.HEAVY_HEAD, pad_edge=not plain)
    for name in table.column_names:
        t.add_column(name, overflow="fold")
    rows = table.slice(0, limit).to_pylist() if limit else table.to_pylist()
    for row in rows:
        t.add_row(*(_cell(v) for v in row.values()))
    console = Console(width=200 if plain else None, no_color=plain, highlight=not plain)
    console.print(t)
    if limit and table.num_rows > limit:
        console.print(f"({table.num_rows} rows, first {limit} shown; use --limit or --format csv)")


def query_reader(lake: Lake, query: str, safe: bool = False) -> pa.RecordBatchReader:
    """The result of `soclake sql`: on the operator's connection (DuckDB's full power), or with
    `safe` on the lake's sandboxed one (one SELECT reading only the lake; see Lake.safe_query)."""
    if not safe:
        return lake.con.sql(query).to_arrow_reader()
    sandbox.check_query(lake.safe_con, query, "the query")
    try:
        return lake.safe_con.sql(query).to_arrow_reader()
    except duckdb.Error as e:
        raise sandbox.explain(e, "the query") from None


def write_result(reader: pa.RecordBatchReader, fmt: str, out: str | None, limit: int) -> None:
    """Print a result as a table, or write it as CSV, JSON Lines or Parquet to `out` (through
    storage.atomic_open: never through a link) or standard output."""
    if fmt == "parquet" and not out:
        raise SoclakeError("--format parquet needs --out FILE")
    if fmt == "table":
        print_table(pa.Table.from_batches(list(reader), schema=reader.schema), limit=limit)
        return
    with storage.atomic_open(storage.LOCAL, os.path.abspath(out)) if out else contextlib.nullcontext(
            sys.stdout.buffer) as sink:
        _write_batches(reader, fmt, sink)
    if not out:
        sys.stdout.flush()


def _write_batches(reader: pa.RecordBatchReader, fmt: str, sink) -> None:
    if fmt == "csv":
        with pacsv.CSVWriter(sink, reader.schema) as w:
            for batch in reader:
                w.write_batch(batch)
    elif fmt == "json":
        for batch in reader:
            for row in batch.to_pylist():
                sink.write((json.dumps(row, default=str, ensure_ascii=False) + "\n").encode())
    else:
        with pq.ParquetWriter(sink, reader.schema) as w:
            for batch in reader:
                w.write_batch(batch)


def print_info(lake: Lake) -> None:
    counts = pa.table({
        "table": table_names(),
        "rows": [lake.con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0] for t in table_names()],
        "parts": [len(lake.table_parts(t)) for t in table_names()],
    })
    print_table(counts, title=f"lake {lake.uri}")
    print_table(lake.query("SELECT * FROM source_summary"), title="sources")
    top = lake.query("SELECT category, segments, segments_filter_4, subcategories FROM category_counts "
                     "ORDER BY segments DESC, category LIMIT 10")
    print_table(top, title="largest categories")
    size = {"tables": storage.tree_size(lake.fs, lake.path("tables")),
            "packs": storage.tree_size(lake.fs, lake.path("packs"))}
    views = ", ".join(v for v in lake.views() if v not in table_names())
    Console().print(f"bytes: tables {size['tables']:,}, packs {size['packs']:,}\nviews: {views}")
