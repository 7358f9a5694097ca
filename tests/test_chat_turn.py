"""The chat turn (gptcore.sampling.chat): the prompt budget, the dropped turns, the stop
string, and Chat's inspector showing exactly the context its next answer is fed."""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from gptcore.model.tokenizer import encode
from gptcore.sampling import stream
from gptcore.sampling.chat import (
    STOP_AT_USER,
    chat_prompt,
    encode_prompt,
    next_turn,
    prompt_budget,
)
from gptcore.settings.sampling import GenerationSettings
from tests.tui_helpers import TINY, host_app, make_checkpoint, run_async, settle, wait_for
from tui.screens.chat import ChatPane
from tui.screens.chat import generation as chat_generation
from tui.screens.chat.messages import ChatDelta, ChatDone
from tui.screens.inspector import InspectorScreen

# Ten short turns (about 8 tokens each): far more than a 32-token window holds, and
# one more of them fits the whole window than the budget a 12-token answer leaves.
HISTORY = [(f"q{i}", f"a{i}") for i in range(10)]


def test_the_budget_leaves_room_for_the_answer_but_keeps_half_the_window() -> None:
    assert prompt_budget(1024, 50) == 974
    assert prompt_budget(32, 12) == 20
    assert prompt_budget(32, 100) == 16  # a long answer still leaves half for the history


def test_a_chat_turn_drops_the_oldest_turns_to_fit_the_budget() -> None:
    settings = GenerationSettings(max_new_tokens=12, stop=("END",))
    turn = next_turn("hello", settings, 32, HISTORY)
    expected = chat_prompt(HISTORY, "hello", prompt_budget(32, 12))
    assert (turn.prompt, turn.dropped_turns) == (expected.text, expected.dropped_turns)
    assert 0 < turn.dropped_turns < len(HISTORY)
    assert turn.prompt.endswith("User: hello\nAssistant:")
    assert len(encode(turn.prompt)) <= 20  # within the budget, not the whole window
    assert turn.settings.stop == ("END", STOP_AT_USER)  # the user's next line ends it
    assert turn.context == tuple(encode(turn.prompt)[-32:])
    assert turn.note == (
        f"history truncated: the {turn.dropped_turns} oldest turn(s) no longer fit "
        "the model's 32-token window"
    )


def test_continue_mode_feeds_the_prompt_as_typed() -> None:
    settings = GenerationSettings(max_new_tokens=5)
    long = "word " * 50
    turn = next_turn(long, settings, 32)
    assert turn.prompt == long and turn.settings == settings and turn.note is None
    assert turn.context == tuple(encode(long)[-32:])  # the window's last tokens
    assert next_turn("", settings, 32).context == tuple(encode_prompt(""))  # <|endoftext|>


@run_async
async def test_the_inspector_shows_the_context_the_next_answer_is_fed(monkeypatch) -> None:
    """In chat mode with a long history and a 32-token model, the ids the inspector
    computes on (and its penalties read) are the ids generation is then fed, and both
    say the same number of turns were dropped."""
    fed: list[tuple[int, ...]] = []
    original = stream.generate_token_ids

    def recording(model, prompt_ids, settings, cancel=None, on_step=None):
        fed.append(tuple(prompt_ids[-model.config.context_length :]))  # what the model reads
        return original(model, prompt_ids, settings, cancel, on_step)

    monkeypatch.setattr(stream, "generate_token_ids", recording)
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = app.query_one(ChatPane)
        pane.open_model(str(ckpt))
        await wait_for(pilot, lambda: pane.model is not None)
        assert pane.model.config.context_length == TINY.context_length == 32
        pane.query_one("#chat-mode").value = "chat"
        pane.query_one("#chat-max_new_tokens", Input).value = "12"
        pane.query_one("#chat-seed", Input).value = "1"
        await pilot.pause()
        pane.conversation.history.extend(HISTORY)
        pane.query_one("#chat-prompt", Input).value = "hello"
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
        screen = app.screen
        shown, note = screen.context, str(screen.query_one("#insp-note", Static).render())
        assert "oldest turn(s)" in note
        assert screen.analysis is not None
        await pilot.press("escape")
        assert pane.send("hello")
        await settle(pilot)
        await wait_for(pilot, lambda: not pane.generating)
        assert fed == [shown]
        # With the whole window as the budget (the inspector's old rule) fewer turns go.
        whole = chat_prompt(HISTORY, "hello", 32)
        assert whole.dropped_turns < 9 and tuple(encode(whole.text)[-32:]) != shown
        assert note.startswith("history truncated: the 9 oldest turn(s)")
        notes = [str(s.render()) for s in pane.query(".chat-note").results(Static)]
        assert note in notes
        # With a refused control there is no next answer to show the context of.
        pane.query_one("#chat-max_new_tokens", Input).value = "x"
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert not isinstance(app.screen, InspectorScreen)


def test_answers_are_posted_at_most_once_an_interval(
    monkeypatch: pytest.MonkeyPatch, tiny_config
) -> None:
    """A stream faster than the interval posts one delta with all its text, after the
    interval (never one at once for the first token), then the result."""
    from gptcore.model.gpt import GPTModel

    monkeypatch.setattr(chat_generation, "POST_INTERVAL_S", 3600.0)
    posted: list[object] = []
    settings = GenerationSettings(max_new_tokens=6, eos_id=None)
    model = GPTModel(tiny_config).eval()
    chat_generation.stream_answer(posted.append, 7, model, "Hi", settings, None, None)
    deltas = [m for m in posted if isinstance(m, ChatDelta)]
    (done,) = [m for m in posted if isinstance(m, ChatDone)]
    assert len(deltas) == 1 and deltas[0].generation == done.generation == 7
    assert deltas[0].pieces == {0: done.result.samples[0].text}
