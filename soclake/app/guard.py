"""What every path parameter of the app must be before it reaches the lake: job names,
fingerprints, sample keys, segment ids and member names by pattern, and lake files as plain
relative paths whose real location (links resolved) stays inside the lake root."""
from __future__ import annotations

import os
import re

from soclake import storage
from soclake.lake import Lake
from soclake.spec.rules import NAME


class AppError(Exception):
    """An answer other than 200: `status` (400 bad input, 404 unknown name, 408 time limit) and
    a message that names the input and the fix, sent as {"error": message}."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status, self.message = status, message


def bad(message: str) -> AppError:
    return AppError(400, message)


def not_found(message: str) -> AppError:
    return AppError(404, message)


FINGERPRINT = re.compile(r"^[0-9a-f]{8,64}$")
SEGMENT_ID = re.compile(r"^[0-9a-f]{8,64}$")
KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MEMBER = re.compile(r"^[a-z0-9]{1,16}(\.[a-z0-9]{1,16}){0,3}$")


def _match(pattern: re.Pattern, value: str, what: str, form: str) -> str:
    if not isinstance(value, str) or not pattern.match(value):
        raise bad(f"{what} {str(value)[:80]!r} is not valid: it must be {form}")
    return value


def job_name(value: str) -> str:
    return _match(NAME, value, "job name", "letters, digits, '-' and '_'")


def fingerprint(value: str) -> str:
    return _match(FINGERPRINT, value, "fingerprint", "lower-case hex digits (see /api/jobs)")


def segment_id(value: str) -> str:
    return _match(SEGMENT_ID, value, "segment id", "lower-case hex digits (the segments table's segment_id)")


def sample_key(value: str) -> str:
    return _match(KEY, value, "sample key", "letters, digits, '-' and '_' (e.g. 000000042)")


def member(value: str) -> str:
    return _match(MEMBER, value, "member", "a sample member's extension such as jpg, pan.png or json")


def lake_file(lake: Lake, relpath: str) -> str:
    """The path of a file the lake's own tables name (a pack, a shard), refused unless it is a
    plain relative path that stays inside the lake, links resolved: a row naming '../x' or a
    link planted in the lake never makes the app read outside it."""
    parts = relpath.split("/") if isinstance(relpath, str) else []
    if (not parts or any(p in ("", ".", "..") for p in parts) or "\\" in relpath or "\x00" in relpath
            or "://" in relpath):
        raise not_found(f"{str(relpath)[:200]!r} is not a path inside the lake; the table row naming it is "
                        "damaged: check the lake with `soclake verify`")
    path = lake.path(relpath)
    if storage.is_local(lake.fs):
        root = os.path.realpath(lake.root)
        real = os.path.realpath(path)
        if os.path.commonpath([real, root]) != root or not os.path.isfile(real):
            raise not_found(f"{relpath[:200]} is not a file inside the lake (missing, or a link out of it); "
                            "check the lake with `soclake verify`")
    return path
