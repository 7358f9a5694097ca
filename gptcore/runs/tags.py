"""A run's tags (RUN/tags.json): who made the run, for runs made by something other
than a person's `gpt-tui train`. A sweep tags each trial's run with its sweep, trial
number and seed index, so `gpt-tui runs --filter sweep=NAME trial=3` and the Runs
view find them. The run table merges the tags into a row's settings.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from gptcore.errors import DamagedFile
from gptcore.runs.rundir import RunDir
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.typedfile import Count, read_json

TAGS_FILE = "tags.json"


class RunTags(msgspec.Struct, frozen=True, omit_defaults=True):
    """The tags a run may carry; each is optional (None: not tagged)."""

    sweep: str | None = None
    trial: Count | None = None
    seed_index: Count | None = None


def tags_path(run_dir: str | Path) -> Path:
    return RunDir(run_dir).path / TAGS_FILE


def write_tags(run_dir: str | Path, tags: RunTags) -> Path:
    """Write RUN/tags.json atomically (creating the run folder) and return its path."""
    path = tags_path(run_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(msgspec.to_builtins(tags)) + "\n")
    return path


def read_tags(run_dir: str | Path) -> RunTags:
    """The run's tags; none for an untagged run or a damaged tags.json (the run
    itself is still readable: tags only help find it)."""
    try:
        return read_json(tags_path(run_dir), RunTags)
    except (FileNotFoundError, DamagedFile):
        return RunTags()


def tag_settings(run_dir: str | Path) -> dict[str, str | int]:
    """The run's tags as flat settings ("sweep", "trial", "seed_index") for the run table."""
    return {k: v for k, v in msgspec.to_builtins(read_tags(run_dir)).items() if v is not None}
