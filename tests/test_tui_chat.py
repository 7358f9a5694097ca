"""Pilot tests of the Chat screen: streamed text, validated controls, stop, modes."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from gptcore.sampling.chat import chat_prompt
from gptcore.sampling.stream import generate
from gptcore.settings.sampling import GenerationSettings
from tests.tui_helpers import (
    TINY,
    find_pane,
    host_app,
    make_checkpoint,
    run_async,
    settle,
    tiny_model,
    wait_for,
)
from tui.app import GptTuiApp
from tui.screens.chat import ChatPane
from tui.screens.chat.messages import ChatDelta
from tui.settings import Settings


def _app() -> GptTuiApp:
    return GptTuiApp(settings=Settings())


async def _open_chat(pilot, spec: str) -> ChatPane:
    app = pilot.app
    if isinstance(app, GptTuiApp):
        app.action_show_tab("chat")
    pane = await find_pane(pilot, ChatPane)
    pane.open_model(spec)
    await settle(pilot)
    await wait_for(pilot, lambda: pane.model is not None and not pane.picker.opening)
    return pane


async def _set(pilot, pane: ChatPane, key: str, value: str) -> None:
    pane.query_one(f"#chat-{key}", Input).value = value
    await pilot.pause()


def _log_text(pane: ChatPane) -> list[str]:
    return [str(s.render()) for s in pane.query("#chat-log Static").results(Static)]


def test_chat_prompt_drops_oldest_turns_to_fit():
    history = [(f"question {i} " * 20, f"answer {i} " * 20) for i in range(5)]
    full = chat_prompt(history, "hello", 10_000)
    assert full.dropped_turns == 0 and full.text.endswith("User: hello\nAssistant:")
    cut = chat_prompt(history, "hello", 200)
    assert cut.dropped_turns > 0
    assert "question 0" not in cut.text and "question 4" in cut.text


@run_async
async def test_streams_the_engine_output_verbatim():
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _open_chat(pilot, str(ckpt))
        assert pane.model.config == TINY
        for key, value in (("temperature", "1.0"), ("top_k", "20"), ("seed", "7"),
                           ("max_new_tokens", "12")):  # fmt: skip
            await _set(pilot, pane, key, value)
        assert pane.controls.errors == {}
        pane.query_one("#chat-prompt", Input).focus()
        await pilot.press(*"Every effort", "enter")
        await settle(pilot)
        await wait_for(pilot, lambda: not pane.generating)
        expected = generate(
            tiny_model(), "Every effort",
            GenerationSettings(max_new_tokens=12, temperature=1.0, top_k=20, seed=7),
        ).samples[0].text  # fmt: skip
        assert expected
        texts = _log_text(pane)
        assert texts[0] == "Every effort"
        assert texts[1] == expected
        assert pane.conversation.last_answer == expected
        await pilot.press("ctrl+y")  # copy the answer (OSC 52)
        assert app.clipboard == expected
        assert "tok/s" in texts[2]


@run_async
async def test_model_output_is_never_markup():
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _open_chat(pilot, str(ckpt))
        log = pane.chat_log
        live = log.add_block("", "model")
        log.live, log.live_text = {0: live}, {0: ""}
        pane.post_message(ChatDelta(pane._generation, {0: "[/b] and [red]not red[/red]"}))
        await pilot.pause()
        assert str(live.render()) == "[/b] and [red]not red[/red]"


@run_async
async def test_invalid_controls_are_rejected_as_typed():
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _open_chat(pilot, str(ckpt))
        temp = pane.query_one("#chat-temperature", Input)
        temp.focus()
        temp.value = ""
        await pilot.pause()
        await pilot.press(*"abc")
        assert temp.has_class("-invalid")
        # Messages name each field by its label on screen ("temp", "top-k", "samples").
        assert "temp must be a number, got 'abc'" in str(
            pane.query_one("#chat-reason", Static).render()
        )
        await _set(pilot, pane, "temperature", "1")
        await _set(pilot, pane, "top_k", "0")
        top_k = pane.query_one("#chat-top_k", Input)
        assert top_k.has_class("-invalid") and not temp.has_class("-invalid")
        assert pane.controls.errors == {"top_k": "top-k must be an integer in [1, 50257], got 0"}
        # max new tokens beyond the engine's limit, samples beyond its maximum
        await _set(pilot, pane, "top_k", "")
        await _set(pilot, pane, "num_samples", "1000")
        assert pane.controls.errors["num_samples"].startswith(
            "samples must be an integer in [1, 64]"
        )
        pane.query_one("#chat-prompt", Input).focus()
        await pilot.press("h", "i", "enter")
        await pilot.pause()
        assert not pane.generating and pane.conversation.transcript == []
        await _set(pilot, pane, "num_samples", "1")
        assert pane.controls.errors == {}


@run_async
async def test_keyboard_model_choice_then_stop_generation_midway():
    ckpt = make_checkpoint()
    app = _app()
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await find_pane(pilot, ChatPane)
        await pilot.press("3")  # the Chat tab, then ctrl+o and Enter: the first model
        await wait_for(pilot, lambda: bool(pane.picker.menu.choices))
        await pilot.press("ctrl+o")
        await pilot.pause()
        await pilot.press("enter")
        await wait_for(pilot, lambda: pane.model is not None)
        assert pane.spec == str(ckpt)  # the picker's first entry: the run's latest
        await wait_for(pilot, lambda: pane.query_one("#chat-prompt", Input).has_focus)
        await _set(pilot, pane, "max_new_tokens", "100000")
        await _set(pilot, pane, "seed", "1")
        await pilot.press("a", "enter")
        await wait_for(pilot, lambda: bool(pane.chat_log.live_text.get(0)))
        assert pane.generating
        await pilot.press("escape")  # Stop while generating
        await settle(pilot)
        await wait_for(pilot, lambda: not pane.generating)
        assert "stopped" in _log_text(pane)[-1]
        assert pane.query_one("#chat-prompt", Input).has_focus  # Esc did not also leave it


@run_async
async def test_chat_mode_feeds_history_and_saves_transcript():
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _open_chat(pilot, str(ckpt))
        pane.query_one("#chat-mode").value = "chat"
        await _set(pilot, pane, "max_new_tokens", "12")
        await _set(pilot, pane, "seed", "3")
        for message in ("hello there, how are you today?", "and again"):
            assert pane.send(message)
            await settle(pilot)
            await wait_for(pilot, lambda: not pane.generating)
        history = pane.conversation.history
        assert [u for u, _ in history] == ["hello there, how are you today?", "and again"]
        # The tiny model's 32-token window cannot hold the history: it says so.
        assert any("history truncated" in t for t in _log_text(pane))
        pane.action_save()
        saved = pane.saved_path.read_text(encoding="utf-8")
        # Saved as the model saw the turns (the README's `User:`/`Assistant:` format).
        lines = saved.splitlines()
        assert "User: hello there, how are you today?" in lines and "User: and again" in lines
        answers = [line for line in lines if line.startswith("Assistant: ")]
        assert len(answers) == 2 and answers[0] == f"Assistant: {history[0][1]}".strip()
        assert "[User]" not in saved and "[Model]" not in saved


@run_async
async def test_missing_model_is_a_notification_not_a_crash(tmp_path):
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ChatPane)
        pane.open_model(f"ckpt:{tmp_path / 'nope'}")  # the older explicit prefix still parses
        await wait_for(pilot, lambda: not pane.picker.opening)
        assert pane.model is None
        status = str(pane.query_one("#chat-status", Static).render())
        assert status.startswith("could not load ") and "no run or checkpoint named" in status
        pane.query_one("#chat-prompt", Input).focus()
        await pilot.press("x", "enter")
        assert not pane.generating


@pytest.mark.parametrize("size", [(80, 24)])
def test_snapshot_chat(snap_compare, size):
    async def run_before(pilot):
        await find_pane(pilot, ChatPane)
        await pilot.press("3")
        await pilot.pause()

    assert snap_compare(_SnapApp(), terminal_size=size, run_before=run_before)


class _SnapApp(GptTuiApp):
    def __init__(self) -> None:
        super().__init__(settings=Settings())


@run_async
async def test_escape_leaves_a_control_when_nothing_generates():
    """Esc in a Chat input leaves it, as everywhere else in the app: it used to be
    taken by Stop, so the typed keys after it went into the input."""
    app = _app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_show_tab("chat")
        pane = await find_pane(pilot, ChatPane)
        temperature = pane.query_one("#chat-temperature", Input)
        temperature.focus()
        await pilot.pause()
        await pilot.press("escape")
        await pilot.pause()
        assert not temperature.has_focus and pane.has_focus
        await pilot.press("p")  # a single key works again: the prompt
        await pilot.pause()
        assert pane.query_one("#chat-prompt", Input).has_focus
        assert "p" not in temperature.value
