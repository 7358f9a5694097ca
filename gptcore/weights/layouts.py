"""GPT-2 weight layouts on disk and the mapping onto GPTModel's names.

Two layouts exist: OpenAI's TensorFlow checkpoint (`hparams.json` +
`model.ckpt.*`) and Hugging Face's (`config.json` + `model.safetensors`). This
module tells them apart, reads their hyperparameters into a GPTConfig, and maps
their tensors onto one set of names (Hugging Face's, without the `transformer.`
prefix), checked against the shapes the hyperparameters imply and converted
(Conv1D weights are [in, out], nn.Linear's [out, in]; q/k/v are concatenated in
`c_attn`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gptcore.errors import CheckpointError, ConfigError
from gptcore.settings.model import GPTConfig
from gptcore.weights.gpt2 import HF_CONFIG, HF_WEIGHTS, OPENAI_HPARAMS

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    import torch
    from torch import Tensor

    from gptcore.model.gpt import GPTModel


def detect_layout(directory: str | Path) -> str:
    """ "hf" or "openai" for a weights directory; CheckpointError naming what is missing."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"weights directory not found: {d}")
    if (d / HF_CONFIG).is_file() and (d / HF_WEIGHTS).is_file():
        return "hf"
    if (d / OPENAI_HPARAMS).is_file() and _openai_prefix(d) is not None:
        return "openai"
    present = ", ".join(sorted(p.name for p in d.iterdir())[:12]) or "nothing"
    raise CheckpointError(
        f"{d} holds neither a Hugging Face GPT-2 (config.json + model.safetensors) nor an "
        f"OpenAI TF checkpoint (hparams.json + model.ckpt.index/.data-*); found: {present}"
    )


def _openai_prefix(d: Path) -> Path | None:
    """The checkpoint prefix (`.../model.ckpt`): from the `checkpoint` file, else by glob."""
    ckpt_file = d / "checkpoint"
    if ckpt_file.is_file():
        for line in ckpt_file.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model_checkpoint_path":
                name = value.strip().strip('"')
                prefix = Path(name) if Path(name).is_absolute() else d / name
                if Path(f"{prefix}.index").is_file():
                    return prefix
    indexes = sorted(d.glob("*.index"))
    return indexes[0].with_suffix("") if indexes else None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    except RecursionError:  # json's parser recurses once per nesting level
        raise CheckpointError(f"cannot read {path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a JSON object")
    return data


def _int_field(data: dict[str, Any], key: str, where: Path) -> int:
    value = data.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise CheckpointError(f"{where}: {key!r} must be a positive integer, got {value!r}")
    return value


def config_from_hparams(hparams: dict[str, Any], where: Path) -> GPTConfig:
    """GPTConfig from OpenAI's hparams.json (n_vocab, n_ctx, n_embd, n_head, n_layer)."""
    f = {
        k: _int_field(hparams, k, where)
        for k in ("n_vocab", "n_ctx", "n_embd", "n_head", "n_layer")
    }
    try:
        return GPTConfig(
            vocab_size=f["n_vocab"],
            context_length=f["n_ctx"],
            emb_dim=f["n_embd"],
            n_heads=f["n_head"],
            n_layers=f["n_layer"],
            drop_rate=0.0,
            qkv_bias=True,
            tie_embeddings=True,
            init="gpt2",  # how GPT-2 was trained; loaded weights replace it anyway
        )
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


_GELU_TANH = {"gelu_new", "gelu_pytorch_tanh", "gelu_fast"}


