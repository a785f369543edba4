"""The `iclight` relight backend: IC-Light "fc" on Stable Diffusion 1.5 through diffusers.

Loads a local diffusers-format SD 1.5 folder and an IC-Light offset file (no downloads),
widens the UNet's conv_in to 8 channels (the foreground latents are concatenated to the
noisy latents through a forward hook), merges the offset into the weights, then relights
each composite like IC-Light's demo: a text-to-image pass (light "none") or an image-to-image
pass from a light-gradient background at low resolution, then an image-to-image pass at full
resolution. fp16 on CUDA, batched by light direction. torch, diffusers and transformers are
imported here only (pip install 'soclake[relight]').
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

import cv2
import numpy as np

from soclake.errors import SoclakeError

DEFAULT_PROMPTS = [
    "sunshine from window", "neon light, city", "sunset over sea", "golden time", "sci-fi RGB glowing, cyberpunk",
    "natural lighting", "warm atmosphere, at home, bedroom", "magic lit", "evil, gothic, Yharnam",
    "light and shadow", "shadow from window", "soft studio lighting", "home atmosphere, cozy bedroom illumination",
    "neon, Wong Kar-wai, warm",
]
A_PROMPT = "best quality"
N_PROMPT = "lowres, bad anatomy, bad hands, cropped, worst quality"
LAYOUT = ("tokenizer", "text_encoder", "vae", "unet")


def resolve_paths(params: dict) -> tuple[str, str]:
    """Model folder and offset file from the spec or the environment, checked before any work."""
    model = params.get("model") or os.environ.get("SOCLAKE_ICLIGHT_MODEL", "")
    offset = params.get("offset") or os.environ.get("SOCLAKE_ICLIGHT_OFFSET", "")
    missing = [sub for sub in LAYOUT if not os.path.isdir(os.path.join(model, sub))] if model else list(LAYOUT)
    if not model or missing:
        raise SoclakeError(f"iclight needs a local diffusers SD 1.5 folder ([relight] model or $SOCLAKE_ICLIGHT_MODEL); "
                           f"{model or '(none given)'} lacks {', '.join(missing)}/ (expected {'/, '.join(LAYOUT)}/)")
    if not offset or not os.path.isfile(offset):
        raise SoclakeError(f"iclight needs the IC-Light fc offset safetensors ([relight] offset or "
                           f"$SOCLAKE_ICLIGHT_OFFSET); {offset or '(none given)'} is not a file")
    return model, offset


def check(params: dict) -> None:
    resolve_paths(params)
    try:  # the relight extra, imported only by this backend
        import diffusers  # noqa: F401
        import torch  # noqa: F401
        import transformers  # noqa: F401
    except ImportError:
        raise SoclakeError("the iclight backend needs torch, diffusers and transformers: "
                           "pip install 'soclake[relight]'") from None


def widen_conv_in(unet) -> None:
    """conv_in takes 8 channels: the first 4 keep their weights, the 4 new ones start at zero.

    The config keeps in_channels = 4, as IC-Light does: the pipelines size their latents from
    it, and the forward hook supplies the other 4 channels."""
    import torch  # optional extra (relight)
    old = unet.conv_in
    new = torch.nn.Conv2d(8, old.out_channels, old.kernel_size, old.stride, old.padding)
    with torch.no_grad():
        new.weight.zero_()
        new.weight[:, :4].copy_(old.weight)
        new.bias.copy_(old.bias)
    unet.conv_in = new


def hook_concat(unet) -> None:
    """Concatenate cross_attention_kwargs["concat_conds"] to the sample before the UNet runs."""
    import torch  # optional extra (relight)
    original = unet.forward

    def forward(sample, timestep, encoder_hidden_states, **kwargs):
        cak = dict(kwargs.get("cross_attention_kwargs") or {})
        cond = cak.pop("concat_conds").to(sample)
        cond = torch.cat([cond] * (sample.shape[0] // cond.shape[0]), dim=0)
        kwargs["cross_attention_kwargs"] = cak or None
        return original(torch.cat([sample, cond], dim=1), timestep, encoder_hidden_states, **kwargs)

    unet.forward = forward


def merge_offset(unet, offset_path: str) -> None:
    """Add IC-Light's offset to every UNet weight (keys must match exactly)."""
    import safetensors.torch  # optional extra (relight)
    offset = safetensors.torch.load_file(offset_path)
    origin = unet.state_dict()
    missing = sorted(set(origin) ^ set(offset))
    if missing:
        raise SoclakeError(f"offset {offset_path} does not match the UNet: keys {missing[:5]} differ "
                           "(is it the fc offset for an SD 1.5 UNet?)")
    unet.load_state_dict({k: origin[k] + offset[k].to(origin[k]) for k in origin}, strict=True)


