"""Exporting a GPTModel in Hugging Face's GPT-2 layout (config.json +
model.safetensors), loadable by `transformers.GPT2LMHeadModel.from_pretrained`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptcore.settings.model import GPTConfig
from gptcore.util.fsutil import atomic_output, atomic_write_text
from gptcore.weights.gpt2 import HF_CONFIG, HF_WEIGHTS
from gptcore.weights.layouts import _unpadded

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    from torch import Tensor

    from gptcore.model.gpt import GPTModel


def to_hf_state_dict(model: GPTModel) -> dict[str, Tensor]:
    """Our weights under GPT2LMHeadModel's names (`transformer.*` + `lm_head.weight`).

    `lm_head.weight` is included even when tied (it is then the same tensor as
    `transformer.wte.weight`). A model without q/k/v bias gets zero biases,
    which computes exactly the same function.
    """
    import torch

    c = model.config
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    out: dict[str, Tensor] = {
        # GPT2LMHeadModel has no padding rows: they are stripped (they never reach logits).
        "transformer.wte.weight": _unpadded(c, sd["tok_emb.weight"]),
        "transformer.wpe.weight": sd["pos_emb.weight"],
        "transformer.ln_f.weight": sd["final_norm.weight"],
        "transformer.ln_f.bias": sd["final_norm.bias"],
        "lm_head.weight": _unpadded(c, sd["out_head.weight"]),
    }
    if c.tie_embeddings:  # one tensor, as the docstring promises
        out["lm_head.weight"] = out["transformer.wte.weight"]
    for i in range(c.n_layers):
        b, h = f"trf_blocks.{i}.", f"transformer.h.{i}."
        qkv = [sd[f"{b}att.{n}.weight"] for n in ("W_query", "W_key", "W_value")]
        out[h + "attn.c_attn.weight"] = torch.cat(qkv, dim=0).t().contiguous()
        biases = [sd.get(f"{b}att.{n}.bias") for n in ("W_query", "W_key", "W_value")]
        out[h + "attn.c_attn.bias"] = (
            torch.cat(biases)  # type: ignore[arg-type]
            if c.qkv_bias
            else torch.zeros(3 * c.emb_dim, dtype=qkv[0].dtype, device=qkv[0].device)
        )
        out[h + "attn.c_proj.weight"] = sd[b + "att.out_proj.weight"].t().contiguous()
        out[h + "attn.c_proj.bias"] = sd[b + "att.out_proj.bias"]
        out[h + "mlp.c_fc.weight"] = sd[b + "ff.layers.0.weight"].t().contiguous()
        out[h + "mlp.c_fc.bias"] = sd[b + "ff.layers.0.bias"]
        out[h + "mlp.c_proj.weight"] = sd[b + "ff.layers.2.weight"].t().contiguous()
        out[h + "mlp.c_proj.bias"] = sd[b + "ff.layers.2.bias"]
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            out[f"{h}{theirs}.weight"] = sd[f"{b}{ours}.weight"]
            out[f"{h}{theirs}.bias"] = sd[f"{b}{ours}.bias"]
    return out


def hf_config_dict(config: GPTConfig, dtype: str = "float32") -> dict[str, Any]:
    """A transformers GPT2Config (as config.json) for our config."""
    return {
        "architectures": ["GPT2LMHeadModel"],
        "model_type": "gpt2",
        "vocab_size": config.vocab_size,
        "n_positions": config.context_length,
        "n_ctx": config.context_length,
        "n_embd": config.emb_dim,
        "n_layer": config.n_layers,
        "n_head": config.n_heads,
        "n_inner": None,
        "activation_function": "gelu_new",
        "resid_pdrop": config.drop_rate,
        "embd_pdrop": config.drop_rate,
        "attn_pdrop": config.drop_rate,
        "layer_norm_epsilon": 1e-5,
        "initializer_range": 0.02,
        "bos_token_id": 50256,
        "eos_token_id": 50256,
        "tie_word_embeddings": config.tie_embeddings,
        "torch_dtype": dtype,
    }


def export_hf(model: GPTModel, out_dir: str | Path) -> Path:
    """Write `out_dir/config.json` + `out_dir/model.safetensors` for GPT2LMHeadModel.

    Returns the directory. The weights are written first and config.json last,
    each atomically, so a directory with config.json holds complete weights.
    """
    from safetensors.torch import save_file

    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.cpu().contiguous() for k, v in to_hf_state_dict(model).items()}
    if model.config.tie_embeddings:
        del tensors["lm_head.weight"]  # safetensors refuses shared tensors; HF re-ties it
    (out / HF_CONFIG).unlink(missing_ok=True)
    with atomic_output(out / HF_WEIGHTS) as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    dtype = str(model.tok_emb.weight.dtype).removeprefix("torch.")
    text = json.dumps(hf_config_dict(model.config, dtype), indent=2) + "\n"
    atomic_write_text(out / HF_CONFIG, text)
    return out
