"""The job spec as data: JobSpec (every section resolved to values), the spec kinds and the
schema files that describe them. A leaf: it imports nothing of soclake but resources."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache

from soclake.resources import data_dir

SPEC_SCHEMAS = {"compose": "job_spec.json", "relight": "relight_spec.json", "refexp": "refexp_spec.json"}
STAGE_KINDS = ("relight", "refexp")


@lru_cache(maxsize=None)
def spec_schema(kind: str = "compose") -> dict:
    """The sections of a spec kind: section -> key -> rule (type, default, bounds, doc)."""
    return json.loads((data_dir("schemas") / SPEC_SCHEMAS[kind]).read_text())["sections"]


def spec_kind(raw: dict) -> str:
    """A spec with a [relight] or [refexp] section is that stage's job; otherwise compose."""
    return next((k for k in STAGE_KINDS if k in raw), "compose")


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
