"""`soclake audit --suggest OUT.toml`: the compose job that fills the gaps the audit found.

Pool mode: thin categories and LVIS-rare/common ones (the planner's bucket rule) get [sampling]
quotas up to the fair share of object slots; over-represented ones are capped by the sampling
temperature (the largest t whose biggest category share stays within the over-represented
bound); near-duplicate copies are left out of [pool]. With a composed job: a follow-up job of
the same spec whose quotas bring under-represented categories to the fair share of the combined
dataset and whose [pool] leaves out the over-represented ones. Quotas only name categories with
eligible segments, as the planner counts them, so the spec plans.
"""
from __future__ import annotations

import math
import time

import numpy as np

from soclake import storage
from soclake.errors import SoclakeError
from soclake.lake import Lake
from soclake.outputs.audit.numbers import job_spec_values
from soclake.plan import pool
from soclake.spec.load import resolve
from soclake.spec.model import spec_schema
from soclake.spec.rules import parse_toml

DEFAULT_IMAGES = 1000
TEMPERATURES = np.round(np.arange(1.0, -0.001, -0.05), 2)  # searched from SOC's uniform segments (1) down
NO_COPIES = "near_duplicate IS NULL"  # a near-duplicate copy adds no new look


def suggest_spec(lake: Lake, result: dict, out: str, images: int | None = None, name: str | None = None) -> dict:
    """Write the gap-filling spec for the audit `result` (a job's when the audit had --job);
    return what it decided: quotas, temperature, boosted and capped categories, intended shares."""
    job = result.get("dataset", {}).get("job") or result.get("sampling", {}).get("job")
    factor = float(lake.query("SELECT over_represented_factor() AS f")["f"][0].as_py())
    if job:
        plan = _fill_job(lake, result, job, images, name, factor)
    else:
        plan = _fill_pool(lake, result, images, name, factor)
    text = _toml_document(plan)
    check = resolve(parse_toml(text), where=out)  # the file we write is a valid spec
    assert check["sampling"]["quotas"] == plan["values"]["sampling"]["quotas"]
    fs, path = storage.resolve(out)
    storage.write_bytes(fs, path, text.encode("utf-8"))
    return {k: v for k, v in plan.items() if k != "values"} | {"path": out, "spec": plan["values"]}


# ---------------------------------------------------------------------------- pool mode
def _fill_pool(lake: Lake, result: dict, images: int | None, name: str | None, factor: float) -> dict:
    images = images or DEFAULT_IMAGES
    values = {"job": {"name": name or "audit-fill", "images": images, "shard_size": min(images, 100), "seed": 0},
              "pool": {"filter": result["filter"]["name"], "where": NO_COPIES},
              "sampling": {"strategy": "temperature"}}
    spec = resolve(values)
    eligible = _eligible(lake, spec)
    if not eligible:
        raise SoclakeError(f"no segment is eligible under {result['filter']['name']}; nothing to suggest")
    slots = images * sum(spec["sampling"]["objects"]) / 2
    t = _temperature(np.array([e["n"] for e in eligible.values()], np.float64), factor)
    thin = {c["category"] for c in result["pool"]["categories"] if c["status"] == "thin"}
    over = {c["category"] for c in result["pool"]["categories"] if c["over_represented"]}
    boost = {n: ("thin" if n in thin else e["frequency"]) for n, e in eligible.items()
             if (n in thin or e["frequency"] in ("rare", "common")) and n not in over}
    fair = slots / len(eligible)
    quotas = _quotas(_shares(eligible, t), {n: fair for n in boost}, slots, _sure_slots(images, spec["sampling"]))
    values["sampling"].update(temperature=float(t), quotas=quotas)
    capped = sorted(over & set(eligible))
    return {"values": values, "temperature": float(t), "quotas": quotas, "boosted": boost, "capped": capped,
            "fair_share": 1 / len(eligible),
            "intended_share": _intended(eligible, t, quotas, slots),
            "uniform_share": _shares(eligible, 1.0),
            "why": [f"audited with {result['filter']['name']} ({result['filter']['why']})",
                    f"{len(eligible)} categories have eligible segments (near-duplicate copies left out)",
                    f"temperature {t:g}: the largest t at which no category takes more than {factor:g} x the "
                    f"fair share ({factor / len(eligible):.2%}) of the object slots",
                    f"quotas lift {len(quotas)} thin or LVIS-rare/common categories to the fair share "
                    f"(~{fair:.0f} of ~{slots:.0f} object slots each)"] + _missing_note(result)}


