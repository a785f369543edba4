"""JSON and TOML documents that users and hosts hand soclake (job specs, mix manifests,
feedback files, shard indexes), parsed with limits: nesting deeper than MAX_DEPTH and integers
beyond 64 bits are a clean DocumentError naming the document, never a RecursionError or an
overflow further on.
"""
from __future__ import annotations

import json
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from soclake.errors import SoclakeError

MAX_DEPTH = 64
"""Nesting levels of arrays and tables; soclake's own documents use fewer than 8."""
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 63 - 1


class DocumentError(SoclakeError, ValueError):
    """A document that parses badly or breaks a limit (a ValueError too, as parse errors are)."""


def _path(keys: list) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in keys).lstrip(".") or "the top level"


def check(value: Any, what: str) -> Any:
    """`value` unchanged if it nests at most MAX_DEPTH levels and holds only 64-bit integers."""
    stack = [(value, [])]
    while stack:
        item, keys = stack.pop()
        if isinstance(item, bool):
            continue
        if isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
            raise DocumentError(f"{what}: {_path(keys)} = {str(item)[:40]}... is beyond a 64-bit integer")
        if isinstance(item, (dict, list)):
            if len(keys) >= MAX_DEPTH:
                raise DocumentError(f"{what} nests deeper than {MAX_DEPTH} levels (at {_path(keys[:8])}...)")
            children = item.items() if isinstance(item, dict) else enumerate(item)
            stack.extend((v, keys + [k]) for k, v in children)
    return value


def parse_json(data: str | bytes, what: str, walk: bool = True) -> Any:
    """A JSON document within the limits. Without `walk` only the parser's own recursion is
    guarded (for large documents whose reader checks the values it uses: shard indexes)."""
    try:
        value = json.loads(data)
    except RecursionError:
        raise DocumentError(f"{what} nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:  # syntax, or an integer of more than 4300 digits
        raise DocumentError(f"{what} is not valid JSON: {str(e)[:200]}") from None
    return check(value, what) if walk else value


def parse_toml(text: str, what: str) -> dict:
    """A TOML document within the limits (tomllib's syntax errors are ValueErrors)."""
    try:
        return check(tomllib.loads(text), what)
    except RecursionError:
        raise DocumentError(f"{what} nests deeper than {MAX_DEPTH} levels") from None
