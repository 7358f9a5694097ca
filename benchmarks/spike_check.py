"""Spike signals on ordinary runs: the shipped configs over several seeds.

    python benchmarks/spike_check.py [--runs tiny:1,2,3,123 quick:1,2,123 book:123]

Trains each config and seed headless (`gpt-tui train --config NAME --set seed=S`,
the book config stopped after 6 steps, each in a private home that is removed
after), then prints, per run, the largest ratio of a step's loss and gradient
norm to the median of the previous `spike_window` steps, their z-scores, and the
spike events the run reported. The thresholds in gptcore/training/health.py
(LOSS_SPIKE_RATIO, GRAD_NORM_SPIKE_RATIO) come from these figures: an ordinary
run must report no spike. Takes a few minutes per quick run on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.child import run_worker  # noqa: E402
from gptcore.training.health import MIN_SPIKE_POINTS  # noqa: E402

DEFAULT_RUNS = ["tiny:1,2,3,123", "quick:1,2,123", "book:123"]
WINDOW = 50  # train.spike_window's default


def worst_ratios(series: list[tuple[int, float, float]]) -> dict[str, tuple]:
    """Per signal: (ratio to the window's median, z-score, step) of the step that
    stands furthest above the previous WINDOW steps' median."""
    worst: dict[str, tuple] = {"loss": (0.0, 0.0, -1), "grad_norm": (0.0, 0.0, -1)}
    for i in range(MIN_SPIKE_POINTS, len(series)):
        window = series[max(0, i - WINDOW) : i]
        for name, col in (("loss", 1), ("grad_norm", 2)):
            values = [row[col] for row in window if math.isfinite(row[col])]
            value = series[i][col]
            median = statistics.median(values)
            std = statistics.pstdev(values) or math.inf
            ratio = value / median if median > 0 else 0.0
            if ratio > worst[name][0]:
                z = (value - statistics.fmean(values)) / std
                worst[name] = (round(ratio, 2), round(z, 1), series[i][0])
    return worst


def one_run(config: str, seed: int) -> dict:
    home = Path(tempfile.mkdtemp(prefix="spike-check-"))
    try:
        command = [sys.executable, "-m", "gptcore", "train", "--config", config]
        command += ["--set", f"seed={seed}", "--home", str(home), "--quiet"]
        if config == "book":
            command += ["--set", "max_steps=6"]
        run = run_worker(command)
        if run is None or run.returncode != 0:
            raise SystemExit(f"{config} seed {seed}: {run.failure() if run else 'timed out'}")
        (metrics,) = home.glob("data/runs/*/metrics.jsonl")
        records = [json.loads(line) for line in metrics.read_text().splitlines() if line]
        steps = [
            (r["step"], r["loss"], r["grad_norm"] if r["grad_norm"] is not None else math.nan)
            for r in records
            if r["event"] == "step"
        ]
        spikes = [
            (r["step"], r["kind"], round(r["z"], 1)) for r in records if r["event"] == "spike"
        ]
        return {
            "config": config,
            "seed": seed,
            "steps": len(steps),
            "worst": worst_ratios(steps),
            "spikes": spikes,
            "wall_s": run.wall_s,
        }
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", nargs="*", default=DEFAULT_RUNS, help="CONFIG:SEED,SEED,...")
    args = parser.parse_args()
    results = []
    print("config seed steps | loss: ratio z step | grad norm: ratio z step | spikes")
    for item in args.runs:
        config, _, seeds = item.partition(":")
        for seed in (int(s) for s in seeds.split(",")):
            r = one_run(config, seed)
            (lr, lz, ls), (gr, gz, gs) = r["worst"]["loss"], r["worst"]["grad_norm"]
            print(
                f"{config:6} {seed:4} {r['steps']:5} | {lr:6.2f} {lz:6.1f} {ls:4} | "
                f"{gr:8.2f} {gz:7.1f} {gs:4} | {r['spikes'] or 'none'}",
                flush=True,
            )
            results.append(r)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
