"""Graph language backend: every expression is true of its scene, on hundreds of scenes, and
nothing uncertain (a colour that does not dominate, a position near a third's boundary, a
close size, a tiny or an unlabelled object, an ambiguous nearest) is ever used."""
from collections import Counter
from dataclasses import replace

import numpy as np

from soclake.stages.refexp.graph_backend import (
    DEFAULT_COUNTS,
    dense_caption,
    describe,
    questions,
    referring_expressions,
    segment_captions,
)
from soclake.stages.refexp.programs import Selector, referents, scope_of, verified
from soclake.stages.refexp.scene import Obj, Rules, SceneGraph, from_sample

CATS = ("ball", "box", "cup", "dog")
COLOURS = ("red", "blue", "green")
RULES = Rules.defaults()


def obj(ann_id, category, colour, box, area, z, share=0.9, other=0.0):
    """An object whose visible pixels are `share` colour (surely) and `other` of the next colour."""
    colours = None if colour is None else {colour: share}
    nxt = COLOURS[(COLOURS.index(colour) + 1) % 3] if colour in COLOURS else "white"
    possible = None if colour is None else {colour: share, nxt: other}
    return Obj(ann_id, category, colours, None, tuple(float(v) for v in box), int(area), z, possible_colours=possible)


def random_scene(rng, n=None, W=640, H=480, unlabelled=0) -> SceneGraph:
    """Random objects (some small, some of mixed colour) and unlabelled ones; objects whose
    boxes overlap touch (gap 1) and the later one covers the earlier."""
    n = int(rng.integers(1, 11)) if n is None else n
    objs = []
    for i in range(n + unlabelled):
        w, h = rng.uniform(20, 200, 2)
        x, y = rng.uniform(0, W - w), rng.uniform(0, H - h)
        share = float(rng.choice([0.9, 0.6, 0.4]))
        labelled = i < n
        objs.append(obj(i + 1 if labelled else None, CATS[rng.integers(len(CATS))] if labelled else None,
                        COLOURS[rng.integers(len(COLOURS))], (x, y, w, h), int(rng.integers(100, 20000)), i,
                        share, float(rng.choice([0.0, 0.1, 0.3]))))
    g = SceneGraph(W, H, objs, RULES)
    contacts, covers = {}, set()
    b = g.geometry
    for i in range(len(objs)):
        for j in range(i + 1, len(objs)):
            if b["x0"][i] < b["x1"][j] and b["x0"][j] < b["x1"][i] and b["y0"][i] < b["y1"][j] and b["y0"][j] < b["y1"][i]:
                contacts[(i, j)] = 1.0
                covers.add((j, i))
    return SceneGraph(W, H, objs, RULES, contacts=contacts, covers=covers)


def test_every_expression_refers_to_what_its_bucket_claims():
    rng = np.random.default_rng(0)
    seen = Counter()
    for _ in range(300):
        g = random_scene(rng, unlabelled=int(rng.integers(0, 3)))
        by_id = g.by_id()
        for e in referring_expressions(g, rng, absent_categories=["zebra"]):
            ref = referents(e.selector, g)
            assert ref is not None and scope_of(ref) == e.scope and sorted(ref) == e.targets
            assert all(by_id[t].usable for t in e.targets)
            seen[(e.scope, e.kind)] += 1
            sel = e.selector
            if sel.colour and e.scope != "none":
                assert all(by_id[t].colours[sel.colour] >= RULES.colour_dominance for t in e.targets)
            if sel.relation:
                anchor = by_id[next(iter(referents(sel.anchor, g)))]
                for t in e.targets:
                    tb, ab = by_id[t].bbox, anchor.bbox
                    if sel.relation == "left_of":
                        assert tb[0] + tb[2] <= ab[0] + ab[2] / 2
                    if sel.relation == "on_top_of":
                        i, j = g.index[t], g.index[anchor.ann_id]
                        assert by_id[t].z > anchor.z and (j, i) in g.contacts and (i, j) in g.covers
            if sel.position and e.scope != "none":
                for t in e.targets:
                    cx = by_id[t].centre[0]
                    if sel.position == "left":
                        assert cx < g.width / 3 - RULES.position_margin * g.width
    assert all(seen[k] > 0 for k in DEFAULT_COUNTS), seen  # every bucket is reachable


