"""Ingest of Hugging Face datasets in Parquet: files written by `datasets` itself (the HF Image
feature, a struct of bytes and path; ClassLabel categories), plain binary columns, RGB + mask
pairs, several row groups and files, per-row rejects and incremental reruns, bounded memory.
"""
from __future__ import annotations

import io
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import blob_rgba
from PIL import Image

from soclake import Lake, imaging
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.ingestion import ingest

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
datasets = pytest.importorskip("datasets")


def png(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, "PNG")
    return buf.getvalue()


def hf_parquet(path, n: int = 6, seed: int = 0, **extra_columns) -> list[np.ndarray]:
    """An HF dataset with an Image column of RGBA cut-outs and a ClassLabel, saved by datasets."""
    pixels = [blob_rgba(seed + i, 40) for i in range(n)]
    data = {"image": [Image.fromarray(p) for p in pixels], "label": [i % 2 for i in range(n)], **extra_columns}
    features = {"image": datasets.Image(), "label": datasets.ClassLabel(names=["apple", "hot dog"])}
    for k, v in extra_columns.items():
        features[k] = datasets.Value("bool") if isinstance(v[0], bool) else (
            datasets.Sequence(datasets.Value("string")) if isinstance(v[0], list) else datasets.Value("string"))
    ds = datasets.Dataset.from_dict(data, features=datasets.Features(features))
    ds.to_parquet(str(path))
    return pixels


def segments(lake: Lake) -> dict[str, dict]:
    lake.refresh()
    return {r["source_uri"]: r for r in lake.query("SELECT * FROM segments").to_pylist()}


def level0(lake: Lake, row: dict) -> np.ndarray:
    lv = row["levels"][0]
    return imaging.decode_level(lake.read_range(lv["pack"], lv["offset"], lv["length"]))


def test_hf_image_struct_and_classlabel(tmp_path):
    path = tmp_path / "train-00000-of-00001.parquet"
    pixels = hf_parquet(path, descr=[f"object {i}" for i in range(6)], features=[["red"], ["green"]] * 3,
                        IsInstance=[True, False] * 3)
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "parquet", str(path), category_column="label", map=["descr=description"], workers=1,
               progress=False)
    assert (s.accepted, s.rejected) == (6, 0)
    rows = segments(lake)
    assert sorted(rows) == [f"train-00000-of-00001.parquet#row={i}" for i in range(6)]
    for i, p in enumerate(pixels):
        r = rows[f"train-00000-of-00001.parquet#row={i}"]
        assert r["category"] == ("apple", "hot dog")[i % 2] and r["layout"] == "parquet"
        assert r["description"] == f"object {i}" and r["features"] == [["red"], ["green"]][i % 2]
        assert r["is_instance"] is (i % 2 == 0) and r["integrity"] is None
        assert np.array_equal(level0(lake, r), imaging.canonical_crop(p)[0])


def test_binary_column_rgb_with_mask_pairs_like_sod(tmp_path):
    """RGB photos + soft masks in plain binary columns; the mask becomes the alpha exactly."""
    rng = np.random.default_rng(3)
    photos = [rng.integers(0, 256, (30, 40, 3), dtype=np.uint8) for _ in range(3)]
    masks = [np.zeros((30, 40), np.uint8) for _ in range(3)]
    for i, m in enumerate(masks):
        m[5 + i:20 + i, 8:30] = 255
        m[4 + i, 8:30] = 100  # a soft row
    table = pa.table({"img": [png(p) for p in photos], "mask": [png(m) for m in masks], "category": ["cup"] * 3})
    pq.write_table(table, tmp_path / "pairs.parquet")
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "parquet", str(tmp_path / "pairs.parquet"), image_column="img", mask_column="mask", workers=1,
               progress=False)
    assert s.accepted == 3
    for i, r in enumerate(sorted(segments(lake).values(), key=lambda r: r["source_uri"])):
        got = level0(lake, r)
        assert np.array_equal(got[..., 3], masks[i][4 + i:20 + i, 8:30])
        assert np.array_equal(got[..., :3], photos[i][4 + i:20 + i, 8:30])


