"""The CUDA path: precisions, fused AdamW, torch.compile, KV-cache generation and a
padded vocabulary on a real GPU. Every test skips without CUDA; `pytest -m cuda`
selects them (benchmarks/gpu_check.py runs them first)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from gptcore.data.corpus import raw_topics_text
from gptcore.model.gpt import GPTModel
from gptcore.runs.events import Failed, Finished, StepEnd
from gptcore.sampling.decode import generate_token_ids
from gptcore.settings.model import GPTConfig
from gptcore.settings.sampling import make_settings
from gptcore.settings.train import TrainConfig
from gptcore.training.trainer import Trainer

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]

# Tiny, but with the tokenizer's vocabulary (the Trainer refuses a smaller one).
MODEL = GPTConfig(context_length=32, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture(autouse=True)
def restore_tf32() -> Iterator[None]:
    """The Trainer turns TF32 on process-wide; later tests get the flags back."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.fixture
def corpus_file(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text(raw_topics_text()[:6000], encoding="utf-8")
    return path


def train(corpus: Path, model: GPTConfig = MODEL, **kw) -> tuple[Trainer, list[StepEnd]]:
    cfg = dict(
        corpus=str(corpus),
        batch_size=4,
        max_length=32,
        epochs=1,
        max_steps=4,
        eval_freq=100,
        eval_iter=1,
        sample_tokens=0,
        device="cuda",
    )
    cfg.update(kw)
    events: list = []
    trainer = Trainer(model, TrainConfig(**cfg), listeners=[events.append])
    result = trainer.run()
    assert not isinstance(result, Failed), result
    assert isinstance(result, Finished)
    steps = [e for e in events if isinstance(e, StepEnd)]
    assert len(steps) == cfg["max_steps"]
    assert all(math.isfinite(e.loss) and e.tokens_per_s > 0 for e in steps)
    return trainer, steps


def _mfu_reported(trainer: Trainer, steps: list[StepEnd]) -> None:
    """MFU is reported exactly when the card's peak is known (gptcore.perf.BF16_PEAKS)."""
    for e in steps:
        assert (e.mfu is not None) == (trainer.peak_flops is not None)
        assert e.mfu is None or 0 < e.mfu < 1


@pytest.mark.parametrize("precision", ["bf16", "fp16", "fp32"])
def test_trainer_steps_in_each_precision(corpus_file: Path, precision: str) -> None:
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    trainer, steps = train(corpus_file, precision=precision)
    assert trainer.device.type == "cuda"
    assert trainer.precision == precision
    assert next(trainer.model.parameters()).device.type == "cuda"
    assert (trainer.scaler is not None) == (precision == "fp16")  # fp16 needs GradScaler
    if precision == "fp32":
        assert torch.backends.cuda.matmul.allow_tf32  # fp32 matmuls run as TF32
    _mfu_reported(trainer, steps)
    assert steps[-1].loss < steps[0].loss + 1.0  # training, not diverging


def test_fused_adamw_is_picked_on_cuda(corpus_file: Path) -> None:
    trainer, _ = train(corpus_file, precision="fp32", max_steps=1)
    assert trainer.adamw_impl == "fused"
    assert trainer.optimizer.defaults["fused"] is True


def test_compiled_step(corpus_file: Path) -> None:
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    trainer, steps = train(corpus_file, precision=precision, compile=True, max_steps=3)
    assert trainer.train_model is not trainer.model  # the compiled wrapper trained
    _mfu_reported(trainer, steps)


def _greedy_by_recompute(model: GPTModel, prompt: list[int], n: int) -> list[int]:
    ids = torch.tensor([prompt], device="cuda")
    with torch.no_grad():
        for _ in range(n):
            next_id = model(ids)[:, -1].argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
    return ids[0, len(prompt) :].tolist()


def test_kv_cache_generation_equals_full_recompute() -> None:
    torch.backends.cuda.matmul.allow_tf32 = False  # exact fp32: argmax ties would differ
    torch.manual_seed(0)
    model = GPTModel(dataclasses.replace(MODEL, context_length=64)).cuda().eval()
    prompt = [464, 3290, 318, 257, 1332]
    settings = make_settings(max_new_tokens=40, temperature=0.0, eos_id=None)
    cached = [int(t) for t in generate_token_ids(model, prompt, settings)]
    assert cached == _greedy_by_recompute(model, prompt, 40)


def test_padded_vocabulary_on_cuda(corpus_file: Path) -> None:
    padded = dataclasses.replace(MODEL, vocab_multiple=64)
    precision = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    trainer, steps = train(corpus_file, model=padded, precision=precision)
    model = trainer.model
    assert model.out_head.weight.shape[0] == 50304
    ids = torch.randint(0, 50257, (2, 16), device="cuda")
    with torch.no_grad():
        assert model.eval()(ids).shape == (2, 16, 50257)
        model.out_head.weight[50257:].fill_(1e4)  # would win every draw if it were a token
    settings = make_settings(max_new_tokens=20, temperature=1.0, seed=1, eos_id=None)
    drawn = torch.stack(list(generate_token_ids(model, [464, 3290], settings)))
    assert int(drawn.max()) < 50257