class ICLight:
    """A loaded IC-Light fc model with its text-to-image and image-to-image pipelines."""

    def __init__(self, model: str, offset: str, device: str = "auto"):
        import torch  # optional extra (relight)
        from diffusers import (  # optional extra (relight)
            AutoencoderKL,
            DPMSolverMultistepScheduler,
            StableDiffusionImg2ImgPipeline,
            StableDiffusionPipeline,
            UNet2DConditionModel,
        )
        from transformers import CLIPTextModel, CLIPTokenizer  # optional extra (relight)
        self.device = torch.device("cuda" if device == "auto" and torch.cuda.is_available() else
                                   ("cpu" if device == "auto" else device))
        self.dtype = torch.float16 if self.device.type == "cuda" else torch.float32
        tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
        vae = AutoencoderKL.from_pretrained(model, subfolder="vae")
        unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
        widen_conv_in(unet)
        merge_offset(unet, offset)
        hook_concat(unet)
        for m in (text_encoder, vae, unet):
            m.to(device=self.device, dtype=self.dtype).eval()
        scheduler = DPMSolverMultistepScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012,
                                                algorithm_type="sde-dpmsolver++", use_karras_sigmas=True, steps_offset=1)
        parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                     safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        self.t2i = StableDiffusionPipeline(**parts)
        self.i2i = StableDiffusionImg2ImgPipeline(**parts)
        for p in (self.t2i, self.i2i):
            p.set_progress_bar_config(disable=True)
        self.vae, self.tokenizer, self.text_encoder = vae, tokenizer, text_encoder
        self.scale = self.t2i.vae_scale_factor

    def _encode_prompt(self, texts: list[str]):
        import torch  # optional extra (relight)
        ids = self.tokenizer(texts, padding="max_length", max_length=self.tokenizer.model_max_length,
                             truncation=True, return_tensors="pt").input_ids.to(self.device)
        with torch.no_grad():
            return self.text_encoder(ids)[0]

    def _to_latents(self, images: np.ndarray):
        import torch  # optional extra (relight)
        x = torch.from_numpy(images).float().div(127.0).sub(1.0).permute(0, 3, 1, 2).to(self.device, self.dtype)
        with torch.no_grad():
            return self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor

    def _to_pixels(self, latents) -> np.ndarray:
        import torch  # optional extra (relight)
        with torch.no_grad():
            x = self.vae.decode(latents / self.vae.config.scaling_factor).sample
        return (x.float().permute(0, 2, 3, 1).mul(127.5).add(127.5).clamp(0, 255).round().byte().cpu().numpy())

    def relight(self, fgs: np.ndarray, direction: str, prompts: list[str], seeds: list[int], params: dict) -> np.ndarray:
        """Relit images (N, H, W, 3) of gray-backed foregrounds (N, H, W, 3), one light direction."""
        import torch  # optional extra (relight)
        n, H, W = fgs.shape[:3]
        unit = 8 * self.scale
        w = max(unit, int(round(W / params["highres_scale"] / unit)) * unit)
        h = max(unit, int(round(H / params["highres_scale"] / unit)) * unit)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        conds = self._encode_prompt([f"{p}, {A_PROMPT}" for p in prompts])
        unconds = self._encode_prompt([N_PROMPT] * n)
        common = dict(prompt_embeds=conds, negative_prompt_embeds=unconds, generator=gens, output_type="latent",
                      guidance_scale=params["cfg"])
        small = np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in fgs])
        concat = self._to_latents(small)
        if direction == "none":
            latents = self.t2i(width=w, height=h, num_inference_steps=params["steps"],
                               cross_attention_kwargs={"concat_conds": concat}, **common).images
        else:
            bg = np.stack([light_gradient(direction, w, h)] * n)
            steps = int(round(params["steps"] / params["lowres_denoise"]))
            latents = self.i2i(image=self._to_latents(bg), strength=params["lowres_denoise"], num_inference_steps=steps,
                               cross_attention_kwargs={"concat_conds": concat}, **common).images
        pixels = self._to_pixels(latents.to(self.dtype))
        big = np.stack([cv2.resize(p, (W, H), interpolation=cv2.INTER_LANCZOS4) for p in pixels])
        steps = int(round(params["steps"] / params["highres_denoise"]))
        latents = self.i2i(image=self._to_latents(big), strength=params["highres_denoise"], num_inference_steps=steps,
                           cross_attention_kwargs={"concat_conds": self._to_latents(fgs)}, **common).images
        return self._to_pixels(latents.to(self.dtype))


