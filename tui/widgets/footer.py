"""The key footer, rebuilt only when the keys it shows change.

Textual's Footer recomposes (unmounts and mounts a widget per key, restyles them)
on every `refresh_bindings`, and the Train screen refreshes its bindings with each
status redraw while a run trains. On a CPU busy training that rebuild is what keys
wait behind, so this footer skips it when nothing it shows has changed.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.screen import Screen
from textual.widgets import Footer


class StableFooter(Footer):
    """A Footer that recomposes only when its keys (or their state) changed."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._composed_keys: tuple[object, ...] | None = None
        self.recomposes = 0  # how often it was rebuilt, for tests and diagnostics
        self._palette_width = len("▏^p palette")  # measured once it is shown

    def _keys(self, screen: Screen) -> tuple[object, ...]:
        """What the footer draws from: each active binding, its state and tooltip."""
        return tuple(
            (b.key, b.action, b.description, b.show, enabled, tooltip)
            for _node, b, enabled, tooltip in screen.active_bindings.values()
        )

    def compose(self) -> ComposeResult:
        if self._bindings_ready:
            self._composed_keys = self._keys(self.screen)
            self.recomposes += 1
            self.call_after_refresh(self._fit_palette)
        yield from super().compose()

    def on_resize(self) -> None:
        self._fit_palette()

    def _fit_palette(self) -> None:
        """Show the command palette's key only where the keys end before it: when they
        ran under it, the last one showed through beside it ("^p palettee"). ctrl+p
        works either way (help names it). From widths alone, so it holds mid-resize."""
        if not self.is_attached:
            return
        palettes = self.query(".-command-palette")
        if palettes:
            self._palette_width = palettes.first().outer_size.width or self._palette_width
        keys = [key for key in self.children if not key.has_class("-command-palette")]
        # Not laid out yet (every key 0 wide): look again after the next refresh.
        if keys and all(key.outer_size.width == 0 for key in keys):
            self.call_after_refresh(self._fit_palette)
            return
        used = sum(key.outer_size.width + key.styles.margin.width for key in keys)
        fits = used + self._palette_width <= self.size.width
        if fits != self.show_command_palette:
            self.show_command_palette = fits  # not a recomposing reactive: rebuild here
            self.call_after_refresh(self.recompose)

    def bindings_changed(self, screen: Screen) -> None:
        if (
            self._composed_keys is not None
            and self.is_attached
            and screen is self.screen
            and self._keys(screen) == self._composed_keys
        ):
            return  # the same keys: nothing to rebuild
        super().bindings_changed(screen)
