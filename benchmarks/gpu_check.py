"""GPU check: the CUDA tests, then gpt2-small training and generation speed, as one JSON.

    python benchmarks/gpu_check.py [--steps 20] [--batch 8] [--budget-s 450]

On one GPU it takes under 8 minutes: `pytest -m cuda -q` first (pass/fail
counts), then gpt2-small (context 1024) trained by the Trainer for `--steps`
timed steps after warm-up in each variant below, then KV-cache generation.
Every variant runs in its own process, so its peak memory is its own and a
failure (out of memory, a compile error) is recorded in its result, not fatal.
Variants left when the time budget runs out are reported as skipped.

Each training result: tokens/s (steady state, after warm-up), peak memory
(torch.cuda.max_memory_allocated), and MFU against the card's peak
(gptcore.perf.peak_flops; null for a card it does not know). Without CUDA the
script prints {"cuda": false, "reason": ...} and exits 0.

Last, the memory model's grid (bench_memory.CUDA_GRID: the CPU grid plus gpt2-medium
and gpt2-large): predicted peak vs torch.cuda.max_memory_allocated, each row in its own
process, within ±10% or not (`--memory-budget-s`, `--skip-memory`). Without CUDA the
report says they were not measured.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for folder in (REPO, HERE):  # gptcore, and child.py also when a test loads this file
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from child import run_worker  # noqa: E402  (needs the path above)

# The chapter's ladder, in the order worth having if the budget runs short.
VARIANTS: list[dict[str, Any]] = [
    {"name": "fp32+tf32", "precision": "fp32", "compile": False, "vocab_multiple": 1},
    {"name": "bf16", "precision": "bf16", "compile": False, "vocab_multiple": 1},
    {"name": "fp16", "precision": "fp16", "compile": False, "vocab_multiple": 1},
    {"name": "bf16 vocab64", "precision": "bf16", "compile": False, "vocab_multiple": 64},
    {"name": "bf16 compile", "precision": "bf16", "compile": True, "vocab_multiple": 1},
    {"name": "bf16 compile vocab64", "precision": "bf16", "compile": True, "vocab_multiple": 64},
]
WARMUP_STEPS = 3  # first touch, cuBLAS autotuning, compilation, the step-0 evaluation
TESTS_TIMEOUT_S = 240
VARIANT_TIMEOUT_S = 150
COMPILE_TIMEOUT_S = 240
GENERATE_TIMEOUT_S = 120
RESULT_MARK = "GPU_CHECK_RESULT "


# ---------------------------------------------------------------- children (one process each)


def train_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """Train gpt2-small for warm-up + spec["steps"] steps with the Trainer; the speed."""
    import dataclasses

    import torch

    from gptcore.hardware.perf import mfu
    from gptcore.runs.events import StepEnd
    from gptcore.settings.model import get_preset
    from gptcore.settings.train import TrainConfig
    from gptcore.training.trainer import Trainer

    marks: list[tuple[float, int]] = []

    def listen(event: object) -> None:
        if isinstance(event, StepEnd):
            marks.append((event.elapsed_s, event.tokens_seen))

    model = dataclasses.replace(get_preset("gpt2-small"), vocab_multiple=spec["vocab_multiple"])
    cfg = TrainConfig(
        corpus="builtin",
        batch_size=spec["batch"],
        epochs=1000,  # max_steps ends the run; the built-in corpus is ~11 steps an epoch
        max_steps=WARMUP_STEPS + spec["steps"],
        eval_freq=10**6,  # one evaluation, after step 0 (inside the warm-up)
        eval_iter=1,
        sample_tokens=0,
        device=spec.get("device", "cuda"),
        precision=spec["precision"],
        compile=spec["compile"],
        keep_last=1,
    )
    torch.cuda.reset_peak_memory_stats()
    trainer = Trainer(model, cfg, listeners=[listen])
    result = trainer.run()
    if getattr(result, "reason", "") != "max_steps":
        raise RuntimeError(f"the run ended with {result}")
    (t0, n0), (t1, n1) = marks[WARMUP_STEPS - 1], marks[-1]
    speed = (n1 - n0) / (t1 - t0)
    seq = trainer.plan.length if trainer.plan else model.context_length
    util = mfu(speed, model, seq, trainer.peak_flops)
    return {
        "tokens_per_s": round(speed),
        "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20),
        "mfu": round(util, 4) if util is not None else None,
        "precision": trainer.precision,
        "adamw": trainer.adamw_impl,
        "timed_steps": spec["steps"],
    }


def generate_variant(spec: dict[str, Any]) -> dict[str, Any]:
    """Tokens/s of greedy KV-cache generation (gptcore.generate) with gpt2-small."""
    import torch

    from gptcore.model.gpt import GPTModel
    from gptcore.model.inference import prepare_for_inference
    from gptcore.sampling.decode import generate_token_ids
    from gptcore.settings.model import get_preset
    from gptcore.settings.sampling import make_settings

    torch.manual_seed(123)
    model = GPTModel(get_preset("gpt2-small")).to("cuda")
    model = prepare_for_inference(model, spec["precision"])
    prompt = list(range(1000, 1016))
    n = spec["tokens"]

    def timed(count: int) -> float:
        settings = make_settings(max_new_tokens=count, temperature=0.0, eos_id=None)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in generate_token_ids(model, prompt, settings):
            pass
        torch.cuda.synchronize()
        return time.perf_counter() - start

    timed(8)  # warm-up: kernels, allocator
    elapsed = timed(n)
    return {
        "tokens_per_s": round(n / elapsed, 1),
        "new_tokens": n,
        "precision": spec["precision"],
        "peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20),
    }


def child_main(spec: dict[str, Any]) -> int:
    # A private home for the run's checkpoints (over 1 GB each), removed afterwards.
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as home:
        os.environ.setdefault("GPT_TUI_HOME", home)
        job = generate_variant if spec["kind"] == "generate" else train_variant
        print(RESULT_MARK + json.dumps(job(spec)), flush=True)
    return 0


# ---------------------------------------------------------------- the parent


def memory_rows(budget_s: float) -> dict[str, Any]:
    """bench_memory's CUDA grid: predicted vs torch.cuda.max_memory_allocated per row
    (each in its own process), within ±10% (CUDA_TOLERANCE) or not."""
    import bench_memory

    started = time.monotonic()
    rows = []
    for spec in bench_memory.CUDA_GRID:
        left = budget_s - (time.monotonic() - started)
        if left < 20:
            rows.append({**spec, "skipped": "time budget"})
            continue
        row = bench_memory.run_row(spec, "cuda", timeout_s=min(120, left))
        row["within"] = "ratio" in row and abs(row["ratio"] - 1) <= bench_memory.CUDA_TOLERANCE
        rows.append(row)
        print(f"# memory {bench_memory.describe(spec)}: {row.get('ratio')}", file=sys.stderr)
    measured = [r for r in rows if "ratio" in r]
    return {
        "tolerance": bench_memory.CUDA_TOLERANCE,
        "rows": rows,
        "within": sum(r["within"] for r in measured),
        "measured": len(measured),
    }


def run_child(command: list[str], timeout_s: float) -> dict[str, Any]:
    """Run one child; its result line, or why there is none (exit code, last stderr)."""
    ran = run_worker(command, cwd=REPO, timeout_s=timeout_s)
    if ran is None:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    result = ran.result(RESULT_MARK)
    if result is not None:
        return {"ok": True, "wall_s": ran.wall_s, **result}
    return {"ok": False, "wall_s": ran.wall_s, "error": ran.failure()}


def pytest_counts(output: str) -> dict[str, int]:
    """{"passed": 5, "skipped": 1, ...} from pytest's last summary line."""
    counts: dict[str, int] = {}
    for number, word in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", output):
        counts["errors" if word.startswith("error") else word] = int(number)
    return counts


