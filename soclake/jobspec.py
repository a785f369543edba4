"""Job specs: TOML files validated against schemas/job_spec.json (keys, types, defaults),
and the job fingerprint (resolved spec + pool snapshot + code version) that names outputs.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from soclake.errors import SoclakeError
from soclake.resources import data_dir

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


SPEC_SCHEMAS = {"compose": "job_spec.json", "relight": "relight_spec.json", "refexp": "refexp_spec.json"}


@lru_cache(maxsize=None)
def spec_schema(kind: str = "compose") -> dict:
    return json.loads((data_dir("schemas") / SPEC_SCHEMAS[kind]).read_text())["sections"]


def spec_kind(raw: dict) -> str:
    """A spec with a [relight] or [refexp] section is that stage's job; otherwise compose."""
    return next((k for k in ("relight", "refexp") if k in raw), "compose")


@dataclass(frozen=True)
class JobSpec:
    """A validated spec: every section with every key resolved to a value."""
    values: dict
    base_dir: str  # relative file paths in the spec resolve against this folder
    kind: str = "compose"

    def __getitem__(self, section: str) -> dict:
        return self.values[section]

    @property
    def name(self) -> str:
        return self.values["job"]["name"]

    def path(self, value: str) -> str:
        return value if os.path.isabs(value) else os.path.join(self.base_dir, value)

    def canonical_json(self) -> str:
        """The values that decide outputs (fingerprint, lineage): execution keys such as
        retries or num_gpus are left out, so changing them never renames a job's outputs."""
        schema = spec_schema(self.kind)
        values = {section: {k: v for k, v in keys.items() if not schema[section][k].get("execution")}
                  for section, keys in self.values.items()}
        return json.dumps(values, sort_keys=True, separators=(",", ":"))


def _check(section: str, key: str, rule: dict, value: Any, where: str) -> Any:
    kind, label = rule["type"], f"{where}: [{section}] {key}"

    def bad(expected: str):
        return SoclakeError(f"{label} must be {expected}, got {value!r}")

    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("an integer")
    elif kind == "float":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        value = float(value)
    elif kind == "bool":
        if not isinstance(value, bool):
            raise bad("true or false")
    elif kind in ("string", "name"):
        if not isinstance(value, str):
            raise bad("a string")
        if kind == "name" and not _NAME.match(value):
            raise bad("a name of letters, digits, '-' and '_'")
    elif kind == "choice":
        if value not in rule["choices"]:
            raise bad(f"one of {rule['choices']}")
    elif kind == "range":
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and not isinstance(v, bool)
                                                                    for v in value) and value[0] <= value[1]):
            raise bad("[min, max] integers with min <= max")
    elif kind.startswith("list["):
        item = {"string": str, "float": (int, float), "int": int}[kind[5:-1]]
        if not isinstance(value, list) or not all(isinstance(v, item) and not isinstance(v, bool) for v in value) \
                or kind == "list[float]" and not all(math.isfinite(v) for v in value):
            raise bad(f"a list of {'finite numbers' if kind == 'list[float]' else kind[5:-1]}")
        if "length" in rule and len(value) != rule["length"]:
            raise bad(f"a list of {rule['length']} values")
        value = [float(v) for v in value] if kind == "list[float]" else list(value)
    elif kind == "table[int]":
        if not isinstance(value, dict) or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0
                                                  for v in value.values()):
            raise bad("a table of non-negative integers")
    elif kind == "table[float]":
        if not isinstance(value, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                                                  and math.isfinite(v) for v in value.values()):
            raise bad("a table of positive numbers, each finite")
        value = {k: float(v) for k, v in value.items()}
    elif kind == "choice|float":
        if isinstance(value, str):
            if value not in rule["choices"]:
                raise bad(f"one of {rule['choices']} or a number")
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad(f"one of {rule['choices']} or a finite number")
        value = float(value)
    lo, hi = rule.get("min"), rule.get("max")
    checked = value if kind in ("range", "list[int]", "list[float]") else \
        [value] if kind in ("int", "float", "choice|float") else []
    for v in checked:
        if lo is not None and v < lo or hi is not None and v > hi:
            bounds = f"[{lo}, {hi}]" if lo is not None and hi is not None else f">= {lo}" if lo is not None else f"<= {hi}"
            raise SoclakeError(f"{label} = {value!r} is out of range (each value must be {bounds})")
    return value


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
                values[section][key] = _check(section, key, rule, given[key], where)
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
    from soclake.plan import variations
    variations.check(v, where)
    _check_plan_size(v, where)


MAX_PLANNED_PASTES = 200_000_000
"""A plan holds one entry per paste; above this a job is split into several jobs."""
MAX_LABELLED = 999
"""Labelled objects per image: panoptic ids 1..999 keep ann_id = image_id * 1000 + id unique."""


def _check_plan_size(v: dict, where: str) -> None:
    """Huge jobs and quotas are refused before the planner allocates anything for them."""
    from soclake.plan import variations
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


def load(path: str) -> JobSpec:
    """Read and validate a TOML job spec."""
    p = Path(path)
    if not p.is_file():
        raise SoclakeError(f"job spec {path!r} does not exist")
    try:
        raw = tomllib.loads(p.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise SoclakeError(f"job spec {path} is not valid TOML: {e}") from None
    return resolve(raw, str(path), str(p.parent))


def code_version() -> str:
    """soclake's version plus a hash of the code that decides plans and pixels."""
    from soclake import __version__
    pkg = Path(__file__).parent
    h = hashlib.sha256()
    for f in sorted([*pkg.glob("plan/*.py"), *pkg.glob("render/*.py"), *pkg.glob("relight/*.py"),
                     *pkg.glob("language/*.py"), pkg / "imaging.py", pkg / "shards.py", pkg / "stage.py",
                     pkg / "colour_names.py", *pkg.glob("data/colour_*"), pkg / "data" / "xkcd_colour_survey.tsv",
                     *data_dir("sql").glob("queries/*.sql")]):  # the planner's queries decide plans too
        h.update(f.name.encode() + f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def fingerprint(spec: JobSpec, pool_snapshot: str, inputs_digest: str = "") -> str:
    """Identity of a job's outputs: same spec, pool and code give the same fingerprint."""
    h = hashlib.sha256()
    for part in (spec.canonical_json(), pool_snapshot, code_version(), inputs_digest):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]
