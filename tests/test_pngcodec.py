"""soclake.pngcodec writes standard PNG: every reader gets back the exact pixels (Pillow,
OpenCV, imagecodecs' libspng, webdataset's decoders and HF datasets' webdataset loader), and
the bytes are a pure function of the pixels."""
import io
import os
import tarfile

import cv2
import imagecodecs
import numpy as np
import pytest
import webdataset as wds
from PIL import Image

from soclake.pngcodec import encode_png

SHAPES = [(1, 1), (1, 1, 3), (1, 1, 4), (7, 1, 3), (1, 9, 4), (33, 17), (64, 50, 3), (120, 97, 4), (256, 256)]


def pixels(shape, seed=0):
    """Smooth, flat and noisy regions with a hard edge: what composites and masks hold."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 256, shape, dtype=np.uint8)
    a[: shape[0] // 2] = 7
    return a


def opencv_rgb(data: bytes) -> np.ndarray:
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if arr.ndim == 3:
        arr = cv2.cvtColor(arr, cv2.COLOR_BGRA2RGBA if arr.shape[2] == 4 else cv2.COLOR_BGR2RGB)
    return arr


@pytest.mark.parametrize("shape", SHAPES)
def test_every_decoder_reads_the_exact_pixels(shape):
    a = pixels(shape)
    data = encode_png(a)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    im = Image.open(io.BytesIO(data))
    im.verify()  # chunk CRCs and structure
    im = Image.open(io.BytesIO(data))
    assert im.mode == {2: "L", 3: "RGB", 4: "RGBA"}[len(shape) if len(shape) == 2 else shape[2]]
    assert np.array_equal(np.asarray(im), a)
    assert np.array_equal(opencv_rgb(data).reshape(a.shape), a)
    assert np.array_equal(np.asarray(imagecodecs.png_decode(data)).reshape(a.shape), a)


def test_bytes_are_a_pure_function_of_the_pixels():
    a = pixels((80, 60, 4), seed=3)
    assert encode_png(a) == encode_png(a.copy()) == encode_png(np.asfortranarray(a))
    assert encode_png(a[:, ::-1]) == encode_png(np.ascontiguousarray(a[:, ::-1]))
    assert encode_png(a) != encode_png(pixels((80, 60, 4), seed=4))


def test_bad_arrays_are_refused():
    for bad in (np.zeros((4, 4, 2), np.uint8), np.zeros((4, 4), np.float32), np.zeros((0, 4, 3), np.uint8),
                np.zeros((4, 0), np.uint8)):
        with pytest.raises(ValueError):
            encode_png(bad)


def shard(tmp_path, samples) -> str:
    path = str(tmp_path / "shard-000000.tar")
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_webdataset_and_hf_datasets_decode_the_members(tmp_path):
    rgba, pan, fg = pixels((40, 30, 4), 1), pixels((40, 30, 3), 2), pixels((40, 30), 3)
    path = shard(tmp_path, {"000000001": {"rgba.png": encode_png(rgba), "pan.png": encode_png(pan),
                                          "fg.png": encode_png(fg)}})
    for mode, ext, want in (("rgba8", "rgba.png", rgba), ("rgb8", "pan.png", pan), ("l8", "fg.png", fg)):
        (sample,) = list(wds.WebDataset(path, shardshuffle=False).decode(mode))
        assert np.array_equal(sample[ext].reshape(want.shape), want), (mode, ext)

    os.environ["HF_DATASETS_OFFLINE"] = "1"
    datasets = pytest.importorskip("datasets")
    ds = datasets.load_dataset("webdataset", data_files={"train": path}, split="train",
                               cache_dir=str(tmp_path / "hf"))
    row = ds[0]
    assert np.array_equal(np.asarray(row["rgba.png"]), rgba)
    assert np.array_equal(np.asarray(row["pan.png"]), pan)
    assert np.array_equal(np.asarray(row["fg.png"]), fg)
