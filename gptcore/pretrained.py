"""GPT-2 pretrained weights: sizes, sources, on-disk layouts, loaders and export.

Two layouts load into GPTModel:

- OpenAI's TensorFlow checkpoint (`hparams.json` + `model.ckpt.*`), read with
  TensorFlow's checkpoint reader (imported only when such a directory is loaded);
- Hugging Face's (`config.json` + `model.safetensors`), which needs no TensorFlow.

Both are mapped onto one set of names (Hugging Face's, without the
`transformer.` prefix), checked against the shapes the hyperparameters imply,
converted (Conv1D weights are [in, out]; nn.Linear's are [out, in]; q/k/v are
concatenated in `c_attn`) and assigned into a model built on the meta device,
so loading never holds two full copies of the weights.
"""

from __future__ import annotations

import json
import math
import os
import sys
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from . import paths
from .config import GPTConfig, get_preset
from .download import ProgressCallback, RemoteFile, RetryPolicy, Timeouts, download_files, probe
from .errors import CheckpointError, ConfigError, DownloadError
from .fsutil import atomic_output, atomic_write_text

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    import torch
    from torch import Tensor

    from .model import GPTModel

# --------------------------------------------------------------------------- sizes


@dataclass(frozen=True)
class GPT2Size:
    name: str  # OpenAI's directory name: "124M"
    preset: str  # our GPTConfig preset
    hf_repo: str  # Hugging Face repository id
    # Exact byte sizes of OpenAI's files where they are known; others are
    # checked against the server's Content-Length only.
    openai_bytes: dict[str, int]
    approx_bytes: int = 0  # roughly what one download weighs (the weights file dominates)


OPENAI_FILES = (
    "checkpoint",
    "encoder.json",
    "hparams.json",
    "model.ckpt.data-00000-of-00001",
    "model.ckpt.index",
    "model.ckpt.meta",
    "vocab.bpe",
)
HF_FILES = ("config.json", "model.safetensors")
_SHARED_BYTES = {"checkpoint": 77, "encoder.json": 1_042_301, "vocab.bpe": 456_318}

SIZES: dict[str, GPT2Size] = {
    "124M": GPT2Size(
        "124M",
        "gpt2-small",
        "openai-community/gpt2",
        {
            **_SHARED_BYTES,
            "hparams.json": 90,
            "model.ckpt.data-00000-of-00001": 497_759_232,
            "model.ckpt.index": 5_215,
            "model.ckpt.meta": 471_155,
        },
        550_000_000,
    ),
    "355M": GPT2Size(
        "355M",
        "gpt2-medium",
        "openai-community/gpt2-medium",
        {
            **_SHARED_BYTES,
            "hparams.json": 91,
            "model.ckpt.data-00000-of-00001": 1_419_292_672,
            "model.ckpt.index": 10_399,
            "model.ckpt.meta": 926_519,
        },
        1_500_000_000,
    ),
    "774M": GPT2Size(
        "774M", "gpt2-large", "openai-community/gpt2-large", dict(_SHARED_BYTES), 3_250_000_000
    ),
    "1558M": GPT2Size(
        "1558M", "gpt2-xl", "openai-community/gpt2-xl", dict(_SHARED_BYTES), 6_400_000_000
    ),
}
_ALIASES = {
    "small": "124M",
    "gpt2": "124M",
    "gpt2-small": "124M",
    "medium": "355M",
    "gpt2-medium": "355M",
    "large": "774M",
    "gpt2-large": "774M",
    "xl": "1558M",
    "gpt2-xl": "1558M",
}
SOURCES = ("openai", "hf")  # download sources; "openai" is the download default
# Loading prefers Hugging Face's layout: it needs no TensorFlow.
PREFERRED_SOURCES = ("hf", "openai")
SOURCE_LABELS = {"hf": "Hugging Face", "openai": "OpenAI TF"}


