"""The images pages' data: a run's samples page by page, one sample with its members (the
composite, KEY.pan.png, KEY.fg.png, KEY.json, KEY.refexp.json), the same sample in the other
runs of its lineage (the original beside the relit version, the expressions of a refexp run),
and small thumbnails of composites (decoded once, cached)."""
from __future__ import annotations

import io
import json

from PIL import Image

from soclake import paths
from soclake.app import guard, jobs, shardfiles
from soclake.app.state import LakeView
from soclake.imaging import open_image
from soclake.lake import catalog
from soclake.shards.tar import composite_member, parse_key
from soclake.stages.refexp.stage import KINDS

PAGE, MAX_PAGE = 48, 500
THUMB_SIDE = 192
SCOPES = ("single", "multi", "none")
"""The scopes of referring expressions (schemas/refexps.json), in the order the page lists them."""


def _compose_fingerprint(view: LakeView, run: dict) -> str:
    if run["stage"] == "compose":
        return run["fingerprint"]
    with view.locked() as lake:
        try:
            return catalog.compose_run(lake, catalog.Run(run["job"], run["fingerprint"], run["stage"])).fingerprint
        except Exception as e:
            raise guard.AppError(500, f"run {run['job']} [{run['fingerprint']}]: {e}") from None


def page(view: LakeView, job: str, fingerprint: str, after: int | None, limit: int = PAGE) -> dict:
    """Up to `limit` samples of a run after image id `after`, with thumbnail URLs, the total,
    and the cursor of the next page (None on the last)."""
    if not 1 <= limit <= MAX_PAGE:
        raise guard.bad(f"limit={limit} must be from 1 to {MAX_PAGE}")
    run = jobs.find_run(view, job, fingerprint)
    params = {"compose": _compose_fingerprint(view, run), "fingerprint": run["fingerprint"], "stage": run["stage"]}
    rows = view.rows("app/run_samples", {**params, "after": after, "limit": limit + 1})
    total = view.remember(("samples", run["fingerprint"], run["stage"]),
                          lambda: view.rows("app/run_sample_count", {"fingerprint": run["fingerprint"],
                                                                      "stage": run["stage"]})[0]["samples"])
    base = f"/api/jobs/{run['job']}/{run['fingerprint']}/samples"
    out = [{**r, "thumbnail": f"{base}/{r['key']}/thumbnail", "page": f"/images/{run['job']}/{run['fingerprint']}/{r['key']}"}
           for r in rows[:limit]]
    return {"run": {k: run[k] for k in ("job", "fingerprint", "stage")}, "total": total, "samples": out,
            "next": rows[limit - 1]["image_id"] if len(rows) > limit else None}


def _locate(view: LakeView, run: dict, key: str) -> tuple[dict, str]:
    """(image row, shard path) of a run's sample; 404 when the run has no such committed sample."""
    key = guard.sample_key(parse_key(key))
    rows = view.rows("app/run_sample", {"compose": _compose_fingerprint(view, run), "key": key,
                                        "fingerprint": run["fingerprint"], "stage": run["stage"]})
    if not rows:
        raise guard.not_found(f"run {run['job']} [{run['fingerprint']}] has no committed sample {key}; "
                              f"its samples are listed at /api/jobs/{run['job']}/{run['fingerprint']}/samples")
    return rows[0], paths.shard_uri(run["job"], run["fingerprint"], rows[0]["shard"])


def member(view: LakeView, job: str, fingerprint: str, key: str, ext: str, pretty: bool = False) -> tuple[bytes, str]:
    """One member of a sample, as stored (JSON members re-indented with `pretty`), and its type."""
    run = jobs.find_run(view, job, fingerprint)
    row, shard = _locate(view, run, key)
    data = shardfiles.read_member(view, shard, row["key"], guard.member(ext))
    if pretty and ext.endswith("json"):
        data = json.dumps(json.loads(data), indent=1, sort_keys=True, ensure_ascii=False).encode()
    return data, shardfiles.media_type(data, ext)


