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

from pathlib import Path
from typing import Literal

from gptcore.errors import ConfigError, GptTuiError
from gptcore.runs.rundir import RunDir
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
    spec: str | Path | ModelSpec, kind: ExportKind, out: str | Path | None = None
) -> Path:
    """Export the checkpoint `spec` names (a checkpoint folder, a run = its latest,
    RUN:latest, RUN:best) as `kind` ("pth" or "hf") to `out`, by default its run's
    exports/ folder; returns what was written (the .pth file or the HF folder).

    A damaged checkpoint raises CheckpointError before anything is written; a
    destination that cannot be written (a missing or read-only folder, a full
    disk) raises GptTuiError naming it.
    """
    checkpoint = checkpoint_path(spec)
    dest = export_destination(checkpoint, kind, out)
    try:
        if kind == "pth":
            return export_book_pth(checkpoint, dest)
        return export_hf(load_spec(checkpoint, "cpu").model, dest)
    except OSError as exc:
        raise GptTuiError(f"cannot write {dest}: {exc.strerror or exc}") from None
