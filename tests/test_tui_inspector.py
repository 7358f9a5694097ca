"""The next-token inspector in the app: the chapter's toy numbers, masking, temperatures,
the sampling lab, and opening it from Chat on a real model."""

from __future__ import annotations

import torch
from textual.widgets import Input, Static

from gptcore.model.tokenizer import encode
from gptcore.sampling.nexttoken import TOY_LOGITS, TOY_VOCAB, distribution, next_token_logits
from tests.tui_helpers import (
    find_pane,
    host_app,
    make_checkpoint,
    run_async,
    settle,
    tiny_model,
    wait_for,
)
from tui.screens.chat import ChatPane
from tui.screens.inspector import InspectorScreen


def _view(screen: InspectorScreen, name: str) -> str:
    return str(screen.query_one(f"#insp-{name}-view", Static).render())


def _row(text: str, token: str) -> str:
    return next(line for line in text.splitlines() if line.startswith(token + " "))


async def _set(pilot, screen: InspectorScreen, key: str, value: str) -> None:
    screen.query_one(f"#insp-{key}", Input).value = value
    await pilot.pause()


async def _draws(pilot, screen: InspectorScreen) -> None:
    await settle(pilot)
    await wait_for(pilot, lambda: screen.analysis.counts is not None)


@run_async
async def test_toy_vocabulary_reproduces_the_chapter():
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 40)) as pilot:
        await pilot.press("ctrl+n")  # no model loaded: the toy vocabulary
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, InspectorScreen) and screen.toy
        await _draws(pilot, screen)
        # 1,000 draws with seed 123 at temperature 1: the chapter's counts.
        lab = _view(screen, "lab")
        counts = {TOY_VOCAB[t]: n for t, n in screen.analysis.counts.items()}
        assert counts == {"closer": 73, "forward": 582, "toward": 343, "inches": 2}
        assert _row(lab, "forward").split()[1] == "582"
        assert _row(lab, "closer").split()[1] == "73"
        assert _row(lab, "inches").split()[1] == "2"
        # Top-3 masking: the chapter's three probabilities, the rest masked.
        await _set(pilot, screen, "top_k", "3")
        dist = _view(screen, "dist")
        assert "57.75%" in _row(dist, "forward").split("│")[1]
        assert "36.10%" in _row(dist, "toward").split("│")[1]
        assert "6.15%" in _row(dist, "closer").split("│")[1]
        masked = [w for w in TOY_VOCAB if "masked" in _row(dist, w)]
        assert sorted(masked) == sorted(set(TOY_VOCAB) - {"forward", "toward", "closer"})
        summary = str(screen.query_one("#insp-summary", Static).render())
        assert "3 of 9 tokens can be drawn" in summary
        # The raw column is untouched by top-k: softmax of the raw logits.
        raw = torch.softmax(torch.tensor(TOY_LOGITS), 0)
        assert f"{float(raw[3]) * 100:6.2f}%" in _row(dist, "forward").split("│")[0]


@run_async
async def test_temperature_comparison_and_invalid_controls():
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(InspectorScreen())
        await pilot.pause()
        screen = app.screen
        temps = _view(screen, "temps")
        expected = distribution(torch.tensor(TOY_LOGITS), 0.1).probs
        assert f"T=0.1 {float(expected[3]) * 100:6.2f}%" in temps  # forward at T=0.1
        await _set(pilot, screen, "temperatures", "1, 2")
        assert "T=0.1" not in _view(screen, "temps") and "T=2" in _view(screen, "temps")
        before = _view(screen, "dist")
        await _set(pilot, screen, "temperature", "-1")
        field = screen.query_one("#insp-temperature", Input)
        assert field.has_class("-invalid")
        # The message names the field by its label, once ("temp", not "temperature: temperature").
        assert str(screen.query_one("#insp-error", Static).render()).startswith(
            "temp must be a finite number >= 0"
        )
        assert _view(screen, "dist") == before  # the last valid view stays
        await pilot.press("escape")
        assert not isinstance(app.screen, InspectorScreen)


@run_async
async def test_opens_from_chat_on_the_model_and_prompt():
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 40)) as pilot:
        chat = app.query_one(ChatPane)
        chat.open_model(f"ckpt:{ckpt}")
        await wait_for(pilot, lambda: chat.model is not None)
        chat.query_one("#chat-prompt", Input).value = "Every effort moves you"
        chat.query_one("#chat-top_k", Input).value = "5"
        await pilot.pause()
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
        screen = app.screen
        assert not screen.toy and screen.query_one("#insp-top_k", Input).value == "5"
        logits = next_token_logits(tiny_model(), encode("Every effort moves you"))
        assert torch.allclose(screen.model_logits, logits, atol=1e-5)
        kept = screen.analysis.distribution.kept
        assert int(kept.sum()) == 5
        assert set(kept.nonzero().flatten().tolist()) == set(torch.topk(logits, 5).indices.tolist())
        # Changing a control recomputes the distribution, never the model.
        calls = []
        chat.model.forward = lambda *a, **k: calls.append(1)  # would break if called
        await _set(pilot, screen, "top_k", "")
        await _set(pilot, screen, "temperature", "2")
        assert calls == [] and screen.analysis.drawable == logits.numel()
        await pilot.press("ctrl+t")  # the toy vocabulary, one key away
        assert screen.toy and "closer" in _view(screen, "dist")


def test_snapshot_inspector(snap_compare):
    async def run_before(pilot):
        pilot.app.push_screen(InspectorScreen())
        await pilot.pause()
        for field in pilot.app.screen.query(Input):
            field.cursor_blink = False  # a blinking cursor would make the picture flaky
        await settle(pilot)
        await pilot.pause()

    assert snap_compare(host_app(ChatPane), terminal_size=(80, 24), run_before=run_before)


@run_async
async def test_in_the_whole_app_the_inspector_keeps_its_own_keys():
    """Its tabs used to reach the app's tab handler, which moved the focus to the Chat
    pane below: the footer showed Chat's keys, ctrl+t opened the theme picker and Esc
    did not close the inspector."""
    from tui.app import GptTuiApp
    from tui.settings import Settings

    app = GptTuiApp(settings=Settings())
    async with app.run_test(size=(80, 24)) as pilot:
        app.action_show_tab("chat")
        chat = await find_pane(pilot, ChatPane)
        chat.open_model("preset:tiny")
        await wait_for(pilot, lambda: chat.model is not None)
        chat.query_one("#chat-prompt", Input).value = "Every effort"
        await pilot.press("ctrl+n")
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
        screen = app.screen
        await settle(pilot)
        assert screen.focused is not None and screen.focused.screen is screen
        shown = [b.description for _, b, _, _ in screen.active_bindings.values() if b.show]
        assert "Toy vocab" in shown and "Inspect" not in shown
        await pilot.press("ctrl+t")
        assert app.screen is screen and screen.toy
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, InspectorScreen))
