"""Text, focus and looks across the app: text shows verbatim (never as markup), the
number keys switch screens from any widget, focus is visible in every theme, the
loss chart's ticks, the inspector at 80x24, and messages that use the screen's labels."""

from __future__ import annotations

import sys

import pytest
import torch
from textual.app import App
from textual.color import Color
from textual.containers import VerticalScroll
from textual.widgets import Input, Select, Static, TabbedContent
from textual.widgets._toast import Toast

from gptcore.runs.events import EvalEnd
from gptcore.settings.train import TrainConfig
from tui.configs import save_config
from tui.runstate import RunState
from tui.screens.chat import ChatPane
from tui.screens.chat.transcript import Conversation
from tui.screens.inspector import InspectorScreen
from tui.screens.train import TrainPane
from tui.widgets.loss_chart import LossChart, nice_ticks, tick_labels

from .tui_helpers import FAST_MODEL, host_app, make_app, run_async, settle

SIZE = (80, 24)


def toasts(app) -> list[str]:
    """The text of the notifications on screen, as the user reads it."""
    return [str(toast.render()) for toast in app.screen.query(Toast)]


async def _train_screen(pilot) -> TrainPane:
    await settle(pilot, "corpus")
    await pilot.press("2")
    await pilot.pause()
    return pilot.app.query_one(TrainPane)


# ---------------------------------------------------------------- text is never markup


@run_async
async def test_export_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # `import matplotlib` fails
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        train = await _train_screen(pilot)
        train.state = RunState(evals=[EvalEnd(step=0, epoch=0, train_loss=9.0, val_loss=9.5,
                                              tokens_seen=0)])  # fmt: skip
        await pilot.press("e")
        await settle(pilot, "export")
        await pilot.pause()
        shown = "\n".join(toasts(app))
        assert "pip install 'gpt-tui[plot]'" in shown


@run_async
async def test_bracketed_names_and_paths_show_verbatim() -> None:
    saved = save_config("run [v2]", FAST_MODEL, TrainConfig())
    app = make_app()
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        train = await _train_screen(pilot)
        # A saved config's name with brackets is listed as typed in the dropdown.
        select = train.query_one("#config-select", Select)
        select.value = str(saved)
        await pilot.pause()
        assert str(select.query_one("SelectCurrent #label", Static).render()) == "run [v2] (saved)"
        # A notification with a bracketed path (Widget.notify passes markup=True).
        train.notify("saved /tmp/[b]old[/b]/x.png", title="Export")
        await pilot.pause()
        assert any("saved /tmp/[b]old[/b]/x.png" in text for text in toasts(app))


# ---------------------------------------------------------------- switching screens


@run_async
async def test_number_keys_switch_screens_from_a_focused_dropdown() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await _train_screen(pilot)
        tabs = app.query_one(TabbedContent)
        for key, tab in (("3", "chat"), ("1", "corpus")):
            await pilot.press("2")
            await pilot.pause()
            app.query_one("#config-select", Select).focus()
            await pilot.pause()
            await pilot.press(key)
            await pilot.pause()
            await pilot.pause()
            assert tabs.active == tab
            assert app.focused is not None and app.focused.id == f"{tab}-pane"


# ---------------------------------------------------------------- focus is visible


def _luminance(color: Color) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    return 0.2126 * channel(color.r) + 0.7152 * channel(color.g) + 0.0722 * channel(color.b)


def _contrast(a: Color, b: Color) -> float:
    """The WCAG contrast ratio: 1 for the same colour, 21 for black on white."""
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _cell_colors(app, widget) -> tuple[Color, Color]:
    """(background, text) of the widget's first label cell, as rendered on screen."""
    style = app.screen.get_style_at(widget.region.x + 2, widget.region.y)
    return Color.from_rich_color(style.bgcolor), Color.from_rich_color(style.color)


@pytest.mark.parametrize("theme", ["textual-dark", "nord"])
@run_async
async def test_focused_dropdown_and_input_stand_out(theme: str) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        train = await _train_screen(pilot)
        app.theme = theme
        for selector in ("#config-select", "#f-batch-size"):
            widget = train.query_one(selector)
            train.focus()
            await pilot.pause()
            blurred, _ = _cell_colors(app, widget)
            widget.focus()
            await pilot.pause()
            focused, text = _cell_colors(app, widget)
            assert _contrast(focused, blurred) >= 1.8, (theme, selector, focused, blurred)
            assert _contrast(text, focused) >= 3, (theme, selector, text, focused)


# ---------------------------------------------------------------- loss chart ticks


class _ChartApp(App[None]):
    def compose(self):
        yield LossChart()


