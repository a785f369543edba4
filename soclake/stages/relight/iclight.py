"""The `iclight` relight backend: IC-Light "fc" on Stable Diffusion 1.5 through diffusers, set up
as SOC uses it (SOC_FACTS 2.1-2.3).

Loads a local diffusers-format SD 1.5 folder and an IC-Light offset file (no downloads),
widens the UNet's conv_in to 8 channels (the foreground latents are concatenated to the
noisy latents through a forward hook), merges the offset into the weights, then relights
each composite like IC-Light's demo: a text-to-image pass (light "none") or an image-to-image
pass from a light-gradient background at low resolution, then an image-to-image pass at full
resolution; DPM++ 2M SDE Karras, prompts encoded in 75-token chunks. On CUDA the text encoder
and UNet run in float16, the VAE in bfloat16 (SOC's dtypes); float32 on CPU. The model paints
the background of a composite that has none. torch, diffusers and transformers are imported
here only (pip install 'soclake[relight]').
"""
from __future__ import annotations

import json
import os
from functools import lru_cache

import cv2
import numpy as np

from soclake.errors import SoclakeError
from soclake.resources import package_data

PAINTS_BACKGROUND = True  # a composite without background is relit whole: the model paints one
SOC_SEED = 123456  # [relight] seed = "fixed": SOC's one diffusion seed for every image
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
    _prompts(params["prompts"])
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


def scheduler_config() -> dict:
    """SOC's scheduler: DPM++ 2M SDE with Karras sigmas over diffusers' default linear betas."""
    return dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, algorithm_type="sde-dpmsolver++",
                use_karras_sigmas=True, steps_offset=1)


def module_dtypes(device_type: str) -> dict:
    """Dtype of each model on a device: SOC's on CUDA (text encoder and UNet float16, VAE
    bfloat16), float32 elsewhere."""
    import torch  # optional extra (relight)
    if device_type != "cuda":
        return {"text_encoder": torch.float32, "vae": torch.float32, "unet": torch.float32}
    return {"text_encoder": torch.float16, "vae": torch.bfloat16, "unet": torch.float16}


