"""Exceptions raised to users, and the phrases their messages share. Each message names the
input at fault and the fix."""
import difflib
import errno

# Errors of the storage itself (disk full, quota, read-only): every further write fails too,
# so a run stops at the first one instead of failing shard after shard.
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS})


def is_storage_error(e: BaseException) -> bool:
    return isinstance(e, OSError) and e.errno in STORAGE_ERRNOS


class SoclakeError(Exception):
    """An error a user can act on: bad arguments, a missing source, an unknown name."""


class RejectedItem(Exception):
    """An input item cannot be ingested; becomes a row in the rejects table, never a crash.

    `reason` is a short machine-friendly code, `detail` a sentence for a person.
    """

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class NoLockWarning(UserWarning):
    """A lake on an object store cannot lock out concurrent writers; soclake goes on unlocked."""


def did_you_mean(name: str, known: list[str], what: str = "") -> str:
    """The end of an error about an unknown name: closest matches, then what there is, e.g.
    "; did you mean 'demo'? (known: demo, relit)"."""
    if not known:
        return f" (there are no {what or 'names'} yet)"
    close = difflib.get_close_matches(str(name), known, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    shown = ", ".join(known[:20]) + (f", ... ({len(known)} in all)" if len(known) > 20 else "")
    return f"{hint} (known: {shown})"
