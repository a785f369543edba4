"""Mixing real and synthetic data: COCO to shards (round trip, bad entries, determinism), and
Mix over a converted COCO set and a compose job (exact proportions at every prefix, exactly
once per source across ranks x workers, reruns, manifests, labels, DataLoader resume)."""
import json
import os
from collections import Counter

import numpy as np
import pytest
from conftest import job_spec
from PIL import Image
from pycocotools import mask as mask_utils

from soclake.cli import main
from soclake.convert.coco_to_shards import shards_from_coco
from soclake.errors import SoclakeError
from soclake.jobs import compose as jobs
from soclake.loader import Mix, Stream, load_mix, torch_loader
from soclake.loader.mix import schedule_period, steps_to_pick

JOB = "mixsyn"
W, H = 40, 32
CATEGORIES = [{"id": 3, "name": "ball"}, {"id": 7, "name": "Traffic_Light"}]
LABELS = ["__background__", "ball", "box", "star", "ring", "kite", "pill", "heart", "moon", "traffic light"]


# ----------------------------------------------------------------------------- a tiny COCO set
def ellipse(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[0:H, 0:W]
    return (((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1).astype(np.uint8)


def segmentation(kind: int, seed: int):
    """A polygon, a compressed RLE or an uncompressed RLE (the three COCO spellings)."""
    rng = np.random.default_rng(seed)
    if kind == 0:
        x, y = rng.uniform(2, 12, 2)
        return [[x, y, x + 20, y + 1, x + 17, y + 15, x + 2, y + 12]]
    m = ellipse(*rng.uniform(12, 20, 2), *rng.uniform(4, 9, 2))
    rle = mask_utils.encode(np.asfortranarray(m))
    if kind == 1:
        return {"size": [H, W], "counts": rle["counts"].decode()}
    return {"size": [H, W], "counts": _runs(m)}


def _runs(m: np.ndarray) -> list[int]:
    flat, runs, cur, n = m.ravel(order="F"), [], 0, 0
    for v in flat:
        if v != cur:
            runs.append(n)
            cur, n = v, 0
        n += 1
    return runs + [n]


def expected_mask(seg) -> np.ndarray:
    rle = mask_utils.merge(mask_utils.frPyObjects(seg, H, W)) if isinstance(seg, list) else \
        mask_utils.frPyObjects(seg, H, W) if isinstance(seg["counts"], list) else \
        {"size": seg["size"], "counts": seg["counts"].encode()}
    return mask_utils.decode(rle)


@pytest.fixture(scope="module")
def coco(tmp_path_factory):
    """10 good images (PNG and JPEG, 0-3 instances each, in all three mask spellings) plus one
    bad entry of each kind the converter must skip."""
    root = tmp_path_factory.mktemp("coco")
    (root / "images" / "a").mkdir(parents=True)
    images, anns = [], []
    for i in range(1, 11):
        ext = "jpg" if i % 4 == 0 else "png"
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (H, W, 3), dtype=np.uint8)).save(
            root / "images" / "a" / f"{i}.{ext}")
        images.append({"id": i, "file_name": f"a/{i}.{ext}", "width": W, "height": H})
        for j in range(i % 4):
            anns.append({"id": 100 * i + j, "image_id": i, "category_id": CATEGORIES[(i + j) % 2]["id"], "iscrowd": 0,
                         "segmentation": segmentation((i + j) % 3, 100 * i + j), "bbox": [0, 0, 1, 1]})
    (root / "outside.png").write_bytes((root / "images" / "a" / "1.png").read_bytes())
    (root / "images" / "a" / "link.png").symlink_to(root / "outside.png")
    (root / "images" / "a" / "broken.png").write_bytes((root / "images" / "a" / "1.png").read_bytes()[:200])
    images += [{"id": 20, "file_name": "a/missing.png", "width": W, "height": H},      # missing file
               {"id": 21, "file_name": "../outside.png", "width": W, "height": H},     # escapes IMAGES_DIR
               {"id": 22, "file_name": "a/broken.png", "width": W, "height": H},       # truncated PNG
               {"id": 25, "file_name": "a/link.png", "width": W, "height": H},         # symlink out of it
               {"id": 23, "file_name": "a/2.png", "width": W, "height": H},            # a bad annotation
               {"id": 24, "file_name": "a/3.png", "width": 99, "height": H}]           # wrong size
    anns.append({"id": 2300, "image_id": 23, "category_id": 3, "segmentation": [[1, 2]], "bbox": [0, 0, 1, 1]})
    anns.append({"id": 2301, "image_id": 23, "category_id": 3, "segmentation": segmentation(0, 1), "bbox": [0, 0, 1, 1]})
    doc = {"images": images, "annotations": anns, "categories": CATEGORIES}
    (root / "instances.json").write_text(json.dumps(doc))
    out = root / "shards-out"
    summary = shards_from_coco(str(root / "instances.json"), str(root / "images"), str(out), shard_size=3)
    return root, out, doc, summary


def good_anns(doc):
    return {i: [a for a in doc["annotations"] if a["image_id"] == i] for i in range(1, 11)}


def test_coco_round_trip(coco):
    root, out, doc, summary = coco
    assert (summary.images, summary.shards, summary.instances) == (10, 4, sum(i % 4 for i in range(1, 11)))
    samples = {s["__key__"]: s for s in Stream(str(out), task="raw", shuffle=False)}
    assert sorted(samples) == [f"{i:09d}" for i in range(1, 11)]
    by_image, names = good_anns(doc), {c["id"]: c["name"] for c in CATEGORIES}
    for i, anns in by_image.items():
        s = samples[f"{i:09d}"]
        ext = "jpg" if i % 4 == 0 else "png"
        assert s[ext] == (root / "images" / "a" / f"{i}.{ext}").read_bytes()  # original bytes
        info = json.loads(s["json"])
        assert (info["width"], info["height"], info["source_file"]) == (W, H, f"a/{i}.{ext}")
        assert [x["ann_id"] for x in info["instances"]] == [a["id"] for a in anns]
        for inst, ann in zip(info["instances"], anns):
            got = mask_utils.decode({"size": inst["segmentation"]["size"], "counts": inst["segmentation"]["counts"]})
            want = expected_mask(ann["segmentation"])
            assert np.array_equal(got, want) and inst["area"] == int(want.sum())
            ys, xs = np.nonzero(want)
            assert inst["bbox"] == [xs.min(), ys.min(), xs.max() + 1 - xs.min(), ys.max() + 1 - ys.min()]
            assert (inst["category_id"], inst["category"]) == (ann["category_id"], names[ann["category_id"]])
    seg = {s["__key__"]: s for s in Stream(str(out / "index.json"), task="segmentation", shuffle=False)}
    img = seg["000000007"]
    assert img["image"].shape == (H, W, 3) and img["masks"].shape == (3, H, W)
    assert np.array_equal(img["image"], np.asarray(Image.open(root / "images" / "a" / "7.png")))


def test_bad_entries_are_reported_and_skipped(coco):
    root, out, _, _ = coco
    skipped = [json.loads(line) for line in (out / "skipped.jsonl").read_text().splitlines()]
    reasons = {(s["item"].split(" ")[0], s["reason"]) for s in skipped}
    assert {("a/missing.png", "missing_image"), ("a/broken.png", "unreadable"), ("a/2.png", "bad_annotation"),
            ("a/3.png", "size_mismatch")} <= reasons
    assert any(s["reason"] == "unsafe_path" and "../outside.png" in s["detail"] for s in skipped)
    assert ("a/link.png", "unsafe_path") in reasons
    # nothing but the output folder was written
    assert sorted(p.name for p in root.iterdir()) == ["images", "instances.json", "outside.png", "shards-out"]
    assert sorted(p.name for p in (root / "images" / "a").iterdir()) == sorted(
        [f"{i}.{'jpg' if i % 4 == 0 else 'png'}" for i in range(1, 11)] + ["broken.png", "link.png"])
    assert sorted(os.listdir(out)) == ["index.json", "shards", "skipped.jsonl"]


def test_conversion_is_deterministic_and_cli(coco, tmp_path, capsys):
    root, out, _, _ = coco
    again = tmp_path / "again"
    assert main(["shards-from-coco", str(root / "instances.json"), str(root / "images"), "--out", str(again),
                 "--shard-size", "3", "--name", "shards-out"]) == 0
    assert "10 images" in capsys.readouterr().out
    for name in ["index.json"] + [f"shards/shard-{i:06d}.tar" for i in range(4)]:
        assert (again / name).read_bytes() == (out / name).read_bytes()
    assert main(["shards-from-coco", str(root / "instances.json"), str(root / "nope"), "--out", str(again)]) == 2
    assert "images folder" in capsys.readouterr().err


# ----------------------------------------------------------------------------- the schedule
def test_schedule_keeps_every_prefix_within_the_bound():
    rng = np.random.default_rng(0)
    for _ in range(200):
        k = int(rng.integers(2, 7))
        w = tuple(int(v) for v in rng.integers(1, 30, k))
        period = schedule_period(w, tuple(int(v) for v in rng.permutation(k)))
        seq = np.concatenate([period, period])
        counts = np.cumsum(np.eye(k, dtype=np.int64)[seq], axis=0)
        n = np.arange(1, len(seq) + 1)[:, None]
        dev = np.abs(counts - n * np.array(w) / sum(w))
        assert dev.max() <= 1 - 1 / (2 * k - 2) + 1e-9
        assert list(np.bincount(period, minlength=k)) == list(w)   # each period is exact
    assert list(schedule_period((1, 3), (0, 1))) == [1, 0, 1, 1]
    assert steps_to_pick(schedule_period((1, 3), (0, 1)), 0, 3) == 10   # real at steps 2, 6, 10


# ----------------------------------------------------------------------------- mixing
@pytest.fixture(scope="module")
def synthetic(sample_lake):
    spec = job_spec(JOB, job={"images": 24, "shard_size": 4}, layout={"width": W, "height": H},
                    sampling={"objects": [1, 3]})
    jobs.run(sample_lake, spec, workers=1, progress=False)
    return sample_lake


def make_mix(coco, lake, weights, rank=0, world_size=2, task="raw", **kw):
    real = Stream(str(coco[1]), task=task, rank=rank, world_size=world_size, seed=4, buffer=4)
    synth = Stream(lake.root, JOB, task=task, rank=rank, world_size=world_size, seed=4, buffer=4)
    return Mix([real, synth], weights, seed=4, names=["real", "synthetic"], **kw)


def slots_of(coco, lake, weights, epoch, **kw):
    """{(rank, worker): [(source, key, padded), ...]} of one epoch over 2 ranks x 2 workers."""
    out = {}
    for rank in range(2):
        mix = make_mix(coco, lake, weights, rank=rank, **kw)
        mix.set_epoch(epoch)
        for worker in range(2):
            out[rank, worker] = [(s["__source__"], s["__key__"], bool(s.get("__padded__")))
                                 for s in mix.iter_worker(worker, 2)]
    return out


@pytest.mark.parametrize("weights", [[1, 1], [1, 3]])
def test_mix_proportions_partition_and_determinism(coco, synthetic, weights):
    lake = synthetic
    p_real = weights[0] / sum(weights)
    epochs = []
    for epoch in range(2):
        slots = slots_of(coco, lake, weights, epoch)
        epochs.append(slots)
        assert slots == slots_of(coco, lake, weights, epoch)                      # reruns agree
        assert len({len(v) for v in slots.values()}) == 1                        # same length everywhere
        for (rank, worker), seq in slots.items():
            real = np.cumsum([src == "real" for src, _, _ in seq])
            assert np.abs(real - np.arange(1, len(seq) + 1) * p_real).max() <= 0.5   # every prefix
            # each source keeps its own partitioning: its samples are its Stream slot's, in order
            for name, stream in (("real", Stream(str(coco[1]), task="raw", rank=rank, world_size=2, seed=4,
                                                 buffer=4)),
                                 ("synthetic", Stream(lake.root, JOB, task="raw", rank=rank, world_size=2, seed=4,
                                                      buffer=4))):
                mine = [k for src, k, _ in seq if src == name]
                stream.set_epoch(epoch)
                assert mine == [s["__key__"] for s in stream.raw_worker(worker, 2)][:len(mine)]
        for name in ("real", "synthetic"):                                      # exactly once per epoch
            keys = [k for seq in slots.values() for src, k, padded in seq if src == name and not padded]
            assert len(keys) == len(set(keys))
        # first_exhausted: slots hold 3 real (10 over 4, padded) and 6 synthetic samples; the epoch
        # ends just before one source would need more, so that source is used up exactly
        for seq in slots.values():
            c = Counter(src for src, _, _ in seq)
            assert c["real"] <= 3 and c["synthetic"] <= 6 and (c["real"] == 3 or c["synthetic"] == 6)
    assert epochs[0] != epochs[1]


def test_all_exhausted_and_samples_per_epoch(coco, synthetic):
    slots = slots_of(coco, synthetic, [1, 3], 0, stop="all_exhausted")
    for name, total in (("real", 10), ("synthetic", 24)):
        keys = {k for seq in slots.values() for src, k, _ in seq if src == name}
        assert keys == ({f"{i:09d}" for i in range(1, 11)} if name == "real" else {f"{i:09d}" for i in range(24)})
    for seq in slots.values():                            # 3 real per slot at 1:3 take 10 steps,
        assert Counter(src for src, _, _ in seq) == {"real": 3, "synthetic": 7}   # so synthetic cycles
    fixed = slots_of(coco, synthetic, [1, 3], 0, samples_per_epoch=50)
    assert {len(v) for v in fixed.values()} == {13}       # ceil(50 / 4) per worker


def test_shared_label_space(coco, synthetic):
    mix = make_mix(coco, synthetic, [1, 1], world_size=1, task="detection", categories=LABELS)
    label_of = {n: i for i, n in enumerate(LABELS)}
    raw = {(s["__source__"], s["__key__"]): json.loads(s["json"])
           for s in make_mix(coco, synthetic, [1, 1], world_size=1)}
    seen = set()
    for s in mix:
        info = raw[s["__source__"], s["__key__"]]
        want = [label_of[i["category"].lower().replace("_", " ")] for i in info["instances"]]
        assert list(s["labels"]) == want
        seen.add(s["__source__"])
    assert seen == {"real", "synthetic"}
    with pytest.raises(SoclakeError, match="not in the mix's categories"):
        list(make_mix(coco, synthetic, [1, 1], world_size=1, task="detection", categories=["ball"]))
    with pytest.warns(UserWarning, match="own category ids"):
        make_mix(coco, synthetic, [1, 1], task="detection")


def test_manifest(coco, synthetic, tmp_path):
    manifest = tmp_path / "mix.toml"
    rel = os.path.relpath(coco[1], tmp_path)
    manifest.write_text(f'[mix]\nseed = 4\ntask = "raw"\nbuffer = 4\n\n'
                        f'[[source]]\nname = "real"\nindex = "{rel}"\nweight = 1\n\n'
                        f'[[source]]\nname = "synthetic"\nlake = "{synthetic.root}"\njob = "{JOB}"\nweight = 3\n')
    keys = lambda mix: [(s["__source__"], s["__key__"]) for s in mix.iter_worker(1, 2)]
    assert keys(load_mix(str(manifest), rank=1, world_size=2)) == keys(make_mix(coco, synthetic, [1, 3], rank=1))
    as_json = tmp_path / "mix.json"
    as_json.write_text(json.dumps({"mix": {"seed": 4, "task": "raw", "buffer": 4},
                                   "source": [{"name": "real", "index": str(coco[1] / "index.json")},
                                              {"name": "synthetic", "lake": synthetic.root, "job": JOB, "weight": 3}]}))
    assert keys(load_mix(str(as_json), rank=1, world_size=2)) == keys(make_mix(coco, synthetic, [1, 3], rank=1))
    for text, message in [('[mix]\nseeds = 1\n[[source]]\nindex = "x"\n', "unknown key 'seeds'"),
                          ('[mix]\nseed = 1\n', "no \\[\\[source\\]\\]"),
                          (f'[[source]]\nindex = "{rel}"\nlake = "x"\n', "either index"),
                          (f'[[source]]\nindex = "{rel}"\nweight = 0\n', "positive"),
                          ('[[source]]\nindex = "nowhere"\n', "cannot read shard index")]:
        manifest.write_text(text)
        with pytest.raises(SoclakeError, match=message):
            load_mix(str(manifest))


def test_torch_loader_resumes_a_mix_mid_epoch(coco, synthetic):
    torch = pytest.importorskip("torch")
    make = lambda: torch_loader(make_mix(coco, synthetic, [1, 3], world_size=1, task="detection",
                                         categories=LABELS), batch_size=3, num_workers=2)
    per_worker = make_mix(coco, synthetic, [1, 3], world_size=1).samples_per_worker(2)
    whole = [(s, k) for b in make() for s, k in zip(b["__source__"], b["__key__"])]
    first, seen = make(), []
    for i, batch in enumerate(first):
        assert isinstance(batch["image"], torch.Tensor) and batch["image"].shape[1:] == (H, W, 3)
        seen += list(zip(batch["__source__"], batch["__key__"]))
        if i == 2:
            state = json.loads(json.dumps(first.state_dict()))
            break
    second = make()
    second.load_state_dict(state)
    rest = [(s, k) for b in second for s, k in zip(b["__source__"], b["__key__"])]
    assert seen + rest == whole and len(whole) == 2 * per_worker and len(seen) == 9
    other = torch_loader(make_mix(coco, synthetic, [1, 1], world_size=1), batch_size=3)
    with pytest.raises(SoclakeError, match="another weights"):
        other.load_state_dict(state)


def test_mix_refuses_what_it_cannot_honour(coco, synthetic):
    real = lambda **kw: Stream(str(coco[1]), task="raw", **kw)
    with pytest.raises(SoclakeError, match="no sample for some of the 1 x 16"):
        Mix([real(pad=False), Stream(synthetic.root, JOB, task="raw")]).samples_per_worker(16)
    with pytest.raises(SoclakeError, match="same task"):
        Mix([real(), Stream(synthetic.root, JOB, task="detection")])
    with pytest.raises(SoclakeError, match="distinct names"):
        Mix([real(), real()])
    with pytest.raises(SoclakeError, match="needs 2 weights"):
        Mix([real(), Stream(synthetic.root, JOB, task="raw")], [1])
    with pytest.raises(SoclakeError, match="same rank"):
        Mix([real(rank=1, world_size=2), Stream(synthetic.root, JOB, task="raw")])


def test_a_fifo_image_is_a_reject_not_a_hang(tmp_path):
    import threading

    from soclake.convert import coco_to_shards as coco_shards
    from soclake.errors import RejectedItem
    os.mkfifo(tmp_path / "fifo.png")
    result = {}

    def convert():
        try:
            coco_shards._image(str(tmp_path), "fifo.png", W, H)
        except RejectedItem as e:
            result["reason"] = e.reason
    t = threading.Thread(target=convert, daemon=True)
    t.start()
    t.join(10)
    assert result == {"reason": "unreadable"}


def test_weights_below_the_precision_are_an_error():
    from soclake.errors import SoclakeError
    from soclake.loader.mix import integer_weights
    with pytest.raises(SoclakeError, match="precision"):
        integer_weights([0.0004, 1])
