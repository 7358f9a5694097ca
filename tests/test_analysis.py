"""Next-token analysis (gptcore.sampling.analysis): one function behind `gpt-tui inspect`
and the inspector screen, the toy vocabulary's bans, and the command's figure."""

from __future__ import annotations

import json

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import GenerationError
from gptcore.sampling import figures
from gptcore.sampling.analysis import TOY, analyze_next_token, gpt2_vocabulary, toy_logits
from gptcore.sampling.from_text import inspect_settings_from_text
from gptcore.sampling.nexttoken import (
    TOY_VOCAB,
    chain_distributions,
    distribution,
    temperature_table,
    top_candidates,
)
from gptcore.settings.sampling import GenerationSettings, InspectSettings
from tests.tui_helpers import host_app, run_async, settle, wait_for
from tui.screens.chat import ChatPane
from tui.screens.inspector import InspectorScreen


def test_the_analysis_is_the_chain_the_candidates_the_stages_and_the_temperatures() -> None:
    logits = torch.randn(300, generator=torch.Generator().manual_seed(3)) * 2
    history = [5, 9, 5, 17]
    controls = inspect_settings_from_text(
        {"temperature": "0.8", "top_k": "40", "repetition_penalty": "1.5", "draws": "200"},
        300,
        ban=["9"],
    )
    a = analyze_next_token(logits, controls, history, gpt2_vocabulary(300), top=7)
    dist = distribution(logits, chain=controls.sampling, history=history)
    torch.testing.assert_close(a.distribution.probs, dist.probs)
    assert list(a.candidates) == top_candidates(dist, 7)
    stages = chain_distributions(logits, controls.sampling, history)
    assert [s.name for s in a.stages] == [name for name, _ in stages]
    assert [s.name for s in a.stages][:3] == ["logits", "bias/ban", "repetition"]
    for stage, (_, probs) in zip(a.stages, stages, strict=True):
        assert [i for i, _ in stage.top] == torch.topk(probs, 5).indices.tolist()
    table = temperature_table(logits, controls.temperatures, [c.id for c in a.candidates])
    assert a.temperatures == {t: tuple(v) for t, v in table.items()}
    assert a.counts is None and a.probability(9) == 0.0  # banned
    drawn = a.drawn()
    assert sum(drawn.counts.values()) == 200 and 9 not in drawn.counts
    assert drawn.counts == a.drawn().counts  # seeded: the same draws again
    assert drawn.lab_ids()[:7] == [c.id for c in a.candidates]


def test_the_toy_vocabulary_bans_its_own_words(capsys: pytest.CaptureFixture[str]) -> None:
    """`--toy --ban forward` bans the toy's "forward" (id 3), not GPT-2's token."""
    assert main(["inspect", "--toy", "--ban", "forward", "--samples", "50", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    by_token = {c["token"]: c for c in out["candidates"]}
    assert by_token["forward"]["masked"] and by_token["forward"]["count"] == 0
    assert out["stages"][1]["stage"] == "bias/ban"
    assert "forward" not in [t["token"] for t in out["stages"][1]["top"][:4]]
    assert TOY.encode("forward") == [TOY_VOCAB.index("forward")] == [3]
    assert TOY.encode(" forward") == []  # the toy's words have no spaces
    for ban, message in (
        ("forwar", "--ban: ban 'forwar' is not a token of this vocabulary"),
        ("20", "--ban: ban must be a token id in [0, 8], got 20"),
    ):
        assert main(["inspect", "--toy", "--ban", ban]) == 2
        assert message in capsys.readouterr().err


def test_a_ban_past_the_vocabulary_is_refused_not_a_crash() -> None:
    with pytest.raises(GenerationError) as info:
        GenerationSettings(ban=(60_000,)).validated(50257, 1024)
    assert "ban must be a token id in [0, 50256], got 60000" in str(info.value)


def test_the_cli_prints_the_analysis(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["inspect", "--toy", "--top-k", "3", "--samples", "1000", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    controls = inspect_settings_from_text({"top_k": "3"}, TOY.size)
    a = analyze_next_token(toy_logits(), controls, (), TOY).drawn()
    assert [c["id"] for c in out["candidates"]] == [c.id for c in a.candidates]
    assert [c["sampling_probability"] for c in out["candidates"]] == [c.prob for c in a.candidates]
    assert [c["count"] for c in out["candidates"]] == [a.counts.get(c.id, 0) for c in a.candidates]
    assert out["temperatures"] == {str(t): list(v) for t, v in a.temperatures.items()}
    assert main(["inspect", "--toy", "--top-k", "3", "--samples", "1000"]) == 0
    text = capsys.readouterr().out
    assert "forward" in text and "masked" in text and "█" in text and "#" not in text


@run_async
async def test_the_screen_shows_the_same_analysis_as_the_command() -> None:
    app = host_app(ChatPane)
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(InspectorScreen())
        await pilot.pause()
        screen = app.screen
        await settle(pilot)
        await wait_for(pilot, lambda: screen.analysis.counts is not None)
        expected = analyze_next_token(toy_logits(), InspectSettings(), (), TOY).drawn()
        got = screen.analysis
        assert got.candidates == expected.candidates and got.stages == expected.stages
        assert got.temperatures == expected.temperatures and got.counts == expected.counts


def test_the_command_draws_the_books_figure_with_the_figure_module(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path
) -> None:
    calls = []
    monkeypatch.setattr(figures, "save_toy_temperature_figure", lambda *a: calls.append(a))
    out = tmp_path / "t.png"
    assert (
        main(["inspect", "--toy", "--samples", "0", "--temperatures", "1,2", "--png", str(out)])
        == 0
    )
    assert calls == [(str(out), (1.0, 2.0))]
    assert f"saved the temperature comparison to {out}" in capsys.readouterr().out