def config_from_hf(cfg: dict[str, Any], where: Path) -> GPTConfig:
    """GPTConfig from a transformers GPT2Config's config.json; rejects what we cannot express."""
    model_type = cfg.get("model_type", "gpt2")
    if model_type != "gpt2":
        raise CheckpointError(f"{where}: model_type is {model_type!r}, only 'gpt2' loads")
    emb = _int_field(cfg, "n_embd", where)
    act = cfg.get("activation_function", "gelu_new")
    if act not in _GELU_TANH:
        raise CheckpointError(
            f"{where}: activation_function {act!r} is not supported (GPTModel uses tanh-GELU)"
        )
    inner = cfg.get("n_inner")
    if inner not in (None, 4 * emb):
        raise CheckpointError(f"{where}: n_inner {inner} is not 4 * n_embd ({4 * emb})")
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    if not isinstance(eps, (int, float)) or abs(eps - 1e-5) > 1e-12:
        raise CheckpointError(f"{where}: layer_norm_epsilon {eps!r} is not 1e-5")
    for flag in ("scale_attn_by_inverse_layer_idx", "reorder_and_upcast_attn"):
        if cfg.get(flag):
            raise CheckpointError(f"{where}: {flag} = true is not supported")
    if cfg.get("scale_attn_weights", True) is False:
        raise CheckpointError(f"{where}: scale_attn_weights = false is not supported")
    try:
        return GPTConfig(
            vocab_size=_int_field(cfg, "vocab_size", where),
            context_length=_int_field(cfg, "n_positions", where),
            emb_dim=emb,
            n_heads=_int_field(cfg, "n_head", where),
            n_layers=_int_field(cfg, "n_layer", where),
            drop_rate=0.0,
            qkv_bias=True,
            tie_embeddings=bool(cfg.get("tie_word_embeddings", True)),
            init="gpt2",  # transformers' GPT-2 recipe; loaded weights replace it anyway
        )
    except ConfigError as exc:
        raise CheckpointError(f"{where}: {exc}") from None


