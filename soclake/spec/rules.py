"""Value rules of spec files (job specs, mix manifests): one checker for every rule type of the
schemas (int, float, bool, string, name, choice, range, lists, tables), public so every kind of
spec checks its keys the same way."""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from soclake import documents
from soclake.errors import SoclakeError

NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
"""Job, feedback and source names: they become folder and file names."""


def check_value(section: str, key: str, rule: dict, value: Any, where: str) -> Any:
    """`value` of [section] key checked against its schema rule and normalised (ints given for
    floats become floats); anything else is a SoclakeError naming `where`, the key and the rule."""
    kind, label = rule["type"], f"{where}: [{section}] {key}"

    def bad(expected: str):
        return SoclakeError(f"{label} must be {expected}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
        if not documents.INT_MIN <= value <= documents.INT_MAX:
            raise bad("a 64-bit integer")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind in ("string", "name"):
        if not isinstance(value, str):
            raise bad("a string")
        if kind == "name" and not NAME.match(value):
            raise bad("a name of letters, digits, '-' and '_'")
    elif kind == "choice":
        if value not in rule["choices"]:
            raise bad(f"one of {rule['choices']}")
    elif kind == "range":
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in value) and value[0] <= value[1]):
            raise bad("[min, max] integers with min <= max")
    elif kind.startswith("list["):
        item = {"string": str, "float": (int, float), "int": int}[kind[5:-1]]
        if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value) \
                or kind == "list[float]" and not all(math.isfinite(v) for v in value):
            raise bad(f"a list of {'finite numbers' if kind == 'list[float]' else kind[5:-1]}")
        if "length" in rule and len(value) != rule["length"]:
            raise bad(f"a list of {rule['length']} values")
        value = [float(v) for v in value] if kind == "list[float]" else list(value)
    elif kind == "table[int]":
        if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in value.values()):
            raise bad("a table of non-negative integers")
    elif kind == "table[float]":
        if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                                  and math.isfinite(v) for v in value.values()):
            raise bad("a table of positive numbers, each finite")
        value = {k: float(v) for k, v in value.items()}
    elif kind == "choice|float":
        if isinstance(value, str):
            if value not in rule["choices"]:
                raise bad(f"one of {rule['choices']} or a number")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"one of {rule['choices']} or a finite number")
        value = float(value)
    lo, hi = rule.get("min"), rule.get("max")
    checked = value if kind in ("range", "list[int]", "list[float]") else \
        [value] if kind in ("int", "float", "choice|float") else []
    for v in checked:
        if lo is not None and v < lo or hi is not None and v > hi:
            bounds = f"[{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
            raise SoclakeError(f"{label} = {value!r} is out of range (each value must be {bounds})")
    return value


def read_toml(path: str, what: str) -> dict:
    """A TOML file's table; a missing or malformed file is an error naming it."""
    p = Path(path)
    if not p.is_file():
        raise SoclakeError(f"{what} {path!r} does not exist")
    try:
        return parse_toml(p.read_text(), f"{what} {path}")
    except documents.DocumentError:
        raise
    except (ValueError, UnicodeDecodeError) as e:
        raise SoclakeError(f"{what} {path} is not valid TOML: {e}") from None


def parse_toml(text: str, what: str = "TOML") -> dict:
    """TOML text as a table (tomllib's errors are ValueErrors; nesting and integers beyond 64
    bits are DocumentErrors, ValueErrors too)."""
    return documents.parse_toml(text, what)
