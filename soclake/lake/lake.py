"""The Lake: a root URI holding Parquet tables and packs, and a DuckDB connection over them.

Every table (schemas/) is a folder of immutable Parquet parts; every view in sql/*.sql is
defined on top, loaded by file name. Writes append whole parts; nothing is rewritten.
"""
from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
import warnings
from typing import Any, Iterable, Iterator, NamedTuple, Sequence

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from soclake import storage
from soclake.errors import NoLockWarning, SoclakeError
from soclake.lake import sandbox
from soclake.lake.schemas import table_names, table_schema
from soclake.lake.sqlfiles import sql_list, sql_string
from soclake.resources import data_dir
from soclake.vocab import coco_categories, lvis_names

MARKER = "soclake.json"
LAKE_FORMAT = 1


REPAIR = "run `soclake verify --repair` (it names the damaged parts and moves them to quarantine/)"


def damaged_table(uri: str, table: str, e: Exception) -> SoclakeError:
    """A table DuckDB cannot read (a truncated, junk or mistyped part): the error names the
    file DuckDB names and the fix."""
    first = str(e).strip().splitlines()[0][:400] if str(e).strip() else type(e).__name__
    return SoclakeError(f"table {table} of {uri} cannot be read ({first}); {REPAIR}")


class TableSource(NamedTuple):
    """What one table's view reads: `source` (the folder's glob, the list of its parts when
    some are left out, or None for no parts: an empty table of the schema) and the parts it
    found, so that any change of them defines the view again (and reads their footers)."""
    source: str | None
    parts: tuple[str, ...]


