"""The box-limited RLE encoder (render/annotate.py instance_rle) gives exactly what
pycocotools gives for the whole image: counts string, area and bbox."""
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from soclake.render.annotate import instance_rle


def whole_image(pan, pid):
    rle = mask_utils.encode(np.asfortranarray((pan == pid).astype(np.uint8)))
    return {"counts": rle["counts"].decode("ascii"), "size": [int(v) for v in rle["size"]],
            "bbox": [float(v) for v in mask_utils.toBbox(rle)], "area": int(mask_utils.area(rle))}


@pytest.mark.parametrize("seed", range(40))
def test_box_rle_equals_pycocotools_on_the_whole_image(seed):
    rng = np.random.default_rng(seed)
    H, W = int(rng.integers(1, 90)), int(rng.integers(1, 90))
    pan = np.zeros((H, W), np.uint8)
    x0, y0 = int(rng.integers(0, W)), int(rng.integers(0, H))
    x1, y1 = int(rng.integers(x0 + 1, W + 1)), int(rng.integers(y0 + 1, H + 1))
    kind = seed % 4
    region = pan[y0:y1, x0:x1]
    if kind == 0:
        region[:] = 3  # the whole box
    elif kind == 1:
        region[rng.random(region.shape) < 0.5] = 3  # noise, touching every edge or not
    elif kind == 2:
        region[rng.integers(0, region.shape[0]), rng.integers(0, region.shape[1])] = 3  # one pixel
    else:
        region[rng.random(region.shape) < 0.3] = 3
        region[rng.random(region.shape) < 0.3] = 5  # another object inside the box
    pan[rng.random((H, W)) < 0.05] = 7  # other objects outside the box do not leak in
    pan[y0:y1, x0:x1] = region
    got = instance_rle(pan, 3, (x0, y0, x1, y1))
    assert got == whole_image(pan, 3)
    assert np.array_equal(mask_utils.decode({"size": got["size"], "counts": got["counts"]}), (pan == 3).astype(np.uint8))


def test_empty_and_full_canvas_masks():
    pan = np.zeros((5, 4), np.uint8)
    assert instance_rle(pan, 1, (0, 0, 4, 5)) == whole_image(pan, 1)
    pan[:] = 1
    assert instance_rle(pan, 1, (0, 0, 4, 5)) == whole_image(pan, 1)
    big = np.zeros((300, 257), np.int32)
    big[10:290, 1:256] = 70000  # ids above 255 (int32 maps) and long runs
    assert instance_rle(big, 70000, (1, 10, 256, 290)) == whole_image(big, 70000)


@pytest.mark.parametrize("H", [1, 2, 7])
def test_runs_that_cross_columns_in_a_full_height_box(H):
    rng = np.random.default_rng(H)
    pan = (rng.random((H, 40)) < 0.6).astype(np.uint8) * 2
    pan[:, :3] = 2
    pan[:, -2:] = 2  # reaching the last pixel
    assert instance_rle(pan, 2, (0, 0, 40, H)) == whole_image(pan, 2)
    pan[:, :2] = 0
    assert instance_rle(pan, 2, (2, 0, 40, H)) == whole_image(pan, 2)
