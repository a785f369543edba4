"""Fault injection for the reliability tests: named points in the commit path where a test can
make this process die (SIGKILL, as a preempted machine would) or fail an I/O call.

Set SOCLAKE_FAULT to `POINT:N[:ACTION]` before starting soclake: the N-th time this process
passes POINT it performs ACTION. Actions: `kill` (default, SIGKILL to itself), `enospc`
(OSError "No space left on device"), `erofs` (OSError "Read-only file system").

Points, in the order a shard passes them:
  render       after each image rendered (compose) or sample processed (stages)
  write        in the middle of writing a file (half its bytes are in the temporary file)
  tar-written  the shard file is in place, its table parts are not
  parts-written  its table parts are in place, its manifest part (the commit) is not
  committed    the manifest part is in place
  export       an export has a temporary file (and its scratch folder) half written

Unset (always, outside tests), a point costs one dictionary lookup.
"""
from __future__ import annotations

import errno
import os
import signal

_ACTIONS = {"enospc": errno.ENOSPC, "erofs": errno.EROFS}
_hits: dict[str, int] = {}


def _parse(value: str) -> tuple[str, int, str]:
    name, _, rest = value.partition(":")
    count, _, action = rest.partition(":")
    return name, int(count or 1), action or "kill"


_SPEC = _parse(os.environ["SOCLAKE_FAULT"]) if os.environ.get("SOCLAKE_FAULT") else None


def point(name: str) -> None:
    """Pass a named point; performs the configured fault on its N-th pass."""
    if _SPEC is None or _SPEC[0] != name:
        return
    _hits[name] = _hits.get(name, 0) + 1
    if _hits[name] != _SPEC[1]:
        return
    action = _SPEC[2]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    code = _ACTIONS[action]
    raise OSError(code, os.strerror(code))
