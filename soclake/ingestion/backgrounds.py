"""Layout `backgrounds`: a folder (walked recursively) of RGB images for the backgrounds table.

JPEG, PNG and WebP files are stored as they are; other formats (JPEG XL, TIFF, ...) and any
image whose EXIF orientation turns it are re-encoded upright as PNG, so every reader sees the
same pixels; the orientation that was applied is recorded.
"""
from __future__ import annotations

import hashlib
import io
import os
from typing import Iterator

import numpy as np
from PIL import Image

from soclake import formats, imaging
from soclake.errors import SoclakeError
from soclake.ingestion.engine import Cutout, IngestOptions, Task
from soclake.ingestion.files import read_file, walk

KIND = "backgrounds"
STORED_AS_IS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    if not os.path.isdir(source):
        raise SoclakeError(f"backgrounds source {source!r} is not a folder of images")
    for found in walk(source, follow_links=bool(options.layout.get("follow_links"))):
        if found.reject:
            yield Task(uri=found.rel, reject=found.reject)
        else:
            yield Task(uri=found.rel, path=os.path.join(source, found.rel))


def load(task: Task, options: IngestOptions) -> Iterator[Cutout]:
    data, sha = read_file(task.path)
    rgb = imaging.decode_rgb(data, options.max_pixels)
    yield Cutout(task.uri, rgb, (0, 0), (rgb.shape[1], rgb.shape[0]), sha,
                 fields={"data": data, "exif_orientation": imaging.source_orientation(data)})


def _stored_as_is(data: bytes, orientation: int) -> str | None:
    """The pack format of the original bytes when readers decode them to the same pixels."""
    fmt = STORED_AS_IS.get(formats.sniff(data) or "")
    if fmt is None or orientation != 1:
        return None
    return fmt if imaging.open_image(data).mode in ("RGB", "L") else None


def build(cut: Cutout, options: IngestOptions) -> tuple:
    rgb, data, orientation = cut.rgba, cut.fields["data"], cut.fields["exif_orientation"]
    h = hashlib.sha256(f"{rgb.shape[1]}x{rgb.shape[0]}:".encode())
    h.update(np.ascontiguousarray(rgb).data)
    bg_id = h.hexdigest()[:32]
    fmt = _stored_as_is(data, orientation)
    if fmt is None:
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
        data, fmt = buf.getvalue(), "png"
    thumb = imaging.resize_rgba(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
                                *imaging.scaled_size(rgb.shape[1], rgb.shape[0], 64))
    row = {"background_id": bg_id, "source_uri": cut.uri, "width": rgb.shape[1], "height": rgb.shape[0],
           "format": fmt, "dominant_color": imaging.dominant_color(thumb), "sha256": cut.sha256,
           "exif_orientation": orientation}
    return ("background", row, [(f"{bg_id}.{fmt}", data)])
