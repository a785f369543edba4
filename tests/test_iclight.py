"""The iclight backend's mechanics on a tiny random-weight SD 1.5 (no download, CPU)."""
import numpy as np
import pytest

pytest.importorskip("diffusers")
torch = pytest.importorskip("torch")

from tiny_sd import make_tiny_sd

from soclake.errors import SoclakeError
from soclake.spec.load import resolve
from soclake.stages.relight import iclight


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    torch.set_num_threads(1)
    return make_tiny_sd(str(tmp_path_factory.mktemp("sd")))


def params(model, offset, **kw):
    return resolve({"job": {"name": "r", "input": "x"},
                    "relight": {"backend": "iclight", "model": model, "offset": offset, "steps": 2,
                                "highres_scale": 1.0, "batch": 2, **kw}})["relight"]


def test_missing_model_or_offset_is_a_clear_error(tmp_path, tiny):
    model, offset = tiny
    with pytest.raises(SoclakeError, match="lacks tokenizer, text_encoder, vae, unet"):
        iclight.check(params(str(tmp_path), offset))
    with pytest.raises(SoclakeError, match="offset safetensors"):
        iclight.check(params(model, str(tmp_path / "nope.safetensors")))


def test_loading_widens_conv_in_and_merges_the_offset(tiny):
    import safetensors.torch
    from diffusers import UNet2DConditionModel
    model, offset = tiny
    m = iclight.ICLight(model, offset, device="cpu")
    unet = m.t2i.unet
    assert unet.conv_in.in_channels == 8 and unet.config.in_channels == 4  # latents stay 4-channel
    base = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
    off = safetensors.torch.load_file(offset)
    assert torch.allclose(unet.conv_in.weight[:, :4], base.conv_in.weight + off["conv_in.weight"][:, :4])
    assert torch.allclose(unet.conv_in.weight[:, 4:], off["conv_in.weight"][:, 4:])  # new channels start at 0


def test_relight_batch_shapes_determinism_and_the_concat_path(tiny):
    model, offset = tiny
    p = params(model, offset, directions=["none", "left"])
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (32, 48, 3), dtype=np.uint8)
    alpha = np.zeros((32, 48), np.uint8)
    alpha[8:24, 10:40] = 255
    items = lambda: [(rgb, alpha, (alpha > 0).astype(np.int32), False, np.random.default_rng(s)) for s in range(3)]
    a = iclight.relight_batch(items(), p)
    b = iclight.relight_batch(items(), p)
    assert [r[0].shape for r in a] == [(32, 48, 3)] * 3
    assert all(np.array_equal(x[0], y[0]) for x, y in zip(a, b))  # same seeds, same pixels
    assert {r[1]["direction"] for r in a} <= {"none", "left"} and all(r[1]["prompt"] for r in a)
    # the foreground really conditions the UNet: another foreground changes the output
    other = [(255 - rgb, alpha, (alpha > 0).astype(np.int32), False, np.random.default_rng(s)) for s in range(3)]
    c = iclight.relight_batch(other, p)
    assert any(not np.array_equal(x[0], y[0]) for x, y in zip(a, c))


def test_whole_relight_job_with_the_tiny_model(sample_lake, tiny):
    from conftest import job_spec

    from soclake.jobs import compose as jobs
    from soclake.stages.runner import run
    model, offset = tiny
    jobs.run(sample_lake, job_spec("for-iclight", job={"images": 2, "shard_size": 2}, layout={"width": 48, "height": 32}),
             workers=1, progress=False)
    spec = resolve({"job": {"name": "ic", "input": "for-iclight"},
                    "relight": {"backend": "iclight", "model": model, "offset": offset, "steps": 2, "highres_scale": 1.0}})
    summary = run(sample_lake, spec, workers=1, progress=False)
    assert summary.images == 2 and not summary.failed, summary.failed


def test_scheduler_and_dtypes_are_socs(tiny):
    model, offset = tiny
    m = iclight.ICLight(model, offset, device="cpu")
    cfg = m.t2i.scheduler.config
    assert type(m.t2i.scheduler).__name__ == "DPMSolverMultistepScheduler" and m.i2i.scheduler is m.t2i.scheduler
    assert (cfg.num_train_timesteps, cfg.beta_start, cfg.beta_end, cfg.beta_schedule) == (1000, 0.00085, 0.012, "linear")
    assert (cfg.algorithm_type, cfg.use_karras_sigmas, cfg.steps_offset) == ("sde-dpmsolver++", True, 1)
    assert iclight.module_dtypes("cuda") == {"text_encoder": torch.float16, "vae": torch.bfloat16, "unet": torch.float16}
    assert set(iclight.module_dtypes("cpu").values()) == {torch.float32}
    assert m.vae.dtype == torch.float32 and m.t2i.unet.dtype == torch.float32


