"""Checkpoints: atomic save, verified load, list / resolve / delete / rename, book .pth interop.

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
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import load_file, save_file

from .config import GPTConfig, dataclass_from_dict
from .errors import CheckpointError, ConfigError, DiskFullError
from .fsutil import atomic_open, disk_full, fsync_dir, fsync_file, pid_alive
from .hashcache import HashCache, sha256_file
from .model import GPTModel
from .paths import runs_dir
from .runs import CHECKPOINTS_DIR, RunDir
from .train_state import epoch_number

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


# ---------------------------------------------------------------- low-level IO


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


# ---------------------------------------------------------------- save


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


# ---------------------------------------------------------------- load


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
        model_config = dataclass_from_dict(GPTConfig, meta["model_config"], f"{meta_path}: model")
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


def load_model(spec: str | Path, device: str | torch.device = "cpu") -> tuple[GPTModel, Checkpoint]:
    """The model a checkpoint spec names (see resolve_checkpoint), in eval mode."""
    ckpt = load_checkpoint(resolve_checkpoint(spec))
    model = GPTModel(ckpt.model_config)
    load_weights_into(model, ckpt)
    return model.to(device).eval(), ckpt


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


# ---------------------------------------------------------------- finding checkpoints


_C = TypeVar("_C", Checkpoint, CheckpointInfo)  # both carry step, created, val_loss


def _valid(run: Path) -> list[Checkpoint]:
    out = []
    for p in RunDir(run).checkpoint_dirs():
        try:
            out.append(load_checkpoint(p, verify=False))
        except CheckpointError:
            continue
    return out


def latest_of(items: Iterable[_C]) -> _C | None:
    """The one with the most steps (newest on a tie): what `RUN:latest` names."""
    return max(items, key=lambda c: (c.step or 0, c.created or 0), default=None)


def best_of(items: Iterable[_C]) -> _C | None:
    """The one with the lowest validation loss (more steps on a tie): what `RUN:best`
    names and the Checkpoints screen marks with a star; None when none has a val loss."""
    scored = [c for c in items if c.val_loss is not None]
    return min(scored, key=lambda c: (c.val_loss, -(c.step or 0)), default=None)


@dataclass(frozen=True)
class RunPicks:
    """A run's latest and best usable checkpoint."""

    latest: CheckpointInfo
    best: CheckpointInfo | None


def run_picks(infos: Iterable[CheckpointInfo]) -> dict[str, RunPicks]:
    """Each run's latest and best checkpoint among `list_checkpoints` rows, by run name
    (damaged rows are ignored); runs in the order they first appear."""
    by_run: dict[str, list[CheckpointInfo]] = {}
    for info in infos:
        if info.error is None:
            by_run.setdefault(info.run, []).append(info)
    return {
        run: RunPicks(latest, best_of(items))
        for run, items in by_run.items()
        if (latest := latest_of(items)) is not None
    }


def latest_checkpoint(run: Path) -> Path:
    """The checkpoint with the most steps (newest on a tie) in a run dir."""
    found = latest_of(_valid(run))
    if found is None:
        raise CheckpointError(f"run {run} has no usable checkpoint")
    return found.path


def newest_healthy(run: Path) -> tuple[Checkpoint, list[tuple[Path, str]]]:
    """The run's checkpoint with the most steps whose files all match their sha256 (what
    resuming a run falls back to when its latest is damaged), and (path, reason) for each
    damaged checkpoint passed over: newer ones, and unreadable ones written after it."""
    usable: list[Checkpoint] = []
    unreadable: list[tuple[Path, str]] = []
    for p in RunDir(run).checkpoint_dirs():
        try:
            usable.append(load_checkpoint(p, verify=False))
        except CheckpointError as exc:
            unreadable.append((p, str(exc)))
    passed: list[tuple[Path, str]] = []
    for ckpt in sorted(usable, key=lambda c: (c.step, c.created), reverse=True):
        try:
            verify_files(ckpt)
        except CheckpointError as exc:
            passed.append((ckpt.path, str(exc)))
            continue
        passed += [(p, why) for p, why in unreadable if _mtime(p) > ckpt.created]
        return ckpt, passed
    raise CheckpointError(f"run {run} has no usable checkpoint (every one is damaged)")


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def best_checkpoint(run: Path) -> Path:
    """The checkpoint with the lowest validation loss in a run dir."""
    found = best_of(_valid(run))
    if found is None:
        raise CheckpointError(f"run {run} has no checkpoint with a validation loss")
    return found.path


