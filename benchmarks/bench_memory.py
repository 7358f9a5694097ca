"""Predicted vs measured peak memory of a training step (gptcore.planner.memory).

    python benchmarks/bench_memory.py [--only N,N] [--json]

Each configuration of GRID runs in a fresh process (child.py) that builds the model,
takes two training steps (the steady state: AdamW's state exists in the second) the
way gptcore.training.step does (autocast, calc_loss_batch, grad_accum micro-batches,
make_adamw's update) and reports the peak it measured:

- CPU: the growth of the process's resident memory high-water mark (VmHWM in
  /proc/self/status, reset through /proc/self/clear_refs just before the model is
  built), with glibc's mmap threshold fixed at 64 kB (MALLOC_MMAP_THRESHOLD_): every
  tensor above it gets its own mapping and gives it back when freed, so the figure
  is what the tensors need, not how much freed heap glibc keeps around (the Trainer's
  `reuse_freed_memory` keeps it, on purpose, for speed). Import overhead, the Python
  heap and torch's own libraries are in the baseline, so they do not count.
  Why not torch's profiler: its CPU memory events cost a callback per allocation
  (minutes at gpt2-small) and miss what oneDNN allocates itself.
- CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), which is
  what the caching allocator handed out to tensors (the CUDA context not included).

gpu_check.py runs CUDA_GRID with the same worker when a GPU is present.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
for folder in (REPO, HERE):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

from child import run_worker  # noqa: E402  (needs the path above)

RESULT_MARK = "MEMORY_RESULT "
CPU_TOLERANCE = 0.15
CUDA_TOLERANCE = 0.10
MEASURED_STEPS = 2


def row(preset: str, context: int, batch: int, precision: str, accum: int = 1, **model: Any):
    return {
        "preset": preset,
        "context": context,
        "batch": batch,
        "precision": precision,
        "accum": accum,
        "model": model,
    }


# Every row stays under ~5 GB: the machine is shared.
GRID: list[dict[str, Any]] = [
    row("tiny", 64, 1, "fp32"),
    row("tiny", 64, 16, "fp32"),
    row("tiny", 64, 8, "bf16", accum=2),
    row("tiny", 128, 4, "fp32", n_layers=4, emb_dim=128, context_length=128),  # quick
    row("book-124m", 256, 1, "fp32"),
    row("book-124m", 256, 2, "fp32"),  # the book's run
    row("book-124m", 256, 2, "bf16"),
    row("book-124m", 256, 4, "fp32", accum=2),
    row("book-124m", 256, 8, "bf16"),
    row("book-124m", 128, 16, "fp32"),
    row("gpt2-small", 1024, 1, "fp32"),
    row("gpt2-small", 1024, 1, "bf16", accum=2),
    row("gpt2-small", 1024, 2, "bf16"),
    row("gpt2-small", 512, 4, "fp32"),
]
CUDA_GRID: list[dict[str, Any]] = [
    *GRID,
    row("gpt2-small", 1024, 8, "bf16"),
    row("gpt2-medium", 1024, 4, "bf16"),
    row("gpt2-medium", 1024, 2, "fp32"),
    row("gpt2-large", 1024, 2, "bf16"),
    row("gpt2-large", 1024, 4, "bf16", accum=2),
]


def model_config(spec: dict[str, Any]):
    import dataclasses

    from gptcore.settings.model import get_preset

    return dataclasses.replace(get_preset(spec["preset"]), **spec["model"])


def predicted_bytes(spec: dict[str, Any], device_type: str) -> int:
    from gptcore.planner.memory import StepShape, training_memory

    shape = StepShape(
        model_config(spec),
        batch=spec["batch"],
        context=spec["context"],
        precision=spec["precision"],
        grad_accum=spec["accum"],
        adamw="fused",
        device_type=device_type,
    )
    return training_memory(shape).peak


# ---------------------------------------------------------------- the worker (one process)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def measure_step(spec: dict[str, Any], device_name: str) -> dict[str, Any]:
    """Build the model, take MEASURED_STEPS steps; the peak the step added (bytes)."""
    import dataclasses
    import gc

    import torch

    from gptcore.hardware.perf import make_adamw
    from gptcore.hardware.precision import autocast, resolve_precision
    from gptcore.model.gpt import GPTModel
    from gptcore.training.evaluate import calc_loss_batch

    device = torch.device(device_name)
    config = model_config(spec)
    _, amp_dtype = resolve_precision(spec["precision"], device)
    gen = torch.Generator().manual_seed(0)
    shape = (spec["batch"], spec["context"])
    batches = [
        (
            torch.randint(0, 50257, shape, generator=gen),
            torch.randint(0, 50257, shape, generator=gen),
        )
        for _ in range(spec["accum"])
    ]

    def steps(model: GPTModel, data: list) -> tuple[float, str]:
        optimizer, impl = make_adamw(list(model.parameters()), 4e-4, 0.1, (0.9, 0.999))
        for _ in range(MEASURED_STEPS):
            optimizer.zero_grad()
            for x, y in data:
                with autocast(device, amp_dtype):
                    loss = calc_loss_batch(x, y, model, device)
                (loss / len(data)).backward()
            optimizer.step()
        return float(loss.item()), impl

    # A warm-up on a small model first: the kernels' code pages, thread pools and
    # caches that any first step loads are the runtime's, not this configuration's.
    small = dataclasses.replace(config, n_layers=1, emb_dim=32, n_heads=1, context_length=16)
    steps(GPTModel(small).to(device), [(x[:1, :16], y[:1, :16]) for x, y in batches])
    gc.collect()
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
    else:
        Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS from here on
        start = _status_kb("VmRSS") * 1024
    torch.manual_seed(123)
    model = GPTModel(config).to(device)
    model.train()
    loss, impl = steps(model, batches)
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - start
    else:
        peak = _status_kb("VmHWM") * 1024 - start
    return {"measured": peak, "adamw": impl, "loss": loss}


def run_row(spec: dict[str, Any], device_name: str, timeout_s: float = 600) -> dict[str, Any]:
    """One row in a fresh process: predicted, measured and their ratio."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "MALLOC_MMAP_THRESHOLD_": "65536"}
    command = [sys.executable, __file__, "--child", json.dumps(spec), "--device", device_name]
    ran = run_worker(command, env=env, cwd=REPO, timeout_s=timeout_s)
    predicted = predicted_bytes(spec, "cuda" if device_name.startswith("cuda") else "cpu")
    if ran is None:
        return {**spec, "predicted": predicted, "error": f"timed out after {timeout_s:.0f} s"}
    result = ran.result(RESULT_MARK)
    if result is None:
        return {**spec, "predicted": predicted, "error": ran.failure()}
    ratio = predicted / result["measured"] if result["measured"] > 0 else float("inf")
    return {**spec, "predicted": predicted, **result, "ratio": round(ratio, 3)}


