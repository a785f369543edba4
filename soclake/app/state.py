"""The app's hold on one lake: the Lake, a lock that serialises its DuckDB connections (one
query at a time on each, as DuckDB's Python API requires), the app's caches, and a cheap
check that notices new table parts (a job committing shards) and re-reads the lake."""
from __future__ import annotations

import contextlib
import threading
import time
from typing import Any, Iterator

import pyarrow as pa

from soclake.app.cache import LRU
from soclake.lake import Lake
from soclake.lake.schemas import table_names
from soclake.lake.sqlfiles import query as sql_query

RECHECK_SECONDS = 2.0
"""How often the table folders are listed to see whether another process added parts."""
MIB = 1 << 20


class LakeView:
    """A read-only view of a lake for the app's request threads."""

    def __init__(self, lake: Lake, query_seconds: float = 10.0, max_rows: int = 10_000,
                 max_download_rows: int = 1_000_000, cache_bytes: int = 256 * MIB):
        self.lake = lake
        self.query_seconds, self.max_rows, self.max_download_rows = query_seconds, max_rows, max_download_rows
        self.lock = threading.RLock()          # the operator connection (the app's own fixed SQL)
        self.console_lock = threading.Lock()   # the sandboxed connection (the console's SQL)
        self.thumbnails = LRU(cache_bytes)     # levels and thumbnails as served, by where they come from
        self.levels = LRU(200_000, size=lambda _: 1)   # segment_id -> its pyramid levels
        self.members = LRU(20_000, size=lambda _: 1)   # shard path -> {member name: (offset, size)}
        self.answers = LRU(64 * MIB, size=_cost)       # counts, facets, audits, console results
        self._derived: dict[str, Any] = {}       # structures built from the tables, dropped when they change
        self._derived_lock = threading.Lock()
        self._quiet = None
        self._state = self._table_state()
        self._checked = time.monotonic()

    # ------------------------------------------------------------------ freshness
    def _table_state(self) -> tuple[int, ...]:
        return tuple(len(self.lake.table_parts(t)) for t in table_names())

    def fresh(self) -> None:
        """Re-read the lake when its tables gained or lost parts since the last look."""
        if time.monotonic() - self._checked < RECHECK_SECONDS:
            return
        with self.lock, self.console_lock:
            self._checked = time.monotonic()
            self.lake.fs.invalidate_cache()
            state = self._table_state()
            if state != self._state:
                self._state = state
                self.lake.refresh()
                self.answers.clear()
                self.levels.clear()
                self._derived.clear()

    # ------------------------------------------------------------------ queries
    @contextlib.contextmanager
    def locked(self) -> Iterator[Lake]:
        """The lake with its operator connection to oneself (several statements in a row)."""
        self.fresh()
        with self.lock:
            con = self.lake.con
            if con is not self._quiet:  # a server's log is no place for DuckDB's progress bars
                con.execute("SET enable_progress_bar = false")
                self._quiet = con
            yield self.lake

    def table(self, name: str, params: dict | None = None, **substitutions: str) -> pa.Table:
        """The result of the query sql/queries/NAME.sql (identifiers substituted, values as
        parameters) on the operator connection."""
        with self.locked() as lake:
            return lake.query(sql_query(name, **substitutions), params)

    def rows(self, name: str, params: dict | None = None, **substitutions: str) -> list[dict[str, Any]]:
        return self.table(name, params, **substitutions).to_pylist()

    def derived(self, name: str, make) -> Any:
        """A structure built from the tables (make(lake) under the connection's lock), built once
        and again after the lake changes; other threads asking meanwhile wait for it."""
        self.fresh()
        with self._derived_lock:
            if name not in self._derived:
                with self.locked() as lake:
                    self._derived[name] = make(lake)
            return self._derived[name]

    def remember(self, key: tuple, make) -> Any:
        """An answer kept until the lake changes (counts, facets, audit numbers)."""
        self.fresh()
        return self.answers.get_or(key, make)


def _cost(value: Any) -> int:
    table = getattr(value, "table", value)
    if isinstance(table, pa.Table):
        return table.nbytes + 1024
    if isinstance(value, (bytes, str)):
        return len(value) + 64
    if isinstance(value, list):
        return 256 * len(value) + 64
    return 4096
