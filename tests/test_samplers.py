"""The sampler chain beyond the book: each stage against hand-computed numbers,
the chain's order, the book path unchanged when all are off, cache exactness."""

from __future__ import annotations

import json

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import GenerationError
from gptcore.model.gpt import GPTModel
from gptcore.model.tokenizer import END_OF_TEXT_ID, decode, encode
from gptcore.sampling.chain import apply_chain, chain_stages, filter_logits, select_next
from gptcore.sampling.decode import generate_token_ids
from gptcore.sampling.from_text import inspect_settings_from_text, settings_from_text
from gptcore.sampling.nexttoken import chain_distributions
from gptcore.sampling.stream import generate
from gptcore.settings.model import GPTConfig
from gptcore.settings.sampling import GenerationSettings
from tests.tui_helpers import run_async

LOGITS = torch.tensor([[2.0, -1.0, 0.5, 1.0, -2.0]])
NEG = float("-inf")


def chain(history: list[int], **kw) -> torch.Tensor:
    s = GenerationSettings(temperature=1.0, eos_id=None, **kw)
    return apply_chain(LOGITS, torch.tensor([history]), s)


def test_repetition_penalty_divides_positive_and_multiplies_negative_seen_logits() -> None:
    out = chain([0, 1, 1], repetition_penalty=2.0)
    assert torch.allclose(out, torch.tensor([[1.0, -2.0, 0.5, 1.0, -2.0]]))


def test_repetition_window_only_looks_at_the_last_tokens() -> None:
    out = chain([0, 1, 3], repetition_penalty=2.0, repetition_window=2)
    assert torch.allclose(out, torch.tensor([[2.0, -2.0, 0.5, 0.5, -2.0]]))


def test_frequency_and_presence_penalties_follow_openai() -> None:
    # token 1 seen twice, token 2 once: logit -= 0.5 * count + 1.0 * (count > 0)
    out = chain([1, 2, 1], frequency_penalty=0.5, presence_penalty=1.0)
    assert torch.allclose(out, torch.tensor([[2.0, -3.0, -1.0, 1.0, -2.0]]))


def test_no_repeat_ngram_bans_the_token_that_completes_a_seen_ngram() -> None:
    # 3-grams seen: (3,1,4) and (1,4,3); the sequence ends with (3,1): 4 is banned.
    out = chain([3, 1, 4, 3, 1], no_repeat_ngram=3)
    assert out[0, 4] == NEG
    assert torch.equal(out[0, :4], LOGITS[0, :4])
    # Size 1 bans every token seen.
    out = chain([0, 2], no_repeat_ngram=1)
    assert out[0, 0] == NEG and out[0, 2] == NEG and out[0, 1] == -1.0


def test_min_p_keeps_tokens_at_least_min_p_times_the_top_one_after_temperature() -> None:
    probs = torch.softmax(LOGITS / 0.5, dim=-1)
    keep = probs >= 0.1 * probs.max()
    out = apply_chain(LOGITS, None, GenerationSettings(temperature=0.5, min_p=0.1))
    assert torch.equal(torch.isfinite(out), keep)
    # By hand: p(x)/p_max = exp((x - 2) / 0.5) >= 0.1 keeps the logits 2.0 and 1.0 only
    # (exp(-2) = 0.135; 0.5 gives exp(-3) = 0.05).
    assert keep.tolist() == [[True, False, False, True, False]]


def test_logit_bias_adds_and_ban_masks() -> None:
    out = chain([], logit_bias=((1, 3.5), (0, -1.0)), ban=(3,))
    assert torch.equal(out, torch.tensor([[1.0, 2.5, 0.5, NEG, -2.0]]))


def test_the_chain_runs_in_its_documented_order() -> None:
    s = GenerationSettings(
        temperature=2.0,
        top_k=4,
        top_p=0.99,
        min_p=0.01,
        ban=(4,),
        repetition_penalty=2.0,
        frequency_penalty=0.1,
        no_repeat_ngram=2,
        eos_id=None,
    )
    names = [name for name, _ in chain_stages(LOGITS, torch.tensor([[0, 2, 0]]), s)]
    assert names == [
        "logits",
        "bias/ban",
        "repetition",
        "frequency/presence",
        "no-repeat-ngram",
        "top-k",
        "temperature",
        "min-p",
        "top-p",
    ]
    # Penalties before top-k: token 0 (2.0 -> 1.0 -> 0.8) loses its lead to token 3.
    out = apply_chain(LOGITS, torch.tensor([[0, 2, 0]]), s)
    assert out[0, 2] == NEG  # no-repeat-ngram: (0, 2) was seen after 0
    assert torch.allclose(out[0, [0, 3]], torch.tensor([0.4, 0.5]))