def describe(spec: dict[str, Any]) -> str:
    extra = ",".join(f"{k}={v}" for k, v in spec["model"].items())
    name = spec["preset"] + (f"[{extra}]" if extra else "")
    accum = f" x{spec['accum']}" if spec["accum"] > 1 else ""
    return f"{name} ctx{spec['context']} b{spec['batch']}{accum} {spec['precision']}"


def print_table(rows: list[dict[str, Any]], tolerance: float) -> int:
    """The table; returns how many rows are off by more than `tolerance`."""
    mb = 2**20
    print(f"{'configuration':<48} {'predicted':>10} {'measured':>10} {'ratio':>6}")
    off = 0
    for r in rows:
        if "error" in r:
            print(f"{describe(r):<48} {r['predicted'] / mb:>8.0f}MB {'failed':>10}  {r['error']}")
            off += 1
            continue
        ok = abs(r["ratio"] - 1) <= tolerance
        off += not ok
        print(
            f"{describe(r):<48} {r['predicted'] / mb:>8.0f}MB {r['measured'] / mb:>8.0f}MB "
            f"{r['ratio']:>6.3f}{'' if ok else '  OFF'}"
        )
    print(f"{len(rows) - off} of {len(rows)} rows within ±{tolerance:.0%}")
    return off


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--only", help="comma-separated row numbers (0-based)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_MARK + json.dumps(measure_step(json.loads(args.child), args.device)))
        return 0
    grid = CUDA_GRID if args.device.startswith("cuda") else GRID
    if args.only:
        grid = [grid[int(i)] for i in args.only.split(",")]
    rows = [run_row(spec, args.device) for spec in grid]
    if args.json:
        print(json.dumps(rows))
        return 0
    tolerance = CUDA_TOLERANCE if args.device.startswith("cuda") else CPU_TOLERANCE
    return 1 if print_table(rows, tolerance) else 0


if __name__ == "__main__":
    sys.exit(main())
