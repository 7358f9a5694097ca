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