def test_a_colour_that_does_not_dominate_is_never_named_nor_denied():
    W, H = 600, 300
    a = obj(1, "ball", "red", (10, 10, 80, 80), 5000, 0, share=0.8)
    b = obj(2, "ball", "red", (400, 10, 80, 80), 5000, 1, share=0.35)   # partly red
    g = SceneGraph(W, H, [a, b], RULES)
    assert g.by_id()[1].colour == "red" and g.by_id()[2].colour is None
    assert referents(Selector(category="ball", colour="red"), g) is None  # the other might count as red
    assert verified(Selector(category="ball", colour="green"), g, "none") is not None
    c = obj(2, "ball", "red", (400, 10, 80, 80), 5000, 1, share=0.4, other=0.3)  # 30% may be blue
    g = SceneGraph(W, H, [a, c], RULES)
    assert verified(Selector(category="ball", colour="blue"), g, "none") is None
    texts = [e.text for e in referring_expressions(g, np.random.default_rng(0))]
    assert "the red ball" not in texts and "the blue ball" not in texts


def test_margins_of_position_size_and_tiny_objects():
    W, H = 600, 300
    edge = obj(1, "cup", "red", (W / 3 - 30, 100, 60, 60), 3000, 0)   # centre on the left third's boundary
    far = obj(2, "cup", "blue", (500, 100, 60, 60), 3000, 1)
    g = SceneGraph(W, H, [edge, far], RULES)
    assert g.by_id()[1].horizontal is None and g.by_id()[2].horizontal == "right"
    assert referents(Selector(category="cup", position="left"), g) is None
    assert referents(Selector(category="cup", position="right"), g) == {2}  # the first is surely not right
    assert referents(Selector(category="cup", extreme="largest"), g) is None  # equal sizes
    big = obj(3, "dog", "red", (10, 10, 100, 100), 1100, 2)
    close = obj(4, "dog", "red", (300, 10, 100, 100), 1050, 3)   # within 10%
    tiny = obj(5, "dog", "blue", (200, 200, 10, 10), 100, 4)       # under min_pixels
    g = SceneGraph(W, H, [big, close, tiny], RULES)
    assert referents(Selector(category="dog", extreme="largest"), g) is None
    assert referents(Selector(category="dog", colour="red"), g) is None   # the tiny dog might be red
    qa = questions(g, np.random.default_rng(0))
    assert not any(q["type"] == "count" for q in qa)  # a dog too small to use
    assert all(c["ann_id"] != 5 for c in segment_captions(g))
    g = SceneGraph(W, H, [replace(big, area=1200), replace(close, area=1000)], RULES)
    assert referents(Selector(category="dog", extreme="largest"), g) == {3}


def test_unlabelled_objects_block_claims_over_objects():
    W, H = 600, 300
    ball = obj(1, "ball", "red", (10, 10, 80, 80), 5000, 0)
    cup = obj(2, "cup", "blue", (400, 150, 80, 80), 5000, 1)
    red_thing = obj(None, None, "red", (20, 180, 60, 60), 3000, 2)   # a red distractor on the left
    g = SceneGraph(W, H, [ball, cup, red_thing], RULES)
    assert referents(Selector(colour="red"), g) is None
    assert referents(Selector(position="left"), g) is None
    assert referents(Selector(category="ball", colour="red"), g) == {1}  # categories still work
    assert referents(Selector(colour="blue"), g) == {2}
    texts = [e["text"] for e in describe(g, 0)["expressions"]]
    assert "the red object" not in texts and "all the objects on the left" not in texts
    assert "the red object above the cup" in texts  # the red distractor is not above the cup
    g = SceneGraph(W, H, [ball, cup, replace(red_thing, area=9000)], RULES)
    assert "The largest" not in dense_caption(g)  # the largest visible thing is unlabelled
    old = SceneGraph(W, H, [ball, cup], RULES, complete=False, contacts_known=False)
    assert referents(Selector(colour="blue"), old) is None  # a shard that does not list them