def test_all_samplers_off_is_the_book_path_exactly() -> None:
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))
    history = torch.randint(0, 50, (3, 20), generator=torch.Generator().manual_seed(2))
    for t, k, p in [(1.0, None, None), (0.7, 5, None), (1.3, 10, 0.9)]:
        s = GenerationSettings(temperature=t, top_k=k, top_p=p)
        assert torch.equal(apply_chain(logits, history, s), filter_logits(logits, t, k, p))
        g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
        book = torch.multinomial(torch.softmax(filter_logits(logits, t, k, p), -1), 1, generator=g1)
        assert torch.equal(select_next(logits, s, g2, history), book.squeeze(-1))
    greedy = GenerationSettings(temperature=0.0)
    assert torch.equal(select_next(logits, greedy, None, history), logits.argmax(-1))


def test_greedy_uses_the_penalties() -> None:
    s = GenerationSettings(temperature=0.0, ban=(0,))
    assert select_next(LOGITS, s).tolist() == [3]


EVERY_SAMPLER = dict(
    repetition_penalty=1.3,
    repetition_window=8,
    frequency_penalty=0.4,
    presence_penalty=0.3,
    no_repeat_ngram=2,
    min_p=0.02,
    logit_bias=((5, 2.0), (7, -3.0)),
    ban=(1, 2),
    top_k=40,
    top_p=0.95,
)


def uncached(model: GPTModel, ids: list[int], s: GenerationSettings) -> list[int]:
    """Recompute the whole (cropped) context every step, through the same chain."""
    ctx = model.config.context_length
    idx = torch.tensor([ids])
    gen = torch.Generator().manual_seed(s.seed) if s.seed is not None else None
    with torch.no_grad():
        for _ in range(s.max_new_tokens):
            window = idx[:, -ctx:]
            nxt = select_next(model(window)[:, -1, :], s, gen, window)
            idx = torch.cat([idx, nxt[:, None]], dim=1)
    return idx[0, len(ids) :].tolist()


@pytest.mark.parametrize("temperature", [0.0, 0.9])
def test_cached_and_uncached_generation_agree_with_every_sampler_on(temperature: float) -> None:
    config = GPTConfig(
        vocab_size=64, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
    )
    torch.manual_seed(5)
    model = GPTModel(config).eval()
    ids = [3, 9, 3, 9, 4, 11]
    settings = GenerationSettings(
        max_new_tokens=40, eos_id=None, seed=7, temperature=temperature, **EVERY_SAMPLER
    ).validated(64, 16)
    cached = torch.cat(list(generate_token_ids(model, ids, settings))).tolist()
    assert len(cached) == 40  # past the 16-token window: the cache is rebuilt
    assert cached == uncached(model, ids, settings)
    assert not {1, 2} & set(cached)


def test_settings_parse_the_samplers_and_name_bad_fields() -> None:
    s = settings_from_text(
        {"repetition_penalty": "1.2", "min_p": "0.05", "no_repeat_ngram": "off"},
        logit_bias=["198=-5"],
        ban=["<|endoftext|>", "\\n", "42"],
    )
    assert (s.repetition_penalty, s.min_p, s.no_repeat_ngram) == (1.2, 0.05, None)
    assert s.logit_bias == ((198, -5.0),) and s.ban == (END_OF_TEXT_ID, encode("\n")[0], 42)
    with pytest.raises(GenerationError) as info:
        settings_from_text(
            {"repetition_penalty": "0", "frequency_penalty": "3", "min_p": "x"},
            logit_bias=["198"],
            ban=["hello world again"],
        )
    assert set(info.value.by_field()) == {
        "repetition_penalty",
        "frequency_penalty",
        "min_p",
        "logit_bias",
        "ban",
    }


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--repetition-penalty", "-1"),
        ("--repetition-window", "0"),
        ("--frequency-penalty", "2.5"),
        ("--presence-penalty", "nan"),
        ("--no-repeat-ngram", "0"),
        ("--min-p", "1.5"),
        ("--logit-bias", "5"),
        ("--ban", "two tokens"),
    ],
)
def test_bad_sampler_flags_exit_2_naming_the_flag(
    flag: str, value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["generate", "--preset", "tiny", "--prompt", "Hi"], ["inspect", "--toy"]):
        assert main([*command, flag, value]) == 2
        assert flag + ":" in capsys.readouterr().err


