"""Hostile job specs: unknown keys, wrong types, negative counts, non-finite numbers, huge
sizes and counts, and SQL that tries to escape its predicate. Each is a clear error naming the
key (exit status 2, no traceback) before anything is planned or rendered, and nothing is
written outside the lake.
"""
from __future__ import annotations

import os

import pytest
from conftest import folders_lake
from hostile_corpus import changed_outside, tree

from soclake import Lake
from soclake.cli import main


@pytest.fixture(scope="module")
def small_lake(tmp_path_factory):
    return folders_lake(tmp_path_factory.mktemp("specs"), seed_step=10)


HEAD = '[job]\nname = "hostile"\nimages = 2\nshard_size = 2\n[layout]\nwidth = 64\nheight = 64\n'

CASES = {
    "unknown key": ('[job]\nname = "h"\nimagez = 3\n', r"unknown key 'imagez' in \[job\]"),
    "unknown section": (HEAD + "[jobb]\nx = 1\n", r"unknown section \[jobb\]"),
    "section not a table": ("job = 5\n", r"\[job\] must be a table"),
    "string count": ('[job]\nname = "h"\nimages = "3"\n', r"\[job\] images must be an integer"),
    "string flag": (HEAD + '[render]\nfg_mask = "yes"\n', r"fg_mask must be true or false"),
    "negative images": ('[job]\nname = "h"\nimages = -1\n', r"images = -1 is out of range"),
    "negative objects": (HEAD + "[sampling]\nobjects = [-2, 3]\n", r"objects = \[-2, 3\] is out of range"),
    "reversed range": (HEAD + "[sampling]\nobjects = [5, 3]\n", r"min <= max"),
    "negative quota": (HEAD + "[sampling]\nquotas = {apple = -1}\n", r"non-negative integers"),
    "boolean quota": (HEAD + "[sampling]\nquotas = {apple = true}\n", r"non-negative integers"),
    "huge quota": (HEAD + "[sampling]\nquotas = {apple = 100000000000}\n", r"quotas ask for 100000000000"),
    "huge image count": ('[job]\nname = "h"\nimages = 1000000000000\n', r"images = 1000000000000 is out of range"),
    "huge plan": ('[job]\nname = "h"\nimages = 50000000\n[sampling]\nobjects = [1, 1000]\n', r"split it into several"),
    "huge canvas": (HEAD.replace("width = 64", "width = 100000"), r"width = 100000 is out of range"),
    "float canvas": (HEAD.replace("width = 64", "width = 64.5"), r"width must be an integer"),
    "huge objects": (HEAD + "[sampling]\nobjects = [1, 1000000000]\n", r"objects = .* is out of range"),
    "huge distractors": (HEAD + "[sampling]\ndistractors = [0, 1000000]\n", r"distractors = .* is out of range"),
    "nan rotate": (HEAD.replace("height = 64\n", "height = 64\nrotate = nan\n"), r"rotate must be a finite number"),
    "inf feather": (HEAD + "[render]\nfeather = inf\n", r"feather must be a finite number"),
    "huge feather": (HEAD + "[render]\nfeather = 1e9\n", r"feather = .* is out of range"),
    "huge motion": (HEAD + "[render]\nmotion = 1000000000\n", r"motion = .* is out of range"),
    "nan size mix": (HEAD.replace("height = 64\n", "height = 64\nsize_mix = [nan, 1.0, 1.0]\n"), r"finite numbers"),
    "short size mix": (HEAD.replace("height = 64\n", "height = 64\nsize_mix = [1.0]\n"), r"a list of 3 values"),
    "zero grid": (HEAD.replace("height = 64\n", 'height = 64\nkind = "grid"\ngrid = [0, 4]\n'), r"grid = \[0, 4\]"),
    "huge grid": (HEAD.replace("height = 64\n", "height = 64\ngrid = [100000, 100000]\n"), r"out of range"),
    "short scale": (HEAD.replace("height = 64\n", "height = 64\nscale = [0.5]\n"), r"a list of 2 values"),
    "negative scale": (HEAD.replace("height = 64\n", "height = 64\nscale = [-1.0, 0.5]\n"), r"out of range"),
    "huge tries": (HEAD.replace("height = 64\n", "height = 64\ntries = 1000000000\n"), r"tries = .* is out of range"),
    "inf bucket weight": (HEAD + "[sampling]\nbucket_weights = {r = inf}\n", r"positive numbers, each finite"),
    "nan missing AP": (HEAD + '[sampling]\nstrategy = "hardness"\nfeedback = "f"\nmissing = nan\n', r"finite number"),
    "huge variant count": (HEAD + '[variations]\nfactors = ["count"]\ncount = [1000000000]\n', r"count = .* out of range"),
    "huge plan of variants": ('[job]\nname = "h"\nimages = 10000000\n[sampling]\nobjects = [1, 5]\n[variations]\n'
                              'factors = ["size"]\nsize = [0.5, 0.6, 0.7, 0.8, 0.9]\n', r"images \(with variants\)"),
    "bad name": ('[job]\nname = "../../evil"\n', r"name of letters, digits"),
    "not toml": ('[job\nname = "h"\n', r"is not valid TOML"),
    "relight nan": ('[job]\nname = "r"\ninput = "x"\n[relight]\ntemperature = [nan, 5000.0]\n', r"finite numbers"),
    "relight unknown": ('[job]\nname = "r"\ninput = "x"\n[relight]\nbogus = 1\n', r"unknown key 'bogus' in \[relight\]"),
    "refexp wrong type": ('[job]\nname = "r"\ninput = "x"\n[refexp]\nbackend = 3\n', r"\[refexp\] backend must be"),
}
"""Errors found while reading the spec: name -> (TOML, expected message)."""

