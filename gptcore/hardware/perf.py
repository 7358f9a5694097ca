"""Model FLOPs utilisation (MFU) and per-device fast-path choices.

FLOPs per token follow the PaLM appendix: 6N + 12·L·H·Q·T, where N counts the
parameters that take part in matrix multiplies (everything but the two
embedding lookups; the output head counts even when tied), L layers, H heads,
Q head size and T the sequence length. Peaks are dense bf16/fp16 tensor-core
figures from the vendors' data sheets; TF32 is half of them, as on Ampere and
Hopper. Unknown devices (CPUs included) have no peak: MFU is then None.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import os
import threading
from collections.abc import Iterator

import torch

from gptcore.settings.model import GPTConfig

# Dense (no sparsity) bf16 peak FLOP/s by a substring of the CUDA device name.
BF16_PEAKS = [
    ("H200", 989e12),
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("GH200", 989e12),
    ("A100", 312e12),
    ("A10G", 70e12),
    ("A10", 125e12),
    ("L40S", 362e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16 only
]


def matmul_parameters(config: GPTConfig) -> int:
    """Parameters used in matrix multiplies: blocks + output head (no embeddings)."""
    d = config.emb_dim
    qkv = 3 * d * d + (3 * d if config.qkv_bias else 0)
    out_proj = d * d + d
    feed_forward = (d * 4 * d + 4 * d) + (4 * d * d + d)
    per_block = qkv + out_proj + feed_forward
    return config.n_layers * per_block + d * config.padded_vocab_size  # padding rows do FLOPs


def flops_per_token(config: GPTConfig, seq_len: int | None = None) -> float:
    """Training FLOPs per token (forward + backward)."""
    t = seq_len or config.context_length
    attention = 12 * config.n_layers * config.n_heads * config.head_dim * t
    return 6 * matmul_parameters(config) + attention


def peak_flops(device: torch.device, precision: str) -> float | None:
    """The device's peak FLOP/s for this precision, or None when unknown."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, bf16 in BF16_PEAKS:
        if key in name:
            return bf16 if precision in ("bf16", "fp16") else bf16 / 2
    return None


def mfu(tokens_per_s: float, config: GPTConfig, seq_len: int, peak: float | None) -> float | None:
    if peak is None or tokens_per_s <= 0:
        return None
    return tokens_per_s * flops_per_token(config, seq_len) / peak


# "1" or "0" overrides the CPU's native-bf16 detection: the table's one input a user
# (or a test) may set. 0 keeps "auto" in fp32 on a CPU that has bf16; 1 trains "auto"
# in bf16 on one whose /proc/cpuinfo does not say so.
NATIVE_BF16_ENV = "GPT_TUI_CPU_BF16"


# x86 CPU flags of bf16 matrix multiplies in hardware. oneDNN's own check
# (torch.ops.mkldnn._is_mkldnn_bf16_supported) also says yes for plain AVX-512, where
# bf16 is emulated and slower than fp32, so it is not the one asked.
NATIVE_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


@functools.cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "flags":
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 matrices in hardware (AVX512-BF16 or AMX);
    GPT_TUI_CPU_BF16=1/0 answers instead. Without that hardware bf16 autocast on the
    CPU is emulated and slower than fp32."""
    forced = os.environ.get(NATIVE_BF16_ENV, "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return bool(cpu_flags() & NATIVE_BF16_FLAGS)


def cuda_has_native_bf16() -> bool:
    """True when the current GPU computes in bf16 natively (Ampere and newer): not
    the emulated bf16 that PyTorch also reports for older cards."""
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # a PyTorch before 2.3 reports native support only
        return torch.cuda.is_bf16_supported()


def default_precision(device: torch.device) -> str:
    """What precision "auto" means on a device: a table of what the hardware supports,
    never a timing, so the same config trains alike however busy the machine is.

        CUDA   bf16 where the GPU has it natively, else fp16 (with a GradScaler)
        CPU    bf16 with native bf16 (AVX512-BF16 / AMX; GPT_TUI_CPU_BF16=1/0
               overrides the detection), else fp32
        other  fp32 (MPS)

    A resumed run keeps the precision its checkpoint recorded (training.precision).
    Runs that must reproduce the book's numbers set precision = "fp32" explicitly.
    """
    if device.type == "cuda":
        return "bf16" if cuda_has_native_bf16() else "fp16"
    if device.type == "cpu" and cpu_has_native_bf16():
        return "bf16"
    return "fp32"


def enable_tf32(device: torch.device) -> None:
    """Let fp32 matrix multiplies use TF32 tensor cores (Ampere and newer)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def make_adamw(
    params: list[torch.nn.Parameter],
    lr: float,
    weight_decay: float,
    betas: tuple[float, float],
    impl: str = "auto",
) -> tuple[torch.optim.AdamW, str]:
    """AdamW with the update implementation `impl`; returns it and the one used.

    "auto" takes the single-kernel fused update where PyTorch has one for the
    parameters' device (CUDA; the CPU since PyTorch 2.4), else "foreach".
    "default" is whatever torch.optim.AdamW picks by itself, as the book's
    code gets (a per-tensor loop on the CPU): use it for the book's update,
    rounding included. All compute AdamW; they differ only in rounding.
    """
    kwargs = {"lr": lr, "weight_decay": weight_decay, "betas": betas}
    if impl in ("auto", "fused"):
        try:
            return torch.optim.AdamW(params, fused=True, **kwargs), "fused"
        except (RuntimeError, ValueError, TypeError):
            if impl == "fused":
                raise
            impl = "foreach"
    if impl == "foreach":
        return torch.optim.AdamW(params, foreach=True, **kwargs), "foreach"
    return torch.optim.AdamW(params, **kwargs), "default"


# glibc mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_GLIBC_MMAP_MAX = 65536  # glibc's defaults, restored afterwards
_GLIBC_TRIM_THRESHOLD = 128 * 1024
# "0" turns the heap reuse off (to measure it, or if a platform misbehaves).
REUSE_MEMORY_ENV = "GPT_TUI_REUSE_MEMORY"
_reuse_lock = threading.Lock()
_reuse_users = 0


def _glibc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


@contextlib.contextmanager
def reuse_freed_memory() -> Iterator[bool]:
    """While inside, large CPU tensors are served from memory the process already holds.

    glibc gives every allocation over 32 MB its own fresh mapping and unmaps it on
    free, so each training step page-faults (and the kernel zeroes) its big
    temporaries again: the logits and their gradient, the embedding's gradient.
    On book-124m at batch 2 that was a quarter of a bf16 step. Inside this context
    such blocks come from the heap and stay there for reuse; on leaving, glibc's
    defaults return and the heap is trimmed. Process-wide and nestable; yields
    whether it took effect (glibc only, and not turned off by GPT_TUI_REUSE_MEMORY=0).
    """
    global _reuse_users
    libc = None if os.environ.get(REUSE_MEMORY_ENV, "").strip() == "0" else _glibc()
    if libc is None:
        yield False
        return
    with _reuse_lock:
        _reuse_users += 1
        if _reuse_users == 1:
            libc.mallopt(_M_MMAP_MAX, 0)
            libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)
    try:
        yield True
    finally:
        with _reuse_lock:
            _reuse_users -= 1
            if _reuse_users == 0:
                libc.mallopt(_M_MMAP_MAX, _GLIBC_MMAP_MAX)
                libc.mallopt(_M_TRIM_THRESHOLD, _GLIBC_TRIM_THRESHOLD)
                libc.malloc_trim(0)
