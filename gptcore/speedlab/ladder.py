"""Speed Lab: the chapter's speed-up ladder, measured on this machine.

The book's bonus material takes its training code through ten changes, each
kept by the next (cumulative): causal mask on the fly, TF32, fused AdamW,
pinned memory, bf16 autocast, native LayerNorm/GELU, FlashAttention (SDPA),
torch.compile, a vocabulary padded to a multiple of 64, the largest batch
that fits. `run_ladder` times a few optimizer steps per rung on random tokens
of a chosen workload and reports tokens/s, peak memory and the ratio to rung 0.
Rungs that cannot apply on this device are listed with the reason instead.

Each rung's model is gptcore.model.gpt.GPTModel with the book's own modules put
back where the rung has not yet switched to the fast ones: attention with a
stored causal-mask buffer and an explicit softmax, the hand-written LayerNorm
and tanh-GELU. PyTorch's fused CPU attention has no dropout: on a CPU under bf16
autocast, the SDPA rung runs the engine's attention, SDPA's math path written
out (gptcore.model.dropout).

Peak memory: on CUDA, torch.cuda.max_memory_allocated during the rung. On a
CPU, how far the process's peak resident memory rose above its size at the
rung's start (Linux resets the peak through /proc/self/clear_refs; elsewhere
ru_maxrss, a lifetime peak, so a rung only shows growth past earlier peaks).
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import math
import platform
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from gptcore.errors import DiskFullError
from gptcore.hardware.device import pick_device
from gptcore.hardware.perf import cpu_has_native_bf16, make_adamw, reuse_freed_memory
from gptcore.model.gpt import GPTModel, MultiHeadAttention
from gptcore.settings.model import GPTConfig, get_preset
from gptcore.speedlab.results import (
    Cancelled,
    Event,
    RungFinished,
    RungResult,
    RungStarted,
    SpeedReport,
    StepDone,
    results_dir,
    save_report,
)
from gptcore.speedlab.rungs import COMPILE_ON_CPU, DEFAULT_BATCH, DEFAULT_MODEL, RUNGS, flags_for
from gptcore.util.fsutil import disk_full

VOCAB_MULTIPLE = 64


MAX_BATCH_LIMIT = 1024  # the largest-batch search stops here even if memory remains


LR, WEIGHT_DECAY = 0.0004, 0.1  # the book's AdamW settings


class BookAttention(MultiHeadAttention):
    """The book's chapter-3 attention: scores, causal mask, softmax, weights @ values.

    `stored_mask`: the mask is a registered buffer sized to the context (the
    book's code); otherwise it is made for each forward's length (rung 1).
    """

    def __init__(self, config: GPTConfig, stored_mask: bool) -> None:
        super().__init__(config)
        self.dropout = nn.Dropout(config.drop_rate)
        self.stored_mask = stored_mask
        if stored_mask:
            n = config.context_length
            self.register_buffer("mask", torch.triu(torch.ones(n, n), diagonal=1))

    def forward(self, x: torch.Tensor, cache: object = None, layer: int = 0) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self._heads(self.W_query(x)),
            self._heads(self.W_key(x)),
            self._heads(self.W_value(x)),
        )
        scores = q @ k.transpose(2, 3)
        if self.stored_mask:
            mask = self.mask.bool()[:t, :t]
        else:
            mask = torch.triu(torch.ones(t, t, device=x.device, dtype=torch.bool), diagonal=1)
        scores.masked_fill_(mask, -torch.inf)
        weights = self.dropout(torch.softmax(scores / k.shape[-1] ** 0.5, dim=-1))
        return self.out_proj((weights @ v).transpose(1, 2).reshape(b, t, d))


class BookLayerNorm(nn.Module):
    """The book's hand-written LayerNorm."""

    def __init__(self, emb_dim: int) -> None:
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class BookGELU(nn.Module):
    """The book's tanh approximation of GELU, written out."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = math.sqrt(2.0 / math.pi)
        return 0.5 * x * (1 + torch.tanh(c * (x + 0.044715 * torch.pow(x, 3))))


def build_model(config: GPTConfig, flags: set[str]) -> GPTModel:
    """GPTModel for a rung: the book's modules wherever `flags` has not switched to
    the fast ones ("sdpa" for attention, "native" for LayerNorm/GELU)."""
    if "vocab_pad" in flags:
        config = dataclasses.replace(config, vocab_multiple=VOCAB_MULTIPLE)
    model = GPTModel(config)
    for block in model.trf_blocks:
        if "sdpa" not in flags:
            block.att = BookAttention(config, stored_mask="mask" not in flags)
        if "native" not in flags:
            block.norm1, block.norm2 = BookLayerNorm(config.emb_dim), BookLayerNorm(config.emb_dim)
            block.ff.layers[1] = BookGELU()
    if "native" not in flags:
        model.final_norm = BookLayerNorm(config.emb_dim)
    return model


def device_name(device: Any) -> str:
    """The CUDA card's name, or the CPU's model name."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return f"Apple {platform.machine()} (MPS)"
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f,
    ):
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def skip_reasons(device: Any, compile: bool | None = None) -> dict[str, str]:
    """Rung key -> why it does not apply on `device` (absent: it runs).

    `compile`: None skips torch.compile on a CPU only; True/False force it.
    """
    cuda = device.type == "cuda"
    reasons = {}
    if not cuda:
        reasons["tf32"] = "CUDA only (NVIDIA tensor cores)"
        reasons["pinned"] = "CUDA only (copies to a GPU)"
        reasons["max_batch"] = "no fixed memory ceiling on a CPU"
    if not _fused_adamw_available(device):
        reasons["fused_adamw"] = f"this PyTorch has no fused AdamW for {device.type}"
    if cuda and not torch.cuda.is_bf16_supported():
        reasons["bf16"] = "this GPU has no bf16"
    elif device.type == "cpu" and not cpu_has_native_bf16():
        reasons["bf16"] = "this CPU has no native bf16"
    elif device.type not in ("cuda", "cpu"):
        reasons["bf16"] = f"bf16 autocast is measured on CUDA and CPUs only, not {device.type}"
    if compile is False:
        reasons["compile"] = "turned off"
    elif compile is None and not cuda:
        reasons["compile"] = COMPILE_ON_CPU
    return reasons