PLAN_CASES = {
    "second statement": (HEAD + "[pool]\nwhere = \"TRUE); COPY (SELECT 42) TO '{evil}'; SELECT (1\"\n",
                         r"must be one predicate over segments"),
    "bad predicate": (HEAD + '[pool]\nwhere = "no_such_column > 1"\n', r"not a valid predicate"),
    "unknown filter": (HEAD + '[pool]\nfilter = "filter_0; DROP TABLE segments"\n', r"unknown filter"),
    "unknown quota category": (HEAD + "[sampling]\nquotas = {'\"); DROP TABLE segments; --' = 1}\n",
                               r"has no eligible segment"),
    "missing vocab": (HEAD + '[pool]\nvocab = "../no/such/file.txt"\n', r"does not exist or is not a file"),
    "folder as vocab": (HEAD + '[pool]\nvocab = "."\n', r"does not exist or is not a file"),
}
"""Errors found against the lake, still before any plan row or pixel exists."""


def not_planned(lake: Lake) -> bool:
    """No folder, plan row or shard of the specs' jobs (named "h" or "hostile") exists."""
    lake.refresh()
    folders = [n for n in ("h", "hostile") if os.path.exists(os.path.join(lake.root, "jobs", n))]
    rows = lake.query("SELECT count(*) AS n FROM plan WHERE job IN ('h', 'hostile')").to_pylist()
    return not folders and rows == [{"n": 0}]


def run_cli(spec_text: str, tmp_path, lake: Lake, capsys, command: str = "run") -> tuple[int, str]:
    spec = tmp_path / "spec.toml"
    spec.write_text(spec_text.replace("{evil}", str(tmp_path / "evil.csv")))
    before = tree(tmp_path)
    code = main([command, str(spec), "--lake", lake.root, "--workers", "1", "--no-progress"]
                if command == "run" else [command, str(spec), "--lake", lake.root])
    err = capsys.readouterr().err
    assert changed_outside(before, tree(tmp_path), allowed=()) == []
    return code, err


@pytest.mark.parametrize("name", list(CASES))
def test_bad_spec_is_a_clear_error_before_planning(name, small_lake, tmp_path, capsys):
    import re
    text, message = CASES[name]
    code, err = run_cli(text, tmp_path, small_lake, capsys)
    assert code == 2
    assert err.startswith("soclake: error: ") and "Traceback" not in err
    assert re.search(message, err), err
    assert not_planned(small_lake)


@pytest.mark.parametrize("name,command", [(n, "run") for n in PLAN_CASES] + [("second statement", "plan")])
def test_bad_pool_selection_is_a_clear_error_before_rendering(name, command, small_lake, tmp_path, capsys):
    import re
    text, message = PLAN_CASES[name]
    code, err = run_cli(text, tmp_path, small_lake, capsys, command)
    assert code == 2 and re.search(message, err), err
    assert not (tmp_path / "evil.csv").exists()
    assert not_planned(small_lake)
    assert small_lake.query("SELECT count(*) AS n FROM segments").to_pylist() == [{"n": 6}]


def test_hostile_replay_boxes_are_cut_to_the_canvas(small_lake, tmp_path):
    """A replay file with a zero-width image, non-finite and enormous boxes: unusable images
    and boxes are dropped, the rest cut to the canvas, so no paste is larger than the canvas."""
    import json

    from soclake.jobs import compose as jobs
    from soclake.spec.load import resolve
    boxes = [[10, 10, 20, 20], [1e300, 5, 10, 10], [-1e9, -1e9, 10, 10], [30, 30, 1e12, 1e12], [5, 5, "NaN", 3]]
    doc = {"images": [{"id": 1, "width": 0, "height": 100}, {"id": 2, "width": 100, "height": 100}],
           "annotations": [{"image_id": 1, "bbox": [1, 1, 5, 5]}] +
                          [{"image_id": 2, "bbox": [float(v) for v in b]} for b in boxes]}
    (tmp_path / "replay.json").write_text(json.dumps(doc).replace('"NaN"', "NaN"))
    spec = resolve({"job": {"name": "replay", "images": 2, "shard_size": 2},
                    "layout": {"kind": "replay", "annotations": "replay.json", "width": 64, "height": 64}},
                   base_dir=str(tmp_path))
    summary = jobs.run(small_lake, spec, workers=1, progress=False)
    assert summary.images == 2 and not summary.failed
    plan = small_lake.query("SELECT objects FROM plan WHERE fingerprint = $fp", {"fp": summary.fingerprint}).to_pylist()
    for row in plan:
        assert len(row["objects"]) == 2  # the normal box and the enormous one, cut to the canvas
        for o in row["objects"]:
            assert 0 <= o["x"] and o["x"] + o["w"] <= 64 and 0 <= o["y"] and o["y"] + o["h"] <= 64
