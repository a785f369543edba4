"""Job identity: the code version (a hash over the declared files that can change a plan, a
pixel or a text) and the fingerprint of a job (spec values + inputs + code version), which
names every output. Both are functions of content only."""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from soclake import __version__
from soclake.resources import data_dir
from soclake.spec.model import JobSpec

PACKAGE = Path(__file__).resolve().parent.parent
CODE_FILES = (
    # everything that decides plans, pixels, annotations, texts or shard bytes
    "plan/*.py", "render/*.py", "stages/*.py", "stages/relight/*.py", "stages/refexp/*.py",
    "imaging.py", "formats.py", "vocab.py", "colour_names.py", "shards/tar.py", "spec/variations.py",
    # data files that decide colour words: the colour survey and its 6-bit class table
    "data/colour_*", "data/xkcd_colour_survey.tsv",
    # data files that decide texts and pixels by default: relight prompts, SOC's LLM request
    "data/relight_prompts.json", "data/soc_refexp_*",
)
SQL_FILES = ("queries/*.sql", "10_filters.sql")  # the planner's queries and the quality filters decide plans


def code_files() -> list[Path]:
    """The files code_version hashes, in a fixed order."""
    files = {f for pattern in CODE_FILES for f in PACKAGE.glob(pattern)}
    files |= {f for pattern in SQL_FILES for f in data_dir("sql").glob(pattern)}
    return sorted(files, key=lambda f: (f.parent.name, f.name))


@lru_cache(maxsize=1)
def code_version() -> str:
    """soclake's version plus a hash of the code that decides plans and pixels."""
    h = hashlib.sha256()
    for f in code_files():
        h.update(f.name.encode() + f.read_bytes())
    return f"{__version__}+{h.hexdigest()[:12]}"


def fingerprint(spec: JobSpec, inputs: str, inputs_digest: str = "") -> str:
    """Identity of a job's outputs: the same spec values, inputs (a pool snapshot, or an input
    job's fingerprint) and code give the same fingerprint."""
    h = hashlib.sha256()
    for part in (spec.canonical_json(), inputs, code_version(), inputs_digest):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]
