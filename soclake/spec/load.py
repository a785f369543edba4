"""Loading job specs: TOML files validated against their schema (schemas/*_spec.json: keys,
types, defaults) and the checks across keys (combinations, plan size, stage options)."""
from __future__ import annotations

import os

from soclake.errors import SoclakeError
from soclake.spec import variations
from soclake.spec.model import STAGE_KINDS, JobSpec, spec_kind, spec_schema
from soclake.spec.rules import check_value, parse_toml, read_toml


def resolve(raw: dict, where: str = "job spec", base_dir: str = ".") -> JobSpec:
    """Validate a parsed spec and fill in defaults; unknown sections or keys are errors."""
    kind = spec_kind(raw)
    schema = spec_schema(kind)
    for section in raw:
        if section not in schema:
            raise SoclakeError(f"{where}: unknown section [{section}]; sections are {', '.join(schema)}")
    values: dict[str, dict] = {}
    for section, rules in schema.items():
        given = raw.get(section, {})
        if not isinstance(given, dict):
            raise SoclakeError(f"{where}: [{section}] must be a table")
        for key in given:
            if key not in rules:
                raise SoclakeError(f"{where}: unknown key '{key}' in [{section}]; known keys: {', '.join(rules)}")
        values[section] = {}
        for key, rule in rules.items():
            if key not in given:
                if rule.get("required"):
                    raise SoclakeError(f"{where}: [{section}] {key} is required")
                values[section][key] = rule["default"]
            else:
                values[section][key] = check_value(section, key, rule, given[key], where)
    if kind in STAGE_KINDS:
        _check_input(values, where)
    {"compose": _check_combinations, "relight": _check_relight}.get(kind, lambda v, w: None)(values, where)
    return JobSpec(values, os.path.abspath(base_dir), kind)


def _check_combinations(v: dict, where: str) -> None:
    blends = set(v["render"]["blend"])
    unknown = blends - {"none", "gaussian", "poisson", "motion"}
    if unknown or not blends:
        raise SoclakeError(f"{where}: [render] blend has unknown modes {sorted(unknown)}; "
                           "use none, gaussian, poisson, motion")
    mix = v["layout"]["size_mix"]
    if len(mix) != 3 or min(mix) < 0 or sum(mix) <= 0:
        raise SoclakeError(f"{where}: [layout] size_mix must be three non-negative shares (small, medium, large)")
    if v["sampling"]["decoys"][1] > 0 and v["render"]["background"] != "pool":
        raise SoclakeError(f"{where}: [sampling] decoys need [render] background = \"pool\"")
    if v["layout"]["kind"] == "replay" and not v["layout"]["annotations"]:
        raise SoclakeError(f"{where}: [layout] kind = \"replay\" needs annotations = \"FILE.json\"")
    if v["layout"]["scale"][0] > v["layout"]["scale"][1]:
        raise SoclakeError(f"{where}: [layout] scale must be [low, high] with low <= high")
    _check_sampling(v["sampling"], where)
    if v["sampling"]["size_feedback"] and v["layout"]["kind"] != "coco_sizes":
        raise SoclakeError(f"{where}: [sampling] size_feedback reweights [layout] size_mix, which layout "
                           f"{v['layout']['kind']!r} does not use; set [layout] kind = \"coco_sizes\" or remove "
                           "size_feedback")
    variations.check(v, where)
    _check_plan_size(v, where)


MAX_PLANNED_PASTES = 200_000_000
"""A plan holds one entry per paste; above this a job is split into several jobs."""
MAX_LABELLED = 999
"""Labelled objects per image: panoptic ids 1..999 keep ann_id = image_id * 1000 + id unique."""


