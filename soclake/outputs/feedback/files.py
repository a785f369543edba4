"""Reading feedback files into entries: CSV with a header, JSON (soclake's categories shape,
detectron2's COCOEvaluator results, or a list of per-image losses) and JSON Lines; and writing
the categories shape from a pycocotools COCOeval. No checking of values here (rows.py).
"""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass

from soclake import documents
from soclake.errors import SoclakeError

FORMATS = ("csv", "json", "jsonl")
AP_METRICS = ("ap", "ap_small", "ap_medium", "ap_large")
# accepted spellings of each field (keys are compared in lower case)
ALIASES = {"name": ("name", "category"), "id": ("id", "category_id"), "ap": ("ap", "score"),
           "ap_small": ("ap_small", "aps"), "ap_medium": ("ap_medium", "apm"), "ap_large": ("ap_large", "apl"),
           "image_id": ("image_id",), "key": ("key", "__key__"), "loss": ("loss",), "job": ("job",),
           "fingerprint": ("fingerprint",)}
SHAPES = ('{"categories": [{"name" or "id": ..., "ap": 0.41, "ap_small": ...}, ...]} or that list alone; '
          'detectron2 COCOEvaluator results {"bbox": {"AP-<category>": 41.0, ...}} (percent); '
          '{"images": [{"image_id": ..., "loss": ..., "job": ...}, ...]} or that list alone')


@dataclass
class Entry:
    row: int      # line number (CSV, JSON Lines) or 1-based entry (JSON)
    fields: dict  # lower-case keys
    percent: bool = False  # values are AP in percent (detectron2)


def read_entries(path: str, fmt: str = "auto") -> list[Entry]:
    """The entries of a feedback file: CSV with a header, JSON (see SHAPES) or JSON Lines."""
    if not os.path.isfile(path):
        raise SoclakeError(f"feedback file {path!r} does not exist")
    if fmt == "auto":
        ext = os.path.splitext(path)[1].lower().lstrip(".")
        fmt = {"ndjson": "jsonl"}.get(ext, ext)
        if fmt not in FORMATS:
            raise SoclakeError(f"cannot tell the format of {path} from its extension; pass --format csv|json|jsonl")
    try:
        with open(path, encoding="utf-8", newline="") as f:
            if fmt == "csv":
                return _csv_entries(f, path)
            if fmt == "jsonl":
                return _jsonl_entries(f)
            try:
                doc = documents.parse_json(f.read(), f"feedback file {path}")
            except documents.DocumentError as e:
                raise SoclakeError(f"{e}; accepted shapes: {SHAPES}") from None
    except UnicodeDecodeError:
        raise SoclakeError(f"feedback file {path} is not UTF-8 text") from None
    return _json_entries(doc, path)


def _csv_entries(f, path: str) -> list[Entry]:
    reader = csv.reader(f)
    header = None
    out = []
    for cells in reader:
        if not any(c.strip() for c in cells) or cells[0].lstrip().startswith("#"):
            continue
        if header is None:
            header = [c.strip().lower() for c in cells]
            continue
        out.append(Entry(reader.line_num, {k: v.strip() for k, v in zip(header, cells)}))
    if header is None:
        raise SoclakeError(f"feedback CSV {path} is empty; it needs a header such as 'category,score' "
                           "or 'job,image_id,loss'")
    return out


def _jsonl_entries(f) -> list[Entry]:
    out = []
    for n, line in enumerate(f, 1):
        if line.strip():
            try:
                obj = documents.parse_json(line, f"line {n}")
            except ValueError:  # a malformed line (DocumentError too: nesting, huge integers)
                obj = None
            out.append(Entry(n, _lower(obj) if isinstance(obj, dict) else {"_malformed": line.strip()[:80]}))
    return out


def _lower(d: dict) -> dict:
    return {str(k).strip().lower(): v for k, v in d.items()}


def _json_entries(doc, path: str) -> list[Entry]:
    if isinstance(doc, dict):
        lists = [k for k in ("categories", "images") if isinstance(doc.get(k), list)]
        if lists:
            doc = doc[lists[0]]
        else:
            return _detectron2_entries(doc, path)
    if not isinstance(doc, list):
        raise SoclakeError(f"feedback file {path} has no accepted shape; use {SHAPES}")
    return [Entry(i, _lower(e) if isinstance(e, dict) else {"_malformed": repr(e)[:80]}) for i, e in enumerate(doc, 1)]


def _detectron2_entries(doc: dict, path: str) -> list[Entry]:
    tasks = {k: v for k, v in doc.items() if isinstance(v, dict) and any(str(x).startswith("AP-") for x in v)}
    if tasks:
        if len(tasks) > 1:
            raise SoclakeError(f"feedback file {path} holds AP for several tasks ({', '.join(sorted(tasks))}); "
                               "keep one (e.g. only \"segm\") in the file")
        doc = next(iter(tasks.values()))
    per_cat = [(k[3:], v) for k, v in doc.items() if str(k).startswith("AP-")]
    if not per_cat:
        raise SoclakeError(f"feedback file {path} has no accepted shape; use {SHAPES}")
    return [Entry(i, {"name": name, "ap": v}, percent=True) for i, (name, v) in enumerate(per_cat, 1)]


def guess_kind(entries: list[Entry], path: str) -> str:
    keys = set().union(*(e.fields for e in entries[:100])) if entries else set()
    has = lambda f: any(a in keys for a in ALIASES[f])
    is_loss = has("loss") and (has("image_id") or has("key"))
    is_ap = has("ap") and (has("name") or has("id"))
    if is_loss == is_ap:
        raise SoclakeError(f"cannot tell what {path} holds (columns {sorted(keys)}); per-category AP needs "
                           "category + score (or ap), per-image losses image_id + loss; or pass --kind")
    return "image_loss" if is_loss else "category_ap"


def from_cocoeval(evaluator) -> dict:
    """The {"categories": [...]} feedback JSON of an evaluated pycocotools COCOeval (after
    evaluate() and accumulate()): per category, AP over IoU 0.50:0.95 at the largest maxDets,
    and AP for small / medium / large areas, as COCOeval.summarize() averages them (null
    where the evaluation has no ground truth for it)."""
    precision = evaluator.eval["precision"]  # [IoU, recall, category, area range, maxDets]
    p = evaluator.params
    areas = {label: i for i, label in enumerate(p.areaRngLbl)}
    out = []
    for k, cat_id in enumerate(p.catIds):
        entry = {"id": int(cat_id), "name": evaluator.cocoGt.cats[cat_id]["name"]}
        for metric, label in zip(AP_METRICS, ("all", "small", "medium", "large")):
            pr = precision[:, :, k, areas[label], -1]
            pr = pr[pr > -1]
            entry[metric] = float(pr.mean()) if pr.size else None
        out.append(entry)
    return {"categories": out}
