"""What the Runs and Checkpoints tables share: cell text, and the folder a row is."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import DataTable


def clip(text: str, width: int) -> str:
    """`text` in at most `width` characters, cut in the middle (both ends tell)."""
    if len(text) <= width:
        return text
    head = (width - 1) // 2
    return text[:head] + "…" + text[len(text) - (width - 1 - head) :]


class PathTable(DataTable):
    """A table whose rows are keyed by a folder's path (a run, a checkpoint)."""

    def current_path(self) -> Path | None:
        """The highlighted row's folder; None when the table is empty."""
        if self.row_count == 0:
            return None
        try:
            key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value
        except Exception:  # no rows / cursor out of range after a clear
            return None
        return Path(key) if key is not None else None