def test_long_prompts_are_encoded_in_75_token_chunks_not_cut(tiny):
    model, offset = tiny
    m = iclight.ICLight(model, offset, device="cpu")
    short, long = "sunset", "sunset over the sea " * 10  # the tiny tokenizer: one token per letter
    ids = m.tokenizer(long, add_special_tokens=False).input_ids
    assert len(ids) == 160
    cond, uncond = m.encode_prompts([short, long], ["bad"] * 2)
    assert cond.shape[1] == uncond.shape[1] == 77 * 3  # three chunks; the shorter prompts' repeated
    chunks = iclight.chunk_tokens(ids, m.tokenizer.bos_token_id, m.tokenizer.eos_token_id)
    assert [len(c) for c in chunks] == [77, 77, 77]
    assert chunks[0] == [m.tokenizer.bos_token_id] + ids[:75] + [m.tokenizer.eos_token_id]
    assert chunks[2][:11] == [m.tokenizer.bos_token_id] + ids[150:] and set(chunks[2][11:]) == {m.tokenizer.eos_token_id}
    # a chunk is encoded on its own: the long prompt's first 77 embeddings are those of its first chunk alone
    with torch.no_grad():
        alone = m.text_encoder(torch.tensor([chunks[0], chunks[2]]))[0]
    assert torch.allclose(cond[1, :77], alone[0], atol=1e-5) and torch.allclose(cond[1, 154:], alone[1], atol=1e-5)


def test_prompts_file_and_fixed_seed(tiny, tmp_path):
    model, offset = tiny
    path = tmp_path / "prompts.json"
    path.write_text('["under a red lamp", "blue moonlight"]')
    p = params(model, offset, prompts=str(path), seed="fixed", directions=["left"])
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (32, 32, 3), dtype=np.uint8)
    alpha = np.zeros((32, 32), np.uint8)
    alpha[8:24, 8:24] = 255
    out = iclight.relight_batch([(rgb, alpha, (alpha > 0).astype(np.int32), False, np.random.default_rng(s))
                                 for s in range(4)], p)
    assert {d["prompt"] for _, d in out} <= {"under a red lamp", "blue moonlight"}
    assert {d["diffusion_seed"] for _, d in out} == {123456}
    path.write_text('["ok", 3]')
    iclight._prompts.cache_clear()
    with pytest.raises(SoclakeError, match="JSON list of non-empty strings"):
        iclight.check(params(model, offset, prompts=str(path)))


def test_an_rgba_job_relit_by_iclight_is_a_jpeg_scene_with_the_models_background(sample_lake, tiny):
    import io
    import json

    from conftest import job_spec
    from PIL import Image

    from soclake.jobs import compose as jobs
    from soclake.shards.tar import read_samples
    from soclake.stages.relight import BACKENDS, prepare_sample, relight_samples
    from soclake.stages.runner import run
    model, offset = tiny
    jobs.run(sample_lake, job_spec("for-iclight-rgba", job={"images": 2, "shard_size": 2}, render={"background": "none"},
                                   layout={"width": 48, "height": 32}), workers=1, progress=False)
    spec = resolve({"job": {"name": "ic-rgba", "input": "for-iclight-rgba"},
                    "relight": {"backend": "iclight", "model": model, "offset": offset, "steps": 2}})
    summary = run(sample_lake, spec, workers=1, progress=False)
    assert summary.images == 2 and not summary.failed, summary.failed
    fp = summary.fingerprint
    shard = sample_lake.path("jobs", "ic-rgba", fp, "shards", "shard-000000.tar")
    src = sample_lake.query("SELECT shard_uri FROM manifest WHERE job = 'for-iclight-rgba'").column(0)[0].as_py()
    before = read_samples(open(sample_lake.path(src), "rb").read())
    after = dict(read_samples(open(shard, "rb").read()))
    # the model's own output for the same samples: outside the segments the scene is that image
    p = {**spec["relight"], "prompts": "", "spec_dir": "."}
    direct = relight_samples(before, BACKENDS.get("iclight"), p, 0)
    for (key, members), (_, expected) in zip(before, direct):
        assert "rgba.png" not in after[key] and json.loads(after[key]["json"])["file_name"] == f"{key}.jpg"
        im = Image.open(io.BytesIO(after[key]["jpg"]))
        assert im.mode == "RGB" and after[key]["jpg"] == expected["jpg"]
        s = prepare_sample(members, 0)
        relit = np.asarray(im).astype(float)
        outside = s["segments"] == 0
        grey = np.abs(relit[outside] - 127).mean()
        assert grey > 1  # not the grey input, not transparency: the model's background
