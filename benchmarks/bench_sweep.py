"""Exhaustive grid vs pruned search (issue 28): the same 24-configuration space of
the tiny model on the built-in corpus, trained (1) as a full grid, every
configuration to the end, and (2) as a TPE search with successive halving under a
token budget of a share of the grid's tokens. Prints each one's best val loss and
the share of the grid's training tokens the pruned search used.

    python benchmarks/bench_sweep.py [--steps 120] [--share 0.30]

Everything runs in a temporary GPT_TUI_HOME (removed at the end). The figures are
losses and token counts, not timings, so the machine's load does not change them
(only how long the script takes: about 24 + 10 tiny runs).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = """
[space]
lr = [0.0005, 0.001, 0.002, 0.004, 0.008, 0.016]
warmup_steps = [0, 30]
weight_decay = [0.0, 0.1]
"""

TRAIN = """
base = "tiny"
[train]
epochs = 100
max_steps = {steps}
batch_size = {batch}
max_length = {length}
stride = {length}
eval_freq = {eval_freq}
eval_iter = 2
lr_schedule = "cosine"
min_lr = 0.0001
sample_tokens = 0
keep_last = 1
precision = "fp32"
"""


def run_sweep(folder_root: Path, name: str, body: str) -> tuple[float, int, int, float]:
    """(best val loss, tokens used, trials, seconds) of one sweep run in this process."""
    from gptcore.sweep.folder import SweepFolder
    from gptcore.sweep.leaderboard import sweep_status
    from gptcore.sweep.runner import Runner
    from gptcore.sweep.spec import load_sweep

    path = folder_root / f"{name}.toml"
    path.write_text(f'name = "{name}"\n{body}', encoding="utf-8")
    folder = SweepFolder(folder_root / name)
    folder.create(load_sweep(path), path.read_text(encoding="utf-8"), None)
    started = time.perf_counter()
    Runner(folder, notify=lambda text: print(f"  {name}: {text}", flush=True)).run()
    seconds = time.perf_counter() - started
    status = sweep_status(folder, with_importance=False)
    best = status.best
    assert best is not None and best.value is not None
    return best.value, status.used.tokens, status.used.trials, seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=120, help="steps of a full trial")
    p.add_argument("--share", type=float, default=0.30, help="the search's token budget")
    p.add_argument("--batch", type=int, default=8, help="windows per step")
    p.add_argument("--length", type=int, default=64, help="tokens per window")
    p.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: fastest on a shared machine)"
    )
    args = p.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    eval_freq = max(1, args.steps // 12)
    base = TRAIN.format(steps=args.steps, eval_freq=eval_freq, batch=args.batch, length=args.length)
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp:
        os.environ["GPT_TUI_HOME"] = str(Path(tmp) / "home")
        root = Path(tmp)
        grid = f'sampler = "grid"\npruner = "none"\n{base}{SPACE}'
        grid_best, grid_tokens, grid_trials, grid_s = run_sweep(root, "grid", grid)
        budget = int(grid_tokens * args.share)
        search = (
            f'sampler = "tpe"\nstartup_trials = 4\npruner = "successive-halving"\n'
            f"prune_after = {eval_freq * args.batch * args.length}\nreduction_factor = 3\n"
            f"{base}\n[budget]\ntokens = {budget}\ntrials = 24\n{SPACE}"
        )
        best, tokens, trials, search_s = run_sweep(root, "search", search)
    print()
    print(
        f"grid:   {grid_trials} configurations x {args.steps} steps, best val loss {grid_best:.4f}, "
        f"{grid_tokens:,} tokens, {grid_s:.0f} s"
    )
    print(
        f"pruned: {trials} trials (TPE + successive halving), best val loss {best:.4f}, "
        f"{tokens:,} tokens = {tokens / grid_tokens:.1%} of the grid's, {search_s:.0f} s"
    )
    gap = best - grid_best
    print(
        f"gap: {gap:+.4f} val loss (target <= 0.05) using {tokens / grid_tokens:.1%} of the "
        f"tokens (target <= 35%): {'met' if gap <= 0.05 and tokens <= 0.35 * grid_tokens else 'NOT met'}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
