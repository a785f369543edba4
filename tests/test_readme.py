"""README stays true: its job-spec key table is the schema's (schemas/job_spec.json)."""
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _fmt(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {_fmt(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_fmt(x) for x in v) + "]"
    return str(v)


def test_readme_lists_every_job_spec_key_with_its_default_and_doc():
    readme = (ROOT / "README.md").read_text()
    spec = json.loads((ROOT / "schemas" / "job_spec.json").read_text())
    missing = []
    for section, keys in spec["sections"].items():
        for key, d in keys.items():
            default = "(required)" if d.get("required") else _fmt(d.get("default"))
            row = f"| `[{section}] {key}` | `{default}` | {d['doc']} |"
            if row not in readme:
                missing.append(row)
    assert missing == [], "README's job-spec table is out of date (regenerate it from the schema):\n" + "\n".join(missing)
