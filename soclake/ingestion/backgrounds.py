"""Layout `backgrounds`: a folder (walked recursively) of RGB images for the backgrounds table.

JPEG, PNG and WebP files are stored as they are; other formats are re-encoded as PNG.
"""
from __future__ import annotations

import hashlib
import io
import os
from typing import Iterator

import numpy as np
from PIL import Image

from soclake import imaging
from soclake.errors import SoclakeError
from soclake.ingestion.engine import Cutout, IngestOptions, Task
from soclake.ingestion.files import read_file, walk

KIND = "backgrounds"
STORED_AS_IS = {"JPEG": "jpeg", "PNG": "png", "WEBP": "webp"}


def scan(source: str, options: IngestOptions) -> Iterator[Task]:
    if not os.path.isdir(source):
        raise SoclakeError(f"backgrounds source {source!r} is not a folder of images")
    for rel in walk(source):
        yield Task(uri=rel, path=os.path.join(source, rel))


def load(task: Task, options: IngestOptions) -> Iterator[Cutout]:
    data, sha = read_file(task.path)
    rgb = imaging.decode_rgb(data, options.max_pixels)
    yield Cutout(task.uri, rgb, (0, 0), (rgb.shape[1], rgb.shape[0]), sha, fields={"data": data})


def build(cut: Cutout, options: IngestOptions) -> tuple:
    rgb, data = cut.rgba, cut.fields["data"]
    h = hashlib.sha256(f"{rgb.shape[1]}x{rgb.shape[0]}:".encode())
    h.update(np.ascontiguousarray(rgb).data)
    bg_id = h.hexdigest()[:32]
    fmt = STORED_AS_IS.get(Image.open(io.BytesIO(data)).format)
    if fmt is None or Image.open(io.BytesIO(data)).mode not in ("RGB", "L"):
        buf = io.BytesIO()
        Image.fromarray(rgb).save(buf, "PNG", compress_level=1)
        data, fmt = buf.getvalue(), "png"
    thumb = imaging.resize_rgba(np.dstack([rgb, np.full(rgb.shape[:2], 255, np.uint8)]),
                                *imaging.scaled_size(rgb.shape[1], rgb.shape[0], 64))
    row = {"background_id": bg_id, "source_uri": cut.uri, "width": rgb.shape[1], "height": rgb.shape[0],
           "format": fmt, "dominant_color": imaging.dominant_color(thumb), "sha256": cut.sha256}
    return ("background", row, [(f"{bg_id}.{fmt}", data)])
