"""Keys never act where the user types (issue 25).

The focus model: text typed into a field stays text; Enter in a field acts on the
field (submits it, runs a filter, sends a prompt) and leaves the focus there or, in
a dialog, closes it; Escape leaves the field for the screen, whose single-letter
keys then work, with the focus visible (the list, or the screen's keys in the
footer). No invisible focus stops: the tab bar and the scrolling containers of
fields take no focus. A key typed right after Escape (which terminals merge into
Alt+key) counts as Escape, then the key.

Each field is typed words holding every letter and digit, then Enter, then Escape:
the screen must not change, no action may run, and the text must be in the field.
"""

from __future__ import annotations

from textual import events
from textual._xterm_parser import XTermParser
from textual.widgets import Input, TabbedContent, Tabs

from tui.app import GptTuiApp
from tui.keys import after_escape
from tui.screens.chat import ChatPane
from tui.screens.chat.controls import ChatControls
from tui.screens.checkpoints import CheckpointsPane
from tui.screens.corpus import CorpusPane
from tui.screens.dialogs import PromptScreen
from tui.screens.inspector import InspectorScreen
from tui.screens.open_run import OpenRunScreen
from tui.screens.runs import RunsPane
from tui.screens.speedlab import SpeedLabPane
from tui.screens.train import TrainPane
from tui.screens.train.form import TrainForm
from tui.settings import Settings

from .test_tui_runs import table_names, write_pinned_run
from .tui_helpers import find_pane, make_checkpoint, run_async, wait_for

WORDS = "the quick brown fox jumps over a lazy dog 0123456789"
SIZE = (100, 30)


def keys(text: str) -> list[str]:
    return ["space" if c == " " else c for c in text]


def tab(pilot) -> str:
    return str(pilot.app.query_one("#tabs", TabbedContent).active)


async def type_words(pilot, field: Input) -> None:
    field.focus()
    await pilot.pause()
    field.value = ""
    await pilot.press(*keys(WORDS))
    assert field.value == WORDS, f"typing into #{field.id} gave {field.value!r}"


async def type_enter_escape(pilot, field: Input, tab_id: str) -> None:
    """Type WORDS into `field` on the base screen, Enter, Escape: nothing else happens."""
    screens = len(pilot.app.screen_stack)
    await type_words(pilot, field)
    await pilot.press("enter")
    await pilot.pause()
    assert field.value == WORDS  # Enter acted on the field's text, and kept it
    assert len(pilot.app.screen_stack) == screens and tab(pilot) == tab_id
    await pilot.press("escape")
    await pilot.pause()
    assert len(pilot.app.screen_stack) == screens and tab(pilot) == tab_id
    assert pilot.app.focused is not field  # Escape left the field for the screen
    assert field.value == WORDS


@run_async
async def test_typing_in_every_field_never_runs_a_key() -> None:
    write_pinned_run("lr-0.004", 0.004, "finished")
    make_checkpoint()
    async with GptTuiApp(settings=Settings()).run_test(size=SIZE) as pilot:
        # Runs: the filter (Enter keeps the focus there; the table's `t` is the timeline).
        runs = await find_pane(pilot, RunsPane)
        await pilot.press("6")
        await wait_for(pilot, lambda: runs.loaded and table_names(runs) == ["lr-0.004"])
        await pilot.press("slash")
        box = runs.query_one("#runs-filter-input", Input)
        assert pilot.app.focused is box
        await type_enter_escape(pilot, box, "runs")
        assert pilot.app.focused is runs.query_one("#runs-table")  # the list, highlighted

        # Chat: the prompt (no model: Enter says so, and keeps the text).
        chat = await find_pane(pilot, ChatPane)
        await pilot.press("3")
        await wait_for(pilot, lambda: tab(pilot) == "chat")
        await type_enter_escape(pilot, chat.query_one("#chat-prompt", Input), "chat")
        assert not chat.generating

        # Train: a form field.
        train = await find_pane(pilot, TrainPane)
        await pilot.press("2")
        await wait_for(pilot, lambda: tab(pilot) == "train")
        await type_enter_escape(pilot, train.query_one("#f-device", Input), "train")
        assert not train.training and train.handle is None

        # Corpus: the path field (`f`).
        corpus = await find_pane(pilot, CorpusPane)
        await pilot.press("1")
        await wait_for(pilot, lambda: tab(pilot) == "corpus")
        await pilot.press("f")
        await type_enter_escape(pilot, corpus.query_one("#corpus-path", Input), "corpus")

        # Speed Lab: the steps field.
        speed = await find_pane(pilot, SpeedLabPane)
        await pilot.press("7")
        await wait_for(pilot, lambda: tab(pilot) == "speedlab")
        await type_enter_escape(pilot, speed.query_one("#speedlab-steps", Input), "speedlab")

        # The watch dialog (`w` on Train): Enter refuses a folder that is not there and
        # stays open; Escape closes it, and nothing is watched.
        await pilot.press("2")
        await wait_for(pilot, lambda: tab(pilot) == "train")
        train.focus()
        await pilot.press("w")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, OpenRunScreen))
        dialog = pilot.app.screen
        await type_words(pilot, dialog.query_one("#run-path", Input))
        await pilot.press("enter")
        await pilot.pause()
        assert pilot.app.screen is dialog and dialog.query_one("#run-path", Input).value == WORDS
        assert "no such folder" in str(dialog.query_one("#run-path-error").render())
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(pilot.app.screen, OpenRunScreen))
        assert tab(pilot) == "train" and train.handle is None

        # Checkpoints: the rename dialog (`r`): the typed name is what Enter submits.
        checkpoints = await find_pane(pilot, CheckpointsPane)
        await pilot.press("4")
        await wait_for(pilot, lambda: tab(pilot) == "checkpoints" and checkpoints.current())
        checkpoints.focus()
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, PromptScreen))
        submitted: list[str | None] = []
        pilot.app.screen.dismiss = submitted.append  # what the dialog would hand back
        await type_words(pilot, pilot.app.screen.query_one("#prompt-input", Input))
        await pilot.press("enter")
        await pilot.pause()
        assert submitted == [WORDS]
        assert tab(pilot) == "checkpoints"


