"""Small app fixes of issue 25: one toast per checkpoint, Chat's newest answer stays
in view when the confidence view (ctrl+f) opens, and Chat's right column gives way
at narrow widths (60x20)."""

from __future__ import annotations

from pathlib import Path

from textual.widget import Widget
from textual.widgets import Input

from gptcore.runs.events import CheckpointSaved
from tests.test_confidence import chat_with_answer
from tests.tui_helpers import find_pane, host_app, run_async, settle, wait_for
from tui.screens.chat import ChatPane
from tui.screens.train import TrainPane


def _visible(widget: Widget, viewport: Widget) -> bool:
    """Whether all of `widget` is on screen inside `viewport` (a scrolling container)."""
    region = widget.region
    return bool(region) and viewport.content_region.contains_region(region)


async def _ask(pilot, chat: ChatPane, prompt: str) -> None:  # noqa: ANN001
    chat.query_one("#chat-prompt", Input).focus()
    await pilot.press(*prompt, "enter")
    await settle(pilot)
    await wait_for(pilot, lambda: not chat.generating)


@run_async
async def test_ctrl_f_keeps_the_newest_answer_in_view() -> None:
    app = host_app(ChatPane)
    async with app.run_test(size=(80, 24)) as pilot:
        chat = await chat_with_answer(pilot)
        for word in ("one", "two", "three", "four"):  # a log taller than its window
            await _ask(pilot, chat, word)
        log = chat.chat_log
        assert log.max_scroll_y > 0
        newest = chat.confidence.answers[0][0]
        assert _visible(newest, log)
        await pilot.press("ctrl+f")
        await pilot.pause()
        await pilot.pause()
        assert chat.confidence.showing
        assert _visible(newest, log), (newest.region, log.content_region, log.scroll_y)


@run_async
async def test_chat_controls_column_gives_way_at_narrow_widths() -> None:
    widths = {}
    for size in ((80, 24), (60, 20), (45, 20)):
        app = host_app(ChatPane)
        async with app.run_test(size=size) as pilot:
            chat = await find_pane(pilot, ChatPane)
            await pilot.pause()
            controls = chat.query_one("#chat-controls")
            main = chat.query_one("#chat-main")
            widths[size[0]] = (controls.region.width, main.region.width)
            assert main.region.width + controls.region.width <= size[0]
    assert widths[80][0] == 26  # the look at 80 columns is kept
    assert widths[60][0] < 26 and widths[60][1] >= 38  # the transcript gets the room
    assert widths[45] == (0, 45)  # below 50 columns: the transcript only


@run_async
async def test_one_toast_per_checkpoint_with_the_runs_name(tmp_path: Path) -> None:
    app = host_app(TrainPane)
    async with app.run_test(size=(80, 24)) as pilot:
        train = await find_pane(pilot, TrainPane)
        await settle(pilot)
        app.clear_notifications()
        end = tmp_path / "runs" / "my-run" / "checkpoints" / "step-000022"
        # A run's end: its last epoch's save, then "final" into the same folder.
        train.apply_events(
            [
                CheckpointSaved(11, 1, str(end.with_name("step-000011")), "epoch"),
                CheckpointSaved(22, 2, str(end), "epoch"),
                CheckpointSaved(22, 2, str(end), "final"),
            ]
        )
        await pilot.pause()
        toasts = [n.message for n in app._notifications if n.title == "Checkpoint"]
        assert toasts == [
            "epoch checkpoint: my-run/step-000011",
            "epoch checkpoint: my-run/step-000022",
        ]


def test_info_lists_the_crash_logs_folder(capsys) -> None:  # noqa: ANN001
    import json

    from gptcore.cli import main
    from tui.crashlog import write_crash_log

    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        log = write_crash_log(exc)
    assert main(["info", "--json"]) == 0
    places = json.loads(capsys.readouterr().out)
    assert Path(places["logs"]["path"]) == log.parent
    assert places["logs"]["bytes"] == log.stat().st_size > 0
