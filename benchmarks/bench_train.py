"""Training speed: our Trainer against the book-style model and transformers' GPT-2.

    python benchmarks/bench_train.py [--steps 3] [--repeats 3] [--batches 2,8] [--isa avx2]
                                     [--fast-masks]

The book's workload: book-124m (context 256), AdamW(lr 4e-4, weight decay 0.1),
on the current device. Every variant runs in its own fresh process (so peak
memory is its own), times `--steps` optimizer steps after warm-up, and the
whole set repeats `--repeats` times; medians and ratios against the book-style
yardstick (../shared/bench/book_style.py train) are printed at the end.

Variants: our engine in each precision mode the device offers ("auto" is the
default mode), the book-style model, and transformers' GPT2LMHeadModel with the
same shape (untied head, dropout 0.1). The batch-8 run shows scaling.
`--fast-masks` adds the default mode with `dropout_masks = "fast"` (gptcore.dropout).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

from child import run_json_in_private_home

HERE = Path(__file__).resolve().parent
BOOK_STYLE = (
    Path(os.environ.get("GPT_TUI_SHARED", HERE.parent.parent / "shared"))
    / "bench"
    / "book_style.py"
)

# Each worker prints one JSON line: tokens/s, peak memory (MB), and MFU when known.
OURS = r"""
import json, resource, sys, os
args = json.loads(sys.argv[1])
import torch
from gptcore.settings.model import get_preset
from gptcore.settings.train import TrainConfig
from gptcore.runs.events import StepEnd
from gptcore.training.trainer import Trainer
times, mfu, info = [], [], {}
def listen(event):
    if isinstance(event, StepEnd):
        times.append((event.elapsed_s, event.tokens_seen))
        mfu.append(event.mfu)
warm = 2  # step 0 (first-touch allocations) and the step-0 evaluation
cfg = TrainConfig(corpus="builtin", batch_size=args["batch"], max_steps=warm + args["steps"],
                  eval_freq=10**6, eval_iter=1, sample_tokens=0, precision=args["precision"],
                  keep_last=1, dropout_masks=args["masks"])
trainer = Trainer(get_preset("book-124m"), cfg, listeners=[listen])
result = trainer.run()
assert result.reason == "max_steps", result
(t0, n0), (t1, n1) = times[warm - 1], times[-1]
peak = torch.cuda.max_memory_allocated() / 2**20 if torch.cuda.is_available() else \
    resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"tokens_per_s": (n1 - n0) / (t1 - t0), "peak_mb": peak, "mfu": mfu[-1],
                  "precision": trainer.precision, "device": str(trainer.device)}))
"""

BOOK = r"""
import json, resource, runpy, sys, io, contextlib
path, steps, batch = sys.argv[1], sys.argv[2], sys.argv[3]
sys.argv = [path, "train", "--steps", steps, "--batch", batch]
out = io.StringIO()
with contextlib.redirect_stdout(out):
    runpy.run_path(path, run_name="__main__")