def expected_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Hugging Face GPT-2 tensor names (no `transformer.` prefix) -> their shapes."""
    d, v = config.emb_dim, config.vocab_size
    shapes: dict[str, tuple[int, ...]] = {
        "wte.weight": (v, d),
        "wpe.weight": (config.context_length, d),
        "ln_f.weight": (d,),
        "ln_f.bias": (d,),
    }
    for i in range(config.n_layers):
        p = f"h.{i}."
        shapes.update(
            {
                p + "ln_1.weight": (d,),
                p + "ln_1.bias": (d,),
                p + "attn.c_attn.weight": (d, 3 * d),
                p + "attn.c_attn.bias": (3 * d,),
                p + "attn.c_proj.weight": (d, d),
                p + "attn.c_proj.bias": (d,),
                p + "ln_2.weight": (d,),
                p + "ln_2.bias": (d,),
                p + "mlp.c_fc.weight": (d, 4 * d),
                p + "mlp.c_fc.bias": (4 * d,),
                p + "mlp.c_proj.weight": (4 * d, d),
                p + "mlp.c_proj.bias": (d,),
            }
        )
    if not config.tie_embeddings:
        shapes["lm_head.weight"] = (v, d)
    return shapes


def _linear(w: Tensor) -> Tensor:
    """Conv1D [in, out] -> a new float32 nn.Linear weight [out, in], contiguous."""
    import torch

    return torch.empty((w.shape[1], w.shape[0]), dtype=torch.float32).copy_(w.t())


def _to_ours(
    config: GPTConfig,
    get: Callable[[str], Tensor],
    get_conv: Callable[[str], Tensor] | None = None,
) -> dict[str, Tensor]:
    """Our state dict from HF-named tensors.

    `get` returns a new float32 tensor the result may keep; `get_conv` (default
    `get`) returns a Conv1D weight that is only read (copied transposed) before
    the next call, so a reader can hand out one reused buffer and loading
    allocates nothing but the final tensors.
    """
    conv = get_conv or get
    d = config.emb_dim
    sd: dict[str, Tensor] = {
        "tok_emb.weight": get("wte.weight"),
        "pos_emb.weight": get("wpe.weight"),
        "final_norm.weight": get("ln_f.weight"),
        "final_norm.bias": get("ln_f.bias"),
    }
    sd["out_head.weight"] = sd["tok_emb.weight"] if config.tie_embeddings else get("lm_head.weight")
    for i in range(config.n_layers):
        h, b = f"h.{i}.", f"trf_blocks.{i}."
        qkv_w = conv(h + "attn.c_attn.weight")
        qkv_b = get(h + "attn.c_attn.bias")
        for j, name in enumerate(("W_query", "W_key", "W_value")):
            sd[f"{b}att.{name}.weight"] = _linear(qkv_w[:, j * d : (j + 1) * d])
            sd[f"{b}att.{name}.bias"] = qkv_b[j * d : (j + 1) * d].clone()  # own storage
        del qkv_w
        sd[b + "att.out_proj.weight"] = _linear(conv(h + "attn.c_proj.weight"))
        sd[b + "att.out_proj.bias"] = get(h + "attn.c_proj.bias")
        sd[b + "ff.layers.0.weight"] = _linear(conv(h + "mlp.c_fc.weight"))
        sd[b + "ff.layers.0.bias"] = get(h + "mlp.c_fc.bias")
        sd[b + "ff.layers.2.weight"] = _linear(conv(h + "mlp.c_proj.weight"))
        sd[b + "ff.layers.2.bias"] = get(h + "mlp.c_proj.bias")
        for ours, theirs in (("norm1", "ln_1"), ("norm2", "ln_2")):
            sd[f"{b}{ours}.weight"] = get(f"{h}{theirs}.weight")
            sd[f"{b}{ours}.bias"] = get(f"{h}{theirs}.bias")
    return sd


def _check_names(
    found: dict[str, tuple[int, ...]], config: GPTConfig, origin: str, ignorable: Iterable[str]
) -> None:
    """Every expected tensor is present with its shape; nothing unexpected is left over."""
    want = expected_shapes(config)
    for name, shape in want.items():
        if name not in found:
            raise CheckpointError(
                f"{origin}: missing tensor {name!r} (expected shape {list(shape)})"
            )
        if tuple(found[name]) != shape:
            raise CheckpointError(
                f"{origin}: tensor {name!r} has shape {list(found[name])}, the config "
                f"expects {list(shape)} (does the config match the weights?)"
            )
    skip = tuple(ignorable)
    extra = sorted(n for n in found if n not in want and not n.endswith(skip))
    if extra:
        raise CheckpointError(
            f"{origin}: unexpected tensor {extra[0]!r} with shape {list(found[extra[0]])} "
            f"({len(extra)} unexpected in all; does the config match the weights?)"
        )


def _pad_vocab(config: GPTConfig, sd: dict[str, Tensor]) -> None:
    """Give the token embedding and output head of `sd` (vocab_size rows, or already
    padded ones) exactly config.padded_vocab_size rows, the extra rows zeros, in place."""
    import torch

    v, rows = config.vocab_size, config.padded_vocab_size

    def fit(w: Tensor) -> Tensor:
        if w.shape[0] == rows:
            return w
        zeros = torch.zeros((rows - v, w.shape[1]), dtype=w.dtype, device=w.device)
        return torch.cat([w[:v], zeros])

    sd["tok_emb.weight"] = fit(sd["tok_emb.weight"])
    tied = config.tie_embeddings
    sd["out_head.weight"] = sd["tok_emb.weight"] if tied else fit(sd["out_head.weight"])


def _unpadded(config: GPTConfig, w: Tensor) -> Tensor:
    """The first vocab_size rows of a padded embedding or head (its own storage, so
    safetensors writes only them); `w` itself when the model is not padded."""
    return w if w.shape[0] == config.vocab_size else w[: config.vocab_size].clone()


def with_vocab_multiple(model: GPTModel, multiple: int) -> GPTModel:
    """`model` with its vocabulary padded to a multiple of `multiple` (padding rows
    zero; the logits are unchanged); `model` itself when it already is. The new
    model shares every other tensor with `model`, which callers then drop."""
    if model.config.vocab_multiple == multiple:
        return model
    config = replace(model.config, vocab_multiple=multiple)
    sd = dict(model.state_dict())
    return _assemble(config, sd, model.tok_emb.weight.device).train(model.training)


def _assemble(config: GPTConfig, sd: dict[str, Tensor], device: str | torch.device) -> GPTModel:
    """Build the model on the meta device and assign the loaded tensors (no second copy).

    The weights files hold vocab_size rows; a padded config gets zero rows appended."""
    import torch

    from gptcore.model.gpt import GPTModel

    _pad_vocab(config, sd)
    with torch.device("meta"):
        model = GPTModel(config)
    model.load_state_dict(sd, strict=True, assign=True)
    if config.tie_embeddings:  # assign=True replaced both Parameters: tie them again
        model.out_head.weight = model.tok_emb.weight
    return model.to(device).eval()
