import json

import pytest
import torch

from gptcore.cli import main
from gptcore.model.gpt import GPTModel
from gptcore.model.summary import summarize, summarize_config
from gptcore.model.tokenview import view_tokens
from gptcore.sampling.chain import filter_logits
from gptcore.sampling.nexttoken import (
    TOY_LOGITS,
    TOY_VOCAB,
    distribution,
    next_token_logits,
    sample_counts,
    temperature_table,
    top_candidates,
)
from gptcore.settings.model import GPTConfig

TOY = torch.tensor(TOY_LOGITS)


def test_toy_top3_reproduces_the_chapter():
    probs = distribution(TOY, 1.0, top_k=3).probs
    expected = [0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0]
    assert [round(float(p), 4) for p in probs] == expected


def test_toy_sampling_lab_reproduces_the_chapters_counts():
    counts = sample_counts(distribution(TOY, 1.0).probs, 1000, seed=123)
    named = {TOY_VOCAB[i]: n for i, n in counts.items()}
    assert named == {"closer": 73, "forward": 582, "inches": 2, "toward": 343}


def test_probabilities_are_softmax_of_post_processed_logits():
    logits = torch.randn(500, generator=torch.Generator().manual_seed(0)) * 3
    for temperature, top_k, top_p in [
        (1.0, None, None),
        (0.7, 50, None),
        (1.3, None, 0.8),
        (2.0, 10, 0.5),
    ]:
        dist = distribution(logits, temperature, top_k, top_p)
        expected = torch.softmax(filter_logits(logits[None], temperature, top_k, top_p)[0], -1)
        torch.testing.assert_close(dist.probs, expected)
        assert dist.probs.sum().item() == pytest.approx(1.0, abs=1e-5)


def test_masked_tokens_are_exactly_those_outside_top_k_and_top_p():
    logits = torch.tensor([5.0, 4.0, 3.0, 2.0, 1.0, 0.0])
    kept_k = distribution(logits, 1.0, top_k=2).kept
    assert kept_k.tolist() == [True, True, False, False, False, False]
    raw = torch.softmax(logits, -1)
    # top-p keeps the smallest prefix whose mass reaches p.
    p = float(raw[0] + raw[1]) - 1e-4
    kept_p = distribution(logits, 1.0, top_p=p).kept
    assert kept_p.tolist() == [True, True, False, False, False, False]
    cands = top_candidates(distribution(logits, 1.0, top_k=3), 6)
    assert [c.kept for c in cands] == [True, True, True, False, False, False]
    assert [c.id for c in cands] == [0, 1, 2, 3, 4, 5]


def test_temperature_zero_is_greedy_and_table_sharpens():
    dist = distribution(TOY, 0.0)
    assert dist.probs.argmax().item() == 3 and dist.probs.sum().item() == 1.0
    assert dist.entropy == 0.0
    table = temperature_table(TOY, [1, 0.1, 5], [3])
    assert table[0.1][0] > table[1][0] > table[5][0]


def test_sampling_frequencies_converge_to_probabilities():
    logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
    probs = distribution(logits, 1.0).probs
    n = 20_000
    counts = sample_counts(probs, n, seed=7)
    for i, p in enumerate(probs.tolist()):
        # 5 standard deviations of a binomial: fails only on a real bias.
        assert abs(counts.get(i, 0) / n - p) < 5 * (p * (1 - p) / n) ** 0.5 + 1e-9


def test_next_token_logits_match_the_model(tiny_config):
    torch.manual_seed(0)
    model = GPTModel(tiny_config).train()
    ids = list(range(100, 150))  # longer than the context: the last 32 are kept
    logits = next_token_logits(model, ids)
    assert model.training  # restored
    with torch.no_grad():
        expected = model.eval()(torch.tensor([ids[-32:]]))[0, -1]
    torch.testing.assert_close(logits, expected)


def test_summary_matches_numel_and_the_books_figures(tiny_config):
    model = GPTModel(tiny_config)
    s = summarize(model)
    assert s.total == sum(p.numel() for p in model.parameters())
    assert sum(s.by_component.values()) == s.total
    book = summarize_config(GPTConfig(context_length=1024))
    assert book.total == 163_009_536
    assert round(book.weights_mb("fp32"), 2) == 621.83
    tied = summarize_config(GPTConfig(context_length=1024, tie_embeddings=True))
    assert tied.total == 124_412_160 and tied.by_component["output head"] == 0


def test_token_view_round_trips_and_shows_partial_bytes():
    text = "Hi 漢字 😀<|endoftext|>x"
    view = view_tokens(text)
    assert view.round_trip_ok
    assert "".join(p.label for p in view.pieces if p.text is not None)
    partial = [p for p in view.pieces if p.text is None]
    assert partial and all(p.label.startswith("<") for p in partial)
    assert [p.special for p in view.pieces].count(True) == 1
    assert b"".join(p.data for p in view.pieces).decode() == text


def test_cli_inspect_toy_json(capsys):
    assert main(["inspect", "--toy", "--top-k", "3", "--top", "9", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    probs = {c["token"]: round(c["sampling_probability"], 4) for c in out["candidates"]}
    assert probs["forward"] == 0.5775 and probs["toward"] == 0.361 and probs["closer"] == 0.0615
    assert sum(c["masked"] for c in out["candidates"]) == 6


def test_cli_inspect_model_and_errors(capsys):
    assert main(["inspect", "--preset", "tiny", "--top", "5", "--samples", "50"]) == 0
    out = capsys.readouterr().out
    assert "50 draws" in out and "entropy" in out
    assert main(["inspect", "--toy", "--top-p", "1.5"]) == 2
    assert "top_p must be a number in (0, 1]" in capsys.readouterr().err
    assert main(["inspect", "--toy", "--temperatures", "1,x"]) == 2


def test_cli_summary_and_tokens(capsys):
    assert main(["summary", "--context-length", "1024", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"] == 163_009_536 and out["weights_mb"]["fp32"] == 621.83
    assert main(["tokens", "Every effort moves you", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["id"] for p in out["pieces"]] == [6109, 3626, 6100, 345] and out["round_trip_ok"]
    assert main(["tokens", "a😀", "--ids"]) == 0
    assert "partial character" in capsys.readouterr().out