def test_near_needs_a_unique_nearest_and_on_top_needs_contact():
    W, H = 1000, 600
    anchor = obj(1, "box", "red", (400, 200, 100, 100), 9000, 0)
    cup_a = obj(2, "cup", "blue", (510, 200, 40, 40), 1500, 1)    # 10 px away
    cup_b = obj(3, "cup", "blue", (400, 312, 40, 40), 1500, 2)    # 12 px away
    cup_c = obj(4, "cup", "blue", (900, 500, 40, 40), 1500, 3)
    g = SceneGraph(W, H, [anchor, cup_a, cup_b, cup_c], RULES)
    near = Selector(category="cup", relation="near", anchor=Selector(category="box"))
    assert referents(near, g) is None  # two cups about equally near
    g = SceneGraph(W, H, [anchor, cup_a, cup_c], RULES)
    assert referents(near, g) == {2}
    on = Selector(category="cup", relation="on_top_of", anchor=Selector(category="box"))
    over = obj(2, "cup", "blue", (450, 250, 40, 40), 1500, 1)
    g = SceneGraph(W, H, [anchor, over], RULES, contacts={(0, 1): 6.0}, covers={(1, 0)})
    assert referents(on, g) == frozenset()  # boxes overlap but the masks are 6 px apart
    g = SceneGraph(W, H, [anchor, over], RULES, contacts={(0, 1): 1.0}, covers={(1, 0)})
    assert referents(on, g) == {2}
    g = SceneGraph(W, H, [anchor, over], RULES, contacts={(0, 1): 1.0})
    assert referents(on, g) is None  # touching, later, but not known to cover it


def test_single_object_images_get_no_multi_or_relational_expressions():
    rng = np.random.default_rng(1)
    for _ in range(50):
        g = random_scene(rng, n=1)
        for e in referring_expressions(g, rng):
            assert e.scope != "multi" and e.selector.relation is None and e.selector.extreme is None


def test_bucket_counts_and_determinism():
    g = random_scene(np.random.default_rng(2), n=8)
    a = describe(g, seed=5, absent_categories=["zebra"])
    assert a == describe(g, seed=5, absent_categories=["zebra"])
    per = Counter((e["scope"], e["kind"]) for e in a["expressions"])
    assert all(per[k] <= v for k, v in DEFAULT_COUNTS.items())
    assert len({e["text"] for e in a["expressions"]}) == len(a["expressions"])


def test_qa_answers_are_true():
    rng = np.random.default_rng(3)
    n_colour = 0
    for _ in range(100):
        g = random_scene(rng, unlabelled=1)
        by_id = g.by_id()
        cats = Counter(o.category for o in g.labelled)
        for qa in questions(g, rng, absent_categories=["zebra", "apple"]):
            if qa["type"] == "count":
                noun = next(c for c in cats if qa["question"].startswith(f"How many {c}"))
                assert qa["answer"] == str(cats[noun]) and all(o.usable for o in g.labelled if o.category == noun)
            elif qa["type"] == "exist":
                noun = qa["question"].split(" ", 3)[3][:-1]
                assert qa["answer"] == ("yes" if noun in cats else "no")
                assert qa["question"].startswith("Is there an " if noun[0] in "aeiou" else "Is there a ")
            elif qa["type"] == "colour":
                o = by_id[qa["targets"][0]]
                assert qa["answer"] == o.colour and o.colours[o.colour] >= RULES.colour_dominance
                n_colour += 1
            else:
                o = by_id[qa["targets"][0]]
                assert o.horizontal is not None
                assert qa["answer"] == ("in the middle" if o.horizontal == "middle" else f"on the {o.horizontal}")
    assert n_colour > 20


