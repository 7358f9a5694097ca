"""The Speed Lab's ladder as data: its rungs in order and the changes each one
switches on, and the workload's defaults.

No torch here: the app's Speed Lab screen and `gpt-tui speedlab` show the ladder
before anything is measured (the measuring is ladder.py's).
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MODEL = "book-124m"


DEFAULT_BATCH = 2


@dataclass(frozen=True)
class Rung:
    key: str
    title: str  # short: it heads a row of a table 60 columns wide


RUNGS = [
    Rung("book", "book's code"),
    Rung("mask", "mask on the fly"),
    Rung("tf32", "TF32 matmuls"),
    Rung("fused_adamw", "fused AdamW"),
    Rung("pinned", "pinned memory"),
    Rung("bf16", "bf16 autocast"),
    Rung("native", "native LN + GELU"),
    Rung("sdpa", "FlashAttention/SDPA"),
    Rung("compile", "torch.compile"),
    Rung("vocab_pad", "vocab padded to 64"),
    Rung("max_batch", "largest batch"),
]


RUNG_KEYS = [r.key for r in RUNGS]


COMPILE_ON_CPU = "compiling takes minutes on a CPU; --compile to include it"


def flags_for(index: int, skipped: dict[str, str]) -> set[str]:
    """The changes switched on at rung `index`: every rung up to it that runs here."""
    return {key for key in RUNG_KEYS[1 : index + 1] if key not in skipped}