def find_run(text: str | Path) -> Path:
    """A path as given, else a run of that name under the runs folder."""
    path = Path(text).expanduser()
    if path.exists():
        return path
    named = runs_dir() / str(text)
    if named.exists():
        return named
    raise CheckpointError(f"no run or checkpoint named {str(text)!r} (looked in {runs_dir()})")


def checkpoint_in(path: Path) -> Path:
    """`path` itself when it is a checkpoint folder, else the latest checkpoint of the run it is."""
    if (path / META).exists() or (path.is_dir() and (path / WEIGHTS).exists()):
        return path
    if RunDir(path).has_checkpoints():
        return latest_checkpoint(path)
    if path.is_file():
        raise CheckpointError(
            f"{path} is a file, not a checkpoint folder; import a book .pth with "
            "`gpt-tui checkpoints import`"
        )
    raise CheckpointError(f"{path} is neither a checkpoint nor a run folder")


def resolve_checkpoint(spec: str | Path) -> Path:
    """A checkpoint folder from: its path, a run dir or run name (its latest),
    `RUN:latest` or `RUN:best` (the grammar lives in gptcore.modelspec)."""
    from .modelspec import checkpoint_path  # the spec module builds on this one

    return checkpoint_path(spec)


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


def _describe(config: GPTConfig) -> str:
    from .config import describe_model

    return describe_model(config)


def list_checkpoints(root: str | Path | None = None) -> list[CheckpointInfo]:
    """Every checkpoint under the runs folder (or `root`, a runs folder or one run),
    oldest run first; damaged or foreign entries carry an `error` instead of raising.

    Every file is checked against its recorded sha256, so corrupted weights show as
    damaged; digests are cached by size and mtime (gptcore.hashcache), so only files
    that changed since the last listing (or were not written by a save) are hashed.
    """
    root = Path(root) if root is not None else runs_dir()
    if not root.is_dir():
        return []
    runs = (
        [root]
        if RunDir(root).has_checkpoints()
        else sorted(p for p in root.iterdir() if p.is_dir())
    )
    out: list[CheckpointInfo] = []
    cache = HashCache()
    for run in runs:
        for p in RunDir(run).checkpoint_dirs():
            info = CheckpointInfo(path=p, run=run.name, name=p.name)
            try:
                info.size_bytes = _dir_size(p) if p.is_dir() else p.stat().st_size
                ckpt = load_checkpoint(p, verify=False)
                verify_files(ckpt, cache.sha256)
            except (CheckpointError, OSError) as exc:
                info.error = str(exc)
            else:
                info.step, info.tokens_seen = ckpt.step, ckpt.tokens_seen
                info.epoch = epoch_number(ckpt.epoch, ckpt.step_in_epoch)
                info.val_loss, info.train_loss = ckpt.val_loss, ckpt.train_loss
                info.created = ckpt.created
                info.model = _describe(ckpt.model_config)
            out.append(info)
    cache.save()
    return out


