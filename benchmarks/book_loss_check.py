"""The loss check: the default fast mode against the book's fp32 run, every eval point.

    python benchmarks/book_loss_check.py [--corpus ../shared/corpora/the-verdict.txt]

Trains configs/book.toml (book-124m on "The Verdict", 10 epochs, 18 evaluations)
twice in fresh processes: as the book does it (precision fp32, torch's default
AdamW: the book's numbers) and in the default mode (precision and AdamW "auto": bf16
autocast on a CPU where it pays, the fused AdamW). It prints both losses at every
evaluation, their relative differences, each run's wall time and tokens/s, and a
JSON summary; the default mode passes when every train and val loss is within 3%
of the book run's.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from child import run_json_in_private_home

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GPT_TUI_SHARED", ROOT.parent / "shared"))
TOLERANCE = 0.03

WORKER = r"""
import dataclasses, json, sys, time
from gptcore.settings.files import load_run_config, resolve_config_path
from gptcore.runs.events import EvalEnd, RunStarted
from gptcore.training.trainer import Trainer
corpus, precision, adamw = sys.argv[1:4]
model, train = load_run_config(resolve_config_path("book"))
train = dataclasses.replace(train, corpus=corpus, precision=precision, adamw=adamw, sample_tokens=0)
evals, info = [], {}
def listen(event):
    if isinstance(event, RunStarted):
        info.update(precision=event.precision, device=event.device)
    elif isinstance(event, EvalEnd):
        evals.append([event.step, event.train_loss, event.val_loss, event.tokens_seen])
start = time.perf_counter()
result = Trainer(model, train, listeners=[listen]).run()
wall = time.perf_counter() - start
print(json.dumps({"reason": result.reason, "evals": evals, "wall_s": wall, **info}))
"""


def train(corpus: Path, precision: str, adamw: str) -> dict:
    return run_json_in_private_home(WORKER, corpus, precision, adamw, prefix="book-loss-")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=SHARED / "corpora" / "the-verdict.txt")
    args = parser.parse_args()
    if not args.corpus.exists():
        sys.exit(f"the book's corpus is not at {args.corpus} (pass --corpus PATH)")
    book = train(args.corpus, "fp32", "default")
    fast = train(args.corpus, "auto", "auto")
    print(
        f"{'step':>5} {'book train':>10} {'fast train':>10} {'diff':>7} "
        f"{'book val':>9} {'fast val':>9} {'diff':>7}"
    )
    worst = 0.0
    for (step, bt, bv, _), (_, ft, fv, _) in zip(book["evals"], fast["evals"], strict=True):
        dt, dv = abs(ft - bt) / bt, abs(fv - bv) / bv
        worst = max(worst, dt, dv)
        print(f"{step:5d} {bt:10.4f} {ft:10.4f} {dt:7.2%} {bv:9.4f} {fv:9.4f} {dv:7.2%}")
    for name, run in (("book (fp32, default AdamW)", book), ("default mode", fast)):
        tokens = run["evals"][-1][3]
        print(
            f"{name}: {run['precision']} on {run['device']}, {run['wall_s']:.0f} s, "
            f"{tokens / run['wall_s']:.1f} tokens/s over the whole run (evaluations included)"
        )
    passed = worst <= TOLERANCE
    print(f"largest relative difference {worst:.2%}: {'PASS' if passed else 'FAIL'} (<= 3%)")
    print(json.dumps({"book": book, "default": fast, "worst_rel_diff": worst, "pass": passed}))
    sys.exit(0 if passed else 1)


if __name__ == "__main__":
    main()
