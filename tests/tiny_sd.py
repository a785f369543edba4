"""A tiny Stable-Diffusion-1.5-shaped model folder with random weights, built from small
configs (no download), plus an IC-Light-style offset file: for testing the iclight backend."""
from __future__ import annotations

import json
import os


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2 / CLIP byte-level alphabet."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def write_tokenizer(folder: str) -> int:
    os.makedirs(folder, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(tokens)}
    with open(os.path.join(folder, "vocab.json"), "w", encoding="utf-8") as f:
        json.dump(vocab, f)
    with open(os.path.join(folder, "merges.txt"), "w", encoding="utf-8") as f:
        f.write("#version: 0.2\n")
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"model_max_length": 77, "tokenizer_class": "CLIPTokenizer", "bos_token": "<|startoftext|>",
                   "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}, f)
    return len(vocab)


def make_tiny_sd(root: str, seed: int = 0) -> tuple[str, str]:
    """Write ROOT/model (tokenizer/, text_encoder/, vae/, unet/) and ROOT/offset.safetensors."""
    import safetensors.torch
    import torch
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(seed)
    model = os.path.join(root, "model")
    vocab = write_tokenizer(os.path.join(model, "tokenizer"))
    CLIPTextModel(CLIPTextConfig(vocab_size=vocab, hidden_size=16, intermediate_size=32, num_attention_heads=2,
                                 num_hidden_layers=2, max_position_embeddings=77, projection_dim=16,
                                 bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=vocab - 1)
                  ).save_pretrained(os.path.join(model, "text_encoder"))
    AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
                  up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), block_out_channels=(8, 16),
                  latent_channels=4, norm_num_groups=4, sample_size=32).save_pretrained(os.path.join(model, "vae"))
    unet = UNet2DConditionModel(sample_size=16, in_channels=4, out_channels=4, layers_per_block=1,
                                block_out_channels=(8, 16), down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                                up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=16,
                                attention_head_dim=2, norm_num_groups=4)
    unet.save_pretrained(os.path.join(model, "unet"))
    from soclake.stages.relight.iclight import widen_conv_in
    widen_conv_in(unet)
    offset = {k: torch.randn_like(v) * 0.01 for k, v in unet.state_dict().items()}
    path = os.path.join(root, "offset.safetensors")
    safetensors.torch.save_file(offset, path)
    return model, path