def require_own_checkpoint(path: str | Path) -> Path:
    """`path` when it is a gpt-tui checkpoint folder in a run's checkpoints/ folder;
    else a one-line CheckpointError naming the path and the reason.

    Everything that deletes or renames a checkpoint asks this first, so no other
    folder is ever touched. `.` and `..` come back as absolute paths.
    """
    given = Path(path)
    # Path(".").name is empty: work on the absolute form (not resolved, so a symlink
    # stays a symlink and is refused below).
    path = given if given.name not in ("", ".", "..") else Path(os.path.abspath(given))
    if path.is_symlink():
        raise CheckpointError(f"{given} is a symbolic link, not a checkpoint folder")
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {given}")
    if not path.is_dir():
        raise CheckpointError(f"{given} is a file, not a checkpoint folder")
    if RunDir.of_checkpoint(os.path.abspath(path)) is None:
        raise CheckpointError(
            f"{given} is not in a run's {CHECKPOINTS_DIR}/ folder; gpt-tui only deletes "
            "or renames its own checkpoints"
        )
    meta_path = path / META
    if not meta_path.is_file():  # also refuses a FIFO, which would block the read
        raise CheckpointError(f"{given} is not a gpt-tui checkpoint: it has no {META}")
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{given} is not a gpt-tui checkpoint: its {META} has no format {FORMAT!r}"
        )
    return path


def delete_checkpoint(path: str | Path) -> None:
    """Remove a checkpoint folder (renamed to a hidden name first, so a crash
    mid-delete never leaves a half checkpoint that looks whole)."""
    path = require_own_checkpoint(path)
    trash = path.with_name(f".tmp-deleted-{os.getpid()}-{time.monotonic_ns()}")
    os.rename(path, trash)
    shutil.rmtree(trash, ignore_errors=True)


MAX_NAME = 100  # characters in a checkpoint's name


def check_checkpoint_name(name: str) -> None:
    """Raise CheckpointError (one line) when `name` cannot name a renamed checkpoint."""
    if not name.strip():
        raise CheckpointError("a checkpoint name cannot be blank")
    if any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name):
        raise CheckpointError(
            f"invalid checkpoint name {name!r}: no newlines or control characters"
        )
    if any(sep in name for sep in ("/", "\\", os.sep, os.altsep or "/")):
        raise CheckpointError(f"invalid checkpoint name {name!r}: no path separators")
    if name.startswith("."):
        raise CheckpointError(f"invalid checkpoint name {name!r}: it cannot start with '.'")
    try:
        too_long = len(name) > MAX_NAME or len(os.fsencode(name)) > 255
    except UnicodeEncodeError:
        raise CheckpointError(f"invalid checkpoint name {name!r}: not a valid file name") from None
    if too_long:
        raise CheckpointError(f"checkpoint name too long (at most {MAX_NAME} characters)")
    if AUTO_NAME.match(name):
        raise CheckpointError(
            f"{name!r} looks like an automatic checkpoint's name, which retention deletes; "
            "choose another"
        )


def rename_checkpoint(path: str | Path, new_name: str) -> Path:
    """Rename a checkpoint within its folder; a renamed checkpoint is kept by retention."""
    path = require_own_checkpoint(path)
    check_checkpoint_name(new_name)
    target = path.with_name(new_name)
    if target.exists() or target.is_symlink():
        raise CheckpointError(f"{target} already exists")
    os.rename(path, target)
    return target


# ---------------------------------------------------------------- the book's .pth


def _to_book_name(name: str) -> str:
    if "norm" in name and name.endswith(".weight"):
        return name[: -len("weight")] + "scale"
    if "norm" in name and name.endswith(".bias"):
        return name[: -len("bias")] + "shift"
    return name


def _from_book_name(name: str) -> str:
    if "norm" in name and name.endswith(".scale"):
        return name[: -len("scale")] + "weight"
    if "norm" in name and name.endswith(".shift"):
        return name[: -len("shift")] + "bias"
    return name


