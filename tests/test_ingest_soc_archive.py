"""SOC's segment releases as published: a multi-volume 7z (NAME.7z.001, .002, ...) of
DATASET/category/subcategory/ID.png beside NAME_metadata.json and a quality file keyed by SOC's
universal index. Ingest reads the volumes directly (nothing extracted to disk) and gives exactly
the rows and pixels of the same pool ingested from an extracted folder.
"""
from __future__ import annotations

import io
import json
import os
import tempfile

import numpy as np
import py7zr
import pytest
from conftest import blob_rgba, save_png
from hostile_corpus import OpenRecorder, changed_outside, tree

from soclake import Lake, imaging
from soclake.cli import main
from soclake.errors import SoclakeError
from soclake.ingestion import ingest

CATS = {"Hot_Dog": ["plain", "with_mustard"], "apple": ["red_apple", "green"]}


def make_pool(folder) -> dict[str, np.ndarray]:
    """Extracted pool: two files per subcategory, ids in SOC's `<name>_<id>.png` style."""
    pixels, seed = {}, 0
    for cat, subs in CATS.items():
        for sub in subs:
            for i in range(2):
                seed += 1
                rel = f"{cat}/{sub}/seg_{i}.png"
                pixels[rel] = blob_rgba(seed, 48)
                save_png(folder / rel, pixels[rel])
    return pixels


def sidecars(folder) -> None:
    """Metadata keyed category_subcategory with fields as strings or lists (as SOC releases
    them); quality keyed by the universal index Synthetic_<cat>_<sub>_<id>."""
    meta = {"Hot_Dog_plain": {"description": "a plain hot dog", "short_phrase": "plain hot dog",
                              "features": "in a bun"},
            "Hot_Dog_with_mustard": {"description": ["a hot dog with mustard", "mustard on a sausage"],
                                     "short_phrase": ["mustard hot dog"], "features": ["yellow", "savoury"]},
            "apple_red_apple": {"description": "a red apple", "short_phrase": "red apple", "features": []},
            "apple_green": {"description": "a green apple", "short_phrase": "green apple", "features": ["green"]}}
    (folder / "fc_object_segments_metadata.json").write_text(json.dumps(meta))
    quality = {}
    for cat, subs in CATS.items():
        for sub in subs:
            for i in range(2):
                quality[f"Synthetic_{cat}_{sub}_{i}"] = {"IsInstance": i == 0, "Integrity": True,
                                                         "QualityAndRegularity": sub != "green"}
    (folder / "segment_quality.json").write_text(json.dumps(quality))


def seven_zip(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w") as z:
        for name, data in files.items():
            z.writestr(data, name)
    return buf.getvalue()


def split_volumes(data: bytes, folder, name: str, parts: int) -> list[str]:
    """7-Zip's -v switch: the archive bytes cut into NAME.001, NAME.002, ..."""
    step = -(-len(data) // parts)
    paths = []
    for i in range(parts):
        path = folder / f"{name}.{i + 1:03d}"
        path.write_bytes(data[i * step:(i + 1) * step])
        paths.append(str(path))
    return paths


@pytest.fixture
def release(tmp_path):
    """(extracted folder, release folder with fc_segments.7z.001-003 and the sidecars)."""
    extracted = tmp_path / "extracted"
    make_pool(extracted)
    sidecars(extracted)
    files = {f"fc_10m/{p.relative_to(extracted).as_posix()}": p.read_bytes()
             for p in sorted(extracted.rglob("*.png"))}
    rel = tmp_path / "release"
    rel.mkdir()
    split_volumes(seven_zip(files), rel, "fc_segments.7z", 3)
    sidecars(rel)
    return extracted, rel


def rows(lake: Lake) -> list[dict]:
    lake.refresh()
    return lake.query("SELECT * FROM segments ORDER BY segment_id").to_pylist()


def test_multivolume_release_gives_the_rows_and_pixels_of_the_extracted_pool(release, tmp_path):
    extracted, rel = release
    a = Lake(str(tmp_path / "a"), create=True)
    ingest(a, "soc", str(extracted), source_name="fc", workers=1, progress=False)
    b = Lake(str(tmp_path / "b"), create=True)
    s = ingest(b, "soc", str(rel / "fc_segments.7z.001"), source_name="fc", workers=2, progress=False)
    assert (s.accepted, s.rejected) == (8, 0)
    ra, rb = rows(a), rows(b)
    keep = ("segment_id", "category", "subcategory", "description", "short_phrase", "features", "is_instance",
            "integrity", "quality_regularity", "width", "height", "crop_x", "crop_y", "alpha_area", "sha256")
    assert [{k: r[k] for k in keep} for r in ra] == [{k: r[k] for k in keep} for r in rb]
    assert {r["source_uri"] for r in rb} == {f"fc_10m/{r['source_uri']}" for r in ra}
    for r in rb:  # the pixels decoded from the packs are the PNGs' exact tight crops
        lv = r["levels"][0]
        src = imaging.decode_rgba((extracted / r["source_uri"].split("/", 1)[1]).read_bytes())
        assert np.array_equal(imaging.decode_level(b.read_range(lv["pack"], lv["offset"], lv["length"])),
                              imaging.canonical_crop(src)[0])


def test_metadata_fields_may_be_strings_or_lists(release, tmp_path):
    """A string `features` used to reject the whole entry, losing short_phrase and description."""
    extracted, _ = release
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "soc", str(extracted), workers=1, progress=False)
    assert s.rejected == 0
    by_sub = {r["subcategory"]: r for r in rows(lake)}
    plain = by_sub["plain"]
    assert (plain["description"], plain["short_phrase"], plain["features"]) == ("a plain hot dog", "plain hot dog",
                                                                                 ["in a bun"])
    mustard = by_sub["with_mustard"]
    assert mustard["description"] == "a hot dog with mustard" and mustard["short_phrase"] == "mustard hot dog"
    assert mustard["descriptions"] == ["a hot dog with mustard", "mustard on a sausage"]
    assert mustard["features"] == ["yellow", "savoury"] and by_sub["red_apple"]["features"] == []


def test_quality_keyed_by_the_universal_index_drives_filters(release, tmp_path):
    _, rel = release
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(rel / "fc_segments.7z.001"), workers=1, progress=False)
    count = lambda v: lake.query(f"SELECT count(*) AS n FROM {v}").to_pylist()[0]["n"]
    # IsInstance iff id 0, Integrity always, QualityAndRegularity unless subcategory "green"
    assert [count(f"filter_{i}") for i in range(5)] == [8, 4, 8, 6, 3]


