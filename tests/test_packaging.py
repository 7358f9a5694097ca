"""A wheel built from this checkout holds every module and the configs/ presets where
gptcore.config.shipped_configs reads them, so a non-editable `pip install .` keeps them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROJECT = ("pyproject.toml", "README.md", "gptcore", "tui", "configs")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("setuptools", minversion="77", reason="building a wheel needs setuptools")
    # Built from a copy: an in-tree build would write build/ into the checkout.
    src = tmp_path_factory.mktemp("src")
    for name in PROJECT:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(REPO / name, src / name)
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-index"]
    cmd += ["--no-build-isolation", "-w", str(out), str(src)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    (whl,) = out.glob("gpt_tui-*.whl")
    return whl


def test_the_wheel_holds_every_module_and_the_presets(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        path.relative_to(REPO).as_posix()
        for package in ("gptcore", "tui")
        for path in (REPO / package).rglob("*")
        if path.suffix in (".py", ".tcss") and "__pycache__" not in path.parts
    }
    # A subpackage missing from pyproject's `packages` list shows up here.
    assert sorted(expected - names) == []
    presets = sorted(p.name for p in (REPO / "configs").glob("*.toml"))
    assert {"book.toml", "tiny.toml", "gpt2-124m-continue.toml"} <= set(presets)
    sweeps = sorted(f"sweeps/{p.name}" for p in (REPO / "configs" / "sweeps").glob("*.toml"))
    assert sorted(n.removeprefix("gptcore/configs/") for n in names if n.endswith(".toml")) == (
        sorted(presets + sweeps)
    )


def test_the_installed_wheel_finds_its_presets(wheel: Path, tmp_path: Path) -> None:
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)  # what pip install puts in site-packages
    code = (
        "from gptcore.settings.files import load_run_config, resolve_config_path, shipped_configs\n"
        "print(sorted(shipped_configs()))\n"
        "print(resolve_config_path('tiny'))\n"
        "print(load_run_config('tiny.toml')[1].samples_per_epoch)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(site)}
    # From tmp_path, so the checkout is not on the path; PYTHONPATH wins over the
    # editable install's finder, which only answers what the path does not.
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    names, tiny, samples = result.stdout.splitlines()
    assert names == "['book', 'gpt2-124m-continue', 'quick', 'tiny']"
    assert Path(tiny) == site / "gptcore" / "configs" / "tiny.toml"
    assert samples == "160"
