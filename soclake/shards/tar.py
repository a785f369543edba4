"""The shard codec: deterministic POSIX tars of WebDataset samples (fixed mtimes and owners,
so reruns are byte identical) and the member rules readers apply (only plain top-level files
named KEY.EXT). No lake here: a training worker reads shards without DuckDB."""
from __future__ import annotations

import io
import tarfile
from typing import Callable, Iterable

KEY_DIGITS = 9


def sample_key(image_id: int) -> str:
    """The key of an image's sample in a shard (and of its files in exports): 000000042."""
    return f"{image_id:0{KEY_DIGITS}d}"


def parse_key(key: str) -> str:
    """A key as a user may type it ("42", "000000042") in its canonical form."""
    key = key.strip()
    return sample_key(int(key)) if key.isdigit() and len(key) <= KEY_DIGITS else key


def tar_bytes(samples: Iterable[tuple[str, dict[str, bytes]]]) -> bytes:
    """A tar of samples (key, {extension: bytes}); members KEY.EXT in the given order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            if "." in key or "/" in key:
                raise ValueError(f"sample key {key!r} must not contain '.' or '/'")
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def member_problem(m: tarfile.TarInfo) -> str | None:
    """Why a tar member is not a sample member, or None. Only regular files named KEY.EXT at
    the top level count: links, devices, folders, paths with '/' or '\\' ('../evil', '/abs')
    and hidden names are never read, followed or written anywhere."""
    if not m.isreg():
        kind = ("a symlink" if m.issym() else "a hard link" if m.islnk() else "a device or FIFO"
                if m.isdev() else "a folder" if m.isdir() else "not a regular file")
        return kind
    name = m.name
    if "/" in name or "\\" in name or "\x00" in name:
        return "a path, not a plain file name"
    if name.startswith(".") or "." not in name:
        return "not named KEY.EXT"
    return None


IMAGE_EXTS = ("jpg", "png", "webp")


def is_composite(ext: str) -> bool:
    """Whether a member extension is a sample's composite (KEY.jpg, KEY.rgba.png, ...), not a map."""
    return ext.split(".")[-1] in IMAGE_EXTS and not ext.startswith(("pan.", "fg."))


def composite_member(members: dict) -> str | None:
    """The extension of a sample's composite member, or None."""
    return next((ext for ext in members if is_composite(ext)), None)


Skip = Callable[[str, str], None]
"""Handler of skipped members: called with (member name, why)."""


def read_samples(data: bytes, on_skip: Skip | None = None) -> list[tuple[str, dict[str, bytes]]]:
    """Samples of a shard's bytes: (key, {extension: bytes}) in order. Members that are not
    plain top-level files (see member_problem) are skipped and reported to `on_skip`."""
    samples: list[tuple[str, dict[str, bytes]]] = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as tar:
        for m in tar:
            problem = member_problem(m)
            if problem:
                if on_skip:
                    on_skip(m.name, problem)
                continue
            key, _, ext = m.name.partition(".")
            if not samples or samples[-1][0] != key:
                samples.append((key, {}))
            samples[-1][1][ext] = tar.extractfile(m).read()
    return samples