def _fused_adamw_available(device: Any) -> bool:
    param = torch.zeros(1, device=device, requires_grad=True)
    return make_adamw([param], LR, WEIGHT_DECAY, (0.9, 0.999))[1] == "fused"


class _PeakMemory:
    """Peak memory of one rung (see the module's docstring for what it means)."""

    def __init__(self, device: Any) -> None:
        self.device = device
        self.kind = "cuda max allocated" if device.type == "cuda" else self._cpu_kind()
        self._start = 0

    @staticmethod
    def _cpu_kind() -> str:
        return "peak RSS rise" if _reset_peak_rss() else "ru_maxrss rise"

    def start(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif _reset_peak_rss():
            self._start = _status_kb("VmRSS") * 1024
        else:
            self._start = _ru_maxrss()

    def peak(self) -> int | None:
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if self.device.type != "cpu":
            return None
        now = _status_kb("VmHWM") * 1024 if self.kind == "peak RSS rise" else _ru_maxrss()
        return max(0, now - self._start)


def _reset_peak_rss() -> bool:
    """Reset this process's peak RSS (Linux 4.0+); False where that is not possible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as f:
            f.write("5")
        return _status_kb("VmHWM") > 0
    except OSError:
        return False


def _status_kb(name: str) -> int:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


def _ru_maxrss() -> int:
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


@contextlib.contextmanager
def _tf32(on: bool) -> Iterator[None]:
    """TF32 matmuls for the rung, the previous settings restored after it."""
    before = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = on
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def _batches(config: GPTConfig, batch: int, count: int, pinned: bool) -> list[tuple[Any, Any]]:
    """`count` (inputs, targets) pairs of random tokens, prepared on the CPU like a loader's."""
    out = []
    for _ in range(count):
        tokens = torch.randint(0, config.vocab_size, (batch, config.context_length + 1))
        x, y = tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()
        out.append((x.pin_memory(), y.pin_memory()) if pinned else (x, y))
    return out


def _out_of_memory(exc: BaseException) -> bool:
    return isinstance(exc, torch.cuda.OutOfMemoryError) or "out of memory" in str(exc)


class _Rung:
    """One rung's model, optimizer and step function."""

    def __init__(self, config: GPTConfig, flags: set[str], device: Any, compile: bool) -> None:
        torch.manual_seed(123)
        self.config, self.flags, self.device = config, flags, device
        self.model = build_model(config, flags).to(device)
        self.model.train()
        impl = "fused" if "fused_adamw" in flags else "default"
        self.optimizer, _ = make_adamw(
            list(self.model.parameters()), LR, WEIGHT_DECAY, (0.9, 0.999), impl
        )
        self.forward = torch.compile(self.model) if compile else self.model

    def step(self, x: Any, y: Any) -> None:
        pinned = "pinned" in self.flags
        x, y = x.to(self.device, non_blocking=pinned), y.to(self.device, non_blocking=pinned)
        autocast = (
            torch.autocast(self.device.type, dtype=torch.bfloat16)
            if "bf16" in self.flags
            else contextlib.nullcontext()
        )
        with autocast:
            logits = self.forward(x)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def _sync(device: Any) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _largest_batch(rung: _Rung, batch: int, check: Callable[[], None]) -> int:
    """Double the batch until a step runs out of memory (CUDA); the last that fit."""
    fits = batch
    while fits * 2 <= MAX_BATCH_LIMIT:
        check()
        try:
            (x, y), *_ = _batches(rung.config, fits * 2, 1, pinned=True)
            rung.step(x, y)
            _sync(rung.device)
        except RuntimeError as exc:
            if not _out_of_memory(exc):
                raise
            rung.optimizer.zero_grad(set_to_none=True)
            gc.collect()
            torch.cuda.empty_cache()
            break
        fits *= 2
    return fits


def measure_rung(
    index: int,
    config: GPTConfig,
    flags: set[str],
    device: Any,
    batch: int,
    steps: int,
    warmup: int,
    memory: _PeakMemory,
    on_event: Callable[[Event], None],
    check: Callable[[], None],
) -> RungResult:
    """Time `steps` optimizer steps after `warmup` untimed ones, with `flags` on."""
    rung = RUNGS[index]
    gc.collect()
    memory.start()
    with reuse_freed_memory(), _tf32("tf32" in flags):
        lab = _Rung(config, flags, device, compile="compile" in flags)
        if "max_batch" in flags:
            batch = _largest_batch(lab, batch, check)
            memory.start()  # the search's own failed tries do not count
        pinned = "pinned" in flags
        data = _batches(config, batch, warmup + steps, pinned)
        total = warmup + steps
        started = 0.0
        for i, (x, y) in enumerate(data):
            check()
            if i == warmup:
                _sync(device)
                started = time.perf_counter()
            lab.step(x, y)
            if i >= warmup:
                _sync(device)  # the step's time, not just its launch
            on_event(StepDone(index, i + 1, total))
        elapsed = time.perf_counter() - started
        peak = memory.peak()
        del lab, data
    _release(device)
    tokens = batch * config.context_length * steps
    return RungResult(
        index,
        rung.key,
        rung.title,
        tokens_per_s=tokens / elapsed if elapsed > 0 else None,
        step_s=elapsed / steps,
        peak_memory=peak,
        batch_size=batch,
    )


def _release(device: Any) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def _first_line(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    text = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


def run_ladder(
    model: str = DEFAULT_MODEL,
    *,
    context: int | None = None,
    batch: int = DEFAULT_BATCH,
    steps: int | None = None,
    warmup: int = 1,
    device: str = "auto",
    compile: bool | None = None,
    on_event: Callable[[Event], None] | None = None,
    cancel: threading.Event | None = None,
    save: bool = True,
) -> SpeedReport:
    """Measure every rung in order on `model` (a preset) at `context`, `batch`.

    Each rung keeps the changes of those before it that run on this device. A
    rung that fails (torch.compile without a working compiler, say) is listed
    with the error and left out of the later rungs. Setting `cancel` stops
    between two steps; the rungs finished so far are returned (and saved).
    """
    torch_device = pick_device(device)
    config = get_preset(model)
    if context is not None:
        config = dataclasses.replace(config, context_length=context)
    steps = steps if steps is not None else default_steps(torch_device)
    if steps < 1 or batch < 1 or warmup < 0:
        raise ValueError("steps and batch must be at least 1, warm-up at least 0")
    emit = on_event or (lambda event: None)
    skipped = skip_reasons(torch_device, compile)
    memory = _PeakMemory(torch_device)
    report = SpeedReport(
        device=str(torch_device),
        device_name=device_name(torch_device),
        torch_version=torch.__version__,
        model=model,
        context=config.context_length,
        batch_size=batch,
        steps=steps,
        started=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        memory_kind=memory.kind,
    )

    def check() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled

    try:
        for index, rung in enumerate(RUNGS):
            check()
            emit(RungStarted(index, len(RUNGS), rung.title))
            if rung.key in skipped:
                result = RungResult(index, rung.key, rung.title, skipped=skipped[rung.key])
            else:
                flags = flags_for(index, skipped)
                rung_warmup = warmup + 1 if "compile" in flags else warmup
                try:
                    result = measure_rung(
                        index,
                        config,
                        flags,
                        torch_device,
                        batch,
                        steps,
                        rung_warmup,
                        memory,
                        emit,
                        check,
                    )
                except Cancelled:
                    raise
                except Exception as exc:  # noqa: BLE001 - a rung that fails is reported, not fatal
                    _release(torch_device)
                    skipped[rung.key] = f"failed: {_first_line(exc)}"
                    result = RungResult(index, rung.key, rung.title, skipped=skipped[rung.key])
            report.rungs.append(result)
            emit(RungFinished(result))
    except Cancelled:
        report.cancelled = True
    finally:
        if "compile" not in skipped:
            with contextlib.suppress(Exception):
                torch._dynamo.reset()  # its compiled graphs hold the rung's model
    if save and any(r.measured for r in report.rungs):
        try:
            save_report(report)
        except Exception as exc:
            if not (isinstance(exc, OSError) or disk_full(exc)):
                raise
            raise ReportNotSaved(_not_saved(exc, report), report) from None
    return report


class ReportNotSaved(DiskFullError):
    """The ladder ran but its result could not be written (a full disk, a read-only
    data folder): `report` still holds every measured rung, for the caller to show."""

    def __init__(self, message: str, report: SpeedReport) -> None:
        super().__init__(message)
        self.report = report


def _not_saved(exc: BaseException, report: SpeedReport) -> str:
    """One line: why the result was not saved, and that its rungs are not lost."""
    measured = sum(r.measured for r in report.rungs)
    kept = f"the {measured} measured rung(s) are shown, not saved"
    if disk_full(exc):
        return f"no space left on {results_dir()}: {kept}"
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    return f"cannot write {results_dir()}: {reason}; {kept}"


def default_steps(device: Any) -> int:
    """Timed steps per rung: a GPU step takes milliseconds, a CPU one seconds."""
    return 20 if device.type == "cuda" else 3
