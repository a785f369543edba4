"""Category vocabularies shipped with soclake (COCO 2017 for now), looked up by canonical name."""
from __future__ import annotations

import json
from functools import lru_cache

from soclake.resources import package_data


@lru_cache(maxsize=None)
def coco_categories() -> list[dict]:
    """The 80 COCO 2017 thing categories: id, name, supercategory."""
    return json.loads(package_data("coco_categories.json").read_text())


@lru_cache(maxsize=None)
def coco_ids() -> dict[str, int]:
    return {c["name"]: c["id"] for c in coco_categories()}
