"""soclake.formats: formats read from headers, the JPEG XL header parser (sizes, orientation)
checked against imagecodecs' own encoder, and the bomb limit applied before any JXL decode.
"""
from __future__ import annotations

import io

import imagecodecs
import numpy as np
import pytest
from PIL import Image

from soclake import formats, imaging
from soclake.errors import RejectedItem


def encoded(fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF"])
def test_sniff_names_each_allowed_format(fmt):
    assert formats.sniff(encoded(fmt)) == fmt


@pytest.mark.parametrize("data,name", [(b"%!PS-Adobe-3.0 EPSF-3.0\n", "EPS/PostScript"), (b"%PDF-1.7\n", "PDF"),
                                       (b"\x00\x00\x00\x18ftypheic\x00\x00", "HEIF"), (b"8BPS\x00\x01", "PSD")])
def test_other_formats_are_named_and_refused(data, name):
    assert formats.sniff(data) == name
    with pytest.raises(RejectedItem, match=name) as e:
        formats.check_format(data)
    assert e.value.reason == "unsupported_format"


@pytest.mark.parametrize("shape", [(8, 8, 3), (48, 64, 4), (64, 48), (1, 1, 3), (5000, 1), (300, 600, 3), (777, 333, 3),
                                   (100, 177, 3), (300, 257, 4)])
@pytest.mark.parametrize("container", [False, True])
def test_jxl_header_sizes_match_the_encoder(shape, container):
    arr = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    data = imagecodecs.jpegxl_encode(arr, lossless=True, usecontainer=container)
    assert formats.sniff(data) == "JXL"
    assert formats.jxl_header(data) == (shape[1], shape[0], 1)
    assert np.array_equal(formats.decode_jxl(data, 10 ** 8), arr)


def bits(*fields: tuple[int, int]) -> bytes:
    """LSB-first packing of (value, width) fields, as JPEG XL headers are written."""
    acc, n = 0, 0
    for value, width in fields:
        acc |= value << n
        n += width
    return acc.to_bytes((n + 7) // 8 + 8, "little")


def test_jxl_header_reads_orientation_and_large_sizes():
    # small size 16x8 (ratio 2:1), all_default false, extra_fields true, orientation 6
    small = b"\xff\x0a" + bits((1, 1), (0, 5), (7, 3), (0, 1), (1, 1), (5, 3))
    assert formats.jxl_header(small) == (16, 8, 6)
    # large: height from U32 selector 3 (30 bits) = 100000, width with selector 2 (18 bits) = 200000
    large = b"\xff\x0a" + bits((0, 1), (3, 2), (99_999, 30), (0, 3), (2, 2), (199_999, 18), (1, 1))
    assert formats.jxl_header(large) == (200_000, 100_000, 1)
    with pytest.raises(RejectedItem) as e:  # a bomb: refused from the header, before imagecodecs decodes
        formats.decode_jxl(large, 10 ** 8)
    assert e.value.reason == "too_large"


def test_jxl_through_open_image_and_truncated_files():
    rgba = np.random.default_rng(1).integers(0, 256, (20, 30, 4), dtype=np.uint8)
    data = imagecodecs.jpegxl_encode(rgba, lossless=True)
    assert np.array_equal(imaging.decode_rgba(data), rgba)
    gray16 = (np.arange(600, dtype=np.uint16).reshape(20, 30) * 100)
    assert np.array_equal(imaging.decode_gray(imagecodecs.jpegxl_encode(gray16, lossless=True)), (gray16 >> 8).astype(np.uint8))
    with pytest.raises(RejectedItem) as e:
        imaging.decode_rgba(data[: len(data) // 2])
    assert e.value.reason == "corrupt"


def test_open_image_never_runs_a_decoder_other_than_the_headers(monkeypatch):
    """A PNG named anything opens with the PNG plugin only; Pillow's other plugins never see it."""
    from PIL import EpsImagePlugin
    calls = []
    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: calls.append("eps"))
    with pytest.raises(RejectedItem) as e:
        imaging.open_image(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n")
    assert e.value.reason == "unsupported_format" and calls == []
