"""Exporting a checkpoint: the one task behind `gpt-tui checkpoints export` and the
Checkpoints screen's `e` / `h` keys.

Two formats:

- "pth": the book's `{"model_state_dict", "optimizer_state_dict"}` file
  (gptcore.weights.book.export_book_pth), which the book's GPTModel loads;
- "hf": a Hugging Face GPT2LMHeadModel folder (config.json + model.safetensors,
  gptcore.weights.hf_export.export_hf).

Without a destination an export goes to its run's exports/ folder, named after the
checkpoint (RunDir.pth_export / RunDir.hf_export).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Literal

from gptcore.errors import ConfigError, DiskFullError, GptTuiError
from gptcore.runs.checkpoint import OPTIMIZER, WEIGHTS, load_checkpoint
from gptcore.runs.rundir import RunDir
from gptcore.util.fsutil import disk_full
from gptcore.util.progress import Progress, Stages
from gptcore.weights.book import export_book_pth
from gptcore.weights.hf_export import export_hf
from gptcore.weights.modelspec import checkpoint_path, load_spec
from gptcore.weights.spec import ModelSpec

ExportKind = Literal["pth", "hf"]
EXPORT_KINDS: tuple[ExportKind, ...] = ("pth", "hf")


def export_destination(checkpoint: Path, kind: ExportKind, out: str | Path | None) -> Path:
    """Where an export of `checkpoint` goes: `out` when given (checked to be the right
    kind of path), else the run's exports/ folder. Raises GptTuiError saying why not."""
    if kind not in EXPORT_KINDS:
        raise ConfigError(f"unknown export format {kind!r}; choose one of: pth, hf")
    if out is None:
        run = RunDir.of_checkpoint(checkpoint)
        if run is None:
            raise GptTuiError(
                f"{checkpoint} is not inside a run folder, so it has no exports/ folder; "
                "give where to write the export"
            )
        return run.pth_export(checkpoint.name) if kind == "pth" else run.hf_export(checkpoint.name)
    if not str(out).strip():
        what = (
            "file to write, e.g. model_and_optimizer.pth"
            if kind == "pth"
            else ("folder to write, e.g. my-model-hf")
        )
        raise GptTuiError(f"give the {what}")
    path = Path(out).expanduser()
    if kind == "pth" and path.is_dir():
        raise GptTuiError(f"{path} is a folder; give a file name, e.g. {path / 'model.pth'}")
    if kind == "hf" and path.exists() and not path.is_dir():
        raise GptTuiError(f"{path} is a file; a Hugging Face export is a folder")
    return path


def export_checkpoint(
    spec: str | Path | ModelSpec,
    kind: ExportKind,
    out: str | Path | None = None,
    progress: Progress | None = None,
) -> Path:
    """Export the checkpoint `spec` names (a checkpoint folder, a run = its latest,
    RUN:latest, RUN:best) as `kind` ("pth" or "hf") to `out`, by default its run's
    exports/ folder; returns what was written (the .pth file or the HF folder).

    A damaged checkpoint raises CheckpointError before anything is written; a
    destination that cannot be written (a missing or read-only folder) raises
    GptTuiError naming it, and a full disk DiskFullError, as a training save does
    (the partial file is removed; an earlier export there is left as it was).

    `progress(done, total)` counts bytes: the checkpoint's files read (their sha256
    checked, then loaded) and the export written.
    """
    checkpoint = checkpoint_path(spec)
    dest = export_destination(checkpoint, kind, out)
    size = _checkpoint_bytes(checkpoint)
    stages = Stages(3 * size, progress)  # check, read, write: each about `size` bytes
    stages.start()
    try:
        if kind == "pth":
            ckpt = load_checkpoint(checkpoint)  # every file's sha256: reads them whole
            stages.done(size)
            written = export_book_pth(ckpt, dest, on_read=lambda: stages.done(size))
        else:
            model = load_spec(checkpoint, "cpu").model  # checked and read
            stages.done(2 * size)
            written = export_hf(model, dest)
        stages.finish()
        return written
    except Exception as exc:
        if disk_full(exc):
            folder = dest.parent if kind == "pth" else dest
            need = size / 1e6
            raise DiskFullError(
                f"no space left on {folder}: the export needs about {need:,.0f} MB"
            ) from None
        if isinstance(exc, OSError):
            raise GptTuiError(f"cannot write {dest}: {exc.strerror or exc}") from None
        raise


def _checkpoint_bytes(checkpoint: Path) -> int:
    """The bytes of a checkpoint's own files: about what an export of it writes."""
    total = 0
    for name in (WEIGHTS, OPTIMIZER):
        with contextlib.suppress(OSError):
            total += (checkpoint / name).stat().st_size
    return total