def chunk_tokens(ids: list[int], bos: int, eos: int, size: int = 75) -> list[list[int]]:
    """IC-Light's long-prompt rule: the prompt's tokens in chunks of `size`, each wrapped in
    BOS ... EOS and padded with EOS to size + 2 (at least one chunk)."""
    chunks = [ids[i:i + size] for i in range(0, len(ids), size)] or [[]]
    return [[bos] + c + [eos] * (size + 2 - len(c) - 1) for c in chunks]


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
        self.dtypes = module_dtypes(self.device.type)
        tokenizer = CLIPTokenizer.from_pretrained(model, subfolder="tokenizer")
        text_encoder = CLIPTextModel.from_pretrained(model, subfolder="text_encoder")
        vae = AutoencoderKL.from_pretrained(model, subfolder="vae")
        unet = UNet2DConditionModel.from_pretrained(model, subfolder="unet")
        widen_conv_in(unet)
        merge_offset(unet, offset)
        hook_concat(unet)
        for name, m in (("text_encoder", text_encoder), ("vae", vae), ("unet", unet)):
            m.to(device=self.device, dtype=self.dtypes[name]).eval()
        scheduler = DPMSolverMultistepScheduler(**scheduler_config())
        parts = dict(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet, scheduler=scheduler,
                     safety_checker=None, feature_extractor=None, requires_safety_checker=False)
        self.t2i = StableDiffusionPipeline(**parts)
        self.i2i = StableDiffusionImg2ImgPipeline(**parts)
        for p in (self.t2i, self.i2i):
            p.set_progress_bar_config(disable=True)
        self.vae, self.tokenizer, self.text_encoder = vae, tokenizer, text_encoder
        self.scale = self.t2i.vae_scale_factor

    def encode_prompts(self, positive: list[str], negative: list[str]):
        """(conditional, unconditional) embeddings, IC-Light's way: every prompt in 75-token
        chunks, each encoded on its own; all chunk lists repeated to the longest one's count
        and concatenated along the sequence (77, 154, ... tokens), so no prompt is cut."""
        import torch  # optional extra (relight)
        tok = self.tokenizer
        lists = [chunk_tokens(tok(t, add_special_tokens=False, truncation=False).input_ids,
                              tok.bos_token_id, tok.eos_token_id, tok.model_max_length - 2)
                 for t in positive + negative]
        most = max(len(c) for c in lists)
        lists = [(c * -(-most // len(c)))[:most] for c in lists]
        ids = torch.tensor([chunk for c in lists for chunk in c], device=self.device)
        with torch.no_grad():
            emb = self.text_encoder(ids)[0]
        emb = emb.reshape(len(lists), most * emb.shape[1], emb.shape[2]).to(self.dtypes["unet"])
        return emb[:len(positive)], emb[len(positive):]

    def _to_latents(self, images: np.ndarray):
        import torch  # optional extra (relight)
        x = torch.from_numpy(images).float().div(127.0).sub(1.0).permute(0, 3, 1, 2)
        with torch.no_grad():
            x = x.to(self.device, self.dtypes["vae"])
            return (self.vae.encode(x).latent_dist.mode() * self.vae.config.scaling_factor).to(self.dtypes["unet"])

    def _to_pixels(self, latents) -> np.ndarray:
        import torch  # optional extra (relight)
        with torch.no_grad():
            x = self.vae.decode(latents.to(self.dtypes["vae"]) / self.vae.config.scaling_factor).sample
        # IC-Light's pytorch2numpy: x * 127.5 + 127.5, clipped, cast (truncated) to uint8
        return x.float().permute(0, 2, 3, 1).mul(127.5).add(127.5).clamp(0, 255).byte().cpu().numpy()

    def relight(self, fgs: np.ndarray, direction: str, prompts: list[str], seeds: list[int], params: dict) -> np.ndarray:
        """Relit images (N, H, W, 3) of gray-backed foregrounds (N, H, W, 3), one light direction."""
        import torch  # optional extra (relight)
        n, H, W = fgs.shape[:3]
        unit = 8 * self.scale
        w = max(unit, int(round(W / params["highres_scale"] / unit)) * unit)
        h = max(unit, int(round(H / params["highres_scale"] / unit)) * unit)
        gens = [torch.Generator(device="cpu").manual_seed(int(s)) for s in seeds]
        conds, unconds = self.encode_prompts([f"{p}, {params['added_prompt']}" for p in prompts],
                                             [params["negative_prompt"]] * n)
        common = dict(prompt_embeds=conds, negative_prompt_embeds=unconds, generator=gens, output_type="latent",
                      guidance_scale=params["cfg"])
        small = fgs if (w, h) == (W, H) else np.stack([cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) for f in fgs])
        concat = self._to_latents(small)
        if direction == "none":
            latents = self.t2i(width=w, height=h, num_inference_steps=params["steps"],
                               cross_attention_kwargs={"concat_conds": concat}, **common).images
        else:
            bg = np.stack([light_gradient(direction, w, h)] * n)
            steps = int(round(params["steps"] / params["lowres_denoise"]))
            latents = self.i2i(image=self._to_latents(bg), strength=params["lowres_denoise"], num_inference_steps=steps,
                               cross_attention_kwargs={"concat_conds": concat}, **common).images
        pixels = self._to_pixels(latents)
        big = pixels if (w, h) == (W, H) else np.stack([cv2.resize(p, (W, H), interpolation=cv2.INTER_LANCZOS4)
                                                         for p in pixels])
        steps = int(round(params["steps"] / params["highres_denoise"]))
        latents = self.i2i(image=self._to_latents(big), strength=params["highres_denoise"], num_inference_steps=steps,
                           cross_attention_kwargs={"concat_conds": self._to_latents(fgs)}, **common).images
        return self._to_pixels(latents)


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
    """The illumination prompts of a JSON list file (SOC's --illuminate_prompts_path); "" is
    soclake's default list."""
    path = path or str(package_data("relight_prompts.json"))
    try:
        with open(path, encoding="utf-8") as f:
            prompts = json.load(f)
    except (OSError, ValueError):
        prompts = None
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and p.strip() for p in prompts):
        raise SoclakeError(f"[relight] prompts {path}: must be a readable JSON list of non-empty strings, "
                           'e.g. ["sunset over sea", "neon light, city"]')
    return tuple(prompts)


def relight_batch(items: list[tuple], params: dict) -> list[tuple[np.ndarray, dict]]:
    """items: (rgb, alpha, segments, has_background, rng) per sample. Each sample draws its
    direction, prompt and seed from its rng; samples are batched by direction."""
    model = load(*resolve_paths(params), params["device"])
    prompts = _prompts(params["prompts"])
    drawn = []
    for rgb, alpha, _, has_background, rng in items:
        d = params["directions"][int(rng.integers(len(params["directions"])))]
        prompt = prompts[int(rng.integers(len(prompts)))]
        seed = int(rng.integers(0, 2 ** 31))  # drawn either way, so "fixed" changes nothing else
        drawn.append({"direction": d, "prompt": prompt,
                      "diffusion_seed": SOC_SEED if params["seed"] == "fixed" else seed})
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
    return np.clip(127 + (rgb.astype(np.float32) - 127) * a, 0, 255).astype(np.uint8)  # truncated, as SOC
