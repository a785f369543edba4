"""JSON as the app sends it: every value a DuckDB or Arrow result holds (dates, decimals, bytes,
nested lists and structs), non-finite floats as strings, and integers beyond 2^53 as strings,
so that a browser's JSON.parse reads every value exactly."""
from __future__ import annotations

import datetime
import decimal
import json
import math
import uuid
from typing import Any

JS_SAFE = 2 ** 53


def plain(value: Any) -> Any:
    """A JSON-ready copy of `value`."""
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return value if -JS_SAFE < value < JS_SAFE else str(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return str(bytes(value))  # as `soclake sql --format json` writes them
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value() and abs(value) < JS_SAFE:
        return int(value)  # DuckDB's sums of integers (HUGEINT) arrive as decimals
    if isinstance(value, (datetime.date, datetime.time, datetime.timedelta, decimal.Decimal, uuid.UUID)):
        return str(value)
    return str(value)


def dumps(value: Any) -> bytes:
    return json.dumps(plain(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