def _missing_note(result: dict) -> list[str]:
    """Vocabulary names without a segment: composing cannot make them; say so in the spec."""
    missing = result.get("vocabulary", {}).get("missing", [])
    if not missing:
        return []
    shown = ", ".join(missing[:20]) + (" ..." if len(missing) > 20 else "")
    return [f"{len(missing)} names of vocabulary {result['vocabulary']['name']} have no segment at all; no compose "
            f"job can fill them: ingest (or generate) cut-outs of them first ({shown})"]


# ---------------------------------------------------------------------------- job mode
def _fill_job(lake: Lake, result: dict, job: str, images: int | None, name: str | None, factor: float) -> dict:
    base = job_spec_values(lake, job)
    have = _dataset_instances(result)
    spec = resolve(base)
    eligible = _eligible(lake, spec)
    images = images or base["job"]["images"]
    slots = images * sum(base["sampling"]["objects"]) / 2
    done = sum(have.values())
    over = sorted(n for n in eligible if done and have.get(n, 0) > factor * done / len(eligible))
    keep = {n: e for n, e in eligible.items() if n not in over}
    sure = _sure_slots(images, base["sampling"])
    level = _water_level([have.get(n, 0) for n in keep], sure)
    want = {n: level - have.get(n, 0) for n in keep if have.get(n, 0) < level}
    t = _temperature(np.array([e["n"] for e in keep.values()], np.float64), factor)
    quotas = _fit({n: math.floor(w) for n, w in want.items()}, sure)  # the sure slots, water-filled
    values = {s: dict(v) for s, v in base.items()}
    values["job"].update(name=name or f"{job}-fill", images=images)
    where = base["pool"]["where"].strip()
    if over:
        ids = ", ".join(str(i) for i in sorted(eligible[n]["id"] for n in over))
        where = f"({where}) AND category_id NOT IN ({ids})" if where else f"category_id NOT IN ({ids})"
    values["pool"]["where"] = where
    values["sampling"].update(strategy="temperature", temperature=float(t), quotas=quotas)
    return {"values": values, "temperature": float(t), "quotas": quotas,
            "boosted": {n: "under-represented" for n in want}, "capped": over,
            "fair_share": 1 / len(keep), "dataset_instances": have, "level": level,
            "intended_share": _intended(keep, t, quotas, slots),
            "uniform_share": _shares(keep, 1.0),
            "why": [f"follows job {job!r} ({done} instances in its committed images); same pool and layout",
                    f"quotas bring {len(quotas)} under-represented categories up to ~{level:.0f} instances "
                    f"each in the combined dataset (the level the job's ~{sure} sure object slots reach)",
                    f"[pool] where leaves out {len(over)} over-represented categories (more than {factor:g} x "
                    "the fair share already)", f"temperature {t:g} for the remaining slots"] + _missing_note(result)}


def _water_level(have: list[int], slots: int) -> float:
    """The level L at which sum(max(0, L - have_c)) = slots: filling the emptiest categories first."""
    lo, hi = 0.0, max(have, default=0) + slots
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if sum(max(0.0, mid - h) for h in have) < slots else (lo, mid)
    return lo


def _dataset_instances(result: dict) -> dict[str, int]:
    """Instances per category in the job's committed images (planned objects if none rendered)."""
    if "dataset" in result:
        return {r["category"]: r["instances"] for r in result["dataset"]["categories"]}
    return {r["category"]: r["planned"] for r in result["sampling"]["categories"]}


# ---------------------------------------------------------------------------- shares
def _eligible(lake: Lake, spec) -> dict[str, dict]:
    """Per eligible category of a spec, as the planner counts it: id, segments, LVIS bucket."""
    counts = pool.open_eligible(lake, spec)
    ctx = pool.category_context(lake, spec, counts)
    names = dict(lake.con.execute("SELECT category_id, name FROM categories").fetchall())
    return {names[int(c)]: {"id": int(c), "n": int(n), "frequency": str(f)}
            for c, n, f in zip(counts.category_id, counts.n, ctx.frequency)}


def _temperature(n: np.ndarray, factor: float) -> float:
    """The largest temperature (in steps of 0.05) whose largest category share n^t / sum n^t is
    within factor / categories; 1 (SOC's uniform segments) when nothing is over that bound."""
    if len(n) < 3:
        return 1.0
    bound = factor / len(n)
    for t in TEMPERATURES:
        w = n ** t
        if w.max() / w.sum() <= bound + 1e-12:
            return float(t)
    return 0.0


def _shares(eligible: dict[str, dict], t: float) -> dict[str, float]:
    w = np.array([e["n"] for e in eligible.values()], np.float64) ** t
    return dict(zip(eligible, (w / w.sum()).tolist()))