def _check_plan_size(v: dict, where: str) -> None:
    """Huge jobs and quotas are refused before the planner allocates anything for them."""
    samp = v["sampling"]
    added = max(v["variations"]["count"], default=0) if "count" in v["variations"]["factors"] else 0
    per_image = samp["objects"][1] + samp["distractors"][1] + samp["decoys"][1] + added
    images = v["job"]["images"] * (1 + len(variations.variants(v)))
    if images * per_image > MAX_PLANNED_PASTES:
        raise SoclakeError(f"{where}: {images} images (with variants) x up to {per_image} pastes each exceeds "
                           f"{MAX_PLANNED_PASTES:,} planned pastes; split it into several jobs")
    labelled = samp["objects"][1] + added
    if labelled > MAX_LABELLED:
        raise SoclakeError(f"{where}: up to {labelled} labelled objects per image ([sampling] objects max"
                           + (f" + [variations] count {added}" if added else "") + f"); at most {MAX_LABELLED}: "
                           "annotation ids are image_id * 1000 + panoptic id")
    wanted = sum(samp["quotas"].values())
    if wanted > v["job"]["images"] * samp["objects"][1]:
        raise SoclakeError(f"{where}: [sampling] quotas ask for {wanted} instances but the job has room for at most "
                           f"{v['job']['images'] * samp['objects'][1]}; raise [job] images or [sampling] objects, "
                           "or lower the quotas")


BUCKETS = {"r": "r", "rare": "r", "c": "c", "common": "c", "f": "f", "frequent": "f"}


def _check_sampling(s: dict, where: str) -> None:
    if s["strategy"] == "hardness" and not s["feedback"]:
        raise SoclakeError(f"{where}: [sampling] strategy = \"hardness\" needs feedback = \"NAME\", a feedback "
                           "loaded with `soclake feedback FILE --name NAME`")
    if s["feedback"] and s["strategy"] != "hardness":
        raise SoclakeError(f"{where}: [sampling] feedback is read only by strategy = \"hardness\"; "
                           "set the strategy or remove feedback")
    if s["size_feedback"] and s["strategy"] != "hardness":
        raise SoclakeError(f"{where}: [sampling] size_feedback works only with strategy = \"hardness\" (it "
                           "reweights sizes by the feedback's ap_small / ap_medium / ap_large); set the strategy "
                           "and feedback, or remove size_feedback")
    given = [BUCKETS.get(k) for k in s["bucket_weights"]]
    if None in given or len(set(given)) < len(given):
        raise SoclakeError(f"{where}: [sampling] bucket_weights keys must be LVIS frequency buckets r, c, f "
                           f"(or rare, common, frequent), each once; got {sorted(s['bucket_weights'])}")


def _check_input(v: dict, where: str) -> None:
    """A stage job named like its input would read its own output on the next run (each rerun
    relit the previous relight, and the job's index.json flipped between stages)."""
    if v["job"]["name"] == v["job"]["input"]:
        raise SoclakeError(f"{where}: [job] name = {v['job']['name']!r} is also its input; a stage job needs a name "
                           f"of its own, e.g. name = \"{v['job']['input']}-{'relit' if 'relight' in v else 'refexp'}\"")


def _check_relight(v: dict, where: str) -> None:
    r = v["relight"]
    unknown = set(r["directions"]) - {"none", "left", "right", "top", "bottom"}
    if unknown or not r["directions"]:
        raise SoclakeError(f"{where}: [relight] directions has unknown values {sorted(unknown)}; "
                           "use none, left, right, top, bottom")
    for key, lo, hi in (("temperature", 1000.0, 40000.0), ("blend_alpha", 0.0, 1.0)):
        pair = r[key]
        if len(pair) != 2 or not lo <= pair[0] <= pair[1] <= hi:
            raise SoclakeError(f"{where}: [relight] {key} must be [low, high] within [{lo}, {hi}]")


def load(path: str, overrides: list[str] | tuple[str, ...] = ()) -> JobSpec:
    """Read and validate a TOML job spec, with `overrides` ("section.key=VALUE", VALUE in TOML
    syntax or a bare string) applied first."""
    raw = read_toml(path, "job spec")
    for item in overrides:
        _override(raw, item, str(path))
    return resolve(raw, str(path), os.path.dirname(os.path.abspath(path)))


def _override(raw: dict, item: str, where: str) -> None:
    target, sep, text = item.partition("=")
    section, dot, key = target.strip().partition(".")
    if not sep or not dot or not section or not key:
        raise SoclakeError(f"{where}: --set {item!r} must be SECTION.KEY=VALUE, e.g. job.images=8")
    try:
        value = parse_toml(f"v = {text.strip()}")["v"]
    except ValueError:
        value = text.strip()  # a bare word is a string: --set relight.backend=classic
    section_values = raw.setdefault(section, {})
    if not isinstance(section_values, dict):
        raise SoclakeError(f"{where}: [{section}] must be a table")
    section_values[key] = value