def test_captions_use_measured_colours_not_the_pools_phrase():
    W, H = 600, 300
    box = replace(obj(1, "box", "grey", (10, 10, 80, 80), 5000, 0), phrase="brown cardboard box")
    ball = replace(obj(2, "ball", "red", (400, 10, 80, 80), 5000, 1), phrase="red wooden ball")
    g = SceneGraph(W, H, [box, ball], RULES)
    caps = {c["ann_id"]: c["caption"] for c in segment_captions(g)}
    assert caps[1].startswith("a grey box") and caps[2].startswith("a red wooden ball")
    assert dense_caption(g).startswith("An image with a red ball and a grey box.")


def test_scene_graph_from_a_composed_sample(sample_lake):
    import json
    import tarfile

    from conftest import job_spec

    from soclake.jobs import compose as jobs
    s = jobs.run(sample_lake, job_spec("lang", job={"images": 3, "shard_size": 3}), workers=1, progress=False)
    shard = sample_lake.path(s.folder, "shards", "shard-000000.tar")
    with tarfile.open(shard) as tar:
        info = json.loads(tar.extractfile("000000000.json").read())
    g = from_sample(info)
    assert len(g.labelled) == len(info["instances"]) and g.complete
    assert all(o.colours is not None for o in g.objects)
    doc = describe(g, seed=0)
    assert doc["caption"].startswith("An image with")
    assert len(doc["segment_captions"]) == sum(o.usable for o in g.labelled)
    for e in doc["expressions"]:
        assert set(e["targets"]) <= {i["ann_id"] for i in info["instances"]}
    old = {**info, "instances": [{k: v for k, v in i.items() if k not in ("colours", "z")} for i in info["instances"]]}
    del old["scene"]
    g = from_sample(old)  # a shard written before colours were measured: no colour words at all
    assert not g.complete and all(o.colour is None for o in g.objects)
    assert not any(w in e["text"] for e in describe(g, seed=0)["expressions"] for w in ("red", "blue", "object"))


def test_articles_and_plurals():
    from soclake.stages.refexp.graph_backend import _count_phrase
    from soclake.stages.refexp.programs import plural
    assert _count_phrase(1, "orange kite") == "an orange kite" and _count_phrase(2, "red box") == "two red boxes"
    assert plural("cherry") == "cherries" and plural("toy") == "toys"


def test_refexp_stage_adds_verified_expressions(sample_lake):
    import json as _json
    import tarfile

    from conftest import job_spec

    from soclake.jobs import compose as jobs
    from soclake.loader.stream import Stream
    from soclake.spec.load import resolve
    from soclake.stages import runner as stage
    jobs.run(sample_lake, job_spec("lang-in", job={"images": 4, "shard_size": 2}), workers=1, progress=False)
    spec = resolve({"job": {"name": "lang-out", "input": "lang-in"}, "refexp": {}})
    s = stage.run(sample_lake, spec, workers=1, progress=False)
    assert s.images == 4 and not s.failed
    assert stage.run(sample_lake, spec, workers=1, progress=False).shards_rendered == 0
    n_rows = sample_lake.query("SELECT count(*) n FROM refexps WHERE fingerprint = $fp",
                               {"fp": s.fingerprint}).to_pylist()[0]["n"]
    n_doc = 0
    for shard in sorted(__import__("glob").glob(sample_lake.path(s.folder, "shards", "*.tar"))):
        with tarfile.open(shard) as tar:
            names = tar.getnames()
            for name in names:
                if name.endswith(".refexp.json"):
                    doc = _json.loads(tar.extractfile(name).read())
                    info = _json.loads(tar.extractfile(name.replace(".refexp.json", ".json")).read())
                    ids = {i["ann_id"] for i in info["instances"]}
                    for e in doc["expressions"]:
                        assert set(e["targets"]) <= ids
                        assert (e["scope"] == "none") == (not e["targets"])
                    n_doc += len(doc["expressions"])
    assert n_doc == n_rows > 0
    g = next(iter(Stream(sample_lake.root, "lang-out", task="grounding", shuffle=False)))
    assert g["expressions"] and all(len(e["boxes"]) >= 0 for e in g["expressions"])