def resolve_size(name: str) -> GPT2Size:
    """ "124M", "124m", "small", "gpt2-small" ... -> the size's record."""
    key = name.strip()
    for size in SIZES:
        if key.upper() == size:
            return SIZES[size]
    if key.lower() in _ALIASES:
        return SIZES[_ALIASES[key.lower()]]
    raise ConfigError(
        f"unknown GPT-2 size {name!r}; choose one of: {', '.join(SIZES)} "
        f"(or {', '.join(sorted(_ALIASES))})"
    )


def weights_dir() -> Path:
    """Root folder for downloaded weights (under the data dir; GPT_TUI_HOME overrides)."""
    return paths.data_dir() / "weights"


def gpt2_dir(size: str, source: str) -> Path:
    """Where `gpt-tui download gpt2 --size SIZE --source SOURCE` puts its files."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    return weights_dir() / "gpt2" / resolve_size(size).name / source


# --------------------------------------------------------------------------- layouts


def detect_layout(directory: str | Path) -> str:
    """ "hf" or "openai" for a weights directory; CheckpointError naming what is missing."""
    d = Path(directory)
    if not d.is_dir():
        raise CheckpointError(f"weights directory not found: {d}")
    if (d / "config.json").is_file() and (d / "model.safetensors").is_file():
        return "hf"
    if (d / "hparams.json").is_file() and _openai_prefix(d) is not None:
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


def read_config(directory: str | Path) -> GPTConfig:
    """The GPTConfig a weights directory of either layout describes."""
    d = Path(directory)
    if detect_layout(d) == "hf":
        return config_from_hf(_read_json(d / "config.json"), d / "config.json")
    return config_from_hparams(_read_json(d / "hparams.json"), d / "hparams.json")


# --------------------------------------------------------------------------- name mapping


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

    from .model import GPTModel

    _pad_vocab(config, sd)
    with torch.device("meta"):
        model = GPTModel(config)
    model.load_state_dict(sd, strict=True, assign=True)
    if config.tie_embeddings:  # assign=True replaced both Parameters: tie them again
        model.out_head.weight = model.tok_emb.weight
    return model.to(device).eval()


# --------------------------------------------------------------------------- loaders


# safetensors dtype names we read -> torch dtype names, and their sizes in bytes
_ST_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
_ST_ITEMSIZE = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8}
_ST_MAX_HEADER = 100_000_000

SafetensorsEntries = dict[str, tuple[str, tuple[int, ...], int, int]]


def safetensors_header(path: Path) -> tuple[SafetensorsEntries, int]:
    """A .safetensors file's tensors, name -> (dtype, shape, begin, end), and where data starts.

    Reads only the header (no torch). CheckpointError unless it is an 8-byte
    length plus a JSON object whose tensors exactly fill the rest of the file,
    which catches truncated and corrupted downloads.
    """
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            raw = fh.read(8)
            n = int.from_bytes(raw, "little") if len(raw) == 8 else -1
            if n <= 0 or n > _ST_MAX_HEADER or 8 + n > size:
                raise CheckpointError(f"{path} is not a safetensors file (bad header length)")
            text = fh.read(n)
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        header = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise CheckpointError(f"{path} is not a safetensors file (bad header)") from None
    if not isinstance(header, dict):
        raise CheckpointError(f"{path} is not a safetensors file (its header is not a JSON object)")
    entries: SafetensorsEntries = {}
    data_len = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            itemsize = _ST_ITEMSIZE[info["dtype"]]
            shape = tuple(int(x) for x in info["shape"])
            begin, stop = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise CheckpointError(
                f"{path}: tensor {name!r} has an unsupported dtype or a broken entry ({info!r})"
            ) from None
        if (
            any(dim < 0 for dim in shape)
            or begin < 0
            or stop - begin != math.prod(shape) * itemsize
            or stop > data_len
        ):
            raise CheckpointError(
                f"{path}: tensor {name!r} {list(shape)} lies outside the file "
                f"({size:,} bytes): truncated or corrupted download?"
            )
        entries[name] = (info["dtype"], shape, begin, stop)
    end = max((e[3] for e in entries.values()), default=0)
    if end != data_len:
        raise CheckpointError(
            f"{path}: {data_len - end:,} bytes follow the last tensor (not a safetensors file "
            "as written; corrupted download?)"
        )
    return entries, 8 + n


class _SafetensorsFile:
    """Reads tensors of a .safetensors file one at a time with `readinto`.

    Each tensor is read straight into its own buffer: no memory map whose
    touched pages would count as a second copy in the process's RSS, so the
    peak stays near one copy of the weights. The header is validated against
    the file's length first, which also catches truncated downloads.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        import torch

        self.fh = open(path, "rb")  # noqa: SIM115 - closed by close()
        self.scratch = torch.empty(0, dtype=torch.uint8)
        self.dtypes = {k: getattr(torch, v) for k, v in _ST_DTYPES.items()}
        try:
            self.entries, self.data_start = self._header()
        except BaseException:
            self.fh.close()
            raise

    def _header(self) -> tuple[dict[str, tuple[torch.dtype, tuple[int, ...], int, int]], int]:
        entries, data_start = safetensors_header(self.path)
        typed = {k: (self.dtypes[d], shape, b, e) for k, (d, shape, b, e) in entries.items()}
        return typed, data_start

    def get(self, name: str) -> Tensor:
        """A new tensor holding `name` (its own memory)."""
        import torch

        dtype, shape, _, _ = self.entries[name]
        return self._read_into(name, torch.empty(shape, dtype=dtype))

    def get_scratch(self, name: str) -> Tensor:
        """`name` in a buffer reused by the next call: for tensors that are copied at once."""
        import torch

        dtype, shape, begin, stop = self.entries[name]
        if self.scratch.numel() < stop - begin:
            self.scratch = torch.empty(stop - begin, dtype=torch.uint8)
        t = self.scratch[: stop - begin].view(dtype).view(shape)
        return self._read_into(name, t)

    def _read_into(self, name: str, t: Tensor) -> Tensor:
        import torch

        _, _, begin, stop = self.entries[name]
        self.fh.seek(self.data_start + begin)
        got = self.fh.readinto(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
        if got != stop - begin:
            raise CheckpointError(f"{self.path}: tensor {name!r} is cut short")
        return t

    def close(self) -> None:
        self.fh.close()


def _hf_tensor_names(
    shapes: dict[str, tuple[int, ...]], config: GPTConfig, origin: str
) -> dict[str, str]:
    """HF names (no prefix) -> the file's names, once every shape matches `config`."""
    # GPT2LMHeadModel saves `transformer.h.0...`; GPT2Model (and the official files) don't.
    names = {k.removeprefix("transformer."): k for k in shapes}
    found = {n: shapes[k] for n, k in names.items()}
    if config.tie_embeddings and "lm_head.weight" in found:
        found.pop("lm_head.weight")  # a tied head saved explicitly is the same tensor
    _check_names(found, config, origin, (".attn.bias", ".attn.masked_bias"))
    return names


def check_hf_config(path: Path) -> GPTConfig:
    """A Hugging Face GPT-2 config.json: a JSON object with GPT-2's keys, else CheckpointError."""
    return config_from_hf(_read_json(path), path)


def check_hf_weights(path: Path, config: GPTConfig | None = None) -> None:
    """A complete model.safetensors holding the tensors `config` implies, else CheckpointError.

    `config` defaults to the config.json next to the file. Reads only the header.
    """
    if config is None:
        config = check_hf_config(path.parent / "config.json")
    entries, _ = safetensors_header(path)
    _hf_tensor_names({k: entry[1] for k, entry in entries.items()}, config, str(path))


def load_hf(
    directory: str | Path, device: str | torch.device = "cpu", config: GPTConfig | None = None
) -> GPTModel:
    """A GPTModel from a Hugging Face GPT-2 directory (config.json + model.safetensors)."""
    import torch

    d = Path(directory)
    config = config or config_from_hf(_read_json(d / "config.json"), d / "config.json")
    file = d / "model.safetensors"
    if not file.is_file():
        raise CheckpointError(f"{file} not found")
    if sys.byteorder != "little":  # pragma: no cover - safetensors data is little-endian
        raise CheckpointError("loading safetensors needs a little-endian machine")
    reader = _SafetensorsFile(file)
    try:
        shapes = {k: entry[1] for k, entry in reader.entries.items()}
        names = _hf_tensor_names(shapes, config, str(file))

        def get(name: str) -> Tensor:
            return reader.get(names[name]).to(torch.float32)

        sd = _to_ours(config, get, lambda name: reader.get_scratch(names[name]))
    finally:
        reader.close()
    return _assemble(config, sd, device)


_TF_MISSING = (
    "reading OpenAI's TensorFlow checkpoint needs TensorFlow: pip install 'gpt-tui[tf]' "
    "(or download the Hugging Face layout instead: gpt-tui download gpt2 --source hf)"
)


def _tf_name(name: str) -> str:
    """OpenAI TF variable name -> HF name: model/h3/attn/c_attn/w -> h.3.attn.c_attn.weight."""
    parts = name.removeprefix("model/").split("/")
    if parts[0].startswith("h") and parts[0][1:].isdigit():
        parts[0:1] = ["h", parts[0][1:]]
    leaf = {"w": "weight", "g": "weight", "b": "bias"}.get(parts[-1], parts[-1])
    if parts[0] in ("wte", "wpe") and len(parts) == 1:
        return f"{parts[0]}.weight"
    return ".".join([*parts[:-1], leaf])


def load_openai(
    directory: str | Path, device: str | torch.device = "cpu", config: GPTConfig | None = None
) -> GPTModel:
    """A GPTModel from OpenAI's TF checkpoint directory (hparams.json + model.ckpt.*)."""
    import torch

    d = Path(directory)
    config = config or config_from_hparams(_read_json(d / "hparams.json"), d / "hparams.json")
    prefix = _openai_prefix(d)
    if prefix is None:
        raise CheckpointError(f"no TF checkpoint (model.ckpt.index) in {d}")
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TF's startup chatter quiet
        import tensorflow as tf
    except ImportError:
        raise CheckpointError(_TF_MISSING) from None
    try:
        variables = tf.train.list_variables(str(prefix))
    except Exception as exc:  # TF raises its own error types for broken files
        raise CheckpointError(f"cannot read TF checkpoint {prefix}: {exc}") from None
    tf_names = {_tf_name(n): n for n, _ in variables if n.startswith("model/")}
    found = {_tf_name(n): tuple(s) for n, s in variables if n.startswith("model/")}
    # OpenAI stores Conv1D weights as [1, in, out]: drop the leading 1 for the check.
    found = {n: (s[1:] if len(s) == 3 and s[0] == 1 else s) for n, s in found.items()}
    _check_names(found, config, str(prefix), ())

    def get(name: str) -> Tensor:
        array = tf.train.load_variable(str(prefix), tf_names[name])
        t = torch.from_numpy(array).to(torch.float32)
        return t.squeeze(0) if t.dim() == 3 else t

    try:
        sd = _to_ours(config, get)
    except CheckpointError:
        raise
    except Exception as exc:
        raise CheckpointError(f"cannot read TF checkpoint {prefix}: {exc}") from None
    return _assemble(config, sd, device)


def load_weights(directory: str | Path, device: str | torch.device = "cpu") -> GPTModel:
    """A GPTModel from a directory of either layout (detected), hyperparameters included."""
    d = Path(directory).expanduser()
    if detect_layout(d) == "hf":
        return load_hf(d, device)
    return load_openai(d, device)


def find_gpt2(size: str) -> Path:
    """The downloaded directory for a GPT-2 size (HF layout preferred: no TensorFlow)."""
    s = resolve_size(size)
    tried = []
    for source in PREFERRED_SOURCES:
        status = local_status(s.name, source)
        if status.complete:
            return status.path
        lacking = f": missing {', '.join(status.missing)}" if status.path.is_dir() else ""
        tried.append(f"{status.path}{lacking}")
    raise CheckpointError(
        f"GPT-2 {s.name} weights are not downloaded (looked in {'; '.join(tried)}); "
        f"run: gpt-tui download gpt2 --size {s.name} (or place the files there by hand)"
    )


def downloaded_sizes() -> list[str]:
    """GPT-2 sizes with a complete download (any source), in size order."""
    return [
        size
        for size in SIZES
        if any(local_status(size, source).complete for source in PREFERRED_SOURCES)
    ]


def model_from_spec(spec: str, device: str | torch.device = "cpu") -> GPTModel:
    """A model from "gpt2:124M" (downloaded weights, also "gpt2:gpt2-small") or "weights:DIR".

    A thin wrapper over gptcore.modelspec.load_spec, which parses every model spec.
    """
    from .modelspec import GPT2, WEIGHTS, load_spec, parse_spec

    return load_spec(parse_spec(spec, kinds=(GPT2, WEIGHTS)), device).model


# --------------------------------------------------------------------------- export


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
    (out / "config.json").unlink(missing_ok=True)
    with atomic_output(out / "model.safetensors") as tmp:
        save_file(tensors, str(tmp), metadata={"format": "pt"})
    dtype = str(model.tok_emb.weight.dtype).removeprefix("torch.")
    text = json.dumps(hf_config_dict(model.config, dtype), indent=2) + "\n"
    atomic_write_text(out / "config.json", text)
    return out


def preset_for(size: str) -> GPTConfig:
    """Our preset for an official GPT-2 size (the shapes its files must have)."""
    return get_preset(resolve_size(size).preset)


# --------------------------------------------------------------------------- download

OPENAI_BASE_URL = "https://openaipublic.blob.core.windows.net/gpt-2/models"
HF_BASE_URL = "https://huggingface.co"
# Environment overrides (tests point these at a local server; users at a proxy/mirror).
OPENAI_URL_ENV = "GPT_TUI_OPENAI_URL"
HF_URL_ENV = "GPT_TUI_HF_URL"
MIRROR_ENV = "GPT_TUI_GPT2_MIRROR"


def files_for(source: str) -> tuple[str, ...]:
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; choose one of: {', '.join(SOURCES)}")
    return OPENAI_FILES if source == "openai" else HF_FILES


def _url(base: str, size: GPT2Size, source: str, file: str) -> str:
    base = base.rstrip("/")
    if source == "openai":
        return f"{base}/{size.name}/{file}"
    return f"{base}/{size.hf_repo}/resolve/main/{file}"


def _servers(
    source: str, base_url: str | None = None, mirror: str | None = None
) -> tuple[str, str | None]:
    """The base URL `source` downloads from, and the mirror tried second (if any)."""
    default = OPENAI_BASE_URL if source == "openai" else HF_BASE_URL
    env = OPENAI_URL_ENV if source == "openai" else HF_URL_ENV
    return base_url or os.environ.get(env) or default, mirror or os.environ.get(MIRROR_ENV) or None


def probe_servers(timeout: float = 3.0) -> str | None:
    """None when any GPT-2 download server answers, else what each one said
    (`huggingface.co: host not found (offline?); ...`): a quick offline check."""
    urls: list[str] = []
    for source in PREFERRED_SOURCES:
        for url in _servers(source):
            if url and url not in urls:
                urls.append(url)
    failures = []
    for url in urls:
        reason = probe(url, timeout)
        if reason is None:
            return None
        failures.append(f"{urlsplit(url).hostname or url}: {reason}")
    return "; ".join(failures)


def remote_files(
    size: str, source: str = "openai", base_url: str | None = None, mirror: str | None = None
) -> list[RemoteFile]:
    """What `download_gpt2` fetches: each file with its URLs (primary, then mirror) and size."""
    s = resolve_size(size)
    base, mirror = _servers(source, base_url, mirror)
    out = []
    for file in files_for(source):
        urls = [_url(base, s, source, file)]
        if mirror:
            urls.append(_url(mirror, s, source, file))
        if source == "openai":
            out.append(RemoteFile(file, tuple(urls), s.openai_bytes.get(file)))
        else:  # sizes unpublished here: check the content before the rename instead
            check, cap = _HF_CHECKS[file]
            out.append(RemoteFile(file, tuple(urls), max_bytes=cap, check=check))
    return out


def _check_config_file(path: Path) -> None:
    check_hf_config(path)


def _check_weights_file(path: Path) -> None:
    check_hf_weights(path)  # against the config.json fetched (and checked) just before


# Hugging Face file -> its content check and size cap (config.json is under 1 kB;
# the largest model.safetensors, gpt2-xl's, about 6.4 GB).
_HF_CHECKS: dict[str, tuple[Callable[[Path], None], int]] = {
    "config.json": (_check_config_file, 1_000_000),
    "model.safetensors": (_check_weights_file, 8_000_000_000),
}


def download_gpt2(
    size: str,
    source: str = "openai",
    *,
    base_url: str | None = None,
    mirror: str | None = None,
    dest: str | Path | None = None,
    timeouts: Timeouts | None = None,
    retry: RetryPolicy | None = None,
    cancel: threading.Event | None = None,
    on_progress: ProgressCallback | None = None,
) -> Path:
    """Fetch GPT-2 `size` from `source` ("openai" or "hf") into its weights folder.

    Complete files are skipped, partial ones resumed. On failure the
    DownloadError names every URL tried and the folder to fill by hand.
    """
    s = resolve_size(size)
    folder = Path(dest) if dest is not None else gpt2_dir(s.name, source)
    files = remote_files(s.name, source, base_url, mirror)
    try:
        download_files(
            files, folder, timeouts=timeouts, retry=retry, cancel=cancel, on_progress=on_progress
        )
    except DownloadError as exc:
        if type(exc) is not DownloadError:  # cancelled: no advice needed
            raise
        names = ", ".join(f.name for f in files)
        raise DownloadError(
            f"{exc}. To install by hand, put these files into {folder}: {names}", exc.offline
        ) from None
    return folder


def safetensors_complete(path: Path) -> bool:
    """True when the file's header accounts for exactly its length (cheap truncation check)."""
    try:
        safetensors_header(path)
    except CheckpointError:
        return False
    return True


def _hf_invalid(folder: Path) -> set[str]:
    """The files of a Hugging Face download that fail their content check."""
    try:
        config = check_hf_config(folder / "config.json")
    except CheckpointError:
        weights_ok = safetensors_complete(folder / "model.safetensors")
        return {"config.json"} if weights_ok else {"config.json", "model.safetensors"}
    try:
        check_hf_weights(folder / "model.safetensors", config)
    except CheckpointError:
        return {"model.safetensors"}
    return set()


@dataclass(frozen=True)
class LocalWeights:
    """What is on disk for one size and source."""

    size: str
    source: str
    path: Path
    bytes: int  # all files, partial ones included
    complete: bool
    missing: tuple[str, ...]  # files absent, of the wrong size or failing their check
    partial: tuple[str, ...]  # files with a `.part` waiting to be resumed


def local_status(size: str, source: str) -> LocalWeights:
    s = resolve_size(size)
    d = gpt2_dir(s.name, source)
    total, missing, partial = 0, [], []
    # Re-validated on every call: files placed by hand (or left by an older
    # version) are only complete when they would load.
    invalid = _hf_invalid(d) if source == "hf" and d.is_dir() else set()
    for file in files_for(source):
        f = d / file
        part = d / (file + ".part")
        if part.is_file():
            partial.append(file)
            total += part.stat().st_size
        if not f.is_file():
            missing.append(file)
            continue
        n = f.stat().st_size
        total += n
        want = s.openai_bytes.get(file) if source == "openai" else None
        if (want is not None and n != want) or file in invalid:
            missing.append(file)
    return LocalWeights(s.name, source, d, total, not missing, tuple(missing), tuple(partial))


def list_local() -> list[LocalWeights]:
    """Every size/source with at least one file on disk, in size order."""
    out = []
    for size in SIZES:
        for source in SOURCES:
            if gpt2_dir(size, source).is_dir():
                status = local_status(size, source)
                if status.bytes or status.complete:
                    out.append(status)
    return out
