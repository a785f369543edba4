"""Every DuckDB connection soclake opens (connect: nothing is ever downloaded or auto-loaded),
and the sandbox that SQL from anyone but the operator runs in (lock_down, check_query): no file
outside the allowed folders, no network, no settings read or changed, one SELECT only.

DuckDB's own boundary (docs: "Securing DuckDB") does the confining: allowed_directories, then
enable_external_access=false, then lock_configuration=true. check_query refuses beforehand what
that boundary leaves open: statements other than SELECT, settings and dynamic SQL.
"""
from __future__ import annotations

import json
import os
import tempfile
import uuid
from typing import Any, Iterator

import duckdb

from soclake.errors import SoclakeError

CONFIG = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}
"""Every connection: a query naming an http URL or a file format must not download httpfs."""

REFUSED_FUNCTIONS = frozenset({
    "current_setting", "duckdb_settings",              # settings: paths, limits
    "duckdb_secrets", "which_secret",                  # credentials
    "duckdb_extensions", "duckdb_temporary_files",
    "query", "query_table", "json_execute_serialized_sql",  # SQL run from a string escapes this check
    "getenv", "getvariable",
})
"""Functions a sandboxed query may not call (matched on the parsed query, any schema)."""


def connect(config: dict[str, Any] | None = None) -> duckdb.DuckDBPyConnection:
    """A new in-memory DuckDB connection that never installs or auto-loads an extension."""
    return duckdb.connect(config={**CONFIG, **(config or {})})


def private_temp_directory() -> str:
    """A fresh temp_directory for one sandboxed connection: DuckDB creates it only if a query
    spills and removes it when the connection closes; nothing else can be read there."""
    return os.path.join(tempfile.gettempdir(), f"soclake-duckdb-{uuid.uuid4().hex[:12]}")


def sandboxed() -> duckdb.DuckDBPyConnection:
    """A new connection meant for SQL from anyone but the operator: define its views, then
    lock_down it before the first such query."""
    return connect({"temp_directory": private_temp_directory(), "allow_community_extensions": False,
                    "allow_persistent_secrets": False, "python_enable_replacements": False})


def lock_down(con: duckdb.DuckDBPyConnection, allowed: list[str]) -> duckdb.DuckDBPyConnection:
    """Confine `con` to the `allowed` folders for good: no other file, no URL, no extension, no
    further SET (views and registered tables defined before stay usable)."""
    folders = [a.rstrip("/") + "/" for a in allowed]
    con.execute("SET allowed_directories = $dirs", {"dirs": folders})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _functions(node: Any) -> Iterator[str]:
    """Names of every function (scalar or table) in a parsed query, without recursion."""
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            name = item.get("function_name")
            if isinstance(name, str):
                yield name.lower()
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def check_query(con: duckdb.DuckDBPyConnection, sql: str, what: str) -> None:
    """Refuse anything but one SELECT (a COPY, ATTACH, SET, INSTALL ... never reaches DuckDB),
    and any call of REFUSED_FUNCTIONS. `what` names the input in the error."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise SoclakeError(f"{what} is not valid SQL: {_first_line(e)}") from None
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        kinds = ", ".join(s.type.name for s in statements) or "nothing"
        raise SoclakeError(f"{what} must be one SELECT query (got {kinds}); statements that write files, attach "
                           "databases, load extensions or change settings are refused here")
    tree = json.loads(con.execute("SELECT json_serialize_sql($q)", {"q": sql}).fetchall()[0][0])
    if tree.get("error"):
        raise SoclakeError(f"{what} cannot be checked: {tree.get('error_message', 'unparsable')}")
    refused = sorted(set(_functions(tree)) & REFUSED_FUNCTIONS)
    if refused:
        raise SoclakeError(f"{what} calls {', '.join(refused)}, which the SQL sandbox refuses (settings, secrets "
                           "and SQL built from strings stay out of reach)")


def explain(e: duckdb.Error, what: str) -> SoclakeError:
    """A sandboxed query's DuckDB error as a user error. A refused file or URL says so without
    echoing anything read (DuckDB's permission errors name the path, never its content)."""
    if isinstance(e, duckdb.PermissionException):
        return SoclakeError(f"{what} was refused by the SQL sandbox: it may read only the lake's own tables and "
                            f"files (no other file, URL, extension or setting): {_first_line(e)}")
    return SoclakeError(f"{what} failed: {_first_line(e)}")


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