def test_nothing_is_extracted_to_disk_and_reruns_skip_everything(release, tmp_path, monkeypatch):
    _, rel = release
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    monkeypatch.chdir(scratch)
    before = tree(tmp_path)
    opened = OpenRecorder(monkeypatch)
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "soc", str(rel / "fc_segments.7z.001"), workers=1, progress=False)
    assert changed_outside(before, tree(tmp_path), allowed=("lake", "scratch")) == []
    assert os.listdir(scratch) == []
    # read: the volumes and sidecars; written: the lake, and only the staged metadata in the temp dir
    assert opened.outside(rel, tmp_path / "lake", scratch, "/proc/meminfo") == []  # py7zr sizes its buffers
    assert not [p for p in opened.paths if p.endswith(".png")]
    again = ingest(lake, "soc", str(rel / "fc_segments.7z.001"), workers=1, progress=False)
    assert (again.accepted, again.skipped) == (0, 8)


def test_a_folder_holding_the_release_is_ingested_through_its_archive(release, tmp_path, capsys):
    _, rel = release
    lake = str(tmp_path / "lake")
    assert main(["ingest", "soc", str(rel), "--lake", lake, "--workers", "1", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "8 accepted, 0 rejected" in out  # volumes and sidecars are not rejects


def test_missing_volume_is_an_error_naming_it(release, tmp_path):
    _, rel = release
    os.unlink(rel / "fc_segments.7z.002")
    lake = Lake(str(tmp_path / "lake"), create=True)
    with pytest.raises(SoclakeError, match=r"fc_segments\.7z\.002"):
        ingest(lake, "soc", str(rel / "fc_segments.7z.001"), workers=1, progress=False)


def test_damaged_volume_rejects_what_it_cannot_read_and_keeps_the_rest(tmp_path):
    """A flipped byte inside member 2: it fails its CRC and py7zr stops there, so members 2-5
    are corrupt_archive rejects (retried with --retry-rejects once the volumes are fixed);
    members 0 and 1 are committed and the run does not crash."""
    files = {f"cat/sub/{i}.png": imaging.encode_level(blob_rgba(i, 40)) for i in range(6)}
    buf = io.BytesIO()
    with py7zr.SevenZipFile(buf, "w", filters=[{"id": py7zr.FILTER_COPY}]) as z:  # stored: one byte = one pixel
        for name, data in files.items():
            z.writestr(data, name)
    data = bytearray(buf.getvalue())
    offset = 32 + len(files["cat/sub/0.png"]) + len(files["cat/sub/1.png"]) + 40  # inside member 2
    data[offset] ^= 0xFF
    (tmp_path / "pool.7z").write_bytes(bytes(data))
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "soc", str(tmp_path / "pool.7z"), workers=1, progress=False)
    got = {r["source_uri"]: r for r in lake.query("SELECT source_uri, reason, detail FROM rejects").to_pylist()}
    assert sorted(got) == [f"cat/sub/{i}.png" for i in range(2, 6)]
    assert {r["reason"] for r in got.values()} == {"corrupt_archive"}
    assert "CrcError" in got["cat/sub/2.png"]["detail"] and "decompression failed" in got["cat/sub/4.png"]["detail"]
    assert s.accepted == 2
    (tmp_path / "pool.7z").write_bytes(buf.getvalue())  # the volume downloaded again
    again = ingest(lake, "soc", str(tmp_path / "pool.7z"), workers=1, progress=False, retry_rejects=True)
    assert (again.accepted, again.skipped) == (4, 2)


def test_unsafe_and_non_image_members_are_rejected_never_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    files = {"cat/sub/0.png": imaging.encode_level(blob_rgba(1, 40)), "../escape.png": b"x" * 10,
             "cat/sub/notes.txt": b"hello", "cat/loose.png": imaging.encode_level(blob_rgba(2, 40))}
    (tmp_path / "src").mkdir()
    monkeypatch.setattr(py7zr.py7zr, "check_archive_path", lambda name: True)  # py7zr refuses to write such names
    (tmp_path / "src" / "pool.7z").write_bytes(seven_zip(files))
    monkeypatch.undo()
    monkeypatch.chdir(tmp_path)
    lake = Lake(str(tmp_path / "lake"), create=True)
    s = ingest(lake, "soc", str(tmp_path / "src" / "pool.7z"), workers=1, progress=False)
    got = {r["source_uri"]: r["reason"] for r in lake.query("SELECT source_uri, reason FROM rejects").to_pylist()}
    assert got == {"../escape.png": "unsafe_path", "cat/sub/notes.txt": "not_an_image", "cat/loose.png": "wrong_layout"}
    assert s.accepted == 1
    assert not (tmp_path / "escape.png").exists() and sorted(os.listdir(tmp_path)) == ["lake", "src"]
