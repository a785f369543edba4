"""Reading single members of committed shards without reading whole shards: the tar headers of
a shard are walked once (seeks, not reads of the data) into an index of member offsets, kept
in the app's cache; each member is then one range read. Only members that the shard codec's
rules accept (plain top-level files named KEY.EXT) are ever indexed."""
from __future__ import annotations

import tarfile

from soclake.app import guard
from soclake.app.state import LakeView
from soclake.shards.tar import member_problem

Index = dict[str, dict[str, tuple[int, int]]]
"""key -> {extension: (data offset, size)}"""


def member_index(view: LakeView, shard_relpath: str) -> Index:
    """The members of a shard (a path relative to the lake, as the manifest names it), by key."""
    def build() -> Index:
        path = guard.lake_file(view.lake, shard_relpath)
        index: Index = {}
        try:
            with view.lake.fs.open(path, "rb") as f, tarfile.open(fileobj=f, mode="r:") as tar:
                for m in tar:
                    if member_problem(m) is None:
                        key, _, ext = m.name.partition(".")
                        index.setdefault(key, {})[ext] = (m.offset_data, m.size)
        except (tarfile.TarError, EOFError, OSError) as e:
            raise guard.AppError(500, f"shard {shard_relpath} is not a readable tar ({type(e).__name__}); check "
                                      "it with `soclake verify --deep`") from None
        return index
    return view.members.get_or(shard_relpath, build)


def read_member(view: LakeView, shard_relpath: str, key: str, ext: str) -> bytes:
    members = member_index(view, shard_relpath).get(key)
    if members is None:
        raise guard.not_found(f"no sample {key} in shard {shard_relpath}")
    if ext not in members:
        raise guard.not_found(f"sample {key} has no member {ext!r} (it has {', '.join(sorted(members))})")
    offset, size = members[ext]
    return view.lake.read_range(shard_relpath, offset, size)


def media_type(data: bytes, ext: str = "") -> str:
    """The media type of a member or level, from its first bytes (the extension for text)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "image/png"
    if data[:3] == b"\xff\xd8\xff":
        return "image/jpeg"
    if ext.endswith("json"):
        return "application/json"
    return "application/octet-stream"
