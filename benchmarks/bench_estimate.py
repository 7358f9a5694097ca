"""Predicted vs actual wall time of whole runs (gptcore.planner.timing).

    python benchmarks/bench_estimate.py [--runs quick,tiny,book]

Each run, in a fresh process with a private GPT_TUI_HOME (the book's corpus copied
in from ../shared/corpora when it is there): the corpus is tokenized first (the token
cache a real second run has), then the planner's probe times a few steps and predicts
the run's wall time, then the Trainer runs it and the time of `trainer.run()` is
measured (setup, steps, evaluations, samples, checkpoints). The error is
(predicted - actual) / actual. The machine's load average is printed with the figures:
on a shared machine they move with it.

Runs: quick and tiny as shipped (whole runs), book-124m (configs/book.toml) limited to
6 steps (`--set max_steps=6`).

`--busy N` keeps the machine busy for the whole benchmark with N processes, each
multiplying 512x512 float64 matrices with numpy in a loop (numpy's BLAS threads as it
sets them): a steady load, the same for the probe and the run. The figures of the
issue-26 note used `--busy 2` on 2 cores (load about 6).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for folder in (REPO, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from child import run_worker  # noqa: E402  (needs the path above)

RESULT_MARK = "ESTIMATE_RESULT "
VERDICT = REPO.parent / "shared" / "corpora" / "the-verdict.txt"
RUNS = {
    "quick": ("quick", []),
    "tiny": ("tiny", []),
    "book": ("book", ["max_steps=6"]),
}


def child(config: str, overrides: list[str]) -> dict:
    import time

    import torch

    from gptcore.data.plan import batch_plan
    from gptcore.data.runcorpus import run_corpus
    from gptcore.hardware.device import pick_device
    from gptcore.planner.timing import probe, run_time
    from gptcore.settings.files import load_run_config
    from gptcore.training.trainer import Trainer

    model, train = load_run_config(config, overrides)
    corpus = run_corpus(train)  # tokenized once: the cache a second run reads
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model, train).check()
    device = pick_device(train.device)
    started = time.perf_counter()
    timing = probe(model, train, device)
    probe_s = time.perf_counter() - started
    estimate = run_time(model, train, plan, timing)
    torch.manual_seed(0)
    started = time.perf_counter()
    result = Trainer(model, train).run()
    actual = time.perf_counter() - started
    return {
        "config": config,
        "steps": plan.total_steps,
        "precision": timing.precision,
        "predicted_s": round(estimate.mid, 1),
        "low_s": round(estimate.low, 1),
        "high_s": round(estimate.high, 1),
        "actual_s": round(actual, 1),
        "error": round((estimate.mid - actual) / actual, 3),
        "probe_s": round(probe_s, 1),
        "how": timing.how,
        "parts_s": {k: round(v, 1) for k, v in estimate.parts.items()},
        "finished": getattr(result, "reason", type(result).__name__),
        "load": os.getloadavg(),
    }


BUSY_LOOP = """
import numpy as np
a = np.random.default_rng(0).random((512, 512))
while True:
    a = a @ a
    a /= np.abs(a).max() + 1e-9
"""


def start_load(processes: int) -> list:
    """N processes that keep the CPU busy until stopped (see --busy)."""
    import subprocess

    return [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(processes)]


def run_one(name: str) -> dict:
    config, overrides = RUNS[name]
    with tempfile.TemporaryDirectory(prefix="bench-estimate-") as home:
        if VERDICT.exists():
            target = Path(home) / "data" / "corpora"
            target.mkdir(parents=True)
            shutil.copy(VERDICT, target / VERDICT.name)
        env = {**os.environ, "PYTHONPATH": str(REPO), "GPT_TUI_HOME": home}
        command = [sys.executable, __file__, "--child", json.dumps([config, overrides])]
        ran = run_worker(command, env=env, cwd=home, timeout_s=1800)
    if ran is None:
        return {"config": name, "error_text": "timed out"}
    result = ran.result(RESULT_MARK)
    return result if result is not None else {"config": name, "error_text": ran.failure()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--runs", default=",".join(RUNS))
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--busy", type=int, default=0, metavar="N", help="N busy processes")
    args = parser.parse_args(argv)
    if args.child:
        config, overrides = json.loads(args.child)
        print(RESULT_MARK + json.dumps(child(config, overrides)))
        return 0
    load = start_load(args.busy)
    try:
        if load:
            import time

            time.sleep(10)  # the load settles before the first probe
        print(f"load average before: {os.getloadavg()}, {args.busy} busy processes")
        rows = [run_one(name) for name in args.runs.split(",")]
    finally:
        for process in load:
            process.kill()
            process.wait()
    if args.json:
        print(json.dumps(rows))
        return 0
    print(
        f"{'run':<8} {'steps':>5} {'prec':>5} {'predicted':>10} {'range':>14} {'actual':>8} {'error':>7}  load"
    )
    for r in rows:
        if "error_text" in r:
            print(f"{r['config']:<8} failed: {r['error_text']}")
            continue
        span = f"{r['low_s']:.0f}-{r['high_s']:.0f}s"
        load = ", ".join(f"{x:.1f}" for x in r["load"])
        print(
            f"{r['config']:<8} {r['steps']:>5} {r['precision']:>5} {r['predicted_s']:>9.1f}s "
            f"{span:>14} {r['actual_s']:>7.1f}s {r['error']:>+7.1%}  {load}"
        )
        print(f"         probe {r['probe_s']}s: {r['how']}; parts {r['parts_s']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