def run_cuda_tests(timeout_s: float) -> dict[str, Any]:
    command = [sys.executable, "-m", "pytest", "-m", "cuda", "-q", "-p", "no:cacheprovider"]
    ran = run_worker(command, cwd=REPO, timeout_s=timeout_s)
    if ran is None:
        return {"ok": False, "error": f"timed out after {timeout_s:.0f} s"}
    counts = pytest_counts(ran.stdout.strip().splitlines()[-1] if ran.stdout.strip() else "")
    return {"ok": ran.returncode == 0, "exit_code": ran.returncode, "wall_s": ran.wall_s, **counts}


def no_cuda_report() -> dict[str, Any] | None:
    """The whole report when this machine has no usable CUDA device, else None."""
    try:
        import torch
    except ImportError as exc:
        return {"cuda": False, "reason": f"torch is not importable: {exc}"}
    if torch.cuda.is_available():
        return None
    if torch.version.cuda is None:
        reason = f"this torch build ({torch.__version__}) has no CUDA support"
    else:
        reason = "no CUDA device is visible (driver missing or CUDA_VISIBLE_DEVICES empty)"
    return {"cuda": False, "reason": reason, "torch": torch.__version__}


def device_info() -> dict[str, Any]:
    import torch

    from gptcore.hardware.perf import peak_flops

    device = torch.device("cuda")
    props = torch.cuda.get_device_properties(device)
    return {
        "cuda": True,
        "card": torch.cuda.get_device_name(device),
        "memory_gb": round(props.total_memory / 2**30, 1),
        "compute_capability": f"{props.major}.{props.minor}",
        "torch": torch.__version__,
        "cuda_version": torch.version.cuda,
        "bf16_supported": torch.cuda.is_bf16_supported(),
        "peak_bf16_tflops": (peak_flops(device, "bf16") or 0) / 1e12 or None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant")
    parser.add_argument("--batch", type=int, default=8, help="batch size (context 1024)")
    parser.add_argument("--gen-tokens", type=int, default=256, help="new tokens to generate")
    parser.add_argument("--budget-s", type=float, default=450, help="stop starting variants after")
    parser.add_argument("--skip-tests", action="store_true", help="do not run pytest -m cuda")
    parser.add_argument("--skip-memory", action="store_true", help="do not run the memory grid")
    parser.add_argument(
        "--memory-budget-s", type=float, default=300, help="stop starting memory rows after"
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(json.loads(args.child))

    started = time.monotonic()
    report = no_cuda_report()
    if report is not None:
        report["memory"] = "not measured: no CUDA device (bench_memory.CUDA_GRID needs one)"
        print(json.dumps(report, indent=2))
        return 0
    report = device_info()
    report["settings"] = {"model": "gpt2-small", "context": 1024, "batch": args.batch}
    report["tests"] = (
        {"skipped": "--skip-tests"} if args.skip_tests else run_cuda_tests(TESTS_TIMEOUT_S)
    )
    precision = "bf16" if report["bf16_supported"] else "fp16"
    jobs = [
        {**v, "kind": "train", "steps": args.steps, "batch": args.batch}
        for v in VARIANTS
        if report["bf16_supported"] or v["precision"] != "bf16"
    ]
    jobs.append(
        {
            "name": f"generate {precision}",
            "kind": "generate",
            "precision": precision,
            "tokens": args.gen_tokens,
        }  # fmt: skip
    )
    results = []
    for job in jobs:
        timeout = (
            GENERATE_TIMEOUT_S if job["kind"] == "generate"
            else COMPILE_TIMEOUT_S if job.get("compile") else VARIANT_TIMEOUT_S
        )  # fmt: skip
        left = args.budget_s - (time.monotonic() - started)
        if left < 30:
            results.append({"name": job["name"], "ok": False, "error": "skipped: time budget"})
            continue
        command = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(job)]
        results.append({"name": job["name"], **run_child(command, min(timeout, left))})
        print(f"# {job['name']}: {results[-1]}", file=sys.stderr, flush=True)
    report["training"] = [r for r in results if not r["name"].startswith("generate")]
    report["generation"] = [r for r in results if r["name"].startswith("generate")]
    report["memory"] = (
        {"skipped": "--skip-memory"} if args.skip_memory else memory_rows(args.memory_budget_s)
    )
    report["wall_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
