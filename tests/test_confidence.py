"""Token confidence: per-token records in the engine, `generate --json --logprobs K`,
and the Chat confidence view (colouring toggle, legend, alternatives of a selected token)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import GenerationError
from gptcore.model.gpt import GPTModel
from gptcore.model.tokenizer import encode
from gptcore.model.tokenview import label_of
from gptcore.sampling.stream import generate
from gptcore.settings.model import GPTConfig
from gptcore.settings.sampling import GenerationSettings

CONFIG = GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)
PROMPT = "Every effort moves you"


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def tiny_model() -> GPTModel:
    torch.manual_seed(123)
    return GPTModel(CONFIG).eval()


def step_logits(model: GPTModel, ids: list[int]) -> torch.Tensor:
    """The model's last-position logits for `ids`, computed without the KV cache."""
    with torch.no_grad():
        return model(torch.tensor([ids]))[0, -1].float()


def check_records(model: GPTModel, settings: GenerationSettings, k: int) -> None:
    result = generate(model, PROMPT, settings, logprobs=k)
    (sample,) = result.samples
    assert sample.tokens is not None and len(sample.tokens) == len(sample.token_ids) == 6
    ids = encode(PROMPT)
    for token, record in zip(sample.token_ids, sample.tokens, strict=True):
        logits = step_logits(model, ids)
        raw = torch.softmax(logits, -1)
        if settings.temperature == 0:
            sampled = raw  # greedy: the argmax's raw probability
        else:
            masked = logits.masked_fill(
                logits < torch.topk(logits, settings.top_k).values[-1], -math.inf
            )
            sampled = torch.softmax(masked / settings.temperature, -1)
        assert record.id == token
        assert record.token.raw_prob == pytest.approx(raw[token].item(), rel=1e-4)
        assert record.token.prob == pytest.approx(sampled[token].item(), rel=1e-4)
        assert len(record.top) == k
        expected_top = torch.topk(raw, k).indices.tolist()
        assert [c.id for c in record.top] == expected_top
        raws = [c.raw_prob for c in record.top]
        assert raws == sorted(raws, reverse=True)
        for c in record.top:
            assert c.raw_prob == pytest.approx(raw[c.id].item(), rel=1e-4)
            assert c.prob == pytest.approx(sampled[c.id].item(), rel=1e-4, abs=1e-9)
        ids.append(token)
    assert sample.tokens[-1].end == len(sample.text)


def test_greedy_records_match_softmax_of_the_logits() -> None:
    check_records(tiny_model(), GenerationSettings(max_new_tokens=6, eos_id=None), k=5)


def test_sampled_records_match_the_top_k_distribution() -> None:
    settings = GenerationSettings(max_new_tokens=6, eos_id=None, temperature=1.5, top_k=3, seed=7)
    check_records(tiny_model(), settings, k=4)


def test_records_are_off_by_default() -> None:
    result = generate(tiny_model(), PROMPT, max_new_tokens=4, eos_id=None)
    assert result.samples[0].tokens is None
    assert "tokens" not in result.to_dict()["samples"][0]


def test_a_bad_logprobs_count_is_refused() -> None:
    with pytest.raises(GenerationError) as info:
        generate(tiny_model(), PROMPT, max_new_tokens=2, logprobs=21)
    assert info.value.errors[0].field == "logprobs"


# ---------------------------------------------------------------- the CLI

CLI = ["generate", "--preset", "tiny", "--max-new-tokens", "5", "--no-eos", "--prompt", PROMPT]


def test_cli_json_logprobs(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CLI + ["--json", "--logprobs", "3"]) == 0
    (sample,) = json.loads(capsys.readouterr().out)["samples"]
    tokens = sample["tokens"]
    assert [t["id"] for t in tokens] == sample["token_ids"]
    for t in tokens:
        assert set(t) == {"id", "text", "logprob", "raw_logprob", "top"}
        assert len(t["top"]) == 3
        # Greedy: the drawn token is the most likely one, and nothing is filtered.
        assert t["top"][0]["id"] == t["id"]
        assert t["logprob"] == pytest.approx(t["raw_logprob"])
        assert t["logprob"] <= 0
        top = [c["raw_logprob"] for c in t["top"]]
        assert top == sorted(top, reverse=True)
    assert "".join(t["text"] for t in tokens) == sample["text"]


