"""Where each segment's gallery thumbnail lies, for the whole pool in a few arrays (about 56
bytes a segment): sorted segment ids, pack numbers, offsets and lengths, found by binary search.
Built once from one pass over the segments table (sql/queries/app/thumbnail_levels.sql) and
again when the table changes; a gallery page then needs no read of the nested levels column,
which costs more than the rest of a 1M-row page."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from soclake.lake import Lake
from soclake.lake.sqlfiles import query as sql_query


@dataclass(frozen=True)
class LevelIndex:
    side: int                  # the thumbnail size the levels were chosen for
    ids: np.ndarray            # sorted segment ids, fixed-width bytes
    pack: np.ndarray           # int32 index into packs
    offset: np.ndarray         # int64
    length: np.ndarray         # int64
    level_side: np.ndarray     # int32
    packs: list[str]

    @classmethod
    def build(cls, lake: Lake, side: int) -> "LevelIndex":
        t = lake.query(sql_query("app/thumbnail_levels", side=str(int(side))))
        ids = t.column("segment_id").combine_chunks()
        width = max(1, pc.max(pc.binary_length(ids)).as_py() or 1) if len(ids) else 1
        packs = t.column("pack").combine_chunks().dictionary_encode()
        return cls(side, np.asarray(ids.to_numpy(zero_copy_only=False), dtype=f"S{width}"),
                   packs.indices.to_numpy(zero_copy_only=False).astype(np.int32),
                   _ints(t, "offset", np.int64), _ints(t, "length", np.int64), _ints(t, "side", np.int32),
                   packs.dictionary.to_pylist())

    def find(self, segment_id: str) -> dict | None:
        """The thumbnail level of a segment as a levels entry (side, pack, offset, length), or None."""
        key = segment_id.encode()
        i = int(np.searchsorted(self.ids, key))
        if i >= len(self.ids) or self.ids[i] != key:
            return None
        return {"side": int(self.level_side[i]), "pack": self.packs[self.pack[i]], "offset": int(self.offset[i]),
                "length": int(self.length[i])}

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.ids, self.pack, self.offset, self.length, self.level_side))


def _ints(t: pa.Table, name: str, dtype) -> np.ndarray:
    return t.column(name).combine_chunks().to_numpy(zero_copy_only=False).astype(dtype)
