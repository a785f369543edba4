"""Image formats soclake decodes: the format of a file is read from its first bytes (never
from its name) before any decoder runs, and only the allowed formats ever reach one. Also
holds the JPEG XL path (header parse for the bomb limit and orientation, decode by imagecodecs).
"""
from __future__ import annotations

import struct

import numpy as np

from soclake.errors import RejectedItem

ALLOWED = ("PNG", "JPEG", "WEBP", "BMP", "TIFF", "GIF", "JXL")
"""Formats soclake decodes (Pillow plugin names; JXL is decoded by imagecodecs)."""

IMAGE_EXTENSIONS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".jpe": "JPEG", ".webp": "WEBP",
                    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF", ".jxl": "JXL"}
"""File extensions of the allowed formats (a walk lists these; the header still decides)."""

OTHER_IMAGE_EXTENSIONS = {".heic", ".heif", ".avif", ".svg", ".psd", ".eps", ".ps", ".pdf", ".jp2", ".j2k",
                          ".ico", ".tga", ".exr", ".hdr", ".dng", ".cr2", ".nef", ".arw", ".raw", ".qoi",
                          ".dds", ".pcx", ".ppm", ".pgm", ".pbm", ".xcf"}
"""Image extensions that no allowed decoder reads: such files are rejected as unsupported_format."""

_JXL_CONTAINER = b"\x00\x00\x00\x0cJXL \r\n\x87\n"

# (prefix, offset, format): the first match names the format
_SIGNATURES = [
    (b"\x89PNG\r\n\x1a\n", 0, "PNG"), (b"\xff\xd8\xff", 0, "JPEG"), (b"GIF87a", 0, "GIF"), (b"GIF89a", 0, "GIF"),
    (b"II*\x00", 0, "TIFF"), (b"MM\x00*", 0, "TIFF"), (b"II+\x00", 0, "TIFF"), (b"MM\x00+", 0, "TIFF"),
    (b"\xff\x0a", 0, "JXL"), (_JXL_CONTAINER, 0, "JXL"), (b"BM", 0, "BMP"),
    # recognised so that the reject names them; never decoded
    (b"%!PS", 0, "EPS/PostScript"), (b"\xc5\xd0\xd3\xc6", 0, "EPS/PostScript"), (b"%PDF", 0, "PDF"),
    (b"8BPS", 0, "PSD"), (b"\x00\x00\x00\x0cjP  \r\n\x87\n", 0, "JPEG 2000"), (b"\xffO\xffQ", 0, "JPEG 2000"),
    (b"qoif", 0, "QOI"), (b"v/1\x01", 0, "OpenEXR"), (b"DDS ", 0, "DDS"), (b"\x00\x00\x01\x00", 0, "ICO"),
    (b"<?xml", 0, "XML/SVG"), (b"<svg", 0, "SVG"),
]
_FTYP_BRANDS = {b"heic": "HEIF", b"heix": "HEIF", b"mif1": "HEIF", b"msf1": "HEIF", b"hevc": "HEIF",
                b"avif": "AVIF", b"avis": "AVIF"}


def sniff(data: bytes) -> str | None:
    """The format named by the file's first bytes (an ALLOWED name, another format's name, or
    None when nothing is recognised)."""
    for prefix, offset, fmt in _SIGNATURES:
        if data[offset:offset + len(prefix)] == prefix:
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return _FTYP_BRANDS.get(data[8:12], "ISO media")
    return None


def check_format(data: bytes) -> str:
    """The ALLOWED format of `data`, or RejectedItem (empty_file, not_an_image, unsupported_format)."""
    if not data:
        raise RejectedItem("empty_file", "the file has zero bytes; re-export it")
    fmt = sniff(data)
    if fmt is None:
        raise RejectedItem("not_an_image", "its first bytes match no image format soclake reads "
                           f"({', '.join(ALLOWED)}); check that the file is an image")
    if fmt not in ALLOWED:
        raise RejectedItem("unsupported_format", f"the file is {fmt} (read from its header), not one of "
                           f"{', '.join(ALLOWED)}; convert it to PNG or JPEG")
    return fmt


