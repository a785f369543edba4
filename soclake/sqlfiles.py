"""Parameterised queries kept in sql/queries/*.sql, loaded by name.

Values travel as DuckDB parameters; only checked identifiers (view names) and the job
spec's own SQL predicate are substituted into the text.
"""
from __future__ import annotations

from functools import lru_cache

from soclake.resources import data_dir


@lru_cache(maxsize=None)
def _text(name: str) -> str:
    return (data_dir("sql") / "queries" / f"{name}.sql").read_text()


def query(name: str, **substitutions: str) -> str:
    text = _text(name)
    for key, value in substitutions.items():
        text = text.replace("{" + key + "}", value)
    return text
