"""Feedback from training runs: per-category AP (e.g. from COCOeval) or per-image losses of a
composed job, checked row by row and loaded into the lake's `feedback` table for the
`hardness` sampling strategy. Bad and unmatched rows become rows of `rejects`; turning losses
into per-category hardness is SQL (sql/60_feedback.sql), not code here.
"""
from __future__ import annotations

import datetime
import os
import re
import uuid
from dataclasses import dataclass, field

import pyarrow as pa

from soclake.errors import SoclakeError
from soclake.lake import Lake, catalog, sqlfiles
from soclake.lake.schemas import to_table
from soclake.outputs.feedback.files import from_cocoeval, guess_kind, read_entries
from soclake.outputs.feedback.rows import Bad, category_values, loss_row

__all__ = ["load_feedback", "from_cocoeval", "FeedbackSummary"]
KINDS = ("category_ap", "image_loss")
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


@dataclass
class FeedbackSummary:
    name: str
    kind: str
    load_id: str
    file: str
    entries: int = 0   # file rows loaded
    values: int = 0    # feedback table rows written (one per metric)
    problems: list[tuple[int, str, str]] = field(default_factory=list)  # (row, reason, detail)

    def describe(self, show: int = 10) -> str:
        counts: dict[str, int] = {}
        for _, reason, _ in self.problems:
            counts[reason] = counts.get(reason, 0) + 1
        text = (f"feedback {self.name} ({self.kind}, load {self.load_id}): {self.entries} row(s) of {self.file} "
                f"loaded as {self.values} value(s); {len(self.problems)} not loaded"
                + (f" ({', '.join(f'{n} {r}' for r, n in sorted(counts.items()))})" if counts else ""))
        text += "".join(f"\n  row {row}: {reason}: {detail}" for row, reason, detail in self.problems[:show])
        if len(self.problems) > show:
            text += f"\n  ... {len(self.problems) - show} more in the rejects table (source 'feedback:{self.name}')"
        return text


# ---------------------------------------------------------------------------- loading
def load_feedback(lake: Lake, path: str, name: str | None = None, kind: str = "auto", fmt: str = "auto",
                  job: str | None = None, fingerprint: str | None = None) -> FeedbackSummary:
    """Check every row of a feedback file and append the good ones to `feedback` (one load),
    the bad and unmatched ones to `rejects`. A file without a single good row is an error."""
    name = name or re.sub(r"[^A-Za-z0-9_-]", "-", os.path.splitext(os.path.basename(path))[0])
    if not _NAME.match(name):
        raise SoclakeError(f"feedback name {name!r} must be letters, digits, '-' and '_'; pass --name")
    if kind not in ("auto", *KINDS):
        raise SoclakeError(f"unknown feedback kind {kind!r}; use auto, {', '.join(KINDS)}")
    entries = read_entries(path, fmt)
    if not entries:
        raise SoclakeError(f"feedback file {path} holds no rows")
    kind = guess_kind(entries, path) if kind == "auto" else kind
    now = datetime.datetime.now(datetime.timezone.utc)
    summary = FeedbackSummary(name, kind, now.strftime("%Y%m%dT%H%M%S%f") + "-" + uuid.uuid4().hex[:6], path)
    base = {"name": name, "load_id": summary.load_id, "loaded_at": now, "kind": kind, "file": path}
    check = _check_categories if kind == "category_ap" else _check_losses
    rows = check(lake, entries, summary, base, job, fingerprint)
    summary.problems.sort()
    if not rows:
        first = "; ".join(f"row {r}: {d}" for r, _, d in summary.problems[:5])
        raise SoclakeError(f"no row of {path} could be loaded as {kind} feedback: {first}")
    rejects = [{"source": f"feedback:{name}", "layout": kind, "stage": "feedback",
                "source_uri": f"{os.path.basename(path)}#row={r}", "reason": reason, "detail": detail,
                "ingest_run": summary.load_id} for r, reason, detail in summary.problems]
    with lake.writer_lock(wait=True):
        lake.append("rejects", to_table("rejects", rejects), f"feedback-{name}-{summary.load_id}")
        lake.append("feedback", to_table("feedback", rows), f"{name}-{summary.load_id}")
    summary.values = len(rows)
    return summary


def _check_categories(lake, entries, summary, base, job, fingerprint) -> list[dict]:
    cats = lake.query("SELECT category_id, name FROM categories").to_pylist()
    names = {c["name"]: c["category_id"] for c in cats}
    ids = {c["category_id"] for c in cats}
    seen: dict[int, int] = {}
    rows = []
    for e in entries:
        try:
            cid, given, values = category_values(e, names, ids, seen)
        except Bad as b:
            summary.problems.append((e.row, b.reason, b.detail))
            continue
        summary.entries += 1
        rows += [{**base, "row": e.row, "category": given, "category_id": cid, "metric": m, "value": v}
                 for m, v in values.items()]
    return rows


def _check_losses(lake, entries, summary, base, job, fingerprint) -> list[dict]:
    """Rows without a fingerprint get --fingerprint, else their job's newest committed one."""
    newest: dict[str, str | None] = {}
    if job and not fingerprint:
        newest[job] = catalog.current(lake, job, stage="compose").fingerprint  # an unknown --job is an error, not a reject per row
    candidates = []
    for e in entries:
        try:
            r = loss_row(e, job)
            if r["fingerprint"] is None and fingerprint:
                r["fingerprint"] = fingerprint
            elif r["fingerprint"] is None:
                if r["job"] not in newest:
                    try:
                        newest[r["job"]] = catalog.current(lake, r["job"], stage="compose").fingerprint
                    except SoclakeError:
                        newest[r["job"]] = None
                r["fingerprint"] = newest[r["job"]]
                if r["fingerprint"] is None:
                    raise Bad("unmatched_image", f"job {r['job']!r} has no committed shards in this lake")
        except Bad as b:
            summary.problems.append((e.row, b.reason, b.detail))
            continue
        candidates.append((e, r))
    matched = _match_images(lake, [r for _, r in candidates])
    seen: dict[tuple, int] = {}
    rows = []
    for (e, r), ok in zip(candidates, matched):
        ident = (r["fingerprint"], r["image_id"])
        if not ok:
            summary.problems.append((e.row, "unmatched_image", f"job {r['job']} [{r['fingerprint']}] has no "
                                     f"committed image {r['image_id']}"))
        elif ident in seen:
            summary.problems.append((e.row, "duplicate", f"image {r['image_id']} was already given in row {seen[ident]}"))
        else:
            seen[ident] = e.row
            summary.entries += 1
            rows.append({**base, "row": e.row, "metric": "loss", **r})
    return rows


def _match_images(lake: Lake, rows: list[dict]) -> list[bool]:
    table = pa.table({"i": pa.array(range(len(rows)), pa.int64()), "job": pa.array([r["job"] for r in rows], pa.string()),
                      "fingerprint": pa.array([r["fingerprint"] for r in rows], pa.string()),
                      "image_id": pa.array([r["image_id"] for r in rows], pa.int64())})
    lake.con.register("_feedback_images", table)
    try:
        return [m for _, m in lake.con.execute(sqlfiles.query("feedback_match_images")).fetchall()]
    finally:
        lake.con.unregister("_feedback_images")
