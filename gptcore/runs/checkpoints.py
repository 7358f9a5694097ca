"""The checkpoints of runs: finding (a run's latest, its best), listing (damaged
ones with their reason), loading a model from one, deleting and renaming the
ones gpt-tui wrote.
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import torch

from gptcore.errors import CheckpointError
from gptcore.model.gpt import GPTModel
from gptcore.model.summary import check_memory, loading_bytes
from gptcore.runs.checkpoint import (
    AUTO_NAME,
    FORMAT,
    META,
    WEIGHTS,
    WRITTEN_FILES,
    Checkpoint,
    CheckpointInfo,
    load_checkpoint,
    load_weights_into,
    verify_files,
)
from gptcore.runs.rundir import BEST, CHECKPOINT, CHECKPOINTS_DIR, LATEST, RunDir
from gptcore.runs.train_state import epoch_number
from gptcore.settings.model import describe_model
from gptcore.util.fsutil import Deleted, delete_named_files
from gptcore.util.hashcache import HashCache
from gptcore.util.paths import runs_dir


def load_model(spec: str | Path, device: str | torch.device = "cpu") -> tuple[GPTModel, Checkpoint]:
    """The model of a checkpoint folder, or of a run folder's latest, in eval mode."""
    ckpt = load_checkpoint(checkpoint_for(CHECKPOINT, str(spec)))
    device = torch.device(device)
    check_memory(loading_bytes(ckpt.model_config), "to load", ckpt.model_config, device)
    model = GPTModel(ckpt.model_config)
    load_weights_into(model, ckpt)
    return model.to(device).eval(), ckpt


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


def checkpoint_for(kind: str, target: str) -> Path:
    """The checkpoint folder a parsed checkpoint spec names (gptcore.weights.modelspec
    parses the text): a run's latest or best resolved now, else the folder itself or a
    run's latest."""
    try:
        if kind == LATEST:
            return latest_checkpoint(find_run(target))
        if kind == BEST:
            return best_checkpoint(find_run(target))
        return checkpoint_in(find_run(target))
    except OSError as exc:  # a run or checkpoints/ folder without read permission
        where = exc.filename or target
        raise CheckpointError(f"cannot read {where}: {exc.strerror or exc}") from None


def _dir_size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.iterdir() if f.is_file())


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
    try:
        runs = (
            [root]
            if RunDir(root).has_checkpoints()
            else sorted(p for p in root.iterdir() if p.is_dir())
        )
    except OSError as exc:
        raise CheckpointError(f"cannot read {root}: {exc.strerror or exc}") from None
    out: list[CheckpointInfo] = []
    cache = HashCache()
    for run in runs:
        try:
            folders = RunDir(run).checkpoint_dirs()
        except OSError as exc:  # no permission: one damaged row for the run, not a crash
            where = RunDir(run).checkpoints
            error = f"{where} cannot be read ({exc.strerror or exc})"
            out.append(CheckpointInfo(path=where, run=run.name, name=where.name, error=error))
            continue
        for p in folders:
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
                info.model = describe_model(ckpt.model_config)
            out.append(info)
    cache.save()
    return out


def require_own_checkpoint(path: str | Path) -> Path:
    """`path` (absolute) when it is a gpt-tui checkpoint folder in a run's checkpoints/
    folder; else a one-line CheckpointError naming the path and the reason.

    Everything that deletes or renames a checkpoint asks this first, so no other
    folder is ever touched. The check is made on where the path really leads: `..`
    after a symlink goes where the symlink points, so the folder's real parent must
    be the real path of its run's checkpoints/ folder (which may itself be a symlink
    to another disk: that is still the run's).
    """
    given = Path(path)
    shown = str(given)
    named = Path(os.path.normpath(os.path.abspath(given)))  # `..` taken lexically
    if os.path.islink(given) or os.path.islink(named):
        raise CheckpointError(f"{shown} is a symbolic link, not a checkpoint folder")
    if not os.path.lexists(given):
        raise CheckpointError(f"checkpoint not found: {shown}")
    if not os.path.isdir(given):
        raise CheckpointError(f"{shown} is a file, not a checkpoint folder")
    run = RunDir.of_checkpoint(named)
    real = Path(os.path.realpath(given))
    if run is None:
        raise CheckpointError(
            f"{shown} is not in a run's {CHECKPOINTS_DIR}/ folder; gpt-tui only deletes "
            "or renames its own checkpoints"
        )
    if real != Path(os.path.realpath(named)) or real.parent != Path(
        os.path.realpath(run.checkpoints)
    ):
        raise CheckpointError(
            f"{shown} leads to {real}, outside the {CHECKPOINTS_DIR}/ folder of run "
            f"{run.path}; gpt-tui only deletes or renames its own checkpoints"
        )
    meta_path = named / META
    if meta_path.is_symlink():
        raise CheckpointError(f"{shown} is not a gpt-tui checkpoint: its {META} is a symbolic link")
    if not meta_path.is_file():  # also refuses a FIFO, which would block the read
        raise CheckpointError(f"{shown} is not a gpt-tui checkpoint: it has no {META}")
    try:
        meta = json.loads(meta_path.read_bytes())
    except (OSError, ValueError, RecursionError):
        meta = None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(
            f"{shown} is not a gpt-tui checkpoint: its {META} has no format {FORMAT!r}"
        )
    return named


def delete_checkpoint(path: str | Path) -> Deleted:
    """Delete the files gpt-tui wrote in a checkpoint folder, one by one by name (never a
    whole tree), then the folder when nothing else is in it.

    The weights go first, meta.json last: a crash mid-delete leaves a checkpoint that
    lists as incomplete (never one that looks whole), which `rm` can delete again.
    Anything else in the folder (and any of our names that is not a plain file) is
    left where it is and named in the result.
    """
    path = require_own_checkpoint(path)
    left = delete_named_files(path, WRITTEN_FILES)
    return Deleted(path, left)


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