@pytest.mark.parametrize("bad", ["0", "21", "x"])
def test_cli_bad_logprobs_exits_2(bad: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CLI + ["--json", "--logprobs", bad]) == 2
    assert "--logprobs: must be an integer in [1, 20]" in capsys.readouterr().err


def test_cli_logprobs_without_json_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(CLI + ["--no-stream", "--logprobs", "2"]) == 0
    out = capsys.readouterr().out
    data = generate(tiny_model_preset(), PROMPT, max_new_tokens=5, eos_id=None, logprobs=2)
    first = data.samples[0].tokens[0]
    assert f"{first.token.prob:.3f}" in out
    assert first.top[1].label in out


def tiny_model_preset() -> GPTModel:
    from gptcore.settings.model import get_preset

    torch.manual_seed(123)
    return GPTModel(get_preset("tiny")).eval()


# ---------------------------------------------------------------- the Chat view


async def chat_with_answer(pilot):
    """Open the seeded tiny preset in Chat and generate 8 greedy tokens."""
    from textual.widgets import Input

    from tests.tui_helpers import find_pane, settle, wait_for
    from tui.screens.chat import ChatPane

    chat = await find_pane(pilot, ChatPane)
    chat.open_model("preset:tiny")
    await settle(pilot)
    await wait_for(pilot, lambda: chat.model is not None and not chat.picker.opening)
    for key, value in (("temperature", "0"), ("max_new_tokens", "8"), ("seed", "")):
        chat.query_one(f"#chat-{key}", Input).value = value
    await pilot.pause()
    chat.query_one("#chat-prompt", Input).focus()
    await pilot.press(*"Every effort", "enter")
    await settle(pilot)
    await wait_for(pilot, lambda: not chat.generating)
    return chat


def test_chat_confidence_toggle_and_alternatives() -> None:
    from textual.widgets import Static

    from tests.tui_helpers import host_app, run_async
    from tui.screens.chat import ChatPane
    from tui.screens.chat.confidence import LABEL_CELLS, prob_text
    from tui.screens.chat.generation import CONFIDENCE_TOP

    @run_async
    async def check() -> None:
        app = host_app(ChatPane)
        async with app.run_test(size=(80, 24)) as pilot:
            chat = await chat_with_answer(pilot)
            panel = chat.query_one("#chat-confidence", Static)
            assert not panel.display
            await pilot.press("ctrl+f")
            assert panel.display and "←/→ token" in str(panel.render())
            await pilot.press("right")  # the second generated token
            expected = generate(
                tiny_model_preset(), "Every effort", max_new_tokens=8, logprobs=CONFIDENCE_TOP
            ).samples[0]
            record = expected.tokens[1]
            lines = str(panel.render()).splitlines()
            assert f"#2/{len(expected.tokens)} {record.token.label} p " in lines[1]
            alternatives = lines[2:]
            assert len(alternatives) == CONFIDENCE_TOP
            for line, c in zip(alternatives, record.top, strict=True):
                assert label_of(c.id, LABEL_CELLS) in line
                assert f"{prob_text(c.raw_prob)} → {prob_text(c.prob)}" in line
            # The answer keeps its text verbatim, now with a style per token.
            answer = chat.confidence.answers[0][0]
            rendered = answer.render()
            assert str(rendered) == expected.text and rendered.spans
            await pilot.press("ctrl+f")
            assert not panel.display and not answer.render().spans

    check()


def test_confidence_view_snapshot(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    from gptcore.sampling.stream import GenerationResult
    from tests.tui_helpers import fixed_home, host_app
    from tui.screens.chat import ChatPane

    fixed_home(monkeypatch)
    # The speed line would differ on every run: pinned.
    monkeypatch.setattr(GenerationResult, "tokens_per_s", property(lambda self: 100.0))

    async def before(pilot) -> None:
        await chat_with_answer(pilot)
        await pilot.press("ctrl+f", "right", "right")
        pilot.app.clear_notifications()  # "ready" would vanish on a slow machine
        await pilot.pause()

    assert snap_compare(host_app(ChatPane), terminal_size=(80, 24), run_before=before)
