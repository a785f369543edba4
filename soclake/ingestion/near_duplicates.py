"""Near-duplicate search at ingest: before a flush writes its segment rows, one SQL query finds,
for each new row, the earlier segments of its dominant colour whose perceptual hash is within
the lake's threshold (sql/queries/near_duplicate_candidates.sql); the row joins the group of the closest one.

Groups form in ingest order: a group is named by its first-ingested member, and a segment that
is near two groups joins the closer one. The audit groups the stored columns in SQL.
"""
from __future__ import annotations

import pyarrow as pa

from soclake.lake import Lake, sqlfiles


def mark(lake: Lake, rows: list[dict]) -> None:
    """Set near_duplicate (the group's first member, its provenance, and the distance to the
    closest earlier member) on `rows` in place, against the lake's segments and the rows before
    each one in `rows`. Rows carry segment_id, phash, dominant_color, source, source_uri and
    category_id (a flush's rows once placed)."""
    seqs = [i for i, r in enumerate(rows) if r.get("phash") is not None]
    if not seqs:
        return
    lake.con.register("_batch", pa.table({
        "seq": pa.array(seqs, pa.int64()), "phash": pa.array([rows[i]["phash"] for i in seqs], pa.uint64()),
        "dominant_color": pa.array([rows[i]["dominant_color"] for i in seqs], pa.string())}))
    try:
        hits = lake.con.execute(sqlfiles.query("near_duplicate_candidates")).fetchall()
    finally:
        lake.con.unregister("_batch")
    closest: dict[int, tuple] = {}
    for seq, *hit in hits:
        closest.setdefault(seq, tuple(hit))  # rows come closest first
    for seq in sorted(closest):
        match_seq, of, source, uri, category, bits = closest[seq]
        if match_seq is not None:  # an earlier row of this batch, already resolved
            earlier = rows[match_seq]
            root = earlier.get("near_duplicate") or {"of": earlier["segment_id"], "source": earlier.get("source"),
                                                     "source_uri": earlier["source_uri"],
                                                     "category_id": earlier.get("category_id")}
            of, source, uri, category = root["of"], root["source"], root["source_uri"], root["category_id"]
        rows[seq]["near_duplicate"] = {"of": of, "bits": bits, "source": source, "source_uri": uri,
                                       "category_id": category}
