"""The hostile input corpus of tests/test_hostile_*.py, generated here (nothing is downloaded):
broken and odd images, PNG bombs whose header declares more pixels than any limit (crafted
without allocating them), tar members that try to leave their folder, and helpers that prove
nothing outside a folder was written (tree snapshots) or read (an open() recorder).

The corpus by file: ingest (bad files, metadata, links, headers), coco (boxes, polygons, ids,
names), names (SQL and path characters in category names), specs (bad job specs), shards
(hostile tar members), sql (the SQL sandbox), writes (links planted where soclake writes,
killed exports), packs (unreadable segments, degraded samples, stage names), lake (damaged,
mistyped and duplicated parts, bad and orphaned packs), stream (mask sizes, index entries,
oversized hosts, nesting and huge integers), serve (what `soclake serve` refuses).
"""
from __future__ import annotations

import builtins
import io
import os
import struct
import tarfile
import zlib

import numpy as np
from conftest import blob_rgba
from PIL import Image


# ----------------------------------------------------------------------------- images
def encode(arr_or_image, fmt: str = "PNG", **kw) -> bytes:
    im = arr_or_image if isinstance(arr_or_image, Image.Image) else Image.fromarray(arr_or_image)
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(width: int, height: int, colour_type: int = 6) -> bytes:
    """A valid PNG header declaring width x height 8-bit pixels (RGBA by default) followed by a
    tiny IDAT: a decoder that trusted the header would allocate the whole image."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
            + _chunk(b"IEND", b""))


def rgba16_png(rgba: np.ndarray) -> bytes:
    import cv2
    ok, enc = cv2.imencode(".png", (rgba.astype(np.uint16) * 257)[..., [2, 1, 0, 3]])
    assert ok
    return enc.tobytes()


def image_files(seed: int = 0) -> dict[str, bytes]:
    """Broken and odd image files; each test states the outcome its layout must give them."""
    rgba = blob_rgba(seed, 48)
    good = encode(rgba)
    jpeg = encode(np.random.default_rng(seed).integers(0, 256, (48, 48, 3), dtype=np.uint8), "JPEG", quality=90)
    palette = Image.fromarray(blob_rgba(seed + 1, 48)).convert("RGB").convert("P")
    return {
        "good.png": good,
        "zero.png": b"",
        "zero.jpg": b"",
        "truncated.png": good[: len(good) // 2],
        "truncated.jpg": jpeg[: len(jpeg) // 2],
        "header_only.jpg": jpeg[:120],
        "bomb.png": png_bomb(100_000, 100_000),
        "one_pixel.png": encode(np.full((1, 1, 4), 200, np.uint8)),
        "tall.png": encode(np.full((5000, 1, 4), 210, np.uint8)),
        "wide.png": encode(np.full((1, 5000, 4), 220, np.uint8)),
        "palette.png": encode(palette, transparency=0),
        "la.png": encode(Image.fromarray(blob_rgba(seed + 2, 48)).convert("LA")),
        "sixteen.png": rgba16_png(blob_rgba(seed + 3, 48)),
        "gray16.png": encode(Image.fromarray((blob_rgba(seed + 4, 48)[..., 0].astype(np.uint16) * 257))),
        "cmyk.jpg": encode(Image.fromarray(blob_rgba(seed + 5, 48)[..., :3]).convert("CMYK"), "JPEG"),
        "text.png": b"this is not an image at all",
    }


BROKEN = {"zero.png": "empty_file", "zero.jpg": "empty_file", "truncated.png": "corrupt",
          "header_only.jpg": "not_an_image", "bomb.png": "too_large", "text.png": "not_an_image"}
"""Outcomes every layout gives the broken files of image_files (the rest depends on the layout)."""


def add_special_files(folder, outcome: dict) -> None:
    """A FIFO and a symlink to /dev/zero named like images: reading either naively hangs or
    never ends. Both must be rejected unread: the FIFO as unreadable, the link because it
    leaves the source (unsafe_path; with --follow-links it is unreadable: not a regular file)."""
    os.mkfifo(os.path.join(folder, "fifo.png"))
    os.symlink("/dev/zero", os.path.join(folder, "devzero.png"))
    outcome.update({"fifo.png": "unreadable", "devzero.png": "unsafe_path"})


# ----------------------------------------------------------------------------- no writes / reads outside
def tree(root) -> dict[str, tuple]:
    """Every path under root (files, folders, links) with what identifies its content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.lstat(path)
            out[os.path.relpath(path, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def changed_outside(before: dict, after: dict, allowed: tuple[str, ...]) -> list[str]:
    """Paths added, removed or modified that lie outside the allowed folders (relative)."""
    def inside(p: str) -> bool:
        return any(p == a or p.startswith(a + os.sep) for a in allowed)
    keys = set(before) | set(after)
    return sorted(k for k in keys if not inside(k) and before.get(k) != after.get(k))


class OpenRecorder:
    """Records every path this process opens through open() / os.open() (monkeypatched)."""

    def __init__(self, monkeypatch):
        self.paths: list[str] = []
        real_open, real_os_open = builtins.open, os.open

        def rec_open(file, *a, **kw):
            if isinstance(file, (str, bytes, os.PathLike)):
                self.paths.append(os.path.abspath(os.fsdecode(file)))
            return real_open(file, *a, **kw)

        def rec_os_open(path, *a, **kw):
            self.paths.append(os.path.abspath(os.fsdecode(path)))
            return real_os_open(path, *a, **kw)

        monkeypatch.setattr(builtins, "open", rec_open)
        monkeypatch.setattr(os, "open", rec_os_open)

    SYSTEM_DATA = ("/usr/share/zoneinfo",)  # the time-zone database, read by date handling

    def outside(self, *roots) -> list[str]:
        roots = [os.path.abspath(r) for r in roots] + list(self.SYSTEM_DATA)
        return sorted({p for p in self.paths if not any(p == r or p.startswith(r + os.sep) for r in roots)})


# ----------------------------------------------------------------------------- tar members
def hostile_members(key: str) -> list[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]]:
    """Tar members a shard must never follow or write: paths escaping the folder, absolute
    paths, a member named like a sample file with a path in its extension, links, devices."""
    def reg(name: str, data: bytes = b"EVIL") -> tuple[tarfile.TarInfo, bytes]:
        info = tarfile.TarInfo(name)
        info.size = len(data)
        return info, data

    def special(name: str, kind: bytes, link: str = "") -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.type, info.linkname = kind, link
        if kind in (tarfile.CHRTYPE, tarfile.BLKTYPE):
            info.devmajor, info.devminor = 1, 5
        return info

    return [
        reg("../evil.jpg"),
        reg("/tmp/soclake-hostile-abs.jpg"),
        reg(f"{key}.x/../../../evil.png"),
        reg(f"{key}.a\\..\\..\\evil.png"),
        reg(".hidden.jpg"),
        special(f"{key}.sym.jpg", tarfile.SYMTYPE, "/etc/passwd"),
        special(f"{key}.hard.jpg", tarfile.LNKTYPE, "../../etc/passwd"),
        special(f"{key}.dev.jpg", tarfile.CHRTYPE),
        special(f"{key}.fifo.jpg", tarfile.FIFOTYPE),
        special(f"{key}.dir", tarfile.DIRTYPE),
    ]


HOSTILE_MEMBER_COUNT = 10


def with_hostile_members(shard: bytes) -> bytes:
    """The shard's members with the hostile ones inserted after the first sample's members."""
    src = tarfile.open(fileobj=io.BytesIO(shard), mode="r:")
    members = [(m, src.extractfile(m).read()) for m in src]
    first_key = members[0][0].name.partition(".")[0]
    n_first = sum(1 for m, _ in members if m.name.partition(".")[0] == first_key)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as out:
        for m, data in members[:n_first]:
            out.addfile(m, io.BytesIO(data))
        for item in hostile_members(first_key):
            info, data = item if isinstance(item, tuple) else (item, None)
            out.addfile(info, io.BytesIO(data) if data is not None else None)
        for m, data in members[n_first:]:
            out.addfile(m, io.BytesIO(data))
    return buf.getvalue()
