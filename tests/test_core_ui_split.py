"""The engine must never import the UI: importing every gptcore module leaves
textual and tui unloaded (checked in a fresh interpreter)."""

import pkgutil
import subprocess
import sys

import gptcore


def test_gptcore_never_imports_textual_or_tui():
    names = [m.name for m in pkgutil.walk_packages(gptcore.__path__, "gptcore.")]
    assert "gptcore.cli" in names and "gptcore.model" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('textual', 'tui'))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_engine_modules_never_import_the_cli():
    """gptcore/commands is a front end like the app: no engine module reaches up into it
    (so no import cycle between the Trainer and `gpt-tui train`)."""
    front_ends = ("gptcore.commands", "gptcore.cli", "gptcore.__main__")
    names = [
        m.name
        for m in pkgutil.walk_packages(gptcore.__path__, "gptcore.")
        if not m.name.startswith(front_ends)
    ]
    assert "gptcore.training.trainer" in names and "gptcore.training.resume" in names
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "print(','.join(sorted(m for m in sys.modules if m.startswith('gptcore.commands'))))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""
