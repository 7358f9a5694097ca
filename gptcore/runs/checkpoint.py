"""A checkpoint's files: atomic save, verified load.

A checkpoint is a folder:

    weights.safetensors   model weights (a tied output head is stored once)
    meta.json             format tag, model + train config, step, epoch, tokens seen,
                          losses, RNG states, data position, sha256 of every file
    optimizer.pt          optimizer (+ grad scaler) state; torch.save, loaded only
                          with torch.load(weights_only=True)

Saves write into a hidden temporary folder next to the target, fsync every
file and the folder, then rename it into place: a kill at any moment leaves
the previous checkpoints intact and either no new one or a complete one.
Nothing is ever unpickled beyond torch's weights-only loader.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import pickle
import re
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file

from gptcore.errors import (
    CheckpointError,
    ConfigError,
    DamagedCheckpoint,
    DamagedFile,
    DiskFullError,
)
from gptcore.model.counts import parameter_count
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint_meta import (
    FORMAT,
    FORMAT_VERSION,
    META,
    WEIGHTS,
    data_position,
    read_meta,
)
from gptcore.runs.train_state import epoch_number
from gptcore.settings.declare import from_mapping
from gptcore.settings.model import GPTConfig, describe_model
from gptcore.util.fsutil import atomic_write_text, disk_full, fsync_dir, fsync_file, pid_alive
from gptcore.util.hashcache import sha256_file
from gptcore.util.typedfile import check_regular

# FORMAT, FORMAT_VERSION, WEIGHTS and META are meta.json's: see runs/checkpoint_meta.py.
OPTIMIZER = "optimizer.pt"


# Every file save_checkpoint writes in a checkpoint folder: all that deleting one removes
# (weights first, meta.json last, so a half-deleted checkpoint never looks whole).
WRITTEN_FILES = (WEIGHTS, OPTIMIZER, META)


AUTO_NAME = re.compile(r"^step-\d+(-\d+)?$")  # automatic names (checkpoint_policy.prunable)


TIED_KEY = "out_head.weight"


def _load_weights(path: Path, device: str) -> dict[str, torch.Tensor]:
    """A safetensors file's tensors. safetensors opens only UTF-8 paths, so a file
    whose path is not UTF-8 (os.fsdecode's surrogates) is read into memory here."""
    try:
        str(path).encode("utf-8")
    except UnicodeEncodeError:
        return {k: v.to(device) for k, v in load_safetensors(path.read_bytes()).items()}
    return load_file(str(path), device=device)


@dataclass
class Checkpoint:
    """What meta.json says about a checkpoint (the weights load on demand)."""

    path: Path
    model_config: GPTConfig
    train_config: dict[str, Any]
    step: int  # optimizer steps completed
    epoch: int  # epochs completed before the current one (0-based index of the current epoch)
    tokens_seen: int
    best_val_loss: float | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    reason: str = ""
    created: float = 0.0
    rng: dict[str, Any] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    has_optimizer: bool = False
    meta: dict[str, Any] = field(default_factory=dict)
    precision: str | None = None  # what it trained in (bf16/fp16/fp32); None: not recorded

    def state_dict(self, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
        """The model's weights (out_head.weight restored when tied)."""
        try:
            state = _load_weights(self.path / WEIGHTS, str(device))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"cannot read weights of checkpoint {self.path}: {exc}") from None
        if self.model_config.tie_embeddings and TIED_KEY not in state:
            state[TIED_KEY] = state["tok_emb.weight"]
        return state

    @property
    def step_in_epoch(self) -> int:
        """Steps done in the current epoch (0 at an epoch boundary)."""
        value = self.data.get("step_in_epoch", 0)
        return value if isinstance(value, int) else 0

    def optimizer_state(self) -> dict[str, Any] | None:
        """{"optimizer": ..., "scaler": ... | None} or None when not saved."""
        if not self.has_optimizer:
            return None
        return safe_torch_load(self.path / OPTIMIZER)


@dataclass
class CheckpointInfo:
    """One row of `list_checkpoints`; `error` is set for a damaged or foreign entry."""

    path: Path
    run: str
    name: str
    step: int | None = None
    epoch: int | None = None  # 1-based, as shown: the epoch in progress or just completed
    tokens_seen: int | None = None
    val_loss: float | None = None
    train_loss: float | None = None
    created: float | None = None
    size_bytes: int = 0
    model: str = ""
    error: str | None = None


def safe_torch_load(path: Path) -> Any:
    """torch.load with weights_only=True; anything else in the pickle is refused."""
    try:
        check_regular(path)  # a FIFO or device is refused, never opened (it would block)
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"file not found: {path}") from None
    except DamagedFile as exc:
        raise CheckpointError(str(exc)) from None
    except OSError as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from None
    if magic != b"PK\x03\x04":  # torch.save writes a zip archive
        raise CheckpointError(f"{path} is truncated or not a PyTorch file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"file not found: {path}") from None
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(
            f"refusing to load {path}: it holds more than plain tensors and numbers "
            f"(only weights-only files are accepted): {first}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError, AttributeError, TypeError) as exc:
        raise CheckpointError(f"{path} is truncated or not a PyTorch file: {exc}") from None


def _encode_rng(value: Any) -> Any:
    """Tensors (RNG states) become {"uint8_b64": ...} so meta.json stays plain JSON."""
    import base64

    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().to(torch.uint8).numpy().tobytes()
        return {"uint8_b64": base64.b64encode(data).decode("ascii")}
    if isinstance(value, Mapping):
        return {k: _encode_rng(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_rng(v) for v in value]
    return value


def decode_rng(value: Any) -> Any:
    """Inverse of the encoding used in meta.json: back to uint8 tensors."""
    import base64

    if isinstance(value, Mapping):
        if set(value) == {"uint8_b64"}:
            raw = base64.b64decode(value["uint8_b64"])
            return torch.frombuffer(bytearray(raw), dtype=torch.uint8).clone()
        return {k: decode_rng(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_rng(v) for v in value]
    return value


def _json_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    *,
    train_config: Mapping[str, Any],
    step: int,
    epoch: int,
    tokens_seen: int,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any = None,
    best_val_loss: float | None = None,
    val_loss: float | None = None,
    train_loss: float | None = None,
    rng: Mapping[str, Any] | None = None,
    data: Mapping[str, Any] | None = None,
    reason: str = "manual",
    precision: str | None = None,
    loss_step: int | None = None,
) -> Path:
    """Write a checkpoint folder at `directory` atomically and return its path.

    An existing folder of that name is never replaced: a new name with a
    numeric suffix is used instead, so a crash can never leave a checkpoint
    half-replaced. A full disk raises DiskFullError saying how much is needed.
    `loss_step` is the step whose weights `val_loss` / `train_loss` were measured
    on (meta.json's optional "loss_step"; the Trainer measures them at `step`).
    """
    target = Path(directory)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    clean_stale_temps(parent)
    target = _free_name(target)
    tmp = parent / f".tmp-{target.name}-{os.getpid()}-{time.monotonic_ns()}"
    try:
        tmp.mkdir()
        config: GPTConfig = getattr(model, "config")  # noqa: B009 - GPTModel always has one
        state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        if config.tie_embeddings:
            state.pop(
                TIED_KEY, None
            )  # the same tensor as tok_emb.weight; safetensors refuses aliases
        save_file(state, str(tmp / WEIGHTS), metadata={"format": FORMAT})
        fsync_file(tmp / WEIGHTS)
        files = {WEIGHTS: sha256_file(tmp / WEIGHTS)}
        if optimizer is not None:
            payload = {
                "optimizer": optimizer.state_dict(),
                "scaler": scaler.state_dict() if scaler is not None else None,
            }
            with (tmp / OPTIMIZER).open("wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            files[OPTIMIZER] = sha256_file(tmp / OPTIMIZER)
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created": time.time(),
            "reason": reason,
            "model_config": config.to_dict(),
            "train_config": dict(train_config),
            "step": int(step),
            "epoch": int(epoch),
            "tokens_seen": int(tokens_seen),
            "best_val_loss": _json_float(best_val_loss),
            "val_loss": _json_float(val_loss),
            "train_loss": _json_float(train_loss),
            "loss_step": None if loss_step is None else int(loss_step),
            "rng": _encode_rng(dict(rng or {})),
            "data": dict(data or {}),
            "precision": precision,  # what a resume with precision "auto" trains in
            "files": files,
            "sizes": {name: (tmp / name).stat().st_size for name in files},
        }
        with (tmp / META).open("w", encoding="utf-8") as f:
            json.dump(meta, f, indent=1)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(tmp)
        os.rename(tmp, target)
        fsync_dir(parent)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, Exception) and disk_full(exc):
            need = _state_bytes(model, optimizer) / 1e6
            raise DiskFullError(
                f"no space left on {parent}: the checkpoint needs about {need:,.0f} MB"
            ) from None
        raise
    return target


def drop_optimizer_state(path: str | Path) -> bool:
    """Make the checkpoint at `path` weights-only; returns whether it held optimizer state.

    meta.json is first replaced (atomically) by one that no longer lists optimizer.pt,
    then that one file is removed: a kill in between leaves a whole weights-only
    checkpoint and a stray file its deletion still removes by name. Nothing but our
    own regular files is touched (a symlinked meta.json or optimizer.pt is left).
    """
    path = Path(path)
    meta_path, opt_path = path / META, path / OPTIMIZER
    if meta_path.is_symlink() or opt_path.is_symlink():
        return False
    ckpt = load_checkpoint(path, verify=False)
    if not ckpt.has_optimizer:
        return False
    meta = dict(ckpt.meta)
    meta["files"] = {k: v for k, v in meta["files"].items() if k != OPTIMIZER}
    meta["sizes"] = {k: v for k, v in (meta.get("sizes") or {}).items() if k != OPTIMIZER}
    atomic_write_text(meta_path, json.dumps(meta, indent=1))
    if opt_path.is_file():
        opt_path.unlink()
        fsync_dir(path)
    return True


def _state_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> int:
    """Bytes of the tensors a checkpoint of `model` (and `optimizer`) holds, roughly."""
    tensors = list(model.state_dict().values())
    if optimizer is not None:
        for state in optimizer.state.values():
            tensors += [v for v in state.values() if isinstance(v, torch.Tensor)]
    return sum(t.numel() * t.element_size() for t in tensors)


def _free_name(target: Path) -> Path:
    if not target.exists():
        return target
    n = 2
    while (candidate := target.with_name(f"{target.name}-{n}")).exists():
        n += 1
    return candidate


def clean_stale_temps(folder: Path) -> None:
    """Remove temporary folders left by saves that were killed (their pid is gone)."""
    for tmp in folder.glob(".tmp-*"):
        parts = tmp.name.rsplit("-", 2)  # .tmp-NAME-PID-NANOS
        pid = int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
        if pid is not None and (pid == os.getpid() or pid_alive(pid)):
            continue  # a save in progress
        shutil.rmtree(tmp, ignore_errors=True)


def load_checkpoint(path: str | Path, verify: bool = True) -> Checkpoint:
    """Read and check a checkpoint folder; CheckpointError says what is wrong."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    if not path.is_dir():
        raise CheckpointError(
            f"{path} is a file, not a checkpoint folder (a checkpoint holds {WEIGHTS} and {META})"
        )
    meta_path = path / META
    try:
        # The typed reader: every field's type and range (runs/checkpoint_meta.py).
        meta, raw = read_meta(meta_path)
    except FileNotFoundError:
        raise CheckpointError(f"{path} is not a gpt-tui checkpoint: {META} is missing") from None
    files, sizes = meta.files, meta.sizes
    for name in files:
        file = path / name
        if not file.is_file():
            raise CheckpointError(f"checkpoint {path} is incomplete: {name} is missing")
        if name in sizes and (size := file.stat().st_size) != sizes[name]:
            raise CheckpointError(
                f"checkpoint {path} is corrupted: {name} has {size:,} bytes, "
                f"{sizes[name]:,} recorded (truncated or modified)"
            )
    try:
        model_config = from_mapping(GPTConfig, meta.model_config, f"{meta_path}: model")
    except (TypeError, ValueError, ArithmeticError, ConfigError) as exc:
        raise DamagedCheckpoint(
            meta_path, f"is not a model's settings: {exc}", "model_config"
        ) from None
    _check_weights_hold(model_config, path / WEIGHTS, meta_path)
    ckpt = Checkpoint(
        path=path,
        model_config=model_config,
        train_config=dict(meta.train_config),
        step=meta.step,
        epoch=meta.epoch,
        tokens_seen=meta.tokens_seen,
        best_val_loss=meta.best_val_loss,
        val_loss=meta.val_loss,
        train_loss=meta.train_loss,
        reason=meta.reason,
        created=meta.created,
        rng=meta.rng,
        data=data_position(meta, raw),
        has_optimizer=OPTIMIZER in files,
        meta=raw,
        precision=meta.precision,
    )
    if verify:
        verify_files(ckpt)
    return ckpt


def _check_weights_hold(config: GPTConfig, weights: Path, meta_path: Path) -> None:
    """Refuse a model config that the weights file is far too small to hold (an absurd
    context or vocabulary in a damaged or forged meta.json) before anything builds a
    model of that shape: its parameters take at least 2 bytes each on disk."""
    try:
        have = weights.stat().st_size
    except OSError:
        return  # a missing file is reported by the checks of the files
    count = parameter_count(config)
    if 2 * count > have:
        raise DamagedCheckpoint(
            meta_path,
            f"describes a model of {count:,} parameters ({describe_model(config)}), more "
            f"than its {WEIGHTS} ({have:,} bytes) can hold",
            "model_config",
        )


def verify_files(ckpt: Checkpoint, sha256: Callable[[Path], str] = sha256_file) -> None:
    """Raise CheckpointError unless every file of `ckpt` matches its recorded sha256
    (`sha256` computes a digest: a HashCache's for listings)."""
    for name, digest in ckpt.meta["files"].items():
        try:
            actual = sha256(ckpt.path / name)
        except OSError as exc:
            raise CheckpointError(f"cannot read {name} of checkpoint {ckpt.path}: {exc}") from None
        if actual != digest:
            raise CheckpointError(
                f"checkpoint {ckpt.path} is corrupted: {name} does not match its recorded "
                "sha256 (truncated or modified)"
            )


def load_weights_into(model: GPTModel, ckpt: Checkpoint) -> None:
    """Copy a checkpoint's weights into `model`; a shape or name mismatch is an error."""
    state = ckpt.state_dict()
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()
        raise CheckpointError(
            f"checkpoint {ckpt.path} does not fit the model: {' '.join(first[:3])}"
        ) from None


def checkpoint_summary(ckpt: Checkpoint) -> dict[str, Any]:
    """Plain-data view of a checkpoint for `gpt-tui checkpoints show`."""
    return {
        "path": str(ckpt.path),
        "step": ckpt.step,
        "epoch": epoch_number(ckpt.epoch, ckpt.step_in_epoch),
        "tokens_seen": ckpt.tokens_seen,
        "train_loss": ckpt.train_loss,
        "val_loss": ckpt.val_loss,
        "best_val_loss": ckpt.best_val_loss,
        "reason": ckpt.reason,
        "created": ckpt.created,
        "model": dataclasses.asdict(ckpt.model_config),
        "model_name": describe_model(ckpt.model_config),
        "train": ckpt.train_config,
        "has_optimizer": ckpt.has_optimizer,
        "files": ckpt.meta.get("files", {}),
    }
