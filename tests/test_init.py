"""Initialisation schemes: "book" (PyTorch defaults, the book's seeded numbers) and
"gpt2" (GPT-2's recipe), and the `init` setting's path through configs and summaries."""

import dataclasses
import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from gptcore.errors import CheckpointError, ConfigError
from gptcore.model.gpt import GPTModel
from gptcore.model.summary import format_summary, summarize_config
from gptcore.runs.checkpoint import load_checkpoint, save_checkpoint
from gptcore.runs.rundir import config_toml
from gptcore.settings.declare import from_mapping
from gptcore.settings.files import load_run_config, run_config_from_dict
from gptcore.settings.model import PRESETS, GPTConfig, describe_model, get_preset, model_config_from
from gptcore.settings.train import TrainConfig
from gptcore.training.resume import check_resume
from gptcore.weights.hf_export import hf_config_dict
from gptcore.weights.layouts import config_from_hf

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def initial_loss(config: GPTConfig, batch: int = 2, tokens: int = 64) -> float:
    torch.manual_seed(123)
    model = GPTModel(config).eval()
    idx = torch.randint(0, config.vocab_size, (batch, tokens + 1))
    with torch.no_grad():
        logits = model(idx[:, :-1])
    return F.cross_entropy(logits.flatten(0, 1), idx[:, 1:].flatten()).item()


@pytest.mark.parametrize("preset", ["tiny", "gpt2-small"])
def test_gpt2_init_starts_near_uniform_loss(preset: str) -> None:
    config = get_preset(preset)
    assert config.init == "gpt2"
    assert abs(initial_loss(config) - math.log(config.vocab_size)) < 0.3


def test_book_init_of_a_tied_model_starts_far_from_uniform() -> None:
    # Why the gpt2 scheme exists: N(0, 1) embeddings feeding a tied head.
    tied = GPTConfig(context_length=64, emb_dim=128, n_heads=4, n_layers=4, tie_embeddings=True)
    assert initial_loss(tied) > 2 * math.log(tied.vocab_size)
    assert abs(initial_loss(dataclasses.replace(tied, init="gpt2")) - math.log(50257)) < 0.3


def test_gpt2_init_scales_residual_projections_and_zeroes_biases() -> None:
    config = GPTConfig(
        context_length=64, emb_dim=128, n_heads=4, n_layers=6, qkv_bias=True, init="gpt2"
    )
    torch.manual_seed(0)
    model = GPTModel(config)
    residual = 0.02 / math.sqrt(2 * config.n_layers)
    for block in model.trf_blocks:
        for proj in (block.att.out_proj, block.ff.layers[2]):
            assert proj.weight.std().item() == pytest.approx(residual, rel=0.05)
        for linear in (block.att.W_query, block.ff.layers[0]):
            assert linear.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)
    assert model.pos_emb.weight.std().item() == pytest.approx(0.02, rel=0.05)
    assert model.out_head.weight.std().item() == pytest.approx(0.02, rel=0.02)
    for name, param in model.named_parameters():
        if name.endswith("bias"):
            assert torch.count_nonzero(param) == 0, name
        elif "norm" in name:
            assert torch.all(param == 1), name


def test_gpt2_init_keeps_the_tied_head_shared() -> None:
    model = GPTModel(dataclasses.replace(get_preset("tiny"), tie_embeddings=True))
    assert model.out_head.weight is model.tok_emb.weight
    assert model.tok_emb.weight.std().item() == pytest.approx(0.02, rel=0.02)


def test_book_init_draws_exactly_what_pytorch_defaults_draw() -> None:
    config = GPTConfig(context_length=16, emb_dim=32, n_heads=2, n_layers=2)
    assert config.init == "book"  # GPTConfig's own default: existing configs keep their numbers
    torch.manual_seed(123)
    book = GPTModel(config).state_dict()
    torch.manual_seed(123)
    gpt2 = GPTModel(dataclasses.replace(config, init="gpt2")).state_dict()
    # The book's N(0, 1) embedding is untouched; gpt2 redraws it.
    assert book["tok_emb.weight"].std().item() == pytest.approx(1.0, rel=0.05)
    assert not torch.equal(book["tok_emb.weight"], gpt2["tok_emb.weight"])