def test_row_groups_files_and_bad_rows_are_rows_of_rejects_then_reruns_skip(tmp_path):
    """Two files in a folder (a glob), small row groups; one row without bytes, one with bytes
    that are no image, one without alpha: each a reject naming its row; a rerun skips every row,
    a new file is ingested alone."""
    folder = tmp_path / "data"
    folder.mkdir()
    good = [png(blob_rgba(i, 40)) for i in range(10)]
    images = [{"bytes": b, "path": None} for b in good]
    images[3] = {"bytes": None, "path": "x.png"}
    images[5] = {"bytes": b"garbage bytes", "path": None}
    images[7] = {"bytes": png(np.full((20, 20, 3), 9, np.uint8)), "path": None}
    struct = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    table = pa.table({"image": pa.array(images, struct), "category": ["ball"] * 10})
    pq.write_table(table, folder / "a.parquet", row_group_size=4)
    (folder / "README.md").write_text("a dataset card")
    (folder / "preview.png").write_bytes(good[0])
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "parquet", str(folder), workers=2, progress=False)
    assert (s.accepted, s.rejected) == (7, 4)
    lake.refresh()
    rejects = {r["source_uri"]: r["reason"] for r in lake.query("SELECT * FROM rejects").to_pylist()}
    assert rejects == {"a.parquet#row=3": "missing_image", "a.parquet#row=5": "not_an_image",
                       "a.parquet#row=7": "no_alpha", "preview.png": "not_parquet"}
    again = ingest(lake, "parquet", str(folder / "*.parquet"), source_name="data", workers=1, progress=False)
    assert (again.accepted, again.skipped) == (0, 10)  # the glob names no preview.png
    pq.write_table(pa.table({"image": pa.array(images[:2], struct), "category": ["ball", "cube"]}), folder / "b.parquet")
    third = ingest(lake, "parquet", str(folder), workers=1, progress=False)
    assert (third.accepted, third.skipped) == (0, 11)  # same pixels as a.parquet rows 0, 1: duplicates
    assert third.rejected == 2 and third.reasons["duplicate"] == 2


def test_option_errors_name_the_file_and_the_fix(tmp_path):
    hf_parquet(tmp_path / "x.parquet", n=2)
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match="no image column 'picture'.*--image-column"):
        ingest(lake, "parquet", str(tmp_path / "x.parquet"), image_column="picture", workers=1, progress=False)
    with pytest.raises(SoclakeError, match="--category-column"):
        ingest(lake, "parquet", str(tmp_path / "x.parquet"), workers=1, progress=False)
    with pytest.raises(SoclakeError, match="--map 'label=width'"):
        ingest(lake, "parquet", str(tmp_path / "x.parquet"), category_column="label", map=["label=width"], workers=1,
               progress=False)


def test_cli(tmp_path, capsys):
    hf_parquet(tmp_path / "x.parquet", n=4)
    assert main(["ingest", "parquet", str(tmp_path / "x.parquet"), "--lake", str(tmp_path / "lake"),
                 "--image-column", "image", "--category-column", "label", "--workers", "1", "--no-progress"]) == 0
    assert "4 accepted" in capsys.readouterr().out


@pytest.mark.slow
def test_memory_stays_bounded_by_one_row_group(tmp_path):
    """120 incompressible 512x512 RGBA PNGs (~110 MB) in row groups of 8 (HF's writers use
    about 100 rows): Arrow's memory pool peaks far below the file, since it is read one row
    group at a time (a row group is the unit pyarrow decodes)."""
    rng = np.random.default_rng(0)
    alpha = np.zeros((512, 512), np.uint8)
    alpha[50:460, 60:450] = 255
    blobs = [png(np.dstack([rng.integers(0, 256, (512, 512, 3), dtype=np.uint8), alpha])) for _ in range(4)]
    n = 120
    rows = [blobs[i % 4] for i in range(n)]  # four images, repeated: the rest are duplicates
    path = tmp_path / "big.parquet"
    pq.write_table(pa.table({"image": rows, "category": ["noise"] * n}), path, row_group_size=8, compression="none",
                   use_dictionary=False)
    size = os.path.getsize(path)
    assert pq.ParquetFile(path).num_row_groups == 15 and size > 100e6
    code = ("import sys, pyarrow as pa; from soclake import Lake; from soclake.ingestion import ingest;"
            "lake = Lake(sys.argv[1], create=True);"
            "s = ingest(lake, 'parquet', sys.argv[2], workers=1, progress=False, flush_rows=8);"
            "print(s.accepted, s.rejected, s.reasons.get('duplicate', 0), pa.default_memory_pool().max_memory())")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "lake"), str(path)], capture_output=True,
                         text=True, check=True, env={**os.environ, "PYTHONPATH": os.getcwd()}).stdout.split()
    accepted, rejected, duplicates, peak = map(int, out)
    assert (accepted, rejected, duplicates) == (4, n - 4, n - 4)
    print(f"Arrow peak {peak / 1e6:.0f} MB on a {size / 1e6:.0f} MB file")
    assert peak < size / 4, f"Arrow peaked at {peak / 1e6:.0f} MB on a {size / 1e6:.0f} MB file"