def light_gradient(direction: str, w: int, h: int) -> np.ndarray:
    """IC-Light's light sources: a linear ramp, bright on the side the light comes from."""
    if direction in ("left", "right"):
        ramp = np.linspace(255, 0, w) if direction == "left" else np.linspace(0, 255, w)
        img = np.tile(ramp, (h, 1))
    else:
        ramp = np.linspace(255, 0, h) if direction == "top" else np.linspace(0, 255, h)
        img = np.tile(ramp[:, None], (1, w))
    return np.stack([img] * 3, axis=-1).astype(np.uint8)


@lru_cache(maxsize=2)
def load(model: str, offset: str, device: str) -> ICLight:
    """One model per worker process, kept across shards."""
    return ICLight(model, offset, device)


@lru_cache(maxsize=8)
def _prompts(path: str) -> tuple[str, ...]:
    if not path:
        return tuple(DEFAULT_PROMPTS)
    try:
        prompts = json.load(open(path, encoding="utf-8"))
        assert isinstance(prompts, list) and prompts and all(isinstance(p, str) for p in prompts)
    except (OSError, ValueError, AssertionError):
        raise SoclakeError(f"[relight] prompts {path} must be a JSON list of strings") from None
    return tuple(prompts)


def relight_batch(items: list[tuple], params: dict) -> list[tuple[np.ndarray, dict]]:
    """items: (rgb, alpha, segments, has_background, rng) per sample. Each sample draws its
    direction, prompt and seed from its rng; samples are batched by direction."""
    model = load(*resolve_paths(params), params["device"])
    prompts = _prompts(params["prompts"])
    drawn = []
    for rgb, alpha, _, has_background, rng in items:
        d = params["directions"][int(rng.integers(len(params["directions"])))]
        drawn.append({"direction": d, "prompt": prompts[int(rng.integers(len(prompts)))],
                      "diffusion_seed": int(rng.integers(0, 2 ** 31))})
    fgs = [gray_backed(rgb, alpha if not has_background else None) for rgb, alpha, *_ in items]
    out: list = [None] * len(items)
    for direction in dict.fromkeys(d["direction"] for d in drawn):
        idx = [i for i, d in enumerate(drawn) if d["direction"] == direction]
        for k in range(0, len(idx), params["batch"]):
            chunk = idx[k:k + params["batch"]]
            relit = model.relight(np.stack([fgs[i] for i in chunk]), direction, [drawn[i]["prompt"] for i in chunk],
                                  [drawn[i]["diffusion_seed"] for i in chunk], params)
            for i, img in zip(chunk, relit):
                out[i] = (img, drawn[i])
    return out


def relight(rgb, alpha, segments, has_background, rng, params):
    return relight_batch([(rgb, alpha, segments, has_background, rng)], params)[0]


def gray_backed(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    """IC-Light's foreground input: the objects over mid grey (a backgrounded image as it is)."""
    if alpha is None:
        return rgb
    a = alpha.astype(np.float32)[..., None] / 255
    return np.clip(127 + (rgb.astype(np.float32) - 127) * a + 0.5, 0, 255).astype(np.uint8)