def test_refexp_spec_margins_are_checked(sample_lake):
    import pytest

    from soclake.errors import SoclakeError
    from soclake.spec.load import resolve
    from soclake.stages import runner as stage
    with pytest.raises(SoclakeError, match="contact_px"):
        stage.run(sample_lake, resolve({"job": {"name": "m", "input": "lang-in"}, "refexp": {"contact_px": 20.0}}))
    with pytest.raises(SoclakeError, match="colour_absent"):
        stage.run(sample_lake, resolve({"job": {"name": "m", "input": "lang-in"},
                                        "refexp": {"colour_absent": 0.6, "colour_dominance": 0.5}}))


def test_questions_never_name_distractors(tmp_path):
    """The distractors' own category ("distractor") is no lake category a question may ask about."""
    import json

    from conftest import blob_rgba, job_spec, save_png

    from soclake import Lake
    from soclake.ingestion import ingest
    from soclake.jobs import compose as jobs
    from soclake.shards.tar import read_samples
    from soclake.spec.load import resolve
    from soclake.stages import runner as stage
    for i in range(3):
        save_png(tmp_path / "src" / "apple" / f"{i}.png", blob_rgba(i, 48))
        save_png(tmp_path / "src" / "junk" / f"{i}.png", blob_rgba(10 + i, 48))
    lake = Lake(str(tmp_path / "lake"), create=True)
    ingest(lake, "folders", str(tmp_path / "src"), distractors=str(tmp_path / "src" / "junk"), workers=1,
           progress=False)
    jobs.run(lake, job_spec("d", job={"images": 6, "shard_size": 6}, sampling={"objects": [1, 3], "distractors": [2, 3]}),
             workers=1, progress=False)
    s = stage.run(lake, resolve({"job": {"name": "d-rx", "input": "d"}, "refexp": {"absent_categories": 5}}),
                  workers=1, progress=False)
    text = []
    for r in lake.query("SELECT shard_uri FROM manifest WHERE fingerprint = $fp", {"fp": s.fingerprint}).to_pylist():
        for _, m in read_samples(lake.fs.cat_file(lake.path(r["shard_uri"]))):
            doc = json.loads(m["refexp.json"])
            text += [q["question"] for q in doc["qa"]] + [e["text"] for e in doc["expressions"]]
    assert text and not any("distractor" in t for t in text)


def test_odvg_export_of_expressions_has_exact_spans(sample_lake, tmp_path):
    import json as _json

    from conftest import job_spec

    from soclake.jobs import compose as jobs
    from soclake.outputs.export import chunk_expressions, export
    from soclake.spec.load import resolve
    from soclake.stages import runner as stage
    jobs.run(sample_lake, job_spec("odvg-in", job={"images": 3, "shard_size": 3}), workers=1, progress=False)
    stage.run(sample_lake, resolve({"job": {"name": "odvg-rx", "input": "odvg-in"}, "refexp": {}}), workers=1,
              progress=False)
    s = export(sample_lake, "odvg-rx", "odvg", str(tmp_path))
    lines = [_json.loads(x) for x in (tmp_path / "odvg.jsonl").read_text().splitlines()]
    assert lines and s.annotations > 0
    for rec in lines:
        g = rec["grounding"]
        assert len(g["caption"]) <= 256
        for r in g["regions"]:
            (a, b), = r["tokens_positive"]
            assert g["caption"][a:b] == r["phrase"]
            x0, y0, x1, y1 = r["bbox"]
            assert 0 <= x0 < x1 <= rec["width"] and 0 <= y0 < y1 <= rec["height"]
    chunks = chunk_expressions([{"text": "x" * 100}] * 5, limit=255)
    assert [len(c) for c, _ in chunks] == [203, 203, 101]
