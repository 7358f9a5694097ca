import pytest
import torch

from gptcore.hardware import perf
from gptcore.hardware.perf import flops_per_token, matmul_parameters, mfu, peak_flops
from gptcore.model.summary import summarize_config
from gptcore.settings.model import get_preset


def test_matmul_parameters_are_all_but_embeddings_and_norms():
    for name in ("book-124m", "gpt2-small", "tiny"):
        config = get_preset(name)
        s = summarize_config(config)
        head = config.emb_dim * config.vocab_size
        expected = s.total - s.by_component["embeddings"] - s.by_component["norms"]
        if s.tied:
            expected += head  # the tied head still multiplies
        assert matmul_parameters(config) == expected


def test_flops_per_token_formula():
    c = get_preset("gpt2-small")
    n = matmul_parameters(c)
    assert flops_per_token(c, 1024) == 6 * n + 12 * 12 * 12 * 64 * 1024


def test_mfu_needs_a_known_peak():
    c = get_preset("gpt2-small")
    assert peak_flops(torch.device("cpu"), "fp32") is None
    assert mfu(1000.0, c, 1024, None) is None
    value = mfu(1e5, c, 1024, 989e12)
    assert value is not None and abs(value - 1e5 * flops_per_token(c, 1024) / 989e12) < 1e-12


class FakeLibc:
    """Records the allocator calls reuse_freed_memory makes."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append(("mallopt", param, value))
        return 1

    def malloc_trim(self, pad: int) -> int:
        self.calls.append(("malloc_trim", pad))
        return 1


def test_reuse_freed_memory_sets_glibc_once_and_restores_after_the_last_user(monkeypatch):
    """Nested and concurrent users share one setting; glibc's defaults and a trim
    come back only when the last one leaves, even when it leaves by an exception."""
    libc = FakeLibc()
    monkeypatch.setattr(perf, "_glibc", lambda: libc)
    monkeypatch.delenv(perf.REUSE_MEMORY_ENV, raising=False)
    with perf.reuse_freed_memory() as outer:
        assert outer is True
        assert libc.calls == [
            ("mallopt", perf._M_MMAP_MAX, 0),
            ("mallopt", perf._M_TRIM_THRESHOLD, 2**31 - 1),
        ]
        with pytest.raises(RuntimeError), perf.reuse_freed_memory() as inner:
            assert inner is True
            raise RuntimeError("a failed step")
        assert len(libc.calls) == 2  # the inner user left; the outer still trains
    assert libc.calls[2:] == [
        ("mallopt", perf._M_MMAP_MAX, perf._GLIBC_MMAP_MAX),
        ("mallopt", perf._M_TRIM_THRESHOLD, perf._GLIBC_TRIM_THRESHOLD),
        ("malloc_trim", 0),
    ]


def test_reuse_freed_memory_can_be_turned_off_or_missing(monkeypatch):
    libc = FakeLibc()
    monkeypatch.setattr(perf, "_glibc", lambda: libc)
    monkeypatch.setenv(perf.REUSE_MEMORY_ENV, "0")
    with perf.reuse_freed_memory() as applied:
        assert applied is False
    monkeypatch.delenv(perf.REUSE_MEMORY_ENV)
    monkeypatch.setattr(perf, "_glibc", lambda: None)  # not glibc (macOS, musl)
    with perf.reuse_freed_memory() as applied:
        assert applied is False
    assert libc.calls == []


def test_the_trainer_trains_inside_reuse_freed_memory(monkeypatch, tmp_path):
    """Trainer.run holds the heap reuse for the whole run and lets go at its end."""
    import contextlib

    import gptcore.training.trainer
    from gptcore.data.corpus import raw_topics_text
    from gptcore.runs.events import StepEnd
    from gptcore.settings.model import GPTConfig
    from gptcore.settings.train import TrainConfig

    inside = []
    state = {"active": False}

    @contextlib.contextmanager
    def recording():
        state["active"] = True
        try:
            yield True
        finally:
            state["active"] = False

    monkeypatch.setattr(gptcore.training.trainer, "reuse_freed_memory", recording)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(raw_topics_text()[:20_000], encoding="utf-8")
    model = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
    cfg = TrainConfig(
        corpus=str(corpus),
        batch_size=2,
        max_steps=2,
        eval_freq=100,
        eval_iter=1,
        sample_tokens=0,
        max_length=16,
        stride=16,
        precision="fp32",
    )

    def listen(event):
        if isinstance(event, StepEnd):
            inside.append(state["active"])

    result = gptcore.training.trainer.Trainer(model, cfg, listeners=[listen]).run()
    assert result.reason == "max_steps"
    assert inside == [True, True] and state["active"] is False
