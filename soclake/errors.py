"""Exceptions raised to users. Each message names the input at fault and the fix."""


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
