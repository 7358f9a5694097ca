"""Loading GPT-2 weights into a GPTModel, from either layout.

Hugging Face's safetensors are read tensor by tensor (the header checked first,
no pickle); OpenAI's TensorFlow checkpoint through TensorFlow's reader (imported
only when such a folder is loaded). The tensors are assigned into a model built
on the meta device, so loading never holds two full copies of the weights.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gptcore.errors import CheckpointError
from gptcore.settings.model import GPTConfig
from gptcore.weights.gpt2 import HF_CONFIG, HF_WEIGHTS, OPENAI_HPARAMS
from gptcore.weights.layouts import (
    _assemble,
    _check_names,
    _openai_prefix,
    _read_json,
    _to_ours,
    config_from_hf,
    config_from_hparams,
    detect_layout,
)

if TYPE_CHECKING:  # torch loads lazily, so `gpt-tui download` / `models` start instantly
    import torch
    from torch import Tensor

    from gptcore.model.gpt import GPTModel


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
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
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
        config = check_hf_config(path.parent / HF_CONFIG)
    entries, _ = safetensors_header(path)
    _hf_tensor_names({k: entry[1] for k, entry in entries.items()}, config, str(path))


def load_hf(
    directory: str | Path, device: str | torch.device = "cpu", config: GPTConfig | None = None
) -> GPTModel:
    """A GPTModel from a Hugging Face GPT-2 directory (config.json + model.safetensors)."""
    import torch

    d = Path(directory)
    config = config or config_from_hf(_read_json(d / HF_CONFIG), d / HF_CONFIG)
    file = d / HF_WEIGHTS
    if not file.is_file():
        raise CheckpointError(f"{file} not found")
    _check_fits(config, device)
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


def _check_fits(config: GPTConfig, device: str | torch.device) -> None:
    """Refuse weights this device cannot hold before any tensor is read."""
    import torch

    from gptcore.model.summary import check_memory, loading_bytes

    check_memory(loading_bytes(config), "to load", config, torch.device(device))


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
    hparams = d / OPENAI_HPARAMS
    config = config or config_from_hparams(_read_json(hparams), hparams)
    prefix = _openai_prefix(d)
    if prefix is None:
        raise CheckpointError(f"no TF checkpoint (model.ckpt.index) in {d}")
    _check_fits(config, device)
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


def weights_config(directory: str | Path) -> GPTConfig:
    """The shape of the model in a weights directory of either layout, from its
    config.json / hparams.json alone (no tensor is read)."""
    d = Path(directory).expanduser()
    if detect_layout(d) == "hf":
        return config_from_hf(_read_json(d / HF_CONFIG), d / HF_CONFIG)
    return config_from_hparams(_read_json(d / OPENAI_HPARAMS), d / OPENAI_HPARAMS)


def load_weights(directory: str | Path, device: str | torch.device = "cpu") -> GPTModel:
    """A GPTModel from a directory of either layout (detected), hyperparameters included."""
    d = Path(directory).expanduser()
    if detect_layout(d) == "hf":
        return load_hf(d, device)
    return load_openai(d, device)
