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
