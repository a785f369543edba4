"""Basic colour names of pixels: a classifier in CIELAB built on the xkcd colour survey
(soclake/data/xkcd_colour_survey.tsv), giving one of Berlin & Kay's eleven basic terms or
none. Pure numpy; it knows nothing of images, masks or the lake. See docs/colour_names.md.

The rule, for an sRGB colour quantised to BITS bits per channel (the bin's centre colour):
  1. convert to CIELAB (D65 white, 2 degree observer);
  2. achromatic (chroma C*ab < ACHROMATIC_CHROMA): black below L* BLACK_L, white above L*
     WHITE_L, grey between;
  3. otherwise the basic term held by at least VOTES of the K survey names nearest to it
     (CIE76 distance) among the names that carry a basic term; none without such a majority.
A survey name carries the basic term that is its head word ("dark blue", "greenish blue" ->
blue), unless another bare basic term stands beside it ("blue green" -> none); names with
other heads (teal, lavender, tan...) carry none and do not vote.
"""
from __future__ import annotations

import re
from functools import lru_cache

import cv2
import numpy as np

from soclake.resources import package_data

BASIC_TERMS = ("black", "white", "grey", "red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
UNNAMED = len(BASIC_TERMS)
"""Term index of colours that get no basic term."""
BITS = 6
K, VOTES = 5, 3
ACHROMATIC_CHROMA, BLACK_L, WHITE_L = 10.0, 25.0, 86.0
SURVEY_FILE = "xkcd_colour_survey.tsv"
TABLE_FILE = "colour_classes_6bit.npz"
"""build_tables(), shipped so that worker processes do not spend seconds building it;
tests/test_colour_names.py checks that it is current."""

_D65 = np.array([0.95047, 1.0, 1.08883])
_SRGB_TO_XYZ = np.array([[0.4124564, 0.3575761, 0.1804375],
                         [0.2126729, 0.7151522, 0.0721750],
                         [0.0193339, 0.1191920, 0.9503041]])


def basic_term(name: str) -> str | None:
    """The basic colour term a survey name carries, or None (see the module docstring)."""
    words = re.split(r"[\s/\-]+", name.lower().replace("gray", "grey").strip())
    head = words[-1]
    if head not in BASIC_TERMS or any(w in BASIC_TERMS and w != head for w in words[:-1]):
        return None
    return head


@lru_cache(maxsize=None)
def survey() -> tuple[tuple[str, ...], np.ndarray]:
    """(names, sRGB uint8 (n, 3)) of the colour survey table."""
    names, rgb = [], []
    for line in package_data(SURVEY_FILE).read_text().splitlines():
        if line and not line.startswith("#"):
            name, hexa = line.split("\t")
            names.append(name)
            rgb.append([int(hexa[i:i + 2], 16) for i in (1, 3, 5)])
    return tuple(names), np.array(rgb, np.uint8)


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIELAB (D65 white, 2 degree observer) of sRGB values in 0..255, shape (..., 3)."""
    c = np.asarray(rgb, np.float64) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    t = lin @ _SRGB_TO_XYZ.T / _D65
    d = 6 / 29
    f = np.where(t > d ** 3, np.cbrt(t), t / (3 * d * d) + 4 / 29)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], axis=-1)


def classify_lab(lab: np.ndarray) -> np.ndarray:
    """Term index (0..UNNAMED) of CIELAB colours (n, 3) by the rule of the module docstring."""
    names, rgb = survey()
    carried = [(i, t) for i, n in enumerate(names) if (t := basic_term(n))]
    centroids = srgb_to_lab(rgb[[i for i, _ in carried]]).astype(np.float32)
    term = np.array([BASIC_TERMS.index(t) for _, t in carried])
    c2 = (centroids ** 2).sum(axis=1)
    lab = np.asarray(lab, np.float32)
    out = np.empty(len(lab), np.uint8)
    for lo in range(0, len(lab), 8192):  # chunks keep the distance matrix small
        x = lab[lo:lo + 8192]
        nearest = np.argpartition(c2[None, :] - 2 * x @ centroids.T, K, axis=1)[:, :K]
        votes = np.eye(UNNAMED, dtype=np.int8)[term[nearest]].sum(axis=1)
        out[lo:lo + 8192] = np.where(votes.max(axis=1) >= VOTES, votes.argmax(axis=1), UNNAMED)
    chroma = np.hypot(lab[:, 1], lab[:, 2])
    grey = chroma < ACHROMATIC_CHROMA
    out[grey] = BASIC_TERMS.index("grey")
    out[grey & (lab[:, 0] < BLACK_L)] = BASIC_TERMS.index("black")
    out[grey & (lab[:, 0] > WHITE_L)] = BASIC_TERMS.index("white")
    return out


def build_tables() -> tuple[tuple[str, ...], np.ndarray]:
    """(class names, class index of every quantised sRGB bin) by the rule of the module
    docstring. A bin's class is the set of terms the rule gives at its centre and its eight
    corners ("blue", or "blue|none" where a boundary crosses the bin), so a pixel counts
    surely for a term only where the whole bin agrees."""
    n, step = 1 << BITS, 1 << (8 - BITS)
    centres = np.arange(n) * step + (step - 1) / 2
    corners = np.arange(n + 1) * step - 0.5
    corners[0], corners[-1] = 0.0, 255.0

    def terms_on(levels):
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), axis=-1).reshape(-1, 3)
        return classify_lab(srgb_to_lab(grid)).reshape(len(levels), len(levels), len(levels))

    at_centre, at_corner = terms_on(centres), terms_on(corners)
    bits = np.left_shift(1, at_centre.astype(np.int32))
    for di in (0, 1):
        for dj in (0, 1):
            for dk in (0, 1):
                bits |= np.left_shift(1, at_corner[di:di + n, dj:dj + n, dk:dk + n].astype(np.int32))
    masks, table = np.unique(bits.ravel(), return_inverse=True)
    names = tuple("|".join(t for k, t in enumerate(BASIC_TERMS + ("none",)) if m >> k & 1) for m in masks)
    return names, table.astype(np.uint8)


@lru_cache(maxsize=None)
def tables() -> tuple[tuple[str, ...], np.ndarray]:
    """The shipped build_tables() (soclake/data/TABLE_FILE)."""
    with np.load(package_data(TABLE_FILE)) as z:
        return tuple(str(c) for c in z["classes"]), z["table"]


def class_indices(rgb: np.ndarray) -> np.ndarray:
    """Class index (into tables()[0]) of every colour of a uint8 RGB array, shape (..., 3)."""
    q = (np.asarray(rgb, np.uint8) >> (8 - BITS)).astype(np.int32)  # one conversion: the fastest form here
    return tables()[1][q[..., 0] * (1 << 2 * BITS) + q[..., 1] * (1 << BITS) + q[..., 2]]


def counts_by_label(rgb: np.ndarray, labels: np.ndarray, n_labels: int) -> np.ndarray:
    """(n_labels + 1, classes) pixel counts per label value and colour class over an image
    (H, W, 3 uint8) and its label map (H, W, values 0..n_labels); row 0 (unlabelled) is 0."""
    k = len(tables()[0])
    flat = labels.ravel()
    on = np.flatnonzero(flat)  # only labelled pixels are classified: row 0 stays 0
    keys = flat[on].astype(np.int64) * k + class_indices(rgb.reshape(-1, 3)[on])
    return np.bincount(keys, minlength=(n_labels + 1) * k).reshape(n_labels + 1, k)


@lru_cache(maxsize=None)
def _packed_table() -> tuple[np.ndarray, np.ndarray]:
    """The class table indexed by a pixel's quantized colour packed little-endian into 32 bits
    (q_r + 256 q_g + 65536 q_b, the alpha byte masked off), and the per-channel quantizer: a
    pixel's class in two OpenCV passes and one lookup (class_indices does three int32 ops)."""
    n = 1 << BITS
    packed = np.zeros((n, 256, 256), np.uint8)
    packed[:, :n, :n] = tables()[1].reshape(n, n, n).transpose(2, 1, 0)
    quantize = (np.arange(256) >> (8 - BITS)).astype(np.uint8)
    return packed.ravel()[:(n - 1) * 65537 + (n - 1) * 256 + 1].copy(), quantize


def box_class_indices(rgb: np.ndarray) -> np.ndarray:
    """class_indices of a (h, w, 3) uint8 image with h * w > 1 (OpenCV reads a 1 x 1 image as a
    scalar), faster: the same classes (tests/test_colour_names.py)."""
    packed, quantize = _packed_table()
    q = cv2.cvtColor(cv2.LUT(rgb, quantize), cv2.COLOR_RGB2RGBA).view(np.uint32)[..., 0]
    return packed[q & np.uint32(0xFFFFFF)]


def counts_in_boxes(rgb: np.ndarray, labels: np.ndarray, boxes: list[tuple[int, int, int, int]]) -> np.ndarray:
    """(len(boxes), classes) pixel counts of label i + 1 inside boxes[i] = (x0, y0, x1, y1):
    counts_by_label for objects whose boxes are known, naming only their own pixels."""
    out = np.zeros((len(boxes), len(tables()[0])), np.int64)
    for i, (x0, y0, x1, y1) in enumerate(boxes):
        inside = labels[y0:y1, x0:x1] == i + 1
        box = rgb[y0:y1, x0:x1]
        classes = box_class_indices(box)[inside] if box.shape[0] * box.shape[1] > 1 else class_indices(box[inside])
        out[i] = np.bincount(classes, minlength=out.shape[1])
    return out


def counts_dict(row: np.ndarray) -> dict[str, int]:
    """{class name: pixels} of one row of counts_by_label, zero counts left out."""
    return {c: int(n) for c, n in zip(tables()[0], row) if n}


def shares(counts: dict[str, int], area: int) -> tuple[dict[str, float], dict[str, float]]:
    """Per basic term, the share of `area` pixels that surely have it (their whole bin does)
    and that possibly have it (some point of their bin does), from a counts_dict."""
    sure: dict[str, int] = {}
    possible: dict[str, int] = {}
    for name, n in counts.items():
        terms = name.split("|")
        for t in terms:
            if t in BASIC_TERMS:
                possible[t] = possible.get(t, 0) + n
        if len(terms) == 1 and terms[0] in BASIC_TERMS:
            sure[terms[0]] = n
    area = max(area, 1)
    return {t: n / area for t, n in sure.items()}, {t: n / area for t, n in possible.items()}
