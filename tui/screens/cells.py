"""Text helpers for the cells of the Runs and Checkpoints tables."""

from __future__ import annotations


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle (both ends tell)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]
