"""Key-to-screen latency of the app while book-124m trains (issue 18, deliverable 5).

    python3 benchmarks/app_latency.py            # about 3-5 minutes on 2 CPU cores
    python3 benchmarks/app_latency.py --json-only

What it does: opens the app (`python3 -m tui.launch`) in a private tmux server at
100x30 with GPT_TUI_HOME in a temporary folder, picks the book-124m preset on
the built-in corpus, starts training on the Train tab and waits until steps are
advancing. Then it presses 50 keys (the tabs 1-6 and Down/Up in the Models list),
and for each one measures the time from sending the key to the terminal showing
the change (tmux capture-pane polled every few ms until the text that only the new
screen shows is there). It prints p50/p95/max and a JSON summary, with the
training throughput (from the run's metrics.jsonl) before and during the presses.

Why tmux and not Pilot: Pilot's press returns once the app has handled the key,
before anything is written to a terminal; a real terminal includes Textual's
rendering and output thread, which is what a user waits for.

Latency is wall time on a shared machine: compare runs back to back, not with
figures taken elsewhere. `--root DIR` measures another checkout of gpt-tui
(e.g. a copy from before a change) with this same script.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZE = (100, 30)
POLL_S = 0.005
KEY_TIMEOUT_S = 20.0

# Text that only the given screen shows (hidden tabs are not drawn).
TAB_MARKERS = {
    "1": "Source: b built-in",
    "2": "eval every",
    "3": "ctrl+n inspect",
    "4": "checkpoint  step  epoch",
    "5": "GPT-2  source  status",
    "6": "best val  last train",
}
PATTERN = ["1", "2", "3", "4", "5", "Down", "Down", "Up", "Up", "6"]
LIST_SETTLE_S = 1.0  # on arriving at Models, time for its list to take the focus


def key_script(presses: int) -> list[tuple[str, str | None]]:
    """(tmux key, text the screen shows once a tab key took effect) for each press;
    None for a list move, which shows as a new detail line under the Models list."""
    return [(key, TAB_MARKERS.get(key)) for key in (PATTERN * presses)[:presses]]


def model_detail(screen: str) -> str:
    """The Models screen's detail line ("GPT-2 124M from Hugging Face." …)."""
    return next((line for line in screen.splitlines() if " from " in line and "GPT-2" in line), "")


