"""The [variations] section of a compose spec as numbers: which variants each base image has,
how groups map to image ids and shards, and the section's checks. Pure functions of the spec's
values, shared by the spec loader and the planner (plan/variations.py derives the variants)."""
from __future__ import annotations

import math

from soclake.errors import SoclakeError

FACTORS = ("size", "position", "existence", "count")
# named positions: the target's centre moves to the middle of that third (None: that axis stays)
POSITIONS = {"left": (1 / 6, None), "right": (5 / 6, None), "top": (None, 1 / 6), "bottom": (None, 5 / 6),
             "center": (0.5, 0.5)}


# ---------------------------------------------------------------------------- numbering
def variants(spec) -> list[tuple[str, str]]:
    """(factor, value) of every variant of a base, in image order after the base."""
    v = spec["variations"]
    out: list[tuple[str, str]] = []
    for factor in v["factors"]:
        if factor == "existence":
            out.append((factor, "removed"))
        else:
            out += [(factor, f"{x:g}" if factor == "size" else str(x)) for x in v[factor]]
    return out


def group_size(spec) -> int:
    """Images per base: the base and its variants (1 without variations)."""
    return 1 + len(variants(spec))


def image_id(spec, base: int, variant: int) -> int:
    """Image ids leave room for every variant, so a skipped variant never moves another."""
    return base * group_size(spec) + variant


def groups_per_shard(spec) -> int:
    return max(1, spec["job"]["shard_size"] // group_size(spec))


def shard_of(spec, base: int) -> int:
    """A base and its variants always share a shard (so a group is committed together)."""
    return base // groups_per_shard(spec)


def shard_count(spec) -> int:
    return -(-spec["job"]["images"] // groups_per_shard(spec))


# ---------------------------------------------------------------------------- spec checks
def parse_position(value: str) -> tuple[str, float | None, float | None]:
    """("named", fx, fy) for a named third, ("offset", dx, dy) for "DX,DY" in canvas fractions."""
    name = value.strip().lower()
    if name in POSITIONS:
        return ("named", *POSITIONS[name])
    parts = name.split(",")
    try:
        dx, dy = (float(p) for p in parts)
    except ValueError:
        raise ValueError(value) from None
    if not (math.isfinite(dx) and math.isfinite(dy)):
        raise ValueError(value)
    return "offset", dx, dy


def check(values: dict, where: str) -> None:
    """Validate the [variations] section of a resolved spec (called by jobspec)."""
    v = values["variations"]
    unknown = [f for f in v["factors"] if f not in FACTORS]
    if unknown or len(set(v["factors"])) != len(v["factors"]):
        raise SoclakeError(f"{where}: [variations] factors must be distinct values of {list(FACTORS)}, "
                           f"got {v['factors']}")
    for factor in ("size", "position", "count"):
        if factor in v["factors"] and not v[factor]:
            raise SoclakeError(f"{where}: [variations] factors lists {factor!r} but [variations] {factor} is empty")
    if any(not (0 < f <= 100) for f in v["size"]):
        raise SoclakeError(f"{where}: [variations] size factors must be in (0, 100], got {v['size']}")
    if any(k < 1 for k in v["count"]):
        raise SoclakeError(f"{where}: [variations] count values must be >= 1 (instances added), got {v['count']}")
    for p in v["position"]:
        try:
            parse_position(p)
        except ValueError:
            raise SoclakeError(f"{where}: [variations] position {p!r} is neither one of {', '.join(POSITIONS)} "
                               "nor an offset \"DX,DY\" in fractions of the canvas, e.g. \"0.25,-0.1\"") from None
