"""Loads table schemas from schemas/*.json into pyarrow schemas; code never repeats columns.

Types are JSON: a name ("string", "int32", ...), {"list": T} or {"struct": [{name, type}, ...]}.
"""
from __future__ import annotations

import json
from functools import lru_cache
from typing import Any, Iterable

import pyarrow as pa

from soclake.resources import data_dir

_SCALARS = {
    "string": pa.string(), "bool": pa.bool_(), "binary": pa.binary(),
    "int8": pa.int8(), "int16": pa.int16(), "int32": pa.int32(), "int64": pa.int64(),
    "uint8": pa.uint8(), "uint16": pa.uint16(), "uint32": pa.uint32(), "uint64": pa.uint64(),
    "float32": pa.float32(), "float64": pa.float64(), "timestamp": pa.timestamp("us", tz="UTC"),
}


def arrow_type(spec: Any) -> pa.DataType:
    if isinstance(spec, str):
        return _SCALARS[spec]
    if "list" in spec:
        return pa.list_(arrow_type(spec["list"]))
    if "struct" in spec:
        return pa.struct([pa.field(f["name"], arrow_type(f["type"])) for f in spec["struct"]])
    raise ValueError(f"unknown schema type {spec!r}")


@lru_cache(maxsize=None)
def table_schema(table: str) -> pa.Schema:
    """The pyarrow schema of lake table `table`, from schemas/<table>.json."""
    doc = json.loads((data_dir("schemas") / f"{table}.json").read_text())
    fields = [pa.field(c["name"], arrow_type(c["type"]), nullable=c.get("nullable", True),
                       metadata={"doc": c.get("doc", "")}) for c in doc["columns"]]
    return pa.schema(fields, metadata={"table": table, "doc": doc.get("doc", "")})


@lru_cache(maxsize=None)
def table_names() -> tuple[str, ...]:
    """Lake tables: the schema files that describe a table (job_spec.json describes a spec)."""
    return tuple(sorted(p.stem for p in data_dir("schemas").glob("*.json") if "table" in json.loads(p.read_text())))


def to_table(table: str, rows: Iterable[dict]) -> pa.Table:
    """Build a pyarrow table of lake table `table` from row dicts (missing keys become null)."""
    schema = table_schema(table)
    rows = list(rows)
    columns = {f.name: [r.get(f.name) for r in rows] for f in schema}
    return pa.Table.from_pydict(columns, schema=schema)