# ----------------------------------------------------------------------------- JPEG XL
class _Bits:
    """LSB-first bit reader over a JPEG XL codestream."""

    def __init__(self, data: bytes):
        self.data, self.pos = data, 0

    def u(self, n: int) -> int:
        value = 0
        for i in range(n):
            byte = self.pos >> 3
            if byte >= len(self.data):
                raise RejectedItem("corrupt", "the JPEG XL header is truncated; re-export the file")
            value |= ((self.data[byte] >> (self.pos & 7)) & 1) << i
            self.pos += 1
        return value

    def u32_size(self) -> int:
        return self.u((9, 13, 18, 30)[self.u(2)]) + 1


_RATIOS = {1: (1, 1), 2: (12, 10), 3: (4, 3), 4: (3, 2), 5: (16, 9), 6: (5, 4), 7: (2, 1)}


def _jxl_codestream(data: bytes) -> bytes:
    """The start of the codestream of a bare or ISOBMFF-contained JPEG XL file."""
    if data[:2] == b"\xff\x0a":
        return data
    pos = 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos:pos + 8])
        head = 8
        if size == 1:
            if pos + 16 > len(data):
                break
            size, head = struct.unpack(">Q", data[pos + 8:pos + 16])[0], 16
        body = data[pos + head:pos + size] if size else data[pos + head:]
        if kind == b"jxlc":
            return body
        if kind == b"jxlp":
            return body[4:]
        if size == 0 or size < head:
            break
        pos += size
    raise RejectedItem("corrupt", "the JPEG XL container holds no codestream box; re-export the file")


def jxl_header(data: bytes) -> tuple[int, int, int]:
    """(width, height, orientation) from a JPEG XL header, read without decoding pixels."""
    code = _jxl_codestream(data)
    if code[:2] != b"\xff\x0a":
        raise RejectedItem("corrupt", "the JPEG XL codestream signature is missing; re-export the file")
    bits = _Bits(code[2:64])
    small = bits.u(1)
    height = (bits.u(5) + 1) * 8 if small else bits.u32_size()
    ratio = bits.u(3)
    if ratio:
        num, den = _RATIOS[ratio]
        width = height * num // den
    else:
        width = (bits.u(5) + 1) * 8 if small else bits.u32_size()
    orientation = 1
    if not bits.u(1):  # ImageMetadata.all_default is false
        if bits.u(1):  # extra_fields
            orientation = 1 + bits.u(3)
    return width, height, orientation


def decode_jxl(data: bytes, max_pixels: int) -> np.ndarray:
    """Pixels of a JPEG XL file (H x W or H x W x C, uint8 or uint16), its orientation applied,
    after checking the header's size against max_pixels."""
    width, height, orientation = jxl_header(data)
    if width * height > max_pixels:
        raise RejectedItem("too_large", f"{width}x{height} exceeds the limit of {max_pixels} pixels; "
                           "shrink the image or raise --max-pixels")
    import imagecodecs  # JPEG XL only: a 150 ms import that other formats never pay
    try:
        arr = imagecodecs.jpegxl_decode(data, keeporientation=False, numthreads=1)
    except Exception as e:  # imagecodecs raises its own error types for bad streams
        raise RejectedItem("corrupt", f"JPEG XL data is truncated or corrupt ({e}); re-export the file") from None
    expected = (width, height) if orientation <= 4 else (height, width)
    if arr.ndim == 4:  # frames x H x W x C: an animation; the first frame is the image
        arr = arr[0]
    if (arr.shape[1], arr.shape[0]) != expected:
        raise RejectedItem("corrupt", f"JPEG XL decoded to {arr.shape[1]}x{arr.shape[0]}, its header says "
                           f"{expected[0]}x{expected[1]}; re-export the file")
    return arr