class Terminal:
    """The app in a tmux server of its own (its own socket: other sessions are untouched)."""

    def __init__(self, command: str, env: dict[str, str]) -> None:
        self.socket = f"gptlat-{os.getpid()}"
        self._tmux("new-session", "-d", "-s", "app", "-x", str(SIZE[0]), "-y", str(SIZE[1]),
                   *[f"-e{k}={v}" for k, v in env.items()], command)  # fmt: skip
        self.pid = int(self._tmux("display", "-p", "-t", "app", "#{pane_pid}").strip())

    def _tmux(self, *args: str) -> str:
        result = subprocess.run(
            ["tmux", "-L", self.socket, *args], capture_output=True, text=True, check=True
        )
        return result.stdout

    def screen(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", "app")

    def send(self, key: str) -> None:
        self._tmux("send-keys", "-t", "app", key)

    def wait_until(
        self, shown: Callable[[str], bool], timeout: float = KEY_TIMEOUT_S
    ) -> float | None:
        """Seconds until the screen satisfies `shown`, or None after `timeout`."""
        start = time.perf_counter()
        while time.perf_counter() - start < timeout:
            if shown(self.screen()):
                return time.perf_counter() - start
            time.sleep(POLL_S)
        return None

    def wait_for(self, text: str, timeout: float) -> float | None:
        return self.wait_until(lambda screen: text in screen, timeout)

    def close(self) -> None:
        # SIGKILL: a stopped run would first save a 124M checkpoint nobody needs.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def step_records(home: Path) -> list[dict]:
    """The StepEnd records of the run the app started (empty until its first step)."""
    records = []
    for metrics in (home / "data" / "runs").glob("*/metrics.jsonl"):
        for line in metrics.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line being written
            if record.get("event") == "step":
                records.append(record)
    return records


def tokens_per_s(steps: list[dict], start: float, end: float) -> dict:
    """Training throughput over the steps that ended in [start, end]: the trainer's
    own per-step figure (median) and tokens over wall time (evaluations included)."""
    inside = [s for s in steps if start <= s["time"] <= end]
    result: dict = {"steps": len(inside)}
    if inside:
        result["step_tok_s_median"] = round(statistics.median(s["tokens_per_s"] for s in inside))
    if len(inside) >= 2:
        tokens = inside[-1]["tokens_seen"] - inside[0]["tokens_seen"]
        result["wall_tok_s"] = round(tokens / (inside[-1]["time"] - inside[0]["time"]))
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_steps(home: Path, count: int, timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        steps = step_records(home)
        if len(steps) >= count:
            return steps
        time.sleep(0.5)
    raise SystemExit(f"training did not reach {count} steps in {timeout:.0f}s")


def measure(root: Path, presses: int, idle_steps: int, env_extra: dict[str, str]) -> dict:
    home = Path(tempfile.mkdtemp(prefix="gptlat-home-"))
    settings = home / "config" / "settings.toml"
    settings.parent.mkdir(parents=True)
    settings.write_text('corpus = "builtin"\nconfig = "preset:book-124m"\n', encoding="utf-8")
    env = {"GPT_TUI_HOME": str(home), "PYTHONPATH": str(root), **env_extra}
    command = f"cd {root} && exec {sys.executable} -m tui.launch"
    term = Terminal(command, env)
    try:
        if term.wait_for(TAB_MARKERS["1"], 120) is None or term.wait_for("tokens", 120) is None:
            raise SystemExit("the app did not show the corpus")
        term.send("2")
        if term.wait_for("book-124m", 30) is None:
            raise SystemExit("the Train tab did not show book-124m")
        term.send("s")
        # The first step warms up; then the app sits idle on Train for `idle_steps`.
        first = wait_steps(home, 1, 600)
        idle_start = first[0]["time"]
        steps = wait_steps(home, 1 + idle_steps, 1200)
        start = time.time()
        latencies, timeouts = [], 0
        for key, marker in key_script(presses):
            screen = term.screen()
            if marker is not None and marker in screen:
                raise SystemExit(f"{marker!r} is on screen before pressing {key}")
            if marker is None and TAB_MARKERS["5"] in screen and key == "Down":
                time.sleep(LIST_SETTLE_S)
            before = model_detail(screen)
            t0 = time.perf_counter()
            term.send(key)
            if marker is None:
                seen = term.wait_until(lambda s, b=before: model_detail(s) not in ("", b))
            else:
                seen = term.wait_for(marker, KEY_TIMEOUT_S)
            if seen is None:
                timeouts += 1
            latencies.append(time.perf_counter() - t0)
            time.sleep(0.2)  # a user's pause between keys
        end = time.time()
        # Up to the step that was running when the keys ended.
        steps = wait_steps(home, len(step_records(home)) + 1, 600)
        end_step = min((s["time"] for s in steps if s["time"] >= end), default=end)
    finally:
        term.close()
        shutil.rmtree(home, ignore_errors=True)
    ms = [1000 * s for s in latencies]
    return {
        "method": "tmux capture-pane",
        "root": str(root),
        "env": env_extra,
        "presses": presses,
        "timeouts": timeouts,
        "p50_ms": round(percentile(ms, 0.5)),
        "p95_ms": round(percentile(ms, 0.95)),
        "max_ms": round(max(ms)),
        "mean_ms": round(statistics.mean(ms)),
        "train_idle": tokens_per_s(steps, idle_start, start),
        "train_during_keys": tokens_per_s(steps, start, end_step),
        "keys_s": round(end - start, 1),
        "latencies_ms": [round(m) for m in ms],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presses", type=int, default=50)
    parser.add_argument("--idle-steps", type=int, default=2, help="steps before the keys")
    parser.add_argument("--root", type=Path, default=ROOT, help="the gpt-tui checkout to run")
    parser.add_argument("--env", action="append", default=[], help="KEY=VALUE for the app")
    parser.add_argument("--json-only", action="store_true")
    args = parser.parse_args()
    if shutil.which("tmux") is None:
        print("tmux is needed: apt-get install tmux", file=sys.stderr)
        return 1
    env_extra = dict(item.split("=", 1) for item in args.env)
    result = measure(args.root.resolve(), args.presses, args.idle_steps, env_extra)
    if not args.json_only:
        print(
            f"key-to-screen over {result['presses']} keys while book-124m trains: "
            f"p50 {result['p50_ms']} ms · p95 {result['p95_ms']} ms · max {result['max_ms']} ms"
            f" ({result['timeouts']} timeouts)"
        )
        print(f"training before the keys: {result['train_idle']}")
        print(f"training during the keys: {result['train_during_keys']}")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
