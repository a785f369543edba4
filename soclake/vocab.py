"""Category names: the canonical form every comparison of names uses, the vocabularies shipped
with soclake (COCO 2017, LVIS v1) and user vocabulary and synonym files."""
from __future__ import annotations

import json
import os
from functools import lru_cache

from soclake.errors import SoclakeError
from soclake.resources import package_data


def canonical_category(name: str) -> str:
    """Lower case, underscores and whitespace runs folded to one space: the form in which
    category names are matched (ids, quotas, vocabularies, label maps)."""
    return " ".join(str(name).replace("_", " ").split()).lower()


@lru_cache(maxsize=None)
def coco_categories() -> list[dict]:
    """The 80 COCO 2017 thing categories: id, name, supercategory."""
    return json.loads(package_data("coco_categories.json").read_text())


@lru_cache(maxsize=None)
def coco_ids() -> dict[str, int]:
    return {c["name"]: c["id"] for c in coco_categories()}


@lru_cache(maxsize=None)
def lvis_names() -> list[str]:
    """The 1203 LVIS v1 category names; list index + 1 is the LVIS category id."""
    lines = package_data("lvis_v1_categories.txt").read_text().splitlines()
    return [line for line in lines if line and not line.startswith("#")]


def read_vocabulary(path: str) -> list[str]:
    """Names from a vocabulary file: one name per line (# comments), or a COCO-style JSON
    (a list of {"name": ...} or a dict with "categories")."""
    if not os.path.isfile(path):
        raise SoclakeError(f"vocabulary file {path!r} does not exist; pass a file, 'coco' or 'lvis'")
    text = open(path, encoding="utf-8").read()
    if path.endswith(".json"):
        try:
            doc = json.loads(text)
            cats = doc["categories"] if isinstance(doc, dict) else doc
            names = [c["name"] if isinstance(c, dict) else str(c) for c in cats]
        except (ValueError, KeyError, TypeError) as e:
            raise SoclakeError(f"vocabulary {path} is not a COCO categories JSON ({e})") from None
    else:
        names = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    if not names:
        raise SoclakeError(f"vocabulary file {path} lists no name")
    return names


def read_synonyms(path: str) -> dict[str, list[str]]:
    """Synonyms: JSON {name: [synonym, ...]} or lines "name: synonym, synonym"."""
    if not os.path.isfile(path):
        raise SoclakeError(f"synonyms file {path!r} does not exist")
    text = open(path, encoding="utf-8").read()
    if path.endswith(".json"):
        return {k: list(v) for k, v in json.loads(text).items()}
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if ":" in line and not line.strip().startswith("#"):
            name, syns = line.split(":", 1)
            out[name.strip()] = [s.strip() for s in syns.split(",") if s.strip()]
    return out