result = json.loads(out.getvalue().strip().splitlines()[-1])
print(json.dumps({"tokens_per_s": result["train_tokens_per_s"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "mfu": None}))
"""

HF = r"""
import json, resource, sys, time
import torch
from transformers import GPT2Config, GPT2LMHeadModel
steps, batch = int(sys.argv[1]), int(sys.argv[2])
torch.manual_seed(123)
config = GPT2Config(vocab_size=50257, n_positions=256, n_embd=768, n_layer=12, n_head=12,
                    resid_pdrop=0.1, embd_pdrop=0.1, attn_pdrop=0.1, tie_word_embeddings=False)
model = GPT2LMHeadModel(config).train()
opt = torch.optim.AdamW(model.parameters(), lr=4e-4, weight_decay=0.1)
g = torch.Generator().manual_seed(0)
data = [torch.randint(0, 50257, (batch, 256), generator=g) for _ in range(steps + 1)]
def step(x):
    opt.zero_grad()
    model(input_ids=x, labels=x).loss.backward()
    opt.step()
step(data[0])
t = time.perf_counter()
for x in data[1:]:
    step(x)
elapsed = time.perf_counter() - t
print(json.dumps({"tokens_per_s": steps * batch * 256 / elapsed,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "mfu": None}))
"""


# PyTorch's kernel dispatch and oneDNN capped at AVX2, bf16 detection off: an AVX2-only
# CPU's code paths on a newer one (same memory system, so ratios carry over best).
AVX2_ONLY = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "GPT_TUI_CPU_BF16": "0",
}


def run_worker(code: str, *argv: str) -> dict:
    return run_json_in_private_home(code, *argv, prefix="bench-train-")


def precisions() -> list[str]:
    import torch

    from gptcore.hardware.perf import cpu_has_native_bf16

    modes = ["auto", "fp32"]
    if torch.cuda.is_available():
        modes += ["bf16", "fp16"]
    elif cpu_has_native_bf16():
        modes.append("bf16")
    else:  # emulated bf16 runs many times slower than fp32: not worth minutes per step
        print(
            "bf16 skipped: this CPU has no native bf16 (pass --modes auto,fp32,bf16 to force)",
            file=sys.stderr,
        )
    return modes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=3, help="timed optimizer steps per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--batches", default="2,8", help="batch sizes (the first gets every variant)"
    )
    parser.add_argument(
        "--modes", default=None, help="our precision modes (default: all the device has)"
    )
    parser.add_argument("--no-hf", action="store_true", help="skip transformers' GPT-2")
    parser.add_argument(
        "--fast-masks",
        action="store_true",
        help='also time the default mode with train.dropout_masks = "fast" at every batch',
    )
    parser.add_argument(
        "--isa",
        choices=["native", "avx2"],
        default="native",
        help="avx2: every variant (yardsticks included) runs PyTorch's and oneDNN's AVX2 "
        "kernels and sees no native bf16, as on an AVX2-only CPU",
    )
    args = parser.parse_args()
    if args.isa == "avx2":  # inherited by every worker process (run_worker copies os.environ)
        os.environ.update(AVX2_ONLY)
    if not BOOK_STYLE.exists():
        sys.exit(f"the book-style yardstick is not at {BOOK_STYLE} (set GPT_TUI_SHARED)")
    modes = args.modes.split(",") if args.modes else precisions()
    batches = [int(b) for b in args.batches.split(",")]
    results: dict[tuple[str, int], list[dict]] = {}
    for rep in range(args.repeats):
        for i, batch in enumerate(batches):
            # The larger batches only compare our default mode with the yardstick.
            variants = [f"ours-{m}" for m in (modes if i == 0 else ["auto"])]
            if args.fast_masks:
                variants.append("ours-auto+fast-masks")
            variants.append("book-style")
            if i == 0 and not args.no_hf:
                variants.append("transformers")
            for name in variants:
                if name == "book-style":
                    r = run_worker(BOOK, str(BOOK_STYLE), str(args.steps), str(batch))
                elif name == "transformers":
                    r = run_worker(HF, str(args.steps), str(batch))
                else:
                    mode, _, masks = name.removeprefix("ours-").partition("+")
                    spec = {
                        "batch": batch,
                        "steps": args.steps,
                        "precision": mode,
                        "masks": "fast" if masks else "torch",
                    }
                    r = run_worker(OURS, json.dumps(spec))
                    name = f"{name} ({r['precision']} on {r['device']})"
                results.setdefault((name, batch), []).append(r)
                print(
                    f"rep {rep + 1} batch {batch} {name}: {r['tokens_per_s']:.1f} tok/s",
                    file=sys.stderr,
                )
    print(
        f"\nbook-124m, context 256, {args.steps} timed steps, {args.repeats} repetitions, "
        f"{args.isa} kernels; tokens/s min/median/max"
    )
    for batch in batches:
        book = statistics.median(r["tokens_per_s"] for r in results[("book-style", batch)])
        print(f"\nbatch {batch}:")
        for (name, b), runs in results.items():
            if b != batch:
                continue
            tps = sorted(r["tokens_per_s"] for r in runs)
            med = statistics.median(tps)
            mfus = [r["mfu"] for r in runs if r["mfu"] is not None]
            mfu = f"MFU {statistics.median(mfus):.1%}" if mfus else "MFU n/a (unknown peak)"
            peak = statistics.median(r["peak_mb"] for r in runs)
            print(
                f"  {name:<34} {tps[0]:8.1f} {med:8.1f} {tps[-1]:8.1f}  x{med / book:5.2f} vs book  "
                f"peak {peak:7.0f} MB  {mfu}"
            )


if __name__ == "__main__":
    main()