def test_presets_and_quick_config_choose_their_scheme() -> None:
    assert get_preset("book-124m").init == "book"
    for name in ("gpt2-small", "gpt2-medium", "gpt2-large", "gpt2-xl", "tiny"):
        assert PRESETS[name].init == "gpt2", name
    assert load_run_config("quick")[0].init == "book"  # measured better for its 3 minutes
    assert load_run_config("tiny")[0].init == "gpt2"
    assert load_run_config("book")[0].init == "book"
    # A table without the key keeps the preset's scheme; an override wins.
    assert model_config_from({"preset": "tiny", "n_layers": 3}).init == "gpt2"
    assert model_config_from({"preset": "tiny", "init": "book"}).init == "book"


def test_init_is_validated() -> None:
    with pytest.raises(ConfigError, match="model.init must be one of book, gpt2"):
        GPTConfig(init="xavier")
    with pytest.raises(ConfigError, match="init"):
        from_mapping(GPTConfig, {"init": 3})
    with pytest.raises(ConfigError, match="init"):
        load_run_config("tiny", ["model.init=kaiming"])


def test_init_round_trips_through_dicts_and_keeps_preset_names() -> None:
    config = dataclasses.replace(get_preset("book-124m"), init="gpt2")
    assert from_mapping(GPTConfig, config.to_dict()) == config
    # A checkpoint written before the setting existed reads back as "book"...
    old = {k: v for k, v in get_preset("tiny").to_dict().items() if k != "init"}
    restored = from_mapping(GPTConfig, old)
    assert restored.init == "book"
    # ...and is still the tiny preset by shape.
    assert describe_model(restored) == "tiny"
    assert describe_model(config) == "book-124m"


def test_init_round_trips_through_run_config_checkpoint_and_hf(tmp_path: Path) -> None:
    model_config = dataclasses.replace(get_preset("tiny"), n_layers=1, init="gpt2")
    train_config = TrainConfig()
    text = config_toml(model_config, train_config)
    assert 'init = "gpt2"' in text
    assert run_config_from_dict(tomllib.loads(text))[0] == model_config

    model = GPTModel(model_config)
    path = save_checkpoint(
        tmp_path / "ckpt",
        model,
        train_config=train_config.to_dict(),
        step=0,
        epoch=0,
        tokens_seen=0,
    )
    assert load_checkpoint(path).model_config == model_config
    # Official GPT-2 weights were trained with GPT-2's recipe (and overwrite any init).
    hf = config_from_hf(hf_config_dict(get_preset("gpt2-small")), tmp_path / "config.json")
    assert hf == get_preset("gpt2-small")


def test_a_checkpoint_from_before_the_setting_resumes_under_a_gpt2_preset(tmp_path: Path) -> None:
    old = dataclasses.replace(get_preset("tiny"), init="book")  # meta.json without the key
    train_config = TrainConfig(corpus="builtin")
    path = save_checkpoint(
        tmp_path / "ckpt",
        GPTModel(old),
        train_config=train_config.to_dict(),
        step=1,
        epoch=1,
        tokens_seen=64,
    )
    check_resume(load_checkpoint(path), get_preset("tiny"), train_config)  # no error
    with pytest.raises(CheckpointError, match="n_layers"):
        check_resume(load_checkpoint(path), dataclasses.replace(old, n_layers=3), train_config)


def test_summary_shows_the_scheme() -> None:
    assert "init gpt2" in format_summary(summarize_config(get_preset("tiny")))
    assert "init book" in format_summary(summarize_config(get_preset("book-124m")))
