"""A sweep's folder: what `gpt-tui sweep --resume DIR` needs to go on, and nothing
about the trials' runs (those are normal run folders under the runs folder).

    sweep.toml   the sweep file as given (its space, sampler, pruner, budget)
    base.toml    the base run config resolved when the sweep began (later edits to
                 the base file or a preset do not change a running sweep)
    sweep.json   the sweep's name and its study's storage URL
    study.db     the Optuna study (SQLite), unless the storage is another database
    claims/      trial-N/.lock: the process running trial N (a stale one is free)
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec

from gptcore.errors import ConfigError, DamagedFile
from gptcore.runs.rundir import config_toml
from gptcore.sweep.spec import SweepSpec, load_sweep
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import sweeps_dir
from gptcore.util.typedfile import read_json

SPEC_FILE = "sweep.toml"
BASE_FILE = "base.toml"
MANIFEST_FILE = "sweep.json"
STUDY_FILE = "study.db"
CLAIMS_DIR = "claims"


class Manifest(msgspec.Struct, frozen=True):
    name: str
    storage: str | None = None  # None: study.db in the folder


class SweepFolder:
    """A sweep folder and every path in it (computed; `create` writes them)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    @classmethod
    def default_for(cls, name: str) -> SweepFolder:
        return cls(sweeps_dir() / name)

    @property
    def spec_file(self) -> Path:
        return self.path / SPEC_FILE

    @property
    def base_file(self) -> Path:
        return self.path / BASE_FILE

    @property
    def manifest_file(self) -> Path:
        return self.path / MANIFEST_FILE

    @property
    def study_file(self) -> Path:
        return self.path / STUDY_FILE

    def claim_dir(self, trial_number: int) -> Path:
        return self.path / CLAIMS_DIR / f"trial-{trial_number}"

    def is_sweep(self) -> bool:
        return self.manifest_file.is_file()

    def create(self, spec: SweepSpec, source_text: str, storage: str | None) -> None:
        """Write a new sweep's files; ConfigError when the folder already holds one."""
        if self.is_sweep():
            raise ConfigError(
                f"{self.path} already holds a sweep; continue it with "
                f"`gpt-tui sweep --resume {self.path}` or choose another --dir"
            )
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.spec_file, source_text)
        model, train = spec.configs({}, 0)
        atomic_write_text(self.base_file, config_toml(model, train))
        manifest = Manifest(spec.name, storage)
        # Last: a folder with a manifest is a sweep that can be resumed.
        atomic_write_text(self.manifest_file, json.dumps(msgspec.to_builtins(manifest)) + "\n")

    def manifest(self) -> Manifest:
        try:
            return read_json(self.manifest_file, Manifest)
        except FileNotFoundError:
            raise ConfigError(
                f"{self.path} is not a sweep folder (it has no {MANIFEST_FILE})"
            ) from None
        except DamagedFile as exc:
            raise ConfigError(str(exc)) from None

    def spec(self) -> SweepSpec:
        """The sweep as it began: its file with the resolved base config."""
        manifest = self.manifest()
        spec = load_sweep(self.spec_file, frozen_base=self.base_file)
        return spec if spec.name == manifest.name else _renamed(spec, manifest.name)

    def storage_url(self) -> str:
        return self.manifest().storage or f"sqlite:///{self.study_file.resolve()}"


def _renamed(spec: SweepSpec, name: str) -> SweepSpec:
    import dataclasses

    return dataclasses.replace(spec, name=name)
