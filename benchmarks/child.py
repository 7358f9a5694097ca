"""Run a benchmark's worker code in a fresh interpreter and read its JSON result.

Each worker is its own process so that its peak memory and its caches are its own;
it prints one JSON object as its last line of output.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_json(code: str, *args: object, env: dict[str, str], cwd: str | None = None) -> dict:
    """`python -c code args...` under `env`; the JSON object on its last line of stdout.
    A failed worker ends the benchmark with its exit code and the end of its stderr."""
    out = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    if out.returncode != 0:
        raise SystemExit(f"worker failed ({out.returncode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_json_in_private_home(code: str, *args: object, prefix: str) -> dict:
    """run_json with this checkout on PYTHONPATH and GPT_TUI_HOME a temporary folder
    removed afterwards (a book-124m run leaves 1.5 GB of checkpoints there)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        env = {**os.environ, "PYTHONPATH": str(REPO), "GPT_TUI_HOME": home}
        return run_json(code, *args, env=env, cwd=home)
