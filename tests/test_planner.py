"""The run planner: the memory model, what would make a run fit, the batch that fits
itself, a mid-run out-of-memory, and `gpt-tui plan`."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.hardware.precision import autocast
from gptcore.planner import autobatch, devices
from gptcore.planner.autobatch import resolve_batch, trial_peak, with_effective_batch
from gptcore.planner.fit import fit_options
from gptcore.planner.memory import (
    StepShape,
    generation_memory,
    layer_activation_bytes,
    outside_activation_bytes,
    parameter_count,
    step_shape,
    training_memory,
)
from gptcore.runs.events import BatchChanged, StepEnd
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.evaluate import calc_loss_batch
from tests.run_helpers import tiny_corpus

TINY = PRESETS["tiny"]
MB = 2**20


def test_parameter_count_matches_the_model() -> None:
    from gptcore.model.gpt import GPTModel

    for config in (TINY, PRESETS["book-124m"], PRESETS["gpt2-small"]):
        with torch.device("meta"):
            assert parameter_count(config) == GPTModel(config).num_parameters()


def saved_activation_bytes(config: GPTConfig, batch: int, length: int, precision: str) -> int:
    """Bytes autograd saves for backward, counted by hooks (weights and their casts
    left out: the memory model has them as their own parts)."""
    from gptcore.model.gpt import GPTModel

    torch.manual_seed(0)
    model = GPTModel(config)
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    shapes = {tuple(p.shape) for p in model.parameters()}
    shapes |= {s[::-1] for s in shapes}
    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in weights and tuple(t.shape) not in shapes:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    x = torch.randint(0, config.vocab_size, (batch, length))
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        dtype = torch.bfloat16 if precision == "bf16" else None
        with autocast(torch.device("cpu"), dtype):
            calc_loss_batch(x, x, model, "cpu")
    return sum(seen.values())


@pytest.mark.parametrize(
    ("precision", "drop_rate"), [("fp32", 0.0), ("fp32", 0.1), ("bf16", 0.0), ("bf16", 0.1)]
)
def test_the_activation_model_counts_what_autograd_saves(precision: str, drop_rate: float) -> None:
    # emb 96 x 3 blocks, batch 3 x 40 tokens: no activation shares a weight's shape.
    config = GPTConfig(emb_dim=96, n_heads=4, n_layers=3, context_length=48, drop_rate=drop_rate)
    shape = StepShape(config, batch=3, context=40, precision=precision)
    predicted = (
        3 * layer_activation_bytes(shape)
        + outside_activation_bytes(shape)
        + 4 * shape.tokens * config.vocab_size  # the log-softmax the loss keeps
    )
    counted = saved_activation_bytes(config, 3, 40, precision)
    assert predicted == pytest.approx(counted, rel=0.03)


def test_the_estimate_names_its_parts_and_the_logits_dominate_a_small_model() -> None:
    shape = StepShape(TINY, batch=16, context=64, precision="fp32")
    estimate = training_memory(shape)
    assert estimate.peak == sum(estimate.parts.values())
    assert {"weights", "optimizer", "activations", "logits"} <= set(estimate.parts)
    assert estimate.largest(1)[0][0] == "logits"
    assert estimate.summary().startswith("logits ")
    assert " of " in estimate.summary()


def test_memory_grows_with_the_batch_and_accumulation_keeps_gradients_alive() -> None:
    base = StepShape(PRESETS["book-124m"], batch=2, context=256)
    peaks = [training_memory(dataclasses.replace(base, batch=b)).peak for b in (1, 2, 4, 8)]
    assert peaks == sorted(peaks) and peaks[0] < peaks[-1]
    accumulated = training_memory(dataclasses.replace(base, grad_accum=4))
    assert accumulated.parts["gradients"] == 4 * parameter_count(base.model)
    ddp = training_memory(dataclasses.replace(base, world=2))
    assert ddp.parts["DDP buckets"] == 4 * parameter_count(base.model)


def test_generation_memory_is_weights_and_the_kv_cache() -> None:
    config = PRESETS["gpt2-small"]
    estimate = generation_memory(config, batch=2, context=1024)
    assert estimate.parts["KV cache"] == 2 * 12 * 2 * 1024 * 768 * 4
    assert estimate.parts["weights"] == 4 * parameter_count(config)


def test_fit_options_each_bring_the_run_under_the_limit() -> None:
    shape = StepShape(PRESETS["gpt2-small"], batch=16, context=1024, precision="fp32")
    limit = training_memory(dataclasses.replace(shape, batch=3)).peak
    options = fit_options(shape, limit)
    kinds = {next(iter(o.settings)) for o in options}
    assert {"batch_size", "max_length"} <= kinds
    for option in options:
        assert option.peak <= limit
    batch = next(o for o in options if "batch_size" in o.settings).settings
    assert batch["batch_size"] * batch["grad_accum"] == 16  # the effective batch is kept
    assert fit_options(shape, training_memory(shape).peak) == []  # it fits: nothing to say


# ---------------------------------------------------------------- batch "auto"


def limit_memory(monkeypatch: pytest.MonkeyPatch, usable: int) -> None:
    """Pretend the device has just enough free memory for `usable` bytes of tensors."""
    free = int((usable + devices.RUNTIME_BYTES) / (1 - devices.SAFETY_MARGIN)) + 1
    monkeypatch.setattr(devices, "available_memory", lambda device: free)


def test_auto_batch_picks_the_largest_batch_whose_step_fits_a_memory_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config = dataclasses.replace(TINY, context_length=64)
    shape = StepShape(config, batch=4, context=64)
    # Half-way between batches 4 and 6 (divisors of 48): room for the trial's own
    # bookkeeping, and one clear answer.
    limit = (
        training_memory(shape).peak + training_memory(dataclasses.replace(shape, batch=6)).peak
    ) // 2
    limit_memory(monkeypatch, limit)
    measured: dict[int, int | None] = {}  # batch -> the trial step's measured peak

    def measuring(model: GPTConfig, train: TrainConfig, device: torch.device) -> int | None:
        measured[train.batch_size] = trial_peak(model, train, device)
        return measured[train.batch_size]

    monkeypatch.setattr(autobatch, "trial_peak", measuring)
    train = TrainConfig(batch_size="auto", effective_batch=48, precision="fp32", max_length=64)
    resolved, note = resolve_batch(config, train, torch.device("cpu"), "fp32")
    batch = resolved.batch_size
    assert training_memory(shape).peak <= limit
    assert training_memory(dataclasses.replace(shape, batch=6)).peak > limit  # next divisor
    # The model proposes 4 (the largest divisor of 48 that fits); a real trial step
    # confirms it (the CPU's resident high-water mark). In a long-lived process that
    # mark can also count heap the allocator did not reuse, so a trial may measure
    # more and the batch halves: whatever the batch, its measured step fits, every
    # batch given up measured more, and the effective batch is kept.
    assert list(measured)[0] == 4
    assert 0 < measured[batch] <= limit
    assert all(peak is not None and peak > limit for b, peak in measured.items() if b != batch)
    assert (resolved.grad_accum, resolved.effective_batch) == (48 // batch, None)
    assert note is not None and f"{batch} x grad_accum {resolved.grad_accum}" in note


def test_auto_batch_halves_when_the_trial_step_measures_more(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limit_memory(monkeypatch, 300 * MB)
    trials: list[int] = []

    def fake_trial(model: GPTConfig, train: TrainConfig, device: torch.device) -> int:
        trials.append(train.batch_size)
        return 10**12 if len(trials) == 1 else 0  # the first trial does not fit

    monkeypatch.setattr(autobatch, "trial_peak", fake_trial)
    train = TrainConfig(batch_size="auto", precision="fp32", max_length=64)
    resolved, _ = resolve_batch(TINY, train, torch.device("cpu"), "fp32")
    assert trials == [trials[0], trials[0] // 2] and resolved.batch_size == trials[0] // 2


def test_auto_batch_says_what_would_fit_when_nothing_does(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptcore.errors import ConfigError

    limit_memory(monkeypatch, 10 * MB)
    with pytest.raises(ConfigError, match='batch_size = "auto": not even one window fits'):
        resolve_batch(TINY, TrainConfig(batch_size="auto"), torch.device("cpu"), "fp32")


def test_effective_batch_sets_grad_accum_and_bad_values_name_the_field() -> None:
    from gptcore.errors import ConfigError

    assert with_effective_batch(TrainConfig(batch_size=2, effective_batch=8)).grad_accum == 4
    with pytest.raises(ConfigError, match="train.effective_batch"):
        TrainConfig(batch_size=3, effective_batch=8)
    with pytest.raises(ConfigError, match="must be an integer or auto"):
        TrainConfig(batch_size="many")


def test_out_of_memory_on_a_step_halves_the_batch_and_the_run_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptcore.training.step import TrainStep
    from gptcore.training.trainer import Trainer

    real_loss = TrainStep.loss
    calls: list[int] = []

    def loss_once_out_of_memory(self: TrainStep, model, x, y):  # noqa: ANN001
        if not model.training:  # an evaluation's forward
            return real_loss(self, model, x, y)
        calls.append(x.shape[0])
        if len(calls) == 2:  # the second step's first forward
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real_loss(self, model, x, y)

    monkeypatch.setattr(TrainStep, "loss", loss_once_out_of_memory)
    model = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
    train = TrainConfig(
        corpus=str(tiny_corpus(tmp_path)),
        batch_size=4,
        max_length=16,
        max_steps=3,
        eval_freq=100,
        eval_iter=1,
        sample_tokens=0,
        precision="fp32",
    )
    events: list[object] = []
    result = Trainer(model, train, listeners=[events.append], run_dir=tmp_path / "run").run()
    assert getattr(result, "reason", None) == "max_steps"
    changed = [e for e in events if isinstance(e, BatchChanged)]
    assert len(changed) == 1
    event = changed[0]
    assert (event.reason, event.batch_size, event.grad_accum, event.effective_batch) == (
        "out_of_memory",
        2,
        2,
        4,
    )
    assert "out of memory at step 1" in event.detail
    steps = [e for e in events if isinstance(e, StepEnd)]
    assert [s.step for s in steps] == [0, 1, 2]  # step 1 was taken again, not skipped
    seen = [s.tokens_seen for s in steps]
    assert [b - a for a, b in zip([0, *seen], seen, strict=False)] == [64, 64, 64]
    assert calls == [4, 4, 2, 2, 2, 2]  # step 0, the failed try, then two halves a step
    metrics = (tmp_path / "run" / "metrics.jsonl").read_text()
    assert '"event": "batch"' in metrics or '"event":"batch"' in metrics


# ---------------------------------------------------------------- gpt-tui plan


def test_plan_prints_memory_fit_and_a_measured_time(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "--config", "tiny", "--set", "max_steps=4", "--device", "cpu", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["fits"] is True
    assert out["memory"]["peak_bytes"] == sum(out["memory"]["parts"].values())
    assert out["time"]["measured"] is True and out["time"]["low_s"] <= out["time"]["high_s"]
    assert out["steps"] == 4
    assert out["memory"]["summary"].startswith("logits ")


def test_plan_for_a_gpu_elsewhere_says_what_would_make_it_fit(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["plan", "--config", "tiny", "--set", "model=gpt2-large", "--set", "max_length=1024"]
    argv += ["--set", "batch_size=32", "--set", "max_steps=10", "--device", "V100 16GB"]
    code = main(argv)
    text = capsys.readouterr().out
    assert code == 1
    assert "fits: NO" in text and "would fit with any one of:" in text
    assert "grad_accum" in text and "estimated, not measured" in text
    code = main([*argv, "--json"])
    out = json.loads(capsys.readouterr().out)
    assert out["fits"] is False and out["time"]["measured"] is False
    assert any("batch_size" in o["settings"] for o in out["would_fit_with"])


def test_plan_refuses_an_unknown_device_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plan", "--config", "tiny", "--device", "TPU v9"]) == 2
    err = capsys.readouterr().err
    assert "unknown device" in err and "H100 80GB" in err and "Traceback" not in err


def test_the_batch_plan_previews_auto_and_keeps_the_effective_batch() -> None:
    from gptcore.data.plan import batch_plan

    auto = batch_plan(20_000, 2_000, TINY, TrainConfig(batch_size="auto", effective_batch=8))
    assert (auto.batch_size, auto.grad_accum) == (1, 8)
    fixed = batch_plan(20_000, 2_000, TINY, TrainConfig(batch_size=2, effective_batch=8))
    assert (fixed.batch_size, fixed.grad_accum, fixed.steps_per_epoch) == (2, 4, 39)


def test_a_run_with_batch_auto_trains_with_the_batch_it_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from gptcore.training.trainer import Trainer

    model = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
    shape = StepShape(model, batch=2, context=16)
    limit = (
        training_memory(shape).peak + training_memory(dataclasses.replace(shape, batch=4)).peak
    ) // 2
    limit_memory(monkeypatch, limit)  # room for a batch of 2 (or 3), not 4
    train = TrainConfig(
        corpus=str(tiny_corpus(tmp_path)),
        batch_size="auto",
        effective_batch=4,
        max_length=16,
        max_steps=2,
        eval_freq=100,
        eval_iter=1,
        sample_tokens=0,
        precision="fp32",
    )
    events: list[object] = []
    trainer = Trainer(model, train, listeners=[events.append], run_dir=tmp_path / "run")
    result = trainer.run()
    assert getattr(result, "reason", None) == "max_steps"
    (chosen,) = [e for e in events if isinstance(e, BatchChanged)]
    assert (chosen.reason, chosen.batch_size, chosen.grad_accum) == ("auto", 2, 2)
    assert chosen.effective_batch == 4 and "batch_size auto: 2 x grad_accum 2" in chosen.detail
    steps = [e for e in events if isinstance(e, StepEnd)]
    assert steps[0].tokens_seen == 4 * 16  # four windows a step, as asked
    saved = (tmp_path / "run" / "config.toml").read_text()
    assert "batch_size = 2" in saved and "grad_accum = 2" in saved


def training_peak(model: GPTConfig, batch: int) -> int:
    shape = step_shape(model, TrainConfig(batch_size=batch), "cpu", "fp32")
    return training_memory(shape).peak


def test_check_fits_refuses_a_run_too_big_in_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptcore.errors import ConfigError
    from gptcore.planner.plan import check_fits

    limit_memory(monkeypatch, 4 * 2**30)
    book = PRESETS["book-124m"]
    check_fits(book, TrainConfig(batch_size=2), torch.device("cpu"), "fp32")  # fits: silent
    with pytest.raises(ConfigError) as caught:
        check_fits(book, TrainConfig(batch_size=64), torch.device("cpu"), "fp32")
    message = str(caught.value)
    assert "\n" not in message and "model book-124m needs about" in message
    assert "to train at batch 64 x grad_accum 1 in fp32: " in message
    assert "it would fit with batch_size" in message
    monkeypatch.setenv("GPT_TUI_MEMORY_CHECK", "0")  # the user's "try anyway"
    check_fits(book, TrainConfig(batch_size=64), torch.device("cpu"), "fp32")
    monkeypatch.delenv("GPT_TUI_MEMORY_CHECK")
    # The processes of one torchrun on a CPU share its memory: 2 x 3 GB > 4 GB.
    three_gb = max(b for b in range(1, 65) if training_peak(book, b) <= 3 * 2**30)
    check_fits(book, TrainConfig(batch_size=three_gb), torch.device("cpu"), "fp32")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(ConfigError, match="usable for each of 2 processes"):
        check_fits(book, TrainConfig(batch_size=three_gb), torch.device("cpu"), "fp32")