class Lake:
    """A lake at a root URI (a local folder by default, or any fsspec URI)."""

    def __init__(self, uri: str, create: bool = False, storage_options: dict | None = None):
        self.uri = str(uri)
        self.storage_options = storage_options
        self.fs, self.root = storage.resolve(self.uri, storage_options)
        marker = self.path(MARKER)
        if not self.fs.exists(marker):
            if not create:
                raise SoclakeError(f"no lake at {self.uri!r} (missing {MARKER}); "
                                   f"create one with `soclake ingest ... --lake {self.uri}`")
            try:
                self.fs.makedirs(self.root, exist_ok=True)  # on s3://, creates the bucket if it is missing
                storage.write_bytes(self.fs, marker, json.dumps({"format": LAKE_FORMAT}).encode())
            except OSError as e:
                raise SoclakeError(f"cannot create a lake at {self.uri!r}: {e}") from None
        self._con: duckdb.DuckDBPyConnection | None = None
        self._safe_con: duckdb.DuckDBPyConnection | None = None
        self._sources: dict[str, dict[str, TableSource]] = {}  # "_con", "_safe_con" -> what each table view reads
        self._excluded: set[str] = set()

    def __repr__(self) -> str:
        tables = [t for t in table_names() if self.table_parts(t)]
        return f"Lake({self.uri!r}: {', '.join(tables) or 'empty'})"

    @property
    def ref(self) -> dict:
        """What another process needs to open this lake: Lake.from_ref(lake.ref). On an object
        store the storage options travel too (credentials are better left to the environment)."""
        return {"uri": self.root if storage.is_local(self.fs) else self.uri, "storage_options": self.storage_options}

    @classmethod
    def from_ref(cls, ref: dict) -> "Lake":
        return cls(ref["uri"], storage_options=ref["storage_options"])

    # ------------------------------------------------------------------ paths
    def path(self, *parts: str) -> str:
        return storage.join(self.root, *parts)

    def uri_of(self, path: str) -> str:
        """A path as DuckDB must see it (with protocol for non-local filesystems)."""
        return path if storage.is_local(self.fs) else self.fs.unstrip_protocol(path)

    def relpath(self, path: str) -> str:
        return path[len(self.root) + 1:] if path.startswith(self.root + "/") else path

    def table_dir(self, table: str) -> str:
        return self.path("tables", table)

    def table_parts(self, table: str) -> list[str]:
        folder = self.table_dir(table)
        if not self.fs.exists(folder):
            return []
        return sorted(p for p in self.fs.glob(storage.join(folder, "*.parquet")))

    # ------------------------------------------------------------------ writes
    def append(self, table: str, data: pa.Table, part: str | None = None) -> str | None:
        """Write `data` as a new immutable part of `table`; returns its path (None if empty)."""
        if data.num_rows == 0:
            return None
        data = data.cast(table_schema(table))
        path = storage.join(self.table_dir(table), f"part-{part or uuid.uuid4().hex}.parquet")
        with storage.atomic_open(self.fs, path) as f:
            pq.write_table(data, f, compression="zstd")
        self._update_views()
        return path

    @contextlib.contextmanager
    def writer_lock(self, wait: bool = False) -> Iterator[None]:
        """Serialise writers of one local lake (ids must be assigned by one process at a time).
        Without `wait`, a held lock is an error (ingest); with it, this process waits (planning
        from several array-job tasks at once: the first plans, the others find the plan).

        Object stores offer no lock: this warns (NoLockWarning) and goes on unlocked. Run one
        ingest at a time and one planner per job (`soclake plan` before the array job); shards
        need no lock, since each shard's objects are named by (job, fingerprint, shard), their
        bytes are a function of the plan, and its manifest object, written last, commits it."""
        if not storage.is_local(self.fs):
            if not storage.is_in_memory(self.fs):  # memory:// is seen by this process only
                warnings.warn(NoLockWarning(
                    f"{self.uri}: an object store has no writer lock; run one ingest at a time and one "
                    f"planner per job (e.g. `soclake plan` once before an array job)"), stacklevel=3)
            yield
            return
        with open(self.path(".lock"), "a+") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise SoclakeError(f"another soclake process is writing to {self.uri}; "
                                   "wait for it to finish") from None
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ------------------------------------------------------------------ reads
    def read_range(self, relpath: str, offset: int, length: int) -> bytes:
        return storage.read_range(self.fs, self.path(relpath), offset, length)

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        """The operator's DuckDB connection: one view per table and every view of sql/*.sql,
        with DuckDB's full power (COPY TO anywhere: exports). SQL from anyone else goes to
        safe_connection."""
        return self._connection("_con", lambda sources: self._define_views(sandbox.connect(), sources))

    @property
    def safe_con(self) -> duckdb.DuckDBPyConnection:
        """This lake's sandboxed connection (safe_connection), kept open: the planner defines the
        spec's [pool] where predicate on it."""
        return self._connection("_safe_con", self.safe_connection)

    def _connection(self, attr: str, make) -> duckdb.DuckDBPyConnection:
        """The open connection `attr` ("_con", "_safe_con"), brought up to date if a table got its
        first part meanwhile (only this one: another thread may be using the other), or a new
        one from make(sources) when none is open (or the update found a part it cannot read:
        making it again raises the named error)."""
        if getattr(self, attr) is not None and self._first_parts_appeared(attr):
            self._update_views((attr,))
        if getattr(self, attr) is None:
            sources = self._table_sources()
            setattr(self, attr, make(sources))
            self._sources[attr] = sources
        return getattr(self, attr)

    @property
    def read_con(self) -> duckdb.DuckDBPyConnection:
        """The connection soclake's own reads of the lake's tables use: the operator's if it is
        open, else the sandboxed one (both have every view). A run then defines its views once,
        on the connection its planner needs anyway, not twice (about 0.2 s each)."""
        return self.con if self._con is not None else self.safe_con

    def read(self, sql: str, params: Sequence[Any] | dict | None = None) -> pa.Table:
        """soclake's own query of the lake's tables (read_con) as Arrow; users' SQL goes through
        query (theirs) or safe_query (anyone's)."""
        return self.read_con.sql(sql, params=params).to_arrow_table()

    def safe_connection(self, sources: dict[str, TableSource] | None = None) -> duckdb.DuckDBPyConnection:
        """A new connection with the same views that reads nothing but this lake's files: no
        other file, URL, extension, setting or SET (soclake.lake.sandbox). For SQL that is not
        the operator's own: spec predicates, `soclake sql --safe`, any remote console; run
        untrusted queries through safe_query, which also refuses anything but one SELECT."""
        con = self._define_views(sandbox.sandboxed(), sources or self._table_sources())
        return sandbox.lock_down(con, [self.uri_of(self.root)])

    def safe_query(self, sql: str, what: str = "the query") -> pa.Table:
        """An untrusted query on the sandboxed connection: one SELECT, refused functions and
        files outside the lake are clear errors that echo nothing they read."""
        sandbox.check_query(self.safe_con, sql, what)
        try:
            return self.safe_con.sql(sql).to_arrow_table()
        except duckdb.Error as e:
            raise sandbox.explain(e, what) from None

    def _invalidate(self) -> None:
        for con in (self._con, self._safe_con):
            if con is not None:
                con.close()
        self._con = self._safe_con = None
        self._sources.clear()

    def refresh(self) -> None:
        """Re-read the table folders after another process wrote to the lake. A local lake
        notices new parts by itself; on an object store, listings are cached and a table that
        had no parts when the views were defined stays empty until refresh()."""
        self.fs.invalidate_cache()  # object-store listings are cached per filesystem instance
        self._update_views()

    def _update_views(self, attrs: tuple[str, ...] = ("_con", "_safe_con")) -> None:
        """Bring open connections up to date with the table folders. Only the views of tables
        whose parts changed are defined again (reading those parts' footers, so a damaged one
        is named with its fix); the views of sql/*.sql, about 0.2 s to define per connection,
        stay as they are (DuckDB binds them again at every query)."""
        listing = None
        for attr in attrs:
            con = getattr(self, attr)
            if con is None:
                continue
            listing = listing or self._table_sources()
            old = self._sources.get(attr, {})
            try:
                for table, now in listing.items():
                    if now != old.get(table):
                        self._define_table(con, table, now.source)
            except SoclakeError:
                self._sources.pop(attr, None)
                con.close()  # the next use defines the views again and raises the error there
                setattr(self, attr, None)
                continue
            self._sources[attr] = listing

    def _first_parts_appeared(self, attr: str) -> bool:
        """On a local lake: has a table that was empty when the connection defined its views
        got parts since (from another process)? Views over a folder see every later part by
        themselves; an empty table's view must be defined again. A handful of stat calls; on an
        object store, where each would be a request, refresh() does it (see its docstring)."""
        if not storage.is_local(self.fs):
            return False
        for table, now in self._sources[attr].items():
            if now.source is None:
                with contextlib.suppress(OSError), os.scandir(self.table_dir(table)) as entries:
                    if any(e.name.endswith(".parquet") for e in entries):
                        return True
        return False

    def _table_sources(self) -> dict[str, TableSource]:
        sources: dict[str, TableSource] = {}
        for table in table_names():
            all_parts = self.table_parts(table)
            parts = [p for p in all_parts if p not in self._excluded]
            source = None if not parts else \
                sql_string(self.uri_of(storage.join(self.table_dir(table), "*.parquet"))) \
                if len(parts) == len(all_parts) else sql_list([self.uri_of(p) for p in parts])
            sources[table] = TableSource(source, tuple(parts))
        return sources

    def _define_table(self, con: duckdb.DuckDBPyConnection, table: str, source: str | None) -> None:
        """(Re)define one table's view (a view takes no parameters: the table name is from the
        schema files, the paths quoted literals)."""
        if source is None:
            con.register(f"_empty_{table}", table_schema(table).empty_table())
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM _empty_{table}")
            return
        try:
            con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({source}, union_by_name=true)")
            present = {r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()}
            if set(table_schema(table).names) - present:
                # every part predates a column of the schema: it reads as NULL of the schema's type
                con.register(f"_empty_{table}", table_schema(table).empty_table())
                con.execute(f"CREATE OR REPLACE VIEW {table} AS SELECT * FROM read_parquet({source}, "
                            f"union_by_name=true) UNION ALL BY NAME SELECT * FROM _empty_{table}")
        except duckdb.Error as e:  # DuckDB reads every part's footer here
            raise damaged_table(self.uri, table, e) from None

    def _define_views(self, con: duckdb.DuckDBPyConnection, sources: dict[str, TableSource]) -> duckdb.DuckDBPyConnection:
        if not storage.is_local(self.fs):
            con.register_filesystem(self.fs)
        # DuckDB binds a view when it is created and again at every query: the views of
        # sql/*.sql are defined over empty tables of the schemas (binding one over Parquet
        # would read every part's footer, per view), then the tables' views are pointed at
        # their parts
        for table in sources:
            self._define_table(con, table, None)
        con.register("_coco_vocabulary", pa.Table.from_pylist(coco_categories()))
        lvis = lvis_names()
        con.register("_lvis_vocabulary", pa.table({"vocab_id": list(range(1, len(lvis) + 1)), "name": lvis}))
        con.register("_user_vocabulary", pa.table({"vocab_id": pa.array([], pa.int64()), "name": pa.array([], pa.string()),
                                                   "is_primary": pa.array([], pa.bool_())}))
        for sql_file in sorted(data_dir("sql").glob("*.sql")):
            con.execute(sql_file.read_text())
        try:
            for table, now in sources.items():
                if now.source is not None:
                    self._define_table(con, table, now.source)
        except SoclakeError:
            con.close()
            raise
        return con

    def exclude_parts(self, parts: Iterable[str]) -> None:
        """Read the lake as if these part files (absolute paths) were not there: `soclake verify`
        checks the rest of a lake whose damaged parts it has found."""
        self._excluded |= set(parts)
        self._invalidate()

    def query(self, sql: str, params: Sequence[Any] | dict | None = None) -> pa.Table:
        """Run SQL against the lake's views and return the whole result as Arrow."""
        return self.con.sql(sql, params=params).to_arrow_table()

    def views(self) -> list[str]:
        rows = self.read_con.execute("SELECT view_name FROM duckdb_views() WHERE NOT internal AND view_name NOT LIKE '\\_%' ESCAPE '\\' ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def filter_names(self) -> list[str]:
        return [v for v in self.views() if v.startswith("filter_")]

    def check_filter(self, name: str) -> str:
        """Validate a quality-filter view name (filter_0 ... filter_4); unknown names are errors."""
        names = self.filter_names()
        if name not in names:
            raise SoclakeError(f"unknown filter {name!r}; choose one of {', '.join(names)}")
        return name
