"""`soclake show`: draw one sample's composite with its masks, boxes and labels, for a person.
It reads one shard and writes only the output PNG; a sample it cannot draw is an error that
names the shard and the key."""
from __future__ import annotations

import io
import json
import os
import sys
import tarfile

import numpy as np
from PIL import Image, ImageDraw

from soclake import paths, storage
from soclake.errors import SoclakeError, did_you_mean
from soclake.imaging import open_image
from soclake.lake import Lake, catalog
from soclake.shards.tar import parse_key, read_samples


def read_sample(shard: str | io.BytesIO, key: str | None) -> tuple[str, dict[str, bytes]]:
    """Members of the sample `key` (default: the first) of a shard, by extension."""
    data = shard.getvalue() if isinstance(shard, io.BytesIO) else open(shard, "rb").read()

    def skipped(name: str, why: str) -> None:
        print(f"warning: skipped member {name[:200]!r} of the shard ({why})", file=sys.stderr)

    try:
        samples = dict(read_samples(data, skipped))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise SoclakeError(f"the shard is not a readable tar ({e}); check it with `soclake verify`") from None
    key = parse_key(key) if key is not None else next(iter(samples), None)
    if key not in samples:
        raise SoclakeError(f"no sample with key {key!r} in the shard" + did_you_mean(key, list(samples), "keys"))
    return key, samples[key]


def _shard_of_job(lake_uri: str | None, job: str, key: str | None, fingerprint: str | None) -> io.BytesIO:
    if not lake_uri:
        raise SoclakeError("showing a job needs --lake")
    lake = Lake(lake_uri)
    run = catalog.current(lake, job, fingerprint)
    images = catalog.compose_run(lake, run).fingerprint  # stage shards keep their input's keys and shards
    key = parse_key(key) if key is not None else None
    rows = lake.con.execute("SELECT shard FROM committed_images WHERE fingerprint = ? AND (? IS NULL OR key = ?) "
                            "AND shard IN (SELECT shard FROM manifest WHERE fingerprint = ? AND stage = ?) "
                            "ORDER BY image_id LIMIT 1", [images, key, key, run.fingerprint, run.stage]).fetchall()
    if not rows:
        keys = [r[0] for r in lake.con.execute("SELECT key FROM committed_images WHERE fingerprint = ? ORDER BY key "
                                                "LIMIT 50", [images]).fetchall()]
        raise SoclakeError(f"no committed sample of job {job!r} [{run.fingerprint}]"
                           + (f" with key {key}" + did_you_mean(key, keys, "keys") if key else ""))
    return io.BytesIO(lake.fs.cat_file(lake.path(paths.shard_uri(run.job, run.fingerprint, rows[0][0]))))


def palette(i: int) -> tuple[int, int, int]:
    rng = np.random.default_rng(i * 7919 + 1)
    return tuple(int(v) for v in rng.integers(60, 256, 3))


def _decode(blob: bytes) -> Image.Image:
    return open_image(blob)  # refuses decompression bombs before decoding


def render_overview(members: dict[str, bytes]) -> Image.Image:
    info = json.loads(members["json"])
    comp_ext = info["file_name"].split(".", 1)[1]
    comp = _decode(members[comp_ext]).convert("RGBA")
    if comp_ext.startswith("rgba"):  # show transparent composites on a checkerboard
        board = np.indices((comp.height, comp.width)).sum(0) // 16 % 2 * 60 + 150
        comp = Image.alpha_composite(Image.fromarray(np.dstack([board] * 3 + [np.full_like(board, 255)]).astype(np.uint8)), comp)
    pan = np.asarray(_decode(members["pan.png"]).convert("RGB")).astype(np.int64)
    pid = pan[..., 0] + 256 * pan[..., 1] + 65536 * pan[..., 2]
    overlay = np.zeros((comp.height, comp.width, 4), np.uint8)
    for inst in info["instances"]:
        overlay[pid == inst["panoptic_id"]] = (*palette(inst["panoptic_id"]), 110)
    out = Image.alpha_composite(comp, Image.fromarray(overlay))
    draw = ImageDraw.Draw(out)
    for inst in info["instances"]:
        x, y, w, h = inst["bbox"]
        colour = palette(inst["panoptic_id"])
        draw.rectangle([x, y, x + w - 1, y + h - 1], outline=colour, width=2)
        label = f"{inst['category']} #{inst['panoptic_id']}"
        draw.rectangle([x, y, x + 6 * len(label) + 4, y + 11], fill=colour)
        draw.text((x + 2, y), label, fill=(0, 0, 0))
    return out.convert("RGB")


def show(target: str, out: str, lake_uri: str | None = None, key: str | None = None,
         fingerprint: str | None = None) -> str:
    shard = target if target.endswith(".tar") and os.path.isfile(target) else _shard_of_job(lake_uri, target, key, fingerprint)
    key, members = read_sample(shard, key)
    try:
        image = render_overview(members)
    except Exception as e:  # a sample of another shape or a broken member: say which, never a traceback
        where = target if isinstance(shard, str) else f"job {target}"
        raise SoclakeError(f"sample {key} of {where} cannot be drawn ({type(e).__name__}: {str(e)[:200]}); "
                           "is it a soclake compose shard? check it with `soclake verify --deep`") from None
    fmt = Image.registered_extensions().get(os.path.splitext(out)[1].lower())
    if fmt is None:
        raise SoclakeError(f"--out {out}: name the picture with an image extension such as .png or .jpg")
    buf = io.BytesIO()
    image.save(buf, fmt)
    storage.write_bytes(storage.LOCAL, os.path.abspath(out), buf.getvalue())  # never through a link at --out
    return out