def export_book_pth(ckpt: str | Path | Checkpoint, out_path: str | Path) -> Path:
    """Write {"model_state_dict", "optimizer_state_dict"} as the book saves it, with
    the book's names (LayerNorm scale/shift, att.mask buffers) so the book's
    GPTModel loads it with strict=True."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(resolve_checkpoint(ckpt))
    config = ckpt.model_config
    state = {_to_book_name(k): v for k, v in ckpt.state_dict().items()}
    padded = config.padded_vocab_size != config.vocab_size
    for key in ("tok_emb.weight", "out_head.weight"):
        if padded or (config.tie_embeddings and key == "out_head.weight"):
            # The book's model has vocab_size rows; a tied head needs its own tensor.
            state[key] = state[key][: config.vocab_size].clone()
    # The book also saves each attention's causal mask (a persistent buffer).
    book_state = dict(state)
    n = config.context_length
    for i in range(config.n_layers):
        book_state[f"trf_blocks.{i}.att.mask"] = torch.triu(torch.ones(n, n), diagonal=1)
    payload: dict[str, Any] = {"model_state_dict": book_state}
    opt = ckpt.optimizer_state() if ckpt.has_optimizer else None
    if opt is not None and not config.tie_embeddings and not padded:  # shapes fit the book's
        payload["optimizer_state_dict"] = opt["optimizer"]
    out_path = Path(out_path)
    with atomic_open(out_path, "wb") as f:
        torch.save(payload, f)
    return out_path


def import_book_pth(
    pth_path: str | Path, model_config: GPTConfig
) -> tuple[GPTModel, dict[str, Any] | None]:
    """(model, optimizer_state_dict or None) from a book .pth (or a bare state dict).

    The optimizer state is checked against the model's parameters (see
    _check_book_optimizer) and refused when it does not fit them."""
    path = Path(pth_path)
    data = safe_torch_load(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    state = data.get("model_state_dict", data)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} has no model_state_dict of tensors")
    ours = {_from_book_name(k): v for k, v in state.items() if not re.search(r"\.att\.mask$", k)}
    model = GPTModel(model_config)
    try:
        model.load_state_dict(ours, strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path} does not match the model configuration: {' '.join(lines[:3])}"
        ) from None
    opt = data.get("optimizer_state_dict")
    if opt is None:
        return model, None
    _check_book_optimizer(opt, model, path)
    return model, opt


def _check_book_optimizer(opt: Any, model: GPTModel, path: Path) -> None:
    """Refuse an optimizer_state_dict that does not fit `model` as an AdamW state.

    torch's Optimizer.load_state_dict pairs the saved groups' parameter ids, in
    order, with the optimizer's parameters and copies each id's state unchanged.
    The book's model and ours create their parameters in the same order, so the
    counts must agree and every state tensor must have its parameter's shape."""

    def refuse(why: str) -> NoReturn:
        raise CheckpointError(f"the optimizer_state_dict in {path} does not fit the model: {why}")

    if not isinstance(opt, dict):
        refuse("it is not a dict")
    states, groups = opt.get("state"), opt.get("param_groups")
    if not isinstance(states, dict) or not isinstance(groups, list):
        refuse("it needs a 'state' dict and a 'param_groups' list, as torch's state_dict() has")
    ids: list[Any] = []
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            refuse("a parameter group has no 'params' list")
        if not all(isinstance(i, int) for i in group["params"]):
            refuse("a parameter group lists something other than parameter numbers")
        ids.extend(group["params"])
    params = list(model.named_parameters())
    if len(ids) != len(params):
        refuse(f"its groups list {len(ids)} parameters, the model has {len(params)}")
    if len(set(ids)) != len(ids):
        refuse("a parameter is listed twice")
    if set(states) - set(ids):
        refuse("it holds state for parameters that are in no group")
    for pid, (name, param) in zip(ids, params, strict=True):
        state = states.get(pid)
        if state is None:
            continue  # a parameter that never had a gradient has no state yet
        book_name = _to_book_name(name)
        adam = ("exp_avg", "exp_avg_sq")
        if not isinstance(state, dict) or not all(
            isinstance(state.get(k), torch.Tensor) for k in adam
        ):
            refuse(f"{book_name} has no exp_avg / exp_avg_sq (AdamW state is needed)")
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                refuse(
                    f"{key} of {book_name} has shape {tuple(value.shape)}, "
                    f"the parameter {tuple(param.shape)}"
                )


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
        "model_name": _describe(ckpt.model_config),
        "train": ckpt.train_config,
        "has_optimizer": ckpt.has_optimizer,
        "files": ckpt.meta.get("files", {}),
    }
