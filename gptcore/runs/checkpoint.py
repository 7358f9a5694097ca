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

from gptcore.errors import CheckpointError, ConfigError, DiskFullError
from gptcore.model.gpt import GPTModel
from gptcore.runs.train_state import epoch_number
from gptcore.settings.declare import from_mapping
from gptcore.settings.model import GPTConfig, describe_model
from gptcore.util.fsutil import disk_full, fsync_dir, fsync_file, pid_alive
from gptcore.util.hashcache import sha256_file

FORMAT = "gpt-tui-checkpoint"


FORMAT_VERSION = 1


WEIGHTS = "weights.safetensors"


META = "meta.json"


OPTIMIZER = "optimizer.pt"


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
        with open(path, "rb") as f:
            magic = f.read(4)
    except FileNotFoundError:
        raise CheckpointError(f"file not found: {path}") from None
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
) -> Path:
    """Write a checkpoint folder at `directory` atomically and return its path.

    An existing folder of that name is never replaced: a new name with a
    numeric suffix is used instead, so a crash can never leave a checkpoint
    half-replaced. A full disk raises DiskFullError saying how much is needed.
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
            "rng": _encode_rng(dict(rng or {})),
            "data": dict(data or {}),
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
    if not meta_path.is_file():
        raise CheckpointError(f"{path} is not a gpt-tui checkpoint: {META} is missing")
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{meta_path} is corrupted (not valid JSON): {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a gpt-tui checkpoint (foreign {META})")
    if meta.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {meta.get('format_version')!r}; "
            f"this gpt-tui reads version {FORMAT_VERSION}"
        )
    _check_meta(meta, meta_path)
    files, sizes = meta["files"], meta.get("sizes") or {}
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
        model_config = from_mapping(GPTConfig, meta["model_config"], f"{meta_path}: model")
    except (TypeError, ValueError, ArithmeticError, ConfigError) as exc:
        raise CheckpointError(f"{meta_path} is damaged: field 'model_config': {exc}") from None
    ckpt = Checkpoint(
        path=path,
        model_config=model_config,
        train_config=dict(meta["train_config"]),
        step=meta["step"],
        epoch=meta["epoch"],
        tokens_seen=meta["tokens_seen"],
        best_val_loss=_loss(meta.get("best_val_loss")),
        val_loss=_loss(meta.get("val_loss")),
        train_loss=_loss(meta.get("train_loss")),
        reason=meta.get("reason", ""),
        created=float(meta.get("created", 0.0)),
        rng=meta.get("rng") or {},
        data=meta.get("data") or {},
        has_optimizer=OPTIMIZER in files,
        meta=meta,
    )
    if verify:
        verify_files(ckpt)
    return ckpt


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


# meta.json is covered by no hash: every field is checked before it is used.
_MAX_COUNT = 2**53  # steps, epochs, tokens, bytes: far above any real run, exact in JSON


_LAST_TIME = 4102444800.0  # 2100-01-01: a later `created` is no real save time


_SHA256 = re.compile(r"^[0-9a-f]{64}$")


_MISSING = object()


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= _MAX_COUNT


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _loss(value: Any) -> float | None:
    return None if value is None else float(value)


def _field_error(meta_path: Path, name: str, expected: str, value: Any) -> CheckpointError:
    if value is _MISSING:
        return CheckpointError(f"{meta_path} is damaged: field {name!r} is missing")
    shown = repr(value)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return CheckpointError(
        f"{meta_path} is damaged: field {name!r} must be {expected}, not {shown}"
    )


def _check_meta(meta: dict[str, Any], meta_path: Path) -> None:
    """Check the type and range of each meta.json field; CheckpointError names the first bad one."""

    def bad(name: str, expected: str) -> CheckpointError:
        return _field_error(meta_path, name, expected, meta.get(name, _MISSING))

    for name in ("step", "epoch", "tokens_seen"):
        if not _is_count(meta.get(name)):
            raise bad(name, f"a whole number from 0 to {_MAX_COUNT}")
    for name in ("best_val_loss", "val_loss", "train_loss"):
        value = meta.get(name)
        if value is not None and not (_is_number(value) and value >= 0):
            raise bad(name, "a finite number >= 0 or null")
    created = meta.get("created", 0.0)
    if not (_is_number(created) and 0 <= created <= _LAST_TIME):
        raise bad("created", "a time in seconds since 1970, before the year 2100")
    for name in ("model_config", "train_config"):
        if not isinstance(meta.get(name), dict):
            raise bad(name, "an object")
    for name in ("data", "rng"):
        if not isinstance(meta.get(name, {}), dict):
            raise bad(name, "an object")
    if not isinstance(meta.get("reason", ""), str):
        raise bad("reason", "a string")
    files = meta.get("files")
    if not isinstance(files, dict) or WEIGHTS not in files:
        raise bad("files", f"an object naming {WEIGHTS}")
    for name, digest in files.items():
        if not _plain_name(name) or not (isinstance(digest, str) and _SHA256.match(digest)):
            raise bad("files", "an object of file names and sha256 hex digests")
    sizes = meta.get("sizes", {})
    if not isinstance(sizes, dict) or not all(
        name in files and _is_count(size) for name, size in sizes.items()
    ):
        raise bad("sizes", "an object of the listed files' sizes in bytes")


def _plain_name(name: str) -> bool:
    """A file name inside the checkpoint folder: no separators, no `..`, not hidden."""
    return bool(name) and not name.startswith(".") and "/" not in name and "\\" not in name


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
