"""Issue 25's small app fixes: the watch dialog, help naming the data folder, the
footer's palette key at narrow widths, the Runs table at 60 columns."""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import App
from textual.widgets import DataTable, OptionList, Static

from gptcore.util.paths import cache_dir, config_dir, data_dir
from tui.app import GptTuiApp
from tui.screens.help import HelpScreen
from tui.screens.open_run import OpenRunScreen
from tui.screens.runs import RunsPane
from tui.screens.runs.table import COLUMNS, fitting_columns
from tui.settings import Settings
from tui.widgets.footer import StableFooter

from .test_tui_runs import table_names, write_pinned_run
from .tui_helpers import find_pane, run_async, wait_for


class DialogHost(App):
    def __init__(self) -> None:
        super().__init__()
        self.answers: list[str | None] = []

    def on_mount(self) -> None:
        self.push_screen(OpenRunScreen(), self.answers.append)


@run_async
async def test_watch_dialog_refuses_an_empty_path_and_its_list_takes_enter_at_once() -> None:
    write_pinned_run("lr-0.004", 0.004, "finished")
    async with DialogHost().run_test(size=(80, 24)) as pilot:
        dialog = pilot.app.screen
        assert isinstance(dialog, OpenRunScreen)
        await wait_for(pilot, lambda: dialog.listed)
        await pilot.press("enter")  # nothing typed: refused, the dialog stays
        await pilot.pause()
        assert pilot.app.screen is dialog and pilot.app.answers == []
        assert "type a run's folder first" in str(
            dialog.query_one("#run-path-error", Static).render()
        )
        await pilot.press("down")  # from the path field to the list, first run highlighted
        assert isinstance(pilot.app.focused, OptionList)
        assert pilot.app.focused.highlighted == 0
        await pilot.press("enter")
        await wait_for(pilot, lambda: pilot.app.answers != [])
        assert [Path(a).name for a in pilot.app.answers if a] == ["lr-0.004"]


@run_async
async def test_help_names_the_data_folders_real_paths() -> None:
    class Host(App):
        def on_mount(self) -> None:
            self.push_screen(HelpScreen([]))

    async with Host().run_test(size=(100, 40)) as pilot:
        text = str(pilot.app.screen.query_one("#help-places", Static).render())
        for folder in (data_dir(), config_dir(), cache_dir()):
            assert str(folder) in text
        assert "gpt-tui info" in text
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(pilot.app.screen, HelpScreen)


@run_async
async def test_the_palette_key_never_overlaps_the_keys() -> None:
    """At 60 columns the Runs keys reach the palette's key: it is left out, and comes
    back when there is room again (it read "^p palettee" before)."""
    async with GptTuiApp(settings=Settings()).run_test(size=(80, 24)) as pilot:
        pane = await find_pane(pilot, RunsPane)
        await pilot.press("6")
        await wait_for(pilot, lambda: pane.loaded)
        footer = pilot.app.query_one(StableFooter)
        assert footer.show_command_palette
        await pilot.resize_terminal(60, 20)
        # The footer recomposes after the refresh that hid the key: wait for both.
        await wait_for(
            pilot,
            lambda: not footer.show_command_palette and not footer.query(".-command-palette"),
        )
        await pilot.resize_terminal(80, 24)
        await wait_for(pilot, lambda: bool(footer.query(".-command-palette")))


def test_fitting_columns_leaves_out_a_column_it_would_cut() -> None:
    row = [Text(s) for s in ("", "run", "finished", "40", "20.5 k", "6.239", "4.553", "55 MB")]
    row += [Text("tiny"), Text("builtin"), Text("01-01 12:00")]
    widths = [max(len(h), len(c.plain)) + 2 for h, c in zip(COLUMNS, row, strict=True)]
    through_best_val = sum(widths[:6])
    assert fitting_columns([row], through_best_val) == 6
    assert fitting_columns([row], through_best_val - 1) == 5  # not "6.2"
    assert fitting_columns([row], 1) == 2  # the mark and the name, always


@run_async
async def test_runs_table_at_60_columns_shows_whole_numbers() -> None:
    write_pinned_run("a-rather-long-run-name-here", 0.004, "finished")
    async with GptTuiApp(settings=Settings()).run_test(size=(60, 20)) as pilot:
        pane = await find_pane(pilot, RunsPane)
        await pilot.press("6")
        await wait_for(pilot, lambda: pane.loaded and len(table_names(pane)) == 1)
        table = pane.query_one(DataTable)
        labels = [str(c.label) for c in table.columns.values()]
        assert "best val" in labels  # names are clipped before the losses go
        cells = [str(c) for c in table.get_row_at(0)]
        best = cells[labels.index("best val")]
        assert len(best.split(".")[-1]) == 3  # 6.239, never a cut "6.2"
        used = sum(c.get_render_width(table) for c in table.columns.values())
        assert used <= table.scrollable_content_region.width


@run_async
async def test_a_pushed_screens_footer_hides_the_palette_key_its_keys_run_under() -> None:
    """A pushed screen's footer was measured before its keys were laid out (all 0 wide)
    and kept the palette key over its last keys (seen at 80x24 on the Sweeps view)."""
    from tui.screens.sweeps import SweepsScreen

    async with GptTuiApp(settings=Settings()).run_test(size=(66, 24)) as pilot:
        pilot.app.push_screen(SweepsScreen())
        await wait_for(pilot, lambda: bool(pilot.app.screen.query(StableFooter)))
        footer = pilot.app.screen.query_one(StableFooter)

        def keys_width() -> int:
            keys = [k for k in footer.children if not k.has_class("-command-palette")]
            return sum(k.outer_size.width + k.styles.margin.width for k in keys)

        await wait_for(pilot, lambda: keys_width() > 0 and not footer.query(".-command-palette"))
        assert keys_width() + len("▏^p palette") > 66