def _sure_slots(images: int, sampling: dict) -> int:
    """Object slots a job plans with near certainty: objects per image are uniform on [lo, hi],
    so the total is images x mean give or take a few standard deviations; 4 of them below the
    mean (and never below images x lo). The planner refuses quotas above the slots it drew."""
    lo, hi = sampling["objects"]
    sd = math.sqrt(images * ((hi - lo + 1) ** 2 - 1) / 12)
    return max(images * lo, math.floor(images * (lo + hi) / 2 - 4 * sd))


def _quotas(share: dict[str, float], targets: dict[str, float], slots: float, min_slots: int) -> dict[str, int]:
    """Quotas Q_c that bring each targeted category's expected count, Q_c + R * p_c with R the
    slots left to temperature sampling (share p_c), to its target; the other categories share R
    in proportion to p_c. Categories that reach their target anyway get none. The total is
    scaled down to `min_slots` (_sure_slots) if it would not fit."""
    want = {n: t for n, t in sorted(targets.items()) if t > share[n] * slots}
    q: dict[str, float] = {}
    for _ in range(len(targets) + 1):  # a fixed point: the quotas of some shrink what the rest draw
        p_b, spare = sum(share[n] for n in want), slots - sum(want.values())
        # R solves R = slots - sum(Q) with Q_c = target_c - R p_c; no slot is left when the
        # targets take them all (or every category is targeted)
        rest = spare / (1 - p_b) if spare > 0 and p_b < 1 - 1e-9 else 0.0
        q = {n: t - rest * share[n] for n, t in want.items()}
        again = {n: t for n, t in sorted(targets.items()) if t - rest * share[n] >= 1}
        if again.keys() == want.keys():
            break
        want = again
    q = {n: v for n, v in q.items() if v >= 1}
    if not q:
        return {}
    return _fit(q, min_slots)


def _fit(asks: dict[str, float], min_slots: int) -> dict[str, int]:
    """Whole quotas for `asks`, scaled down to min_slots in total if they would not fit."""
    quotas = {n: math.ceil(v) for n, v in sorted(asks.items()) if v > 0}
    total = sum(quotas.values())
    if total > min_slots:
        quotas = {n: max(1, math.floor(v * min_slots / total)) for n, v in quotas.items()}
        while sum(quotas.values()) > min_slots:  # floors of 1 can still overflow: drop the smallest asks
            quotas.pop(min(quotas, key=lambda n: (quotas[n], n)))
    return quotas


def _intended(eligible: dict, t: float, quotas: dict[str, int], slots: float) -> dict[str, float]:
    """Expected share of object slots per category: quota slots are placed first over random
    slots, the rest drawn at temperature t."""
    share = _shares(eligible, t)
    rest = max(slots - sum(quotas.values()), 0)
    return {n: (share[n] * rest + quotas.get(n, 0)) / slots for n in eligible}


# ---------------------------------------------------------------------------- TOML
def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return _toml_string(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_string(k)} = {_toml_value(x)}" for k, x in v.items()) + " }" if v else "{}"
    raise TypeError(f"no TOML form for {v!r}")


def _toml_string(s: str) -> str:
    """A TOML basic string: quote, backslash and control characters escaped."""
    out = []
    for ch in s:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\t" or (ord(ch) >= 0x20 and ord(ch) != 0x7F):
            out.append(ch)
        else:
            out.append(f"\\u{ord(ch):04x}")
    return '"' + "".join(out) + '"'


def _toml_document(plan: dict) -> str:
    values = plan["values"]
    lines = [f"# Suggested by `soclake audit --suggest` on {time.strftime('%Y-%m-%d %H:%M')}: the compose job",
             "# that fills the gaps the audit found. Plan it and read the intended shift:",
             "#   soclake plan THIS.toml --lake LAKE",
             f"#   soclake sql --lake LAKE \"SELECT * FROM sampling_shift WHERE job = '{values['job']['name']}'\""]
    lines += [f"# - {w}" for w in plan["why"]]
    if plan["capped"]:
        lines.append(f"# capped: {', '.join(plan['capped'][:30])}{' ...' if len(plan['capped']) > 30 else ''}")
    schema = spec_schema("compose")
    for section in schema:
        keys = values.get(section)
        if not keys:
            continue
        lines.append(f"\n[{section}]")
        for key, v in keys.items():
            if v is None:  # no TOML form: the default applies again when the spec loads
                continue
            lines.append(f"{key} = {_toml_value(v)}")
    return "\n".join(lines) + "\n"
