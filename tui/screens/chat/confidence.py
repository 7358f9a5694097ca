"""The confidence view (ctrl+f): the latest answer(s) coloured by the probability
each token was drawn with (after the settings), and a panel with the selected
token's top alternatives under the raw model and after the settings.

Tokens are named by the engine's one label (gptcore.model.tokenview.token_label):
a partial character shows as its bytes, `<e6 bc>`, never as `'\\\\xe6'`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text
from textual.widgets import Static

from gptcore.model.tokenview import label_of

if TYPE_CHECKING:
    from gptcore.sampling.stream import TokenRecord

# The colour bands of a drawn token's probability.
BANDS = ((0.9, "green", "≥.9"), (0.5, "yellow", "≥.5"), (0.1, "dark_orange", "≥.1"))
LOW_BAND = ("red", "<.1")
LABEL_CELLS = 16  # an alternative's label in the panel


def band_style(prob: float) -> str:
    """The colour of a token drawn with probability `prob`."""
    return next((style for floor, style, _ in BANDS if prob >= floor), LOW_BAND[0])


def confidence_text(text: str, records: list[TokenRecord], selected: int | None = None) -> Text:
    """`text` verbatim, each token's characters coloured by its band; the
    selected token reversed. A token ending mid-character colours nothing; the
    next one, which completes the character, carries it."""
    out = Text()
    start = 0
    for i, record in enumerate(records):
        style = band_style(record.token.prob) + (" reverse" if i == selected else "")
        out.append(text[start : record.end], style=style)
        start = max(start, record.end)
    out.append(text[start:])
    return out


def prob_text(prob: float) -> str:
    """A probability in 7 characters: an untrained model's are ~2e-05, not 0.000."""
    return f"{prob:.3f}" if prob >= 0.001 or prob == 0 else f"{prob:.1e}"


def confidence_panel(record: TokenRecord | None, position: str) -> Text:
    """The legend, then the selected token and its top alternatives, with their
    probability under the raw model and after the sampling settings."""
    out = Text("p ")
    for _, style, label in BANDS:
        out.append(f"■{label} ", style=style)
    out.append(f"■{LOW_BAND[1]}", style=LOW_BAND[0])
    out.append(" · ←/→ token · ctrl+f off")
    if record is None:
        out.append("\nno token recorded yet: generate an answer")
        return out
    t = record.token
    out.append(f"\n#{position} {t.label} p {prob_text(t.prob)} (raw {prob_text(t.raw_prob)})")
    for c in record.top:
        mark = "▸" if c.id == t.id else " "
        label = f"{label_of(c.id, LABEL_CELLS):<{LABEL_CELLS}}"
        out.append(f"\n{mark} {label} raw {prob_text(c.raw_prob)} → {prob_text(c.prob)}")
    return out


class ConfidenceView(Static):
    """The panel under the transcript; it also colours the answers' blocks.

    `answers` are (block, text, records) of the latest answer's samples; only they
    are coloured. `selected` counts tokens across them.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self.showing = False
        self.selected = 0
        self.answers: list[tuple[Static, str, list[TokenRecord]]] = []

    @property
    def total(self) -> int:
        return sum(len(records) for _, _, records in self.answers)

    def show_answers(self, answers: list[tuple[Static, str, list[TokenRecord]]]) -> None:
        """A new answer: the old one goes back to plain text, the selection to its start."""
        for block, text, _ in self.answers:
            block.update(Text(text))
        self.answers, self.selected = answers, 0
        self.redraw()

    def selected_block(self) -> Static | None:
        """The answer block that holds the selected token (the first one when none)."""
        offset = 0
        for block, _, records in self.answers:
            if self.selected < offset + len(records):
                return block
            offset += len(records)
        return self.answers[0][0] if self.answers else None

    def toggle(self) -> None:
        self.showing = not self.showing
        self.redraw()

    def step(self, by: int) -> None:
        """Select the token `by` places on (wrapping around)."""
        if self.total:
            self.selected = (self.selected + by) % self.total
            self.redraw()

    def redraw(self) -> None:
        self.set_class(self.showing, "-on")
        offset, chosen, position = 0, None, ""
        for block, text, records in self.answers:
            if not self.showing:
                block.update(Text(text))
                continue
            local = self.selected - offset
            selected = local if 0 <= local < len(records) else None
            if selected is not None:
                chosen, position = records[selected], f"{self.selected + 1}/{self.total}"
            block.update(confidence_text(text, records, selected))
            offset += len(records)
        if self.showing:
            self.update(confidence_panel(chosen, position))
