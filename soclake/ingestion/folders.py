"""Layout `folders`: one folder per category of RGBA cut-outs (Cut-Paste-Learn style).

SOURCE/<category>/*.png (nested folders below a category are walked too). An optional
--distractors folder holds unlabelled cut-outs, stored with is_distractor = true.
"""
from __future__ import annotations

import os
from typing import Iterator

from soclake.errors import SoclakeError
from soclake.ingestion.engine import IngestOptions, Task, load_rgba_file
from soclake.ingestion.files import walk

KIND = "segments"
DISTRACTOR_CATEGORY = "distractor"


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    if not os.path.isdir(source):
        raise SoclakeError(f"folders source {source!r} is not a folder of category folders")
    distractors = options.layout.get("distractors")
    if distractors and not os.path.isdir(distractors):
        raise SoclakeError(f"distractors folder {distractors!r} does not exist")
    follow = bool(options.layout.get("follow_links"))
    for found in walk(source, follow_links=follow):
        rel = found.rel
        parts = rel.split("/")
        if distractors and len(parts) > 1 and \
                os.path.abspath(os.path.join(source, parts[0])) == os.path.abspath(distractors):
            continue  # the distractors folder may sit inside the source; it is walked below
        if found.reject:
            yield Task(uri=rel, reject=found.reject)
            continue
        if len(parts) < 2:
            yield Task(uri=rel, reject=("wrong_layout", f"{rel} is not inside a category folder; "
                                        "move it to SOURCE/<category>/"))
            continue
        yield Task(uri=rel, path=os.path.join(source, rel), category=parts[0],
                   fields={"subcategory": "/".join(parts[1:-1]) or None})
    if distractors:
        name = os.path.basename(os.path.normpath(distractors))
        for found in walk(distractors, follow_links=follow):
            if found.reject:
                yield Task(uri=f"{name}/{found.rel}", reject=found.reject)
                continue
            yield Task(uri=f"{name}/{found.rel}", path=os.path.join(distractors, found.rel),
                       category=DISTRACTOR_CATEGORY, fields={"is_distractor": True})


load = load_rgba_file
