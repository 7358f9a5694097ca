"""GPT-2 reference losses: `gpt-tui eval`'s numbers on the run's split, in windows of
the run's context length, computed once and cached; None when the size is absent."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch

import gptcore.training.evaluate
from gptcore.data.tokens import prepare_corpus
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig
from gptcore.training.evaluate import evaluate_model
from gptcore.training.reference import local_gpt2_sizes, reference_dir, reference_losses
from gptcore.weights.gpt2 import gpt2_dir
from gptcore.weights.hf_export import export_hf

from .tui_helpers import write_corpus

FAKE_GPT2 = GPTConfig(
    context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, qkv_bias=True
)


def _fake_gpt2(tmp_path: Path, size: str = "124M") -> GPTModel:
    """A tiny model saved where `gpt-tui download gpt2 --size SIZE --source hf` puts one."""
    torch.manual_seed(5)
    model = GPTModel(FAKE_GPT2).eval()
    shutil.copytree(export_hf(model, tmp_path / "hf"), gpt2_dir(size, "hf"))
    return model


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []

    def counted(*args: object, **kwargs: object) -> object:
        calls.append(1)
        return evaluate_model(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(gptcore.training.evaluate, "evaluate_model", counted)
    return calls


def test_absent_size_is_none(tmp_path: Path) -> None:
    corpus = write_corpus(tmp_path)
    assert local_gpt2_sizes() == []
    assert reference_losses("124M", str(corpus), 0.9, 32, 2, "cpu") is None
    gpt2_dir("124M", "hf").mkdir(parents=True)  # an empty folder is not a download
    assert reference_losses("small", str(corpus), 0.9, 32, 2, "cpu") is None


def test_losses_are_evals_and_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    model = _fake_gpt2(tmp_path)
    corpus = write_corpus(tmp_path)
    assert local_gpt2_sizes() == ["124M"]
    calls = _counting(monkeypatch)
    losses = reference_losses("124M", str(corpus), 0.8, 32, 2, "cpu", max_batches=3)
    expected = evaluate_model(
        model, prepare_corpus(str(corpus), 0.8), batch_size=2, max_batches=3, device="cpu"
    )
    assert losses == pytest.approx((expected.train_loss, expected.val_loss), abs=1e-6)
    assert len(calls) == 1 and len(list(reference_dir().glob("*.json"))) == 1
    # The second call reads the cache; another split is another entry.
    assert reference_losses("gpt2-small", str(corpus), 0.8, 32, 2, "cpu", max_batches=3) == losses
    assert len(calls) == 1
    other = reference_losses("124M", str(corpus), 0.9, 32, 2, "cpu", max_batches=3)
    assert len(calls) == 2 and other != losses


def test_windows_of_the_runs_context_length(tmp_path: Path) -> None:
    """A run with a 16-token context is compared with GPT-2 reading 16 tokens."""
    model = _fake_gpt2(tmp_path)
    corpus = write_corpus(tmp_path)
    short = GPTModel(dataclasses.replace(FAKE_GPT2, context_length=16)).eval()
    state = model.state_dict()
    state["pos_emb.weight"] = state["pos_emb.weight"][:16]
    short.load_state_dict(state)
    expected = evaluate_model(short, str(corpus), batch_size=2, max_batches=4, device="cpu")
    losses = reference_losses("124M", str(corpus), 0.9, 16, 2, "cpu", max_batches=4)
    assert losses == pytest.approx((expected.train_loss, expected.val_loss), abs=1e-6)


def test_a_damaged_cache_entry_is_recomputed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_gpt2(tmp_path)
    corpus = write_corpus(tmp_path)
    first = reference_losses("124M", str(corpus), 0.9, 32, 2, "cpu", max_batches=2)
    (entry,) = reference_dir().glob("*.json")
    entry.write_text("{not json")
    calls = _counting(monkeypatch)
    assert reference_losses("124M", str(corpus), 0.9, 32, 2, "cpu", max_batches=2) == first
    assert len(calls) == 1 and json.loads(entry.read_text())["val_loss"] == first[1]