def thumbnail(view: LakeView, job: str, fingerprint: str, key: str, side: int = THUMB_SIDE) -> bytes:
    """The composite at most `side` px on its longest side (JPEG; PNG when it is transparent)."""
    run = jobs.find_run(view, job, fingerprint)
    row, shard = _locate(view, run, key)

    def make() -> bytes:
        data = shardfiles.read_member(view, shard, row["key"], _composite_ext(view, shard, row["key"]))
        im = open_image(data)
        im.thumbnail((side, side), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        if im.mode in ("RGBA", "LA", "P"):
            im.convert("RGBA").save(buf, "PNG", compress_level=1)
        else:
            im.convert("RGB").save(buf, "JPEG", quality=85)
        return buf.getvalue()
    return view.thumbnails.get_or(("composite", run["fingerprint"], row["key"], side), make)


def _composite_ext(view: LakeView, shard: str, key: str) -> str:
    """The composite member of a sample in this run's shard: runs of one lineage may name it
    differently (a transparent KEY.rgba.png is relit as a scene, KEY.jpg)."""
    ext = composite_member(shardfiles.member_index(view, shard).get(key, {}))
    if ext is None:
        raise guard.not_found(f"sample {key} of {shard} has no composite image member")
    return ext


def sample(view: LakeView, job: str, fingerprint: str, key: str) -> dict:
    """A sample's page: its image row, instances, member URLs, and for every run of its lineage
    that committed it, that run's composite (original, relit) and expressions (refexp)."""
    run = jobs.find_run(view, job, fingerprint)
    row, shard = _locate(view, run, key)
    members = shardfiles.member_index(view, shard).get(row["key"], {})
    info = json.loads(shardfiles.read_member(view, shard, row["key"], "json"))
    ext = _composite_ext(view, shard, row["key"])
    here = f"/api/jobs/{run['job']}/{run['fingerprint']}/samples/{row['key']}"
    views, refexp = [], None
    for other in jobs.lineage(view, run):
        located = _located_in(view, other, row["key"])
        if located is None:
            continue
        other_url = f"/api/jobs/{other['job']}/{other['fingerprint']}/samples/{row['key']}"
        other_ext = _composite_ext(view, located[1], row["key"])
        views.append({**other, "composite": f"{other_url}/members/{other_ext}", "this": other["fingerprint"] == run["fingerprint"],
                      "page": f"/images/{other['job']}/{other['fingerprint']}/{row['key']}"})
        if other["stage"] == "refexp" and (refexp is None or other["fingerprint"] == run["fingerprint"]):
            refexp = {"run": other, "url": f"{other_url}/members/refexp.json"}
    if "refexp.json" in members:
        refexp = {"run": {k: run[k] for k in ("job", "fingerprint", "stage")}, "url": f"{here}/members/refexp.json"}
    if refexp is not None:
        data = _refexp_doc(view, refexp["run"], row["key"])
        refexp.update(data)
    instances = [{"ann_id": i["ann_id"], "panoptic_id": i["panoptic_id"], "category": i["category"],
                  "category_id": i["category_id"], "bbox": i["bbox"], "area": i["area"],
                  "visible_fraction": i.get("visible_fraction"), "shown_fraction": i.get("shown_fraction"),
                  "segment_id": i.get("segment_id"), "blend": i.get("blend"), "layer": i.get("layer")}
                 for i in info.get("instances", [])]
    return {"run": {k: run[k] for k in ("job", "fingerprint", "stage")}, "image": row,
            "members": {m: f"{here}/members/{m}" for m in sorted(members)}, "composite": f"{here}/members/{ext}",
            "instances": instances, "views": views, "refexp": refexp,
            "failed_reads": info.get("failed_reads", []), "relight": info.get("relight")}


def _located_in(view: LakeView, run: dict, key: str) -> tuple[dict, str] | None:
    try:
        return _locate(view, run, key)
    except guard.AppError:
        return None


def _refexp_doc(view: LakeView, run: dict, key: str) -> dict:
    """The expressions (grouped by scope and kind), captions and QA of a refexp run's sample."""
    located = _located_in(view, jobs.find_run(view, run["job"], run["fingerprint"]), key)
    if located is None:
        return {}
    row, shard = located
    doc = json.loads(shardfiles.read_member(view, shard, row["key"], "refexp.json"))
    buckets: dict[str, list] = {}
    for e in doc.get("expressions", []):
        buckets.setdefault(f"{e.get('scope')} / {e.get('kind')}", []).append(e)
    order = {f"{s} / {k}": (i, j) for i, s in enumerate(SCOPES) for j, k in enumerate(KINDS)}
    return {"buckets": [{"bucket": b, "expressions": es}
                        for b, es in sorted(buckets.items(), key=lambda kv: (order.get(kv[0], (9, 9)), kv[0]))],
            "caption": doc.get("caption"), "segment_captions": doc.get("segment_captions", []),
            "qa": doc.get("qa", []), "variation_qa": doc.get("variation_qa"), "generator": doc.get("generator"),
            "failed": doc.get("failed")}