@run_async
async def test_no_invisible_focus_stops_and_the_tab_bar_takes_no_focus() -> None:
    async with GptTuiApp(settings=Settings()).run_test(size=SIZE) as pilot:
        await find_pane(pilot, ChatPane)
        for key, name in (("2", "train"), ("3", "chat")):
            await pilot.press(key)
            await wait_for(pilot, lambda name=name: tab(pilot) == name)
            chain = pilot.app.screen.focus_chain
            assert not any(isinstance(w, (Tabs, ChatControls, TrainForm)) for w in chain)
            assert all(w.region.area > 0 for w in chain)  # each stop is on screen
        # Tab past the Chat screen's last control comes back to its own screen.
        chat = pilot.app.query_one(ChatPane)
        pilot.app.screen.focus_chain[-1].focus()
        await pilot.pause()
        await pilot.press("tab")
        assert pilot.app.focused is chat


@run_async
async def test_a_key_typed_right_after_escape_is_escape_then_the_key() -> None:
    """Terminals (and tmux) send Escape then `4` typed quickly as alt+4."""
    async with GptTuiApp(settings=Settings()).run_test(size=SIZE) as pilot:
        chat = await find_pane(pilot, ChatPane)
        await pilot.press("3")
        await wait_for(pilot, lambda: tab(pilot) == "chat")
        prompt = chat.query_one("#chat-prompt", Input)
        await type_words(pilot, prompt)
        # What the terminal's "\x1b4" parses to (test_escape_and_a_key_parse_as_alt_key).
        pilot.app.post_message(events.Key("alt+4", "4"))  # Escape leaves the prompt, 4: Checkpoints
        await wait_for(pilot, lambda: tab(pilot) == "checkpoints")
        assert prompt.value == WORDS  # no "4" typed into the prompt


@run_async
async def test_closing_the_inspector_with_escape_leaves_the_prompt_alone() -> None:
    async with GptTuiApp(settings=Settings()).run_test(size=SIZE) as pilot:
        chat = await find_pane(pilot, ChatPane)
        await pilot.press("3")
        await wait_for(pilot, lambda: tab(pilot) == "chat")
        assert "(p)" in str(chat.query_one("#chat-prompt", Input).placeholder)  # its key, shown
        chat.query_one("#chat-prompt", Input).focus()
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(pilot.app.screen, InspectorScreen))
        await pilot.press("escape")
        await wait_for(pilot, lambda: pilot.app.focused is chat)
        await pilot.press("5")  # a digit now switches screens, not types
        await wait_for(pilot, lambda: tab(pilot) == "models")
        assert chat.query_one("#chat-prompt", Input).value == ""


def test_escape_and_a_key_parse_as_alt_key_and_split_back() -> None:
    """Textual's own parser, fed Escape and `t` in one read (as tmux sends them)."""
    parsed = []
    for sent in ("\x1bt", "\x1bT"):
        parser = XTermParser()
        tokens = [*parser.feed(sent), *parser.feed("")]  # "": the end of input
        parsed += [e for e in tokens if isinstance(e, events.Key)]
    assert [(e.key, e.character) for e in parsed] == [("alt+t", "t"), ("alt+shift+t", "T")]
    assert [(k.key, k.character) for k in map(after_escape, parsed)] == [("t", "t"), ("T", "T")]
    assert after_escape(events.Key("alt+backspace", None)) is None
    assert after_escape(events.Key("t", "t")) is None
