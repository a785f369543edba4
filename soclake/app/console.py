"""The SQL console: a query on the lake's sandboxed connection (soclake.lake.sandbox through
outputs.tables.query_reader, exactly what `soclake sql --safe` runs), under a time limit that
interrupts DuckDB, its first rows kept for paging, and the whole result as CSV or Parquet."""
from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from soclake.app import guard
from soclake.app.state import LakeView
from soclake.errors import SoclakeError
from soclake.lake import sandbox
from soclake.outputs.tables import query_reader

MAX_SQL = 100_000
"""Characters of one query."""
FORMATS = {"csv": "text/csv", "parquet": "application/vnd.apache.parquet"}


@dataclass
class Result:
    """The first rows of a query's result (at most `limit`), whether there were more, and
    the seconds it took."""
    table: pa.Table
    more: bool
    seconds: float


def _check(sql: str) -> str:
    if not isinstance(sql, str) or not sql.strip():
        raise guard.bad("no query given: pass one SELECT as q (GET) or sql (POST)")
    if len(sql) > MAX_SQL:
        raise guard.bad(f"the query is longer than {MAX_SQL} characters")
    return sql


def run(view: LakeView, sql: str, limit: int) -> Result:
    """At most `limit` rows of a query (and whether there are more), within the time limit.
    Refusals (not a SELECT, a file outside the lake, a setting) are 400s with the sandbox's
    message; running past the limit is a 408 naming the limit."""
    sql = _check(sql)
    view.fresh()  # before console_lock: fresh takes both locks
    with view.console_lock:
        lake = view.lake
        con = lake.safe_con
        stopped = threading.Event()

        def stop() -> None:
            stopped.set()
            con.interrupt()
        timer = threading.Timer(view.query_seconds, stop)
        t0 = time.perf_counter()
        timer.start()
        try:
            reader = query_reader(lake, sql, safe=True)
            batches, rows = [], 0
            for batch in reader:
                batches.append(batch)
                rows += batch.num_rows
                if rows > limit:
                    break
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except (SoclakeError, duckdb.Error, pa.ArrowException) as e:
            if stopped.is_set():
                raise guard.AppError(408, f"the query ran past the app's {view.query_seconds:g} s limit and was "
                                          "stopped; narrow it (a WHERE, a LIMIT) or run it with `soclake sql` "
                                          "(no limit), or start the app with a larger --query-seconds") from None
            if isinstance(e, duckdb.Error):
                e = sandbox.explain(e, "the query")
            raise guard.bad(str(e)) from None
        finally:
            timer.cancel()
        seconds = time.perf_counter() - t0
    return Result(table.slice(0, limit), table.num_rows > limit, seconds)


def page(view: LakeView, sql: str, offset: int, limit: int) -> dict:
    """Rows offset .. offset+limit of the query's first view.max_rows rows (the result is kept
    for the next pages until the lake changes)."""
    if offset < 0 or not 1 <= limit <= 1000:
        raise guard.bad("offset must be >= 0 and limit from 1 to 1000")
    result = view.remember(("sql", sql), lambda: run(view, sql, view.max_rows))
    rows = result.table.slice(offset, limit).to_pylist()
    return {"columns": [{"name": f.name, "type": str(f.type)} for f in result.table.schema],
            "rows": [list(r.values()) for r in rows], "offset": offset, "held": result.table.num_rows,
            "more": result.more, "max_rows": view.max_rows, "seconds": round(result.seconds, 4)}


def download(view: LakeView, sql: str, fmt: str) -> bytes:
    """The whole result (up to view.max_download_rows rows) as CSV (the same writer as
    `soclake sql --format csv`) or Parquet."""
    if fmt not in FORMATS:
        raise guard.bad(f"format={fmt[:20]!r} must be one of {', '.join(FORMATS)}")
    result = run(view, sql, view.max_download_rows)
    if result.more:
        raise guard.AppError(413, f"the result has more than {view.max_download_rows:,} rows, the app's download "
                                  "limit; add a LIMIT, or write it with `soclake sql --format "
                                  f"{fmt} --out FILE`")
    buf = io.BytesIO()
    if fmt == "csv":
        pacsv.write_csv(result.table, buf)
    else:
        pq.write_table(result.table, buf)
    return buf.getvalue()
