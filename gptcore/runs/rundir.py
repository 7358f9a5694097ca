"""Run folders: where a run keeps its config, its metrics stream, samples and checkpoints.

    RUN_DIR/config.toml      the resolved [model] and [train] settings (loadable with --config)
    RUN_DIR/metrics.jsonl    one JSON object per training event, flushed as it happens
    RUN_DIR/samples.txt      each epoch's sample
    RUN_DIR/checkpoints/     one folder per checkpoint (see runs/checkpoint.py)
    RUN_DIR/exports/         the book's .pth and Hugging Face exports of its checkpoints
    RUN_DIR/loss.png         the loss plot, when exported
    RUN_DIR/timeline.json    the sample timeline's cached samples (see sampling/timeline.py)
    RUN_DIR/.lock            held while a process trains into the run (see runs/lock.py)

`RunDir` owns these names: nothing else spells them out. New run folders, the
resolved config.toml and a run's own sample prompt are here too; the event
stream is runs/metrics.py's.
"""

from __future__ import annotations

import re
import shlex
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gptcore.errors import GptTuiError
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fsutil import atomic_write_bytes
from gptcore.util.paths import runs_dir
from gptcore.util.tomlwrite import dumps_toml

CONFIG_FILE = "config.toml"


METRICS_FILE = "metrics.jsonl"


SAMPLES_FILE = "samples.txt"


CHECKPOINTS_DIR = "checkpoints"


EXPORTS_DIR = "exports"


LOSS_PLOT = "loss.png"


TIMELINE_FILE = "timeline.json"


LOCK_FILE = ".lock"

# The checkpoint forms of a model spec (gptcore.weights.spec): a folder, RUN:latest, RUN:best.
CHECKPOINT, LATEST, BEST = "checkpoint", "latest", "best"
CHECKPOINT_KINDS = (CHECKPOINT, LATEST, BEST)


@dataclass(frozen=True, init=False)
class RunDir:
    """A run folder and every path inside it.

    Build it from the folder (`RunDir(path)`) or from one of its checkpoints
    (`RunDir.of_checkpoint(path)`). Paths are computed, never created here.
    """

    path: Path

    def __init__(self, path: str | Path) -> None:
        object.__setattr__(self, "path", Path(path))

    @classmethod
    def of_checkpoint(cls, checkpoint: str | Path) -> RunDir | None:
        """The run a checkpoint folder belongs to; None for one outside a run's checkpoints/."""
        checkpoint = Path(checkpoint)
        if checkpoint.parent.name != CHECKPOINTS_DIR:
            return None
        return cls(checkpoint.parent.parent)

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config(self) -> Path:
        return self.path / CONFIG_FILE

    @property
    def metrics(self) -> Path:
        return self.path / METRICS_FILE

    @property
    def samples(self) -> Path:
        return self.path / SAMPLES_FILE

    @property
    def checkpoints(self) -> Path:
        return self.path / CHECKPOINTS_DIR

    @property
    def exports(self) -> Path:
        return self.path / EXPORTS_DIR

    @property
    def loss_plot(self) -> Path:
        return self.path / LOSS_PLOT

    @property
    def timeline(self) -> Path:
        return self.path / TIMELINE_FILE

    @property
    def lock(self) -> Path:
        return self.path / LOCK_FILE

    def checkpoint(self, step: int) -> Path:
        """The folder of the automatic checkpoint after `step` optimizer steps."""
        return self.checkpoints / f"step-{step:06d}"

    def checkpoint_dirs(self) -> list[Path]:
        """Every entry of checkpoints/ (damaged ones too), by name; hidden temporaries left
        out. OSError (PermissionError) when the run may not be looked into."""
        if not self.checkpoints.is_dir():
            return []
        return sorted(p for p in self.checkpoints.iterdir() if not p.name.startswith("."))

    def has_checkpoints(self) -> bool:
        """Whether it has a checkpoints/ folder; True when that cannot be told (no
        permission): checkpoint_dirs() then says why, rather than the run seeming empty."""
        try:
            return self.checkpoints.is_dir()
        except OSError:
            return True

    def pth_export(self, checkpoint_name: str) -> Path:
        """Where a checkpoint's book-format .pth export goes."""
        return self.exports / f"{checkpoint_name}.pth"

    def hf_export(self, checkpoint_name: str) -> Path:
        """Where a checkpoint's Hugging Face export folder goes."""
        return self.exports / f"{checkpoint_name}-hf"

    def is_run(self) -> bool:
        """Whether the folder looks like a run (it has a config or a metrics stream). A
        folder that may not be looked into counts: the run table lists it as damaged
        rather than leaving it out without a word."""
        try:
            return self.path.is_dir() and (self.config.exists() or self.metrics.exists())
        except OSError:  # PermissionError: the folder exists, its contents are hidden
            return True

    def holds_run(self) -> bool:
        """Whether training here would mix with an earlier run's files."""
        return self.is_run() or self.has_checkpoints()


def checkpoint_label(checkpoint: str | Path) -> str:
    """`RUN/NAME` for a checkpoint inside a run, else its path: how screens name one."""
    checkpoint = Path(checkpoint)
    run = RunDir.of_checkpoint(checkpoint)
    return f"{run.name}/{checkpoint.name}" if run is not None else str(checkpoint)


def resume_command(spec: str | Path, overrides: Sequence[str] = ()) -> str:
    """The shell command that continues a run headless (quoted for pasting), with
    `--set` overrides."""
    sets = "".join(f" --set {shlex.quote(text)}" for text in overrides)
    return f"gpt-tui train --resume {shlex.quote(str(spec))}{sets}"


def new_run_dir(name: str | None = None, root: str | Path | None = None) -> Path:
    """Create and return a fresh folder `YYYYmmdd-HHMMSS[-name]` under the runs folder."""
    root = Path(root) if root is not None else runs_dir()
    root.mkdir(parents=True, exist_ok=True)
    label = re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") if name else ""
    base = time.strftime("%Y%m%d-%H%M%S") + (f"-{label}" if label else "")
    n = 1
    while True:
        path = root / (base if n == 1 else f"{base}-{n}")
        try:
            path.mkdir()
            return path
        except FileExistsError:
            n += 1


RUN_CONFIG_COMMENT = "written by gpt-tui: the resolved settings of this run"


def config_toml(
    model: GPTConfig, train: TrainConfig, comment: str | None = RUN_CONFIG_COMMENT
) -> str:
    """The resolved settings as TOML that `load_run_config` reads back to equal
    configs (None values are left out: they are defaults)."""
    return dumps_toml({"model": model.to_dict(), "train": train.to_dict()}, comment=comment)


def write_run_config(run_dir: str | Path, model: GPTConfig, train: TrainConfig) -> Path:
    """Write RUN_DIR/config.toml atomically and return its path."""
    path = RunDir(run_dir).config
    # surrogateescape: a path whose name is not UTF-8 (os.fsdecode's surrogates) is
    # written as its bytes on disk, which load_toml reads back to the same path
    atomic_write_bytes(path, config_toml(model, train).encode("utf-8", "surrogateescape"))
    return path


def run_prompt(run: str | Path) -> str:
    """The run's own sample prompt (its train.start_context), else the book's."""
    try:
        return load_run_config(RunDir(run).config)[1].start_context
    except (GptTuiError, OSError):
        return TrainConfig.start_context
