"""The GPUs a plan can name for a machine that is not this one (no torch import: the
CLI lists them in `gpt-tui plan --help`)."""

from __future__ import annotations

# GPUs a plan can name: (name, memory in GiB). Peak FLOP/s come from
# gptcore.hardware.perf.BF16_PEAKS (the same figures MFU uses).
GPUS: tuple[tuple[str, float], ...] = (
    ("H200 141GB", 141),
    ("H100 80GB", 80),
    ("H100 PCIe 80GB", 80),
    ("A100 80GB", 80),
    ("A100 40GB", 40),
    ("L40S 48GB", 48),
    ("A10G 24GB", 24),
    ("A10 24GB", 24),
    ("L4 24GB", 24),
    ("RTX 4090 24GB", 24),
    ("RTX 3090 24GB", 24),
    ("V100 32GB", 32),
    ("V100 16GB", 16),
)
