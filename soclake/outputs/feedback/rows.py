"""Checking one feedback entry: its category or image, and its values (finite, in range).
A row that fails becomes a Bad with a rejects reason and a detail naming the fix.
"""
from __future__ import annotations

import math

from soclake.outputs.feedback.files import ALIASES, AP_METRICS, Entry
from soclake.vocab import canonical_category


class Bad(Exception):
    """A row that cannot be loaded: becomes a rejects row (reason, detail)."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason, self.detail = reason, detail


def get(fields: dict, name: str):
    """The first non-empty spelling of a field (ALIASES), else None."""
    for alias in ALIASES[name]:
        v = fields.get(alias)
        if v is not None and v != "":
            return v
    return None


def number(v, what: str) -> float:
    if isinstance(v, bool):
        raise Bad("bad_value", f"{what} is {v!r}, not a number")
    try:
        x = float(v)
    except (TypeError, ValueError):
        raise Bad("bad_value", f"{what} is {v!r}, not a number") from None
    if not math.isfinite(x):
        raise Bad("bad_value", f"{what} is {v!r}; give a finite number or leave the category out")
    return x


def category_values(e: Entry, names: dict[str, int], ids: set[int],
                    seen: dict[int, int]) -> tuple[int, str | None, dict]:
    """(category_id, name as given, {metric: value}) of one AP entry."""
    if "_malformed" in e.fields:
        raise Bad("bad_value", f"not an object: {e.fields['_malformed']}")
    name, cid = get(e.fields, "name"), get(e.fields, "id")
    if name is None and cid is None:
        raise Bad("missing_field", "no category: give its name (category / name) or its lake id (id)")
    if name is not None:  # names win: an evaluation's own ids need not be lake ids
        cid = names.get(canonical_category(name))
        if cid is None:
            raise Bad("unmatched_category", f"the lake has no category {name!r}; fix the spelling or ingest it")
    else:
        try:
            cid = None if isinstance(cid, bool) else int(cid)
        except (TypeError, ValueError):
            cid = None
        if cid not in ids:
            raise Bad("unmatched_category", f"the lake has no category id {get(e.fields, 'id')!r}")
    if cid in seen:
        raise Bad("duplicate", f"category {name or cid!r} was already given in row {seen[cid]}")
    values = {}
    for metric in AP_METRICS:
        v = get(e.fields, metric)
        if v is None:
            if metric == "ap":
                raise Bad("missing_field", "no AP (score / ap); null means the evaluation had no ground truth "
                                           "for it: leave the category out")
            continue
        x = number(v, metric)
        hi = 100.0 if e.percent else 1.0
        if not 0.0 <= x <= hi:
            raise Bad("bad_value", f"{metric} = {v!r} is outside [0, {hi:g}]"
                      + ("; AP is a fraction: divide percentages by 100" if hi == 1.0 and 1 < x <= 100 else ""))
        values[metric] = x / hi if e.percent else x
    seen[cid] = e.row
    return cid, (str(name) if name is not None else None), values


def _image_id(raw) -> int:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, str) and raw.strip().isdigit():
        raw = int(raw.strip())
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 <= raw < 2 ** 63:
        raise Bad("bad_value", f"image id {str(raw)[:40]!r} is not a non-negative 64-bit integer")
    return raw


def loss_row(e: Entry, job: str | None) -> dict:
    """job, fingerprint (None: not given), image_id and loss of one per-image entry."""
    if "_malformed" in e.fields:
        raise Bad("bad_value", f"not an object: {e.fields['_malformed']}")
    image_id, key = get(e.fields, "image_id"), get(e.fields, "key")
    if image_id is None and key is None:
        raise Bad("missing_field", "no image_id (or key)")
    image_id = _image_id(image_id if image_id is not None else key)
    v = get(e.fields, "loss")
    if v is None:
        raise Bad("missing_field", "no loss")
    loss = number(v, "loss")
    if loss < 0:
        raise Bad("bad_value", f"loss = {v!r} is negative; losses must be >= 0 (they are scaled by the largest)")
    job = get(e.fields, "job") or job
    if not job:
        raise Bad("missing_field", "no job: add a job column or pass --job")
    fingerprint = get(e.fields, "fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise Bad("bad_value", f"fingerprint {str(fingerprint)[:40]!r} is not a string (see `soclake jobs`)")
    return {"job": str(job), "fingerprint": fingerprint, "image_id": image_id, "value": loss}
