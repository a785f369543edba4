"""Parameterised queries kept in sql/queries/*.sql, loaded by name, and the one way to put a
string into SQL text where DuckDB takes no parameter (file paths of COPY TO and of views).

Values travel as DuckDB parameters; only checked identifiers (view names), quoted literals
(sql_string) and the job spec's own SQL predicate (one predicate, checked by the planner)
are substituted into the text.
"""
from __future__ import annotations

from functools import lru_cache

from soclake.resources import data_dir


@lru_cache(maxsize=None)
def _text(name: str) -> str:
    return (data_dir("sql") / "queries" / f"{name}.sql").read_text()


def sql_string(value: str) -> str:
    """A SQL string literal: for the few places DuckDB takes no parameter (COPY ... TO, a view's
    read_parquet path)."""
    return "'" + value.replace("'", "''") + "'"


def sql_list(values: list[str]) -> str:
    """A VARCHAR[] literal of string literals (a view's list of parts, a macro's list argument)."""
    return "[" + ", ".join(sql_string(v) for v in values) + "]::VARCHAR[]"


def query(name: str, **substitutions: str) -> str:
    text = _text(name)
    for key, value in substitutions.items():
        text = text.replace("{" + key + "}", value)
    return text