def _evals(n: int, every: int = 5) -> list[EvalEnd]:
    return [
        EvalEnd(
            step=i * every,
            epoch=0,
            train_loss=10.0 - 0.37 * i,
            val_loss=10.2 - 0.3 * i,
            tokens_seen=0,
        )
        for i in range(n)
    ]


async def _chart_ticks(n: int) -> tuple[list[float], list[float]]:
    """The (x, y) tick labels the chart draws for `n` evaluations, read off the screen."""
    async with _ChartApp().run_test(size=(60, 16)) as pilot:
        chart = pilot.app.query_one(LossChart)
        chart.show_run(RunState(evals=_evals(n)))
        await pilot.pause()
        lines = ["".join(s.text for s in chart.render_line(y)) for y in range(chart.size.height)]
    y = [float(line.split("┤")[0]) for line in lines if "┤" in line]
    axis = next(i for i, line in enumerate(lines) if "└" in line)
    x = [float(label) for label in lines[axis + 1].split()]
    return x, y


@pytest.mark.parametrize("n", [1, 2, 12])
@run_async
async def test_chart_ticks_are_round_and_even(n: int) -> None:
    x, y = await _chart_ticks(n)
    steps = [e.step for e in _evals(n)]
    assert all(tick == int(tick) for tick in x), x  # whole steps
    assert x[0] <= min(steps) and max(steps) <= x[-1] and x[0] >= 0, x
    for ticks in (x, sorted(y)):
        gaps = {round(b - a, 6) for a, b in zip(ticks, ticks[1:], strict=False)}
        assert len(ticks) >= 2 and len(gaps) == 1, ticks  # evenly spaced
        assert list(gaps)[0] in {m * 10**k for m in (1, 2, 5) for k in range(-3, 4)}, ticks


def test_nice_ticks() -> None:
    assert nice_ticks(0, 0, integer=True) == [0, 1]
    assert nice_ticks(0, 5, integer=True) == [0, 1, 2, 3, 4, 5]
    assert nice_ticks(100, 2000, integer=True) == [0, 500, 1000, 1500, 2000]
    assert nice_ticks(9.63, 10.2) == [9.6, 9.8, 10.0, 10.2]
    assert tick_labels([9.6, 9.8, 10.0]) == ["9.6", "9.8", "10.0"]


# ---------------------------------------------------------------- the inspector at 80x24


def _screen_text(app) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


@run_async
async def test_inspector_summary_visible_and_page_keys_scroll() -> None:
    torch.manual_seed(0)
    logits = torch.randn(1000)  # 20 candidates: more rows than 80x24 shows
    app = host_app(ChatPane)
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(InspectorScreen(logits, source="random"))
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen.focused, Input)  # typing goes to the controls
        shown = _screen_text(app)
        assert "of the probability" in shown and "1,000 of 1,000 tokens can be drawn" in shown
        scroll = screen.query_one("#insp-dist").query_one(VerticalScroll)
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert scroll.scroll_y > 0
        await pilot.press("pageup")
        await pilot.pause()
        assert scroll.scroll_y == 0


# ---------------------------------------------------------------- messages use the labels


@run_async
async def test_train_form_reason_names_the_field_by_its_label() -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        train = await _train_screen(pilot)
        train.query_one("#f-model-context-length", Input).value = "0"
        await pilot.pause()
        await settle(pilot)
        reason = str(train.query_one("#form-reason", Static).render())
        assert reason == "Can't start: context must be positive, got 0"


# ---------------------------------------------------------------- saved transcripts


def test_transcript_says_what_the_model_saw() -> None:
    conversation = Conversation()
    conversation.transcript = [
        ("prompt", "Every effort"),
        ("continuation", " moves you [/b] forward"),
        ("user", "hello"),
        ("assistant", " hi there"),
    ]
    assert conversation.text("no model") == (
        "# gpt-tui chat with no model\n\n"
        "Prompt: Every effort\n"
        "Continuation: moves you [/b] forward\n"
        "User: hello\n"
        "Assistant: hi there\n"
    )


@run_async
async def test_a_tab_chosen_during_start_up_stays_chosen() -> None:
    """The start-up focus of the first screen used to land after a quick switch (it
    was deferred) and switched the tabs back, so the new screen never loaded."""
    from tui.app import GptTuiApp
    from tui.screens.chat import ChatPane
    from tui.settings import Settings

    for _ in range(3):  # it happened about every other start
        app = GptTuiApp(settings=Settings())
        async with app.run_test(size=(80, 24)) as pilot:
            while not app.query(ChatPane):  # the other screens are being mounted
                await pilot.pause(0.01)
            app.action_show_tab("checkpoints")
            await pilot.pause(0.5)
            assert app.query_one(TabbedContent).active == "checkpoints"
