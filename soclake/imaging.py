"""Pixel operations shared by ingest and render: safe decoding, canonical RGBA crops,
premultiplied-alpha resizing, pyramid levels, lossless level codec and segment statistics.

Nothing here touches the lake; every function is pure over arrays and bytes.
"""
from __future__ import annotations

import hashlib
import io
import struct
import warnings

import cv2
import numpy as np
from PIL import Image, ImageOps

try:
    from compression import zstd  # Python 3.14+
except ImportError:
    from backports import zstd

from soclake import formats
from soclake.errors import RejectedItem

cv2.setNumThreads(1)  # parallelism comes from worker processes; threads only add contention

MASK_THRESHOLD = 128
"""Lake-wide: a pixel belongs to a segment's mask where its alpha is >= 128 (of 255)."""

MAX_PIXELS = 100_000_000
"""Images above this many pixels are rejected before decoding (decompression bombs)."""

ALLOWED_FORMATS = set(formats.ALLOWED)


def open_image(data: bytes, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open encoded image bytes lazily, rejecting non-images, odd formats and bombs. The format
    is read from the header first and only its own decoder runs (an EPS named .jpg never
    reaches Pillow's EPS plugin and Ghostscript). JPEG XL is decoded here, after its header's
    size passed the limit."""
    fmt = formats.check_format(data)
    if fmt == "JXL":
        return _jxl_image(formats.decode_jxl(data, max_pixels))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(io.BytesIO(data), formats=[fmt])
    except Image.DecompressionBombError as e:
        raise RejectedItem("too_large", f"{e}; shrink the image below {max_pixels} pixels") from None
    except Exception as e:  # PIL raises several types for garbage input
        raise RejectedItem("not_an_image", f"cannot read the {fmt} header ({type(e).__name__}); "
                           "the file is damaged or not an image") from None
    if im.width * im.height > max_pixels:
        raise RejectedItem("too_large", f"{im.width}x{im.height} exceeds the limit of {max_pixels} "
                           "pixels; shrink the image or raise --max-pixels")
    if im.width < 1 or im.height < 1:
        raise RejectedItem("empty_image", "image has no pixels")
    return im


def _jxl_image(arr: np.ndarray) -> Image.Image:
    """A Pillow image of decoded JPEG XL pixels; 16-bit colour keeps its 8 high bits, as PNG does."""
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[..., 0]
    if arr.dtype == np.uint16 and arr.ndim == 2:
        im = Image.fromarray(arr)  # mode I;16: decode_gray scales it like a 16-bit PNG mask
    else:
        if arr.dtype == np.uint16:
            arr = (arr >> 8).astype(np.uint8)
        elif arr.dtype != np.uint8:
            arr = np.clip(arr.astype(np.float32) * 255 + 0.5, 0, 255).astype(np.uint8)
        mode = "L" if arr.ndim == 2 else {2: "LA", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
        im = Image.fromarray(np.ascontiguousarray(arr), mode)
    im.format = "JXL"
    return im


EXIF_ORIENTATION = 0x0112


def orientation(im: Image.Image) -> int:
    """The EXIF orientation (1-8) a file asks for; 1 when it has none. PNGs are asked only
    for an eXIf chunk read with the header (Pillow would otherwise decode the whole image)."""
    try:
        if im.format == "PNG":
            raw = im.info.get("exif")
            if not raw:
                return 1
            exif = Image.Exif()
            exif.load(raw)
        else:
            exif = im.getexif()
        value = exif.get(EXIF_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block: the pixels are kept as stored
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def source_orientation(data: bytes) -> int:
    """The orientation the file's own metadata gives (EXIF; JPEG XL header), 1 when none; the
    decode_* functions apply it."""
    if formats.sniff(data) == "JXL":
        return formats.jxl_header(data)[2]
    try:
        return orientation(open_image(data))
    except RejectedItem:
        return 1


def _upright(im: Image.Image) -> Image.Image:
    """The decoded image turned as its EXIF orientation asks (a no-op for orientation 1)."""
    if orientation(im) == 1:
        return _load(im)
    _load(im)
    try:
        return ImageOps.exif_transpose(im)
    except Exception as e:
        raise RejectedItem("corrupt", f"cannot apply the EXIF orientation ({e}); re-export the file") from None


def _decode_fast_rgba(data: bytes) -> np.ndarray | None:
    """OpenCV decodes 8-bit RGBA PNGs ~25% faster than Pillow; None when it cannot."""
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr is None or arr.ndim != 3 or arr.shape[2] != 4:
        return None
    if arr.dtype == np.uint16:
        arr = (arr >> 8).astype(np.uint8)
    return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA)


def has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info)


def decode_rgba(data: bytes, max_pixels: int = MAX_PIXELS, require_alpha: bool = True) -> np.ndarray:
    """Decode to an HxWx4 uint8 RGBA array, turned upright as its EXIF orientation asks.
    Without an alpha channel: rejected, or opaque."""
    im = open_image(data, max_pixels)
    if require_alpha and not has_alpha(im):
        raise RejectedItem("no_alpha", f"mode {im.mode} has no alpha channel; a cut-out needs "
                           "transparency (save it as an RGBA PNG)")
    if im.format == "PNG" and im.mode == "RGBA" and orientation(im) == 1:
        arr = _decode_fast_rgba(data)
        if arr is not None and arr.shape[:2] == (im.height, im.width):
            return arr
    return np.asarray(_upright(im).convert("RGBA"))


def decode_rgb(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode to an HxWx3 uint8 RGB array (alpha, if any, is dropped), turned upright."""
    im = _upright(open_image(data, max_pixels))
    if im.mode == "RGB":
        return np.asarray(im)
    if im.mode == "I;16" or im.mode.startswith("I"):
        im = Image.fromarray((np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8))
    return np.asarray(im.convert("RGB"))


def decode_gray(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Decode a mask image to HxW uint8 (16-bit masks are scaled down, colour masks averaged),
    turned upright."""
    im = _upright(open_image(data, max_pixels))
    if im.mode in ("I;16", "I;16B", "I"):
        return (np.asarray(im, dtype=np.uint32) >> 8).astype(np.uint8)
    if im.mode in ("RGBA", "LA") and np.asarray(im.getchannel("A")).min() < 255:
        return np.asarray(im.getchannel("A"))
    return np.asarray(im.convert("L"))


def _load(im: Image.Image) -> Image.Image:
    try:
        im.load()
    except Exception as e:
        raise RejectedItem("corrupt", f"image data is truncated or corrupt ({e}); re-export the file") from None
    return im


# ----------------------------------------------------------------------------- crops
def alpha_box(alpha: np.ndarray) -> tuple[int, int, int, int] | None:
    """Tight (x0, y0, x1, y1) box of alpha > 0 (exclusive ends), or None if fully transparent."""
    rows = np.flatnonzero(alpha.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(alpha[rows[0]:rows[-1] + 1].any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def canonical_crop(rgba: np.ndarray) -> tuple[np.ndarray, tuple[int, int]]:
    """Crop RGBA tightly to alpha > 0 and zero the colour of transparent pixels.

    Returns the crop and its (x, y) offset. Raises RejectedItem for fully transparent input.
    """
    box = alpha_box(rgba[..., 3])
    if box is None:
        raise RejectedItem("fully_transparent", "alpha is 0 everywhere; nothing to cut out")
    x0, y0, x1, y1 = box
    crop = np.array(rgba[y0:y1, x0:x1], copy=True)
    crop[crop[..., 3] == 0, :3] = 0
    if not (crop[..., 3] >= MASK_THRESHOLD).any():
        raise RejectedItem("faint_alpha", f"alpha never reaches {MASK_THRESHOLD}; no pixel would be "
                           "labelled (is the mask scaled 0-1 instead of 0-255?)")
    return crop, (x0, y0)


def content_id(crop: np.ndarray) -> str:
    """Stable segment id: sha256 of the crop's shape and canonical RGBA bytes (32 hex chars)."""
    h = hashlib.sha256(f"{crop.shape[1]}x{crop.shape[0]}:".encode())
    h.update(np.ascontiguousarray(crop).data)
    return h.hexdigest()[:32]


def segment_key(segment_id: str) -> int:
    """The segments table's integer key of a content id: its first 16 hex digits as a signed
    64-bit integer (order-preserving, so ranks by key then id are ranks by id)."""
    return int(segment_id[:16], 16) - (1 << 63)


# ----------------------------------------------------------------------------- resizing
def resize_rgba(rgba: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize straight-alpha RGBA through premultiplied alpha (no dark fringes)."""
    if (width, height) == (rgba.shape[1], rgba.shape[0]):
        return rgba
    shrinking = width < rgba.shape[1] and height < rgba.shape[0]
    interp = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    a = rgba[..., 3:4].astype(np.float32) * np.float32(1 / 255)
    prem = np.concatenate([rgba[..., :3].astype(np.float32) * a, a * 255], axis=2)
    out = cv2.resize(prem, (width, height), interpolation=interp)
    alpha = out[..., 3]
    rgb = out[..., :3] * (255 / np.maximum(alpha, 1e-3))[..., None]
    res = np.empty((height, width, 4), np.uint8)
    res[..., :3] = np.clip(rgb + 0.5, 0, 255)
    res[..., 3] = np.clip(alpha + 0.5, 0, 255)
    res[res[..., 3] == 0, :3] = 0
    return res


def level_sides(longest: int, max_side: int = 1024, min_side: int = 32) -> list[int]:
    """Longest sides of the pyramid: the native size (capped at max_side), then the powers of
    two from below top / 1.5 down to min_side. Near-duplicates of the top level (700 -> 512)
    are skipped: they cost ingest time and pack bytes while saving little decode; a renderer's
    decode stays within about 5x the pixels it pastes."""
    top = min(longest, max_side)
    sides = [top]
    s = 1 << max(top - 1, 1).bit_length()
    while s >= min_side:
        if s * 1.5 <= top:
            sides.append(s)
        s //= 2
    return sides


def scaled_size(width: int, height: int, side: int) -> tuple[int, int]:
    longest = max(width, height)
    if side >= longest:
        return width, height
    f = side / longest
    return max(1, round(width * f)), max(1, round(height * f))


def nonzero(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """np.nonzero of a 2-D bool (or uint8) mask, in the same row-major order, through
    OpenCV's findNonZero (about 2x faster)."""
    points = cv2.findNonZero(mask.view(np.uint8) if mask.dtype == bool else mask)
    if points is None:
        return np.zeros(0, np.intp), np.zeros(0, np.intp)
    points = points.reshape(-1, 2)
    return points[:, 1], points[:, 0]


def premultiply(rgba: np.ndarray) -> np.ndarray:
    """An (h, w, 4) float32 array from straight RGBA uint8: rgb * a / 255 and a, in 0..255."""
    rgba = np.ascontiguousarray(rgba)
    scale = cv2.cvtColor(np.ascontiguousarray(rgba[..., 3]), cv2.COLOR_GRAY2RGBA)  # (a, a, a, 255)
    return cv2.multiply(rgba, scale, scale=1 / 255, dtype=cv2.CV_32F)


def unpremultiply(prem: np.ndarray) -> np.ndarray:
    """Straight RGBA uint8 from a premultiplied float patch (colour 0 where alpha rounds to 0)."""
    alpha = prem[..., 3]
    inv = cv2.divide(255.0, cv2.max(alpha, 1e-3))
    rgb = cv2.convertScaleAbs(cv2.multiply(np.ascontiguousarray(prem[..., :3]), cv2.merge([inv, inv, inv])))
    a8 = cv2.convertScaleAbs(alpha)
    out = cv2.cvtColor(cv2.bitwise_and(rgb, rgb, mask=a8), cv2.COLOR_RGB2RGBA)
    out[..., 3] = a8
    return out


def pyramid(crop: np.ndarray, sides: list[int]) -> list[np.ndarray]:
    """Levels of `crop` at the given longest sides. The top level is the crop itself when it
    fits; each smaller level is an area resize of the one above, in premultiplied alpha."""
    levels, prem = [], None
    for side in sides:
        w, h = scaled_size(crop.shape[1], crop.shape[0], side)
        if (w, h) == (crop.shape[1], crop.shape[0]):
            levels.append(crop)
            continue
        prem = premultiply(crop) if prem is None else prem
        prem = cv2.resize(prem, (w, h), interpolation=cv2.INTER_AREA)
        levels.append(unpremultiply(prem))
    return levels


# ----------------------------------------------------------------------------- level codec
RAW_MAGIC = b"SOCLRAW1"  # raw RGBA + zstd: magic, then width, height, channels (u32 big-endian), then one zstd frame
RAW_HEADER = struct.Struct(">8sIII")
ZSTD_LEVEL = 1  # higher levels shrink these levels by 2% and cost 2-5x the encode time
ZSTD_OPTIONS = {zstd.CompressionParameter.compression_level: ZSTD_LEVEL,
                zstd.CompressionParameter.checksum_flag: 1}  # a damaged frame fails to decode, never passes
LEVEL_CODECS = {"webp": "webp", "zstd": "rgba.zst"}
"""Level codecs (the segments table's `codec`) and the extension of their pack members:
webp, lossless WebP, the most compact; zstd, raw RGBA in a zstd frame, about 15x faster to
decode and 1.4x larger (benchmarks/level_codecs.py also measures QOI and PNG: both lose to
zstd on size and speed)."""


def encode_level(rgba: np.ndarray, codec: str = "webp") -> bytes:
    """One pyramid level in a lossless level codec (LEVEL_CODECS)."""
    if codec == "webp":  # fastest method: still the smallest, and 2x faster to decode than PNG
        buf = io.BytesIO()
        Image.fromarray(rgba, "RGBA").save(buf, "WEBP", lossless=True, quality=0, method=0, exact=True)
        return buf.getvalue()
    if codec == "zstd":
        h, w, c = rgba.shape
        return RAW_HEADER.pack(RAW_MAGIC, w, h, c) + zstd.compress(np.ascontiguousarray(rgba).data, options=ZSTD_OPTIONS)
    raise ValueError(f"unknown level codec {codec!r}; one of {', '.join(LEVEL_CODECS)}")


def decode_level(data: bytes, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGBA uint8 of an encoded level, whichever codec wrote it (told by its header). The
    array may be read-only: copy it before writing into it. A damaged level raises
    ValueError (or RejectedItem for a decompression bomb), never more memory than its
    header's size, itself at most `max_pixels`."""
    if data[:8] == RAW_MAGIC:
        return _decode_raw(data, max_pixels)
    im = open_image(data, max_pixels)  # the header's size is checked before any pixel is decoded
    if im.format == "WEBP" and data[12:16] == b"VP8L":
        # a lossless WebP (what ingest writes): OpenCV's libwebp decode is about 15% faster
        # than Pillow's, with the same pixels
        arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
        if arr is not None and arr.shape[:2] == (im.height, im.width):
            return cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.ndim == 3 and arr.shape[2] == 4 else
                                cv2.COLOR_BGR2RGBA if arr.ndim == 3 else cv2.COLOR_GRAY2RGBA)
        # not decodable by OpenCV: Pillow decodes it or says why, as it did for every level
    return np.asarray(im.convert("RGBA") if im.mode != "RGBA" else im)


def _decode_raw(data: bytes, max_pixels: int) -> np.ndarray:
    if len(data) < RAW_HEADER.size:
        raise ValueError(f"raw level of {len(data)} bytes is shorter than its header")
    _, w, h, c = RAW_HEADER.unpack_from(data)
    if c != 4 or not w or not h or w * h > max_pixels:
        raise ValueError(f"raw level header gives {w}x{h}x{c}: not RGBA of 1 to {max_pixels:,} pixels")
    size = w * h * c
    d = zstd.ZstdDecompressor()
    try:
        raw = d.decompress(memoryview(data)[RAW_HEADER.size:], max_length=size)  # never more than the header says
        longer = len(raw) == size and not d.eof and bool(d.decompress(b"", max_length=1))  # reach the frame's end
    except zstd.ZstdError as e:
        raise ValueError(f"raw level is not a valid zstd frame ({e})") from None
    if len(raw) != size or longer or not d.eof or d.unused_data:
        raise ValueError(f"raw level holds {'more than ' if longer or d.unused_data else ''}{len(raw)} bytes, "
                         f"not the {w}x{h}x{c} = {size} its header gives")
    return np.frombuffer(raw, np.uint8).reshape(h, w, c)


# ----------------------------------------------------------------------------- statistics
def mask_stats(alpha: np.ndarray) -> dict:
    """alpha_area, alpha_fraction, alpha_components, soft_edge_fraction of a crop's alpha."""
    mask = (alpha >= MASK_THRESHOLD).astype(np.uint8)
    area = int(mask.sum())
    n, _ = cv2.connectedComponents(mask, connectivity=8)
    nonzero = int(np.count_nonzero(alpha))
    soft = nonzero - int(np.count_nonzero(alpha == 255))
    return {
        "alpha_area": area,
        "alpha_fraction": area / alpha.size,
        "alpha_components": int(n - 1),
        "soft_edge_fraction": soft / nonzero if nonzero else 0.0,
    }


COLOR_NAMES = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue",
               "purple", "pink", "brown")


def color_names_of(rgb: np.ndarray) -> np.ndarray:
    """Basic colour name index (into COLOR_NAMES) of each RGB pixel, by CIE LCh rules."""
    lab = cv2.cvtColor(rgb.reshape(-1, 1, 3).astype(np.float32) / 255, cv2.COLOR_RGB2Lab).reshape(-1, 3)
    L, a, b = lab[:, 0], lab[:, 1], lab[:, 2]
    C = np.hypot(a, b)
    h = np.degrees(np.arctan2(b, a)) % 360
    out = np.full(L.shape, COLOR_NAMES.index("grey"), np.uint8)
    hue_bins = [(345, 55, "red"), (55, 85, "orange"), (85, 115, "yellow"), (115, 200, "green"),
                (200, 315, "blue"), (315, 345, "purple")]
    for lo, hi, name in hue_bins:
        sel = ((h >= lo) | (h < hi)) if lo > hi else ((h >= lo) & (h < hi))
        out[sel] = COLOR_NAMES.index(name)
    red_or_purple = np.isin(out, [COLOR_NAMES.index("red"), COLOR_NAMES.index("purple")])
    out[red_or_purple & (L > 65)] = COLOR_NAMES.index("pink")
    brownish = (((h >= 45) & (h < 90) & (L < 55)) | ((h >= 20) & (h < 45) & (C < 45) & (L < 50)))
    out[brownish] = COLOR_NAMES.index("brown")
    achromatic = C < 12
    out[achromatic] = COLOR_NAMES.index("grey")
    out[achromatic & (L < 20)] = COLOR_NAMES.index("black")
    out[achromatic & (L > 85)] = COLOR_NAMES.index("white")
    out[(L < 12)] = COLOR_NAMES.index("black")
    return out


def dominant_color(rgba: np.ndarray) -> str:
    """Most frequent basic colour name over the pixels with alpha >= MASK_THRESHOLD."""
    if rgba.shape[2] == 4:
        pixels = rgba[rgba[..., 3] >= MASK_THRESHOLD][:, :3]
    else:
        pixels = rgba.reshape(-1, 3)
    if pixels.size == 0:
        return "grey"
    counts = np.bincount(color_names_of(pixels), minlength=len(COLOR_NAMES))
    return COLOR_NAMES[int(counts.argmax())]
