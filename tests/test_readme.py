"""README stays true: it is short, and its quick start and API example run as written, on
cut-outs this test makes, through the installed `soclake` command."""
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw
from pycocotools.coco import COCO

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def blocks(lang: str) -> list[str]:
    return re.findall(r"```" + lang + r"\n(.*?)```", README, flags=re.S)


def test_readme_is_short():
    assert len(README.splitlines()) <= 250


def make_cutouts(root: Path) -> None:
    """my-cutouts/<category>/*.png: RGBA shapes on transparency, as the quick start describes."""
    rng = np.random.default_rng(0)
    for category, shape in (("mug", "ellipse"), ("teapot", "rectangle")):
        (root / category).mkdir(parents=True)
        for i in range(4):
            im = Image.new("RGBA", (96, 80), (0, 0, 0, 0))
            fill = tuple(int(v) for v in rng.integers(30, 230, 3)) + (255,)
            getattr(ImageDraw.Draw(im), shape)([8 + i, 6, 86 - i, 74], fill=fill)
            im.save(root / category / f"{category}-{i}.png")


@pytest.mark.slow
def test_quick_start_runs_as_written(tmp_path):
    sh, python = blocks("sh"), blocks("python")
    quick = next(b for b in sh if "soclake ingest folders my-cutouts" in b)
    make_cutouts(tmp_path / "my-cutouts")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(ROOT)}
    run = subprocess.run(["bash", "-euo", "pipefail", "-c", quick], cwd=tmp_path, env=env, capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert Image.open(tmp_path / "sample.png").size[0] >= 512
    coco = COCO(str(tmp_path / "my-coco" / "annotations.json"))
    assert len(coco.getImgIds()) == 40 and coco.getAnnIds()
    assert len(os.listdir(tmp_path / "my-coco" / "images")) == 40
    assert (tmp_path / "audit.html").stat().st_size > 0
    for code in python:  # the training snippet, then the API example, in the same folder
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, code + done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads((tmp_path / "my-coco" / "annotations.json").read_text())["images"]
