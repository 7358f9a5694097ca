"""Vocabulary padding (model.vocab_multiple): padding rows never reach the logits,
and every path that reads or writes weights keeps or strips them as it must."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gptcore.errors import ConfigError
from gptcore.hardware.perf import matmul_parameters
from gptcore.model.gpt import GPTModel, KVCache
from gptcore.model.summary import format_summary, summarize, summarize_config
from gptcore.runs.checkpoint import save_checkpoint
from gptcore.runs.checkpoints import load_model
from gptcore.runs.rundir import config_toml
from gptcore.sampling.decode import generate_token_ids
from gptcore.settings.files import run_config_from_dict
from gptcore.settings.model import PRESETS, GPTConfig, describe_model
from gptcore.settings.sampling import make_settings
from gptcore.settings.train import TrainConfig
from gptcore.weights.book import export_book_pth, import_book_pth
from gptcore.weights.hf_export import export_hf
from gptcore.weights.layouts import with_vocab_multiple
from gptcore.weights.loaders import check_hf_config, load_hf

SMALL = GPTConfig(
    vocab_size=100, context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0
)
PADDED = dataclasses.replace(SMALL, vocab_multiple=64)  # 128 rows
IDS = torch.tensor([[1, 5, 99, 42, 7, 0], [3, 3, 98, 11, 64, 2]])


def _padded_copy(model: GPTModel, config: GPTConfig, padding_value: float = 0.0) -> GPTModel:
    """A padded model with `model`'s weights in its first vocab_size rows."""
    padded = GPTModel(config).eval()
    with torch.no_grad():
        for name, param in padded.named_parameters():
            source = model.state_dict()[name]
            param[: source.shape[0]].copy_(source)
            param[source.shape[0] :].fill_(padding_value)
    return padded


def test_padded_vocab_size_and_validation() -> None:
    assert dataclasses.replace(PRESETS["gpt2-small"], vocab_multiple=64).padded_vocab_size == 50304
    assert PRESETS["gpt2-small"].padded_vocab_size == 50257
    assert all(p.vocab_multiple == 1 for p in PRESETS.values())  # the book's numbers stay
    assert PADDED.padded_vocab_size == 128
    assert dataclasses.replace(SMALL, vocab_multiple=50).padded_vocab_size == 100  # already fits
    for bad in (0, -64, True, 2.0, 10**6):
        with pytest.raises(ConfigError, match="vocab_multiple"):
            dataclasses.replace(SMALL, vocab_multiple=bad)


def test_model_has_padded_rows_and_returns_vocab_size_logits() -> None:
    model = GPTModel(PADDED).eval()
    assert model.tok_emb.weight.shape == (128, 16) and model.out_head.weight.shape == (128, 16)
    with torch.no_grad():
        assert model(IDS).shape == (2, 6, 100)
        assert model(IDS, last_only=True).shape == (2, 1, 100)
        cache = KVCache(PADDED, 2, "cpu")
        assert model(IDS[:, :3], cache).shape == (2, 3, 100)
        assert model(IDS[:, 3:4], cache).shape == (2, 1, 100)


@pytest.mark.parametrize("tied", [False, True])
def test_loss_equals_the_unpadded_model_and_padding_gets_no_gradient(tied: bool) -> None:
    torch.manual_seed(0)
    plain = GPTModel(dataclasses.replace(SMALL, tie_embeddings=tied)).eval()
    # Padding rows that would dominate the logits if they were not sliced off.
    padded = _padded_copy(plain, dataclasses.replace(PADDED, tie_embeddings=tied), 50.0)
    targets = torch.roll(IDS, -1, dims=1)
    losses = []
    for model in (plain, padded):
        logits = model(IDS)
        losses.append(F.cross_entropy(logits.flatten(0, 1), targets.flatten()))
        losses[-1].backward()
    assert torch.allclose(losses[0], losses[1], atol=1e-6)
    for weight in (padded.tok_emb.weight, padded.out_head.weight):
        assert weight.grad is not None
        assert torch.count_nonzero(weight.grad[100:]) == 0
        assert torch.count_nonzero(weight.grad[:100]) > 0
    grad = padded.out_head.weight.grad[:100]
    assert torch.allclose(grad, plain.out_head.weight.grad, atol=1e-6)


def test_generation_never_emits_a_padding_id() -> None:
    torch.manual_seed(1)
    model = GPTModel(PADDED).eval()
    with torch.no_grad():  # every padding row would win any draw if it were a token
        model.out_head.weight[100:].fill_(1e4)
    for temperature in (0.0, 1.0, 5.0):
        settings = make_settings(
            max_new_tokens=30, temperature=temperature, seed=3, eos_id=None, num_samples=3
        )
        ids = torch.stack(list(generate_token_ids(model, [1, 2, 3], settings)))
        assert ids.shape == (30, 3)
        assert int(ids.max()) < 100


