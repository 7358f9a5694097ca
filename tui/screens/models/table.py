"""The Models screen's table: one row per GPT-2 size and source, with its status,
what is on disk and the download's approximate size."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import DataTable

from gptcore.util.fmt import format_bytes
from gptcore.weights.gpt2 import PREFERRED_SOURCES, SIZES

from .status import Row

if TYPE_CHECKING:
    from gptcore.weights.downloads import LocalWeights

COLUMNS = ("GPT-2", "source", "status", "on disk", "download")
STATUS_STYLES = {"complete": "green", "absent": "dim"}  # anything else is in between: yellow


class WeightsTable(DataTable):
    """Every size from every source, in a fixed order; `show` updates the cells."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row")
        for column in COLUMNS:
            self.add_column(column, key=column)
        for size in SIZES:
            for source in PREFERRED_SOURCES:
                self.add_row(size, source, "…", "", "", key=f"{size}/{source}")

    def show(
        self, statuses: Mapping[Row, LocalWeights], status_of: Callable[[str, str], str]
    ) -> None:
        """Each row's status (`status_of(size, source)`), bytes on disk and download size."""
        for size in SIZES:
            for source in PREFERRED_SOURCES:
                key = f"{size}/{source}"
                st = statuses.get((size, source))
                status = status_of(size, source)
                style = STATUS_STYLES.get(status, "yellow")
                on_disk = format_bytes(st.bytes) if st and st.bytes else "–"
                self.update_cell(key, "status", Text(status, style=style), update_width=True)
                self.update_cell(key, "on disk", on_disk, update_width=True)
                approx = f"~{format_bytes(SIZES[size].approx_bytes)}"
                self.update_cell(key, "download", approx, update_width=True)

    def current(self) -> Row:
        """The highlighted (size, source)."""
        key = self.coordinate_to_cell_key(self.cursor_coordinate).row_key.value or "124M/hf"
        size, _, source = key.partition("/")
        return size, source
