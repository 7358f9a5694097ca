"""Splits by document, a held-out validation corpus, and mixtures of sources."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from gptcore.cli import main
from gptcore.data.mixture import draw_starts, parse_mixture
from gptcore.data.order import DataOrder
from gptcore.data.plan import batch_plan
from gptcore.data.runcorpus import mixture_shares, run_corpus
from gptcore.data.tokens import document_part, prepare_corpus
from gptcore.errors import ConfigError
from gptcore.model.tokenizer import END_OF_TEXT, get_tokenizer
from gptcore.settings.files import mixture_text, run_config_from_dict
from gptcore.settings.train import TrainConfig


def numbered_docs(n: int) -> list[str]:
    """Documents of varied length, each with a marker that says which one it is."""
    return [
        f"doc {i} begins. " + "some words here, " * (i % 7 + 1) + f"doc {i} ends." for i in range(n)
    ]


def write_jsonl(path: Path, docs: list[str]) -> Path:
    path.write_text("".join(json.dumps({"text": d}) + "\n" for d in docs), encoding="utf-8")
    return path


def decoded_docs(tokens: np.ndarray) -> list[str]:
    text = get_tokenizer().decode(np.asarray(tokens).tolist())
    return text.split(END_OF_TEXT) if text else []


def test_a_document_split_never_cuts_a_document(tmp_path):
    docs = numbered_docs(300)
    path = write_jsonl(tmp_path / "c.jsonl", docs)
    corpus = prepare_corpus(path, train_ratio=0.8, split="documents", split_seed=7)
    train, val = decoded_docs(corpus.train_tokens), decoded_docs(corpus.val_tokens)
    # Every piece on either side is a whole document, and every document is somewhere.
    assert set(train) | set(val) <= set(docs)
    assert sorted(train + val, key=docs.index) == docs
    assert not set(train) & set(val)
    assert 0.1 < len(val) / len(docs) < 0.3  # about 1 - train_ratio
    assert corpus.split == "documents"
    # Seeded: the same seed gives the same split; another seed another one.
    again = prepare_corpus(path, train_ratio=0.8, split="documents", split_seed=7)
    assert np.array_equal(again.val_tokens, corpus.val_tokens)
    other = prepare_corpus(path, train_ratio=0.8, split="documents", split_seed=8)
    assert set(decoded_docs(other.val_tokens)) != set(val)


def test_document_part_draws_by_ratio():
    parts = [document_part(i, 123, 0.9) for i in range(100_000)]
    assert abs(parts.count(1) / len(parts) - 0.1) < 0.005


def test_the_position_split_stays_the_default_and_cuts_by_characters(tmp_path):
    docs = numbered_docs(40)
    path = write_jsonl(tmp_path / "c.jsonl", docs)
    corpus = run_corpus(TrainConfig(corpus=str(path)))
    text = END_OF_TEXT.join(docs)
    cut = int(0.9 * len(text))
    enc = get_tokenizer()
    assert corpus.train_tokens.tolist() == enc.encode(text[:cut], allowed_special="all")
    assert corpus.val_tokens.tolist() == enc.encode(text[cut:], allowed_special="all")


def test_a_val_corpus_validates_and_the_whole_corpus_trains(tmp_path):
    train_docs, val_docs = numbered_docs(30), ["held out one.", "held out two."]
    train_path = write_jsonl(tmp_path / "train.jsonl", train_docs)
    val_path = write_jsonl(tmp_path / "val.jsonl", val_docs)
    corpus = run_corpus(TrainConfig(corpus=str(train_path), val_corpus=str(val_path)))
    assert decoded_docs(corpus.train_tokens) == train_docs
    assert decoded_docs(corpus.val_tokens) == val_docs
    assert corpus.split == "val_corpus"


def test_mixture_weights_are_honoured_within_one_percent_over_a_long_sample():
    lengths, weights = [5_000, 400_000, 60_000], [0.5, 0.2, 0.3]
    g = torch.Generator()
    g.manual_seed(0)
    starts = np.array(draw_starts(lengths, weights, 16, 1_000_000, g))
    edges = np.cumsum([0, *lengths])
    source = np.searchsorted(edges, starts, side="right") - 1
    shares = np.bincount(source, minlength=3) / len(starts)
    assert np.all(np.abs(shares - np.array(weights)) < 0.01), shares
    # No window runs past the end of its source.
    assert np.all(starts + 16 <= edges[source + 1] - 1)


def test_a_mixture_config_trains_by_weight_and_shows_each_share(tmp_path):
    small = write_jsonl(tmp_path / "small.jsonl", numbered_docs(30))
    big = write_jsonl(tmp_path / "big.jsonl", numbered_docs(200))
    model, train = run_config_from_dict(
        {
            "model": {"preset": "tiny", "context_length": 16},
            "train": {
                "corpus": [
                    {"source": str(small), "weight": 3},
                    {"source": str(big), "weight": 1},
                ],
                "sampler": "random",
                "samples_per_epoch": 40_000,
                "max_length": 16,
                "batch_size": 2,
            },
        }
    )
    assert train.corpus == f"mix:3*{small};1*{big}"
    corpus = run_corpus(train)
    (_, small_tokens, _), (_, big_tokens, _) = corpus.sources
    assert len(corpus.train_tokens) == small_tokens + big_tokens
    shares = mixture_shares(corpus)
    assert shares[0][2] == pytest.approx(0.75) and shares[1][2] == pytest.approx(0.25)
    assert shares[0][1] < 0.2  # the small source is a small share of the tokens ...
    plan = batch_plan(len(corpus.train_tokens), len(corpus.val_tokens), model, train).check()
    data = DataOrder(corpus, plan, shuffle=True)
    starts = np.array(data.train_order(5))
    from_small = np.mean(starts < small_tokens)
    assert abs(from_small - 0.75) < 0.01  # ... but three quarters of what the run sees


def test_mixture_text_and_its_errors():
    assert parse_mixture("mix:0.7*a.jsonl;0.3*b/") == parse_mixture(
        mixture_text([{"source": "a.jsonl", "weight": 0.7}, {"source": "b/", "weight": 0.3}])
    )
    with pytest.raises(ConfigError, match="weight must be a positive number"):
        mixture_text([{"source": "a", "weight": -1}])
    with pytest.raises(ConfigError, match="unknown key 'wieght'"):
        mixture_text([{"source": "a", "wieght": 1}])
    with pytest.raises(ConfigError, match="not WEIGHT\\*SOURCE"):
        parse_mixture("mix:a.jsonl")
    with pytest.raises(ConfigError, match='train.sampler must be "random"'):
        TrainConfig(corpus="mix:1*a;1*b")


def test_train_cli_with_a_document_split_and_field(tmp_path, capsys):
    path = tmp_path / "c.jsonl"
    path.write_text(
        "".join(json.dumps({"body": d}) + "\n" for d in numbered_docs(120)), encoding="utf-8"
    )
    config = tmp_path / "run.toml"
    config.write_text(
        '[model]\npreset = "tiny"\ncontext_length = 16\nemb_dim = 16\nn_heads = 2\n'
        "n_layers = 1\n[train]\nmax_length = 16\nmax_steps = 2\nsample_tokens = 0\n"
        'precision = "fp32"\n',
        encoding="utf-8",
    )
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "--corpus", str(path), "--run-dir", str(run)]
    args += ["--text-field", "body", "--split", "documents", "--split-seed", "3", "--quiet"]
    assert main(args) == 0
    saved = (run / "config.toml").read_text()
    assert 'text_field = "body"' in saved and 'split = "documents"' in saved
    assert "split_seed = 3" in saved
    assert main([*args[:-1], "--split", "halves"]) == 2
    assert "train.split must be one of position, documents, got 'halves'" in capsys.readouterr().err


def test_the_config_holds_the_corpus_settings():
    cfg = TrainConfig(text_field="body", split="documents", split_seed=4, val_corpus="v.jsonl")
    assert (cfg.text_field, cfg.split, cfg.split_seed, cfg.val_corpus) == (
        "body",
        "documents",
        4,
        "v.jsonl",
    )
    with pytest.raises(ConfigError, match="text_field"):
        TrainConfig(text_field=" ")
