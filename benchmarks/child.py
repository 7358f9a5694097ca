"""Run a benchmark's worker in a fresh process and read its JSON result.

Each worker is its own process so that its peak memory and its caches are its own.
It prints its result as one JSON object on its last line of output, or, where other
output may follow it, on a line that starts with a mark (gpu_check's workers).
`run_worker` runs any command (with an optional time limit) and never raises for
a failed worker; `run_json` and the functions built on it end the benchmark with
the worker's exit code and the end of its stderr instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class WorkerRun:
    """A worker that ran to its end (successfully or not)."""

    returncode: int
    stdout: str
    stderr: str
    wall_s: float

    def result(self, mark: str = "") -> dict | None:
        """The JSON object on the last line of stdout that starts with `mark`
        (without the mark); None when no line does."""
        for line in reversed(self.stdout.strip().splitlines()):
            if line.startswith(mark):
                return json.loads(line[len(mark) :])
        return None

    def failure(self) -> str:
        """One line on why there is no result: the exit code and the last line of
        stderr (or of stdout when stderr is empty)."""
        lines = [line for line in (self.stderr or self.stdout).splitlines() if line.strip()]
        return f"exit code {self.returncode}: {lines[-1] if lines else 'no output'}"


def run_worker(
    command: Sequence[str | Path],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout_s: float | None = None,
) -> WorkerRun | None:
    """Run `command` (output captured, under `env`, default this process's); None
    when it ran past `timeout_s` (it is killed)."""
    start = time.monotonic()
    try:
        proc = subprocess.run(
            [str(part) for part in command],
            capture_output=True,
            text=True,
            env=env,
            cwd=cwd,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return None
    return WorkerRun(proc.returncode, proc.stdout, proc.stderr, round(time.monotonic() - start, 1))


def json_result(run: WorkerRun) -> dict:
    """The JSON object on a finished worker's last line of stdout. A failed worker
    ends the benchmark with its exit code and the end of its stderr."""
    if run.returncode != 0:
        raise SystemExit(f"worker failed ({run.returncode}):\n{run.stderr[-3000:]}")
    result = run.result()
    if result is None:
        raise SystemExit(f"worker printed no result:\n{run.stderr[-3000:]}")
    return result


def run_json(
    code: str, *args: object, env: dict[str, str] | None = None, cwd: str | None = None
) -> dict:
    """`python -c code args...` (under `env`, default this process's); its JSON result."""
    command = [sys.executable, "-c", code, *map(str, args)]
    return json_result(run_worker(command, env=env, cwd=cwd))


def run_script_json(script: Path, *args: object, env: dict[str, str] | None = None) -> dict:
    """`python script args...` (under `env`, default this process's); its JSON result."""
    return json_result(run_worker([sys.executable, script, *map(str, args)], env=env))


def run_json_in_private_home(code: str, *args: object, prefix: str) -> dict:
    """run_json with this checkout on PYTHONPATH and GPT_TUI_HOME a temporary folder
    removed afterwards (a book-124m run leaves 1.5 GB of checkpoints there)."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        env = {**os.environ, "PYTHONPATH": str(REPO), "GPT_TUI_HOME": home}
        return run_json(code, *args, env=env, cwd=home)
