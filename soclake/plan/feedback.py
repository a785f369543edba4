"""What a plan reads of a loaded feedback (soclake feedback FILE --name N): its per-category AP,
and the digest of those numbers that goes into the fingerprint of a job sampling by them."""
from __future__ import annotations

import hashlib

from soclake.errors import SoclakeError
from soclake.lake import Lake


def check_name(lake: Lake, name: str) -> None:
    known = [r[0] for r in lake.con.execute("SELECT name FROM feedback_loads").fetchall()]
    if name not in known:
        raise SoclakeError(f"[sampling] feedback = {name!r}: the lake has no feedback of that name "
                           f"(known: {', '.join(known) or 'none'}); load it with "
                           f"`soclake feedback FILE --name {name} --lake {lake.uri}`")


def category_ap(lake: Lake, name: str) -> list[dict]:
    """Per category of feedback `name`: category_id and AP (sql view feedback_category_ap)."""
    check_name(lake, name)
    return lake.query("SELECT category_id, ap, ap_small, ap_medium, ap_large FROM feedback_category_ap "
                      "WHERE name = $n ORDER BY category_id", {"n": name}).to_pylist()


def digest(lake: Lake, name: str) -> str:
    """Hash of what a job reads from feedback `name` (its per-category AP), for fingerprints:
    a new load with other numbers changes it; reloading the same numbers does not."""
    h = hashlib.sha256(name.encode() + b"\0")
    for r in category_ap(lake, name):
        h.update(" ".join("-" if v is None else f"{v:.12g}" for v in r.values()).encode() + b"\n")
    return h.hexdigest()