def test_checkpoint_round_trip_and_book_export(tmp_path: Path) -> None:
    torch.manual_seed(2)
    model = GPTModel(PADDED)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(IDS).sum().backward()
    opt.step()
    path = save_checkpoint(
        tmp_path / "run" / "checkpoints" / "step-000001",
        model,
        train_config=TrainConfig().to_dict(),
        step=1,
        epoch=0,
        tokens_seen=12,
        optimizer=opt,
    )
    assert json.loads((path / "meta.json").read_text())["model_config"]["vocab_multiple"] == 64
    loaded, ckpt = load_model(path)
    assert ckpt.model_config == PADDED
    assert loaded.tok_emb.weight.shape == (128, 16)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    # The book's GPTModel has vocab_size rows: the .pth export strips the padding.
    pth = export_book_pth(ckpt, tmp_path / "book.pth")
    book, _ = import_book_pth(pth, SMALL)
    assert book.tok_emb.weight.shape == (100, 16)
    with torch.no_grad():
        assert torch.allclose(book.eval()(IDS), loaded(IDS), atol=1e-6)


def test_config_toml_round_trip_and_what_is_shown() -> None:
    gpt2 = dataclasses.replace(PRESETS["gpt2-small"], vocab_multiple=64)
    text = config_toml(gpt2, TrainConfig())
    assert "vocab_multiple = 64" in text
    from gptcore.settings.declare import tomllib

    model, _ = run_config_from_dict(tomllib.loads(text))
    assert model == gpt2
    model, _ = run_config_from_dict({"model": {"preset": "tiny", "vocab_multiple": 64}})
    assert model.padded_vocab_size == 50304
    assert describe_model(gpt2) == "gpt2-small (padded to 50,304)"
    assert describe_model(PRESETS["gpt2-small"]) == "gpt2-small"
    assert "vocab 50257 (padded to 50,304)" in format_summary(summarize_config(gpt2))
    assert "padded" not in format_summary(summarize_config(PRESETS["gpt2-small"]))
    # The padded head does the FLOPs; its rows are parameters the summary counts.
    extra = 47 * 768
    assert matmul_parameters(gpt2) == matmul_parameters(PRESETS["gpt2-small"]) + extra
    assert summarize_config(gpt2).total == summarize_config(PRESETS["gpt2-small"]).total + extra


def test_with_vocab_multiple_pads_with_zeros_and_keeps_logits() -> None:
    torch.manual_seed(4)
    for tied in (False, True):
        plain = GPTModel(dataclasses.replace(SMALL, tie_embeddings=tied)).eval()
        padded = with_vocab_multiple(plain, 64)
        assert padded.config == dataclasses.replace(PADDED, tie_embeddings=tied)
        assert (padded.out_head.weight is padded.tok_emb.weight) == tied
        assert torch.count_nonzero(padded.tok_emb.weight[100:]) == 0
        assert torch.count_nonzero(padded.out_head.weight[100:]) == 0
        assert summarize(padded).total == summarize(plain).total + (1 if tied else 2) * 28 * 16
        with torch.no_grad():
            assert torch.allclose(padded(IDS), plain(IDS), atol=1e-6)
        back = with_vocab_multiple(padded, 1)
        assert back.tok_emb.weight.shape == (100, 16)
        assert with_vocab_multiple(plain, 1) is plain


GPT2_LIKE = GPTConfig(
    context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0, qkv_bias=True
)


@pytest.mark.parametrize("tied", [False, True])
def test_export_hf_strips_padding_and_transformers_agrees(tmp_path: Path, tied: bool) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(5)
    config = dataclasses.replace(GPT2_LIKE, tie_embeddings=tied, vocab_multiple=64)
    model = GPTModel(config).eval()
    with torch.no_grad():
        model.out_head.weight[config.vocab_size :].fill_(1e3)  # would show if exported
    out = export_hf(model, tmp_path / "hf")
    assert json.loads((out / "config.json").read_text())["vocab_size"] == 50257
    back = transformers.GPT2LMHeadModel.from_pretrained(out).eval()
    assert back.transformer.wte.weight.shape == (50257, 32)
    ids = torch.randint(0, 50257, (2, 12))
    with torch.no_grad():
        ours = model(ids)
        assert ours.shape == (2, 12, 50257)
        assert (ours - back(ids).logits).abs().max().item() < 1e-4


def test_loading_gpt2_weights_into_a_padded_model(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(6)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_layer=2, n_head=4, n_embd=32, vocab_size=50257, n_positions=32)
    ).eval()
    hf.save_pretrained(tmp_path / "gpt2", safe_serialization=True)
    config = dataclasses.replace(
        check_hf_config(tmp_path / "gpt2" / "config.json"), vocab_multiple=64
    )
    model = load_hf(tmp_path / "gpt2", config=config)
    assert model.config.vocab_multiple == 64
    assert model.tok_emb.weight.shape == (50304, 32)
    assert model.out_head.weight is model.tok_emb.weight
    assert torch.count_nonzero(model.tok_emb.weight[50257:]) == 0
    ids = torch.randint(0, 50257, (1, 10))
    with torch.no_grad():
        assert (model(ids) - hf(ids).logits).abs().max().item() < 1e-4