def test_generate_flags_change_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    base = ["generate", "--preset", "tiny", "--max-new-tokens", "8", "--no-eos", "--json"]
    assert main([*base, "--prompt", "Hi"]) == 0
    plain = json.loads(capsys.readouterr().out)["samples"][0]["token_ids"]
    banned = str(plain[0])
    flags = ["--ban", banned, "--no-repeat-ngram", "1", "--logit-bias", "5=0.5"]
    assert main([*base, "--prompt", "Hi", *flags]) == 0
    ids = json.loads(capsys.readouterr().out)["samples"][0]["token_ids"]
    assert int(banned) not in ids and len(set(ids)) == len(ids)


def test_inspect_shows_each_stage(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--toy", "--ban", "3", "--min-p", "0.1", "--samples", "0"]) == 0
    out = capsys.readouterr().out
    assert "after each stage" in out
    assert "bias/ban" in out and "min-p" in out
    controls = inspect_settings_from_text({"min_p": "0.1"}, 9, ban=["3"])
    stages = chain_distributions(torch.tensor([4.5, 0.9, -1.9, 6.75, 1.6]), controls.sampling)
    assert [n for n, _ in stages] == ["logits", "bias/ban", "temperature", "min-p"]
    assert float(stages[1][1][3]) == 0.0


# ---------------------------------------------------------------- the app


@run_async
async def test_chat_sampler_controls_change_generation_and_the_inspector_shows_stages():
    from textual.widgets import Input, Static

    from tests.tui_helpers import find_pane, host_app, make_checkpoint, settle, tiny_model, wait_for
    from tui.screens.chat import ChatPane
    from tui.screens.inspector import InspectorScreen

    prompt = "Every effort"
    plain = generate(tiny_model(), prompt, max_new_tokens=8, eos_id=None).samples[0].token_ids
    first = plain[0]
    ckpt = make_checkpoint()
    app = host_app(ChatPane)
    async with app.run_test(size=(80, 24)) as pilot:
        pane = await find_pane(pilot, ChatPane)
        pane.open_model(str(ckpt))
        await settle(pilot)
        await wait_for(pilot, lambda: pane.model is not None and not pane.picker.opening)
        for key, value in (
            ("temperature", "0"),
            ("max_new_tokens", "8"),
            ("ban", str(first)),
            ("no_repeat_ngram", "1"),
        ):
            pane.query_one(f"#chat-{key}", Input).value = value
            await pilot.pause()
        pane.query_one("#chat-eos").value = False
        await pilot.pause()
        assert pane.controls.errors == {} and pane.settings is not None
        assert pane.settings.ban == (first,) and pane.settings.no_repeat_ngram == 1
        pane.query_one("#chat-prompt", Input).value = prompt
        pane.query_one("#chat-prompt", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        await wait_for(pilot, lambda: not pane.generating)
        banned = generate(
            tiny_model(), prompt, max_new_tokens=8, eos_id=None, ban=(first,), no_repeat_ngram=1
        ).samples[0]
        assert first not in banned.token_ids
        assert pane.conversation.last_answer == banned.text != decode(plain)
        # A bad value is refused by its label.
        pane.query_one("#chat-min_p", Input).value = "2"
        await pilot.pause()
        assert pane.controls.errors["min_p"].startswith("min-p must be")
        pane.query_one("#chat-min_p", Input).value = ""
        pane.query_one("#chat-prompt", Input).value = prompt
        await pilot.pause()
        pane.action_inspect()
        await wait_for(pilot, lambda: isinstance(app.screen, InspectorScreen))
        await settle(pilot)
        view = str(app.screen.query_one("#insp-stages-view", Static).render())
        assert "bias/ban" in view and "no-repeat-ngram" in view
        assert [stage.name for stage in app.screen.analysis.stages][:3] == [
            "logits",
            "bias/ban",
            "no-repeat-ngram",
        ]
        assert app.screen.analysis.probability(first) == 0.0
