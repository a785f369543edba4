"""Every expression, QA answer and caption of the graph backend is true of the shard's own
pixels, as judged by an independent checker (tests/truth_checker.py), over a few hundred
generated scenes: mixed blends with distractors and decoys, same-category crowds, poisson
only, and relit images."""
import numpy as np
import pytest
from conftest import save_png
from truth_checker import Report, check_job

from soclake import Lake
from soclake.ingestion import ingest
from soclake.jobs import compose as jobs
from soclake.sample_pool import write_sample_pool
from soclake.spec.load import resolve
from soclake.stages import runner as stage

SIZE = {"width": 256, "height": 192}
JOBS = {
    "mixed": {"job": {"images": 110, "shard_size": 55, "seed": 1},
              "sampling": {"objects": [4, 12], "distractors": [0, 3], "decoys": [0, 2]},
              "render": {"background": "pool", "blend": ["none", "gaussian", "poisson", "motion"]}},
    "crowd": {"job": {"images": 90, "shard_size": 45, "seed": 2},
              "sampling": {"objects": [8, 16], "single_category": True, "distractors": [0, 1]},
              "render": {"background": "pool", "blend": ["none", "poisson"]}},
    "poisson": {"job": {"images": 50, "shard_size": 50, "seed": 3}, "sampling": {"objects": [3, 8]},
                "render": {"background": "pool", "blend": ["poisson"]}},
    "bare": {"job": {"images": 80, "shard_size": 40, "seed": 4}, "sampling": {"objects": [4, 12], "distractors": [0, 2]},
             "render": {"background": "none", "blend": ["none", "gaussian"]}},
}


def distractor(seed: int, size: int = 56) -> np.ndarray:
    """A plain-coloured blob: distractors that really are red, blue... so that expressions over
    "objects" must account for them."""
    rng = np.random.default_rng(seed)
    colour = [(210, 30, 30), (40, 70, 210), (40, 160, 60), (235, 210, 40), (240, 240, 240)][seed % 5]
    yy, xx = np.mgrid[0:size, 0:size]
    inside = ((xx - size / 2) / (size * 0.45)) ** 2 + ((yy - size / 2) / (size * rng.uniform(0.25, 0.45))) ** 2 < 1
    rgb = np.clip(np.array(colour) + rng.normal(0, 6, (size, size, 3)), 0, 255).astype(np.uint8)
    return np.dstack([rgb, np.where(inside, 255, 0).astype(np.uint8)])


@pytest.fixture(scope="module")
def truth_lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("truth")
    write_sample_pool(str(root / "pool"), seed=3, ids=2, subcategories=4)
    lake = Lake(str(root / "lake"), create=True)
    ingest(lake, "soc", str(root / "pool" / "segments"), source_name="sample", workers=1, progress=False)
    ingest(lake, "backgrounds", str(root / "pool" / "backgrounds"), source_name="bg", workers=1, progress=False)
    for i in range(10):
        save_png(root / "extra" / "junk" / f"{i}.png", distractor(i))
    ingest(lake, "folders", str(root / "extra"), distractors=str(root / "extra" / "junk"), source_name="junk",
           workers=1, progress=False)
    for name, sections in JOBS.items():
        raw = {"job": {"name": name, **sections["job"]}, "layout": SIZE,
               **{k: v for k, v in sections.items() if k != "job"}}
        jobs.run(lake, resolve(raw), workers=2, progress=False)
    stage.run(lake, resolve({"job": {"name": "relit", "input": "bare"}, "relight": {"backend": "classic"}}),
              workers=2, progress=False)
    for name in ("mixed", "crowd", "poisson", "relit"):
        stage.run(lake, resolve({"job": {"name": f"{name}-rx", "input": name}, "refexp": {}}), workers=2,
                  progress=False)
    return lake


@pytest.mark.slow
def test_language_is_true_of_the_pixels(truth_lake):
    total = Report()
    for name in ("mixed", "crowd", "poisson", "relit"):
        rep = check_job(truth_lake, f"{name}-rx")
        assert rep.samples == JOBS["bare" if name == "relit" else name]["job"]["images"]
        assert not rep.false, f"{name}: {rep.summary()}\n" + "\n".join(rep.examples)
        assert rep.false_colour_words == rep.false_relations == 0, rep.summary()
        for k in ("samples", "expressions", "qa", "captions"):
            setattr(total, k, getattr(total, k) + getattr(rep, k))
    assert total.samples >= 300 and total.expressions > 15 * total.samples, total.summary()


@pytest.mark.slow
def test_the_checked_language_covers_every_claim(truth_lake):
    """The zero above means something: colour words, relations (on top of, near), positions,
    extremes, no-target claims, claims over "objects" with distractors in view, colour QA."""
    import json

    from soclake.shards.tar import read_samples
    texts, qa_types, unlabelled = [], set(), 0
    for r in truth_lake.query("SELECT shard_uri FROM manifest WHERE stage = 'refexp'").to_pylist():
        for _, m in read_samples(truth_lake.fs.cat_file(truth_lake.path(r["shard_uri"]))):
            info, doc = json.loads(m["json"]), json.loads(m["refexp.json"])
            unlabelled += bool(info["scene"]["unlabelled"])
            texts += [(e["text"], e["scope"], bool(info["scene"]["unlabelled"])) for e in doc["expressions"]]
            qa_types |= {q["type"] for q in doc["qa"]}
    words = " ".join(t for t, _, _ in texts)
    for needle in (" on top of ", " near ", " to the left of ", " above ", "largest", "smallest", " on the left",
                   " red ", " blue "):
        assert needle in words, needle
    assert any(s == "none" for _, s, _ in texts) and any(s == "multi" for _, s, _ in texts)
    assert any(" object" in t and seen for t, _, seen in texts)  # "objects" claims with distractors in view
    assert unlabelled > 20 and {"count", "exist", "colour", "where"} <= qa_types
