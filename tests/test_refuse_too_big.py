"""A model that cannot fit is refused before it allocates (issue 25): a checkpoint whose
config asks for an absurd context or vocabulary, and a run or a load that needs more
memory than this machine has (the available memory is patched: no test depends on the
machine it runs on)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import gptcore.hardware.sysinfo as sysinfo
from gptcore.cli import main
from gptcore.errors import CheckpointError, ConfigError
from gptcore.model import gpt
from gptcore.model.counts import parameter_count
from gptcore.model.summary import MEMORY_CHECK_ENV, summarize_config
from gptcore.planner import devices
from gptcore.planner.memory import step_shape, training_memory
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import load_model
from gptcore.settings.model import PRESETS, GPTConfig
from gptcore.util.paths import runs_dir
from gptcore.weights.modelspec import load_spec

from .test_delete_safety import checkpoint_at

GB = 1e9


@pytest.fixture
def memory(monkeypatch: pytest.MonkeyPatch):
    """Set the memory this machine has available (bytes; None: unknown)."""

    def set_available(nbytes: float | None) -> None:
        monkeypatch.setattr(
            sysinfo, "available_memory", lambda _device: None if nbytes is None else int(nbytes)
        )
        if nbytes is None:  # the planner then takes the physical memory: pinned too
            nbytes = 64 * GB
        monkeypatch.setattr(devices, "available_memory", lambda _device: int(nbytes))

    return set_available


def forbid_building_models(monkeypatch: pytest.MonkeyPatch) -> None:
    """From now on, building a GPTModel fails the test: a refusal must come first."""

    def refuse(self: object, *args: object, **kwargs: object) -> None:
        raise AssertionError("a model was built")

    monkeypatch.setattr(gpt.GPTModel, "__init__", refuse)


@pytest.mark.parametrize(
    "config",
    [
        *PRESETS.values(),
        GPTConfig(
            vocab_size=1000,
            context_length=8,
            emb_dim=8,
            n_heads=2,
            n_layers=3,
            qkv_bias=True,
            tie_embeddings=False,
            vocab_multiple=64,
        ),  # fmt: skip
    ],
)
def test_the_parameter_count_from_the_shape_is_the_models(config: GPTConfig) -> None:
    assert parameter_count(config) == summarize_config(config).total


def test_a_run_that_cannot_fit_is_refused_before_its_folder_exists(
    memory, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    memory(21.3 * GB)
    forbid_building_models(monkeypatch)
    code = main(["train", "--config", "quick", "--set", "model=gpt2-xl"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    # The planner's memory model, in the precision the run would use ("auto" here).
    from gptcore.hardware.precision import resolve_precision
    from gptcore.settings.files import load_run_config
    from gptcore.util.fmt import format_bytes

    _, train = load_run_config("quick", ["model=gpt2-xl"])
    precision, _ = resolve_precision(train.precision, torch.device("cpu"))
    need = training_memory(step_shape(PRESETS["gpt2-xl"], train, "cpu", precision))
    assert err.startswith(
        f"gpt-tui: error: model gpt2-xl needs about {format_bytes(need.peak)} to train at "
        f"batch 4 x grad_accum 1 in {precision}: {need.summary()}; this CPU has 21.3 GB free"
    )
    assert "it would fit with" in err and "the smaller model" in err
    assert err.endswith("(set GPT_TUI_MEMORY_CHECK=0 to try anyway)") and "\n" not in err
    assert not runs_dir().exists() or list(runs_dir().iterdir()) == []


def test_a_run_that_fits_or_an_unknown_memory_is_not_refused(
    memory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from .test_precision_table import auto_config

    config = str(auto_config(tmp_path))
    for available in (100 * GB, None):
        memory(available)
        run = tmp_path / f"run-{available}"
        assert (
            main(["train", "--config", config, "--set", "max_steps=1", "--run-dir", str(run)]) == 0
        )
    memory(1000)  # 1 kB: nothing fits, but the user asked to try anyway
    monkeypatch.setenv(MEMORY_CHECK_ENV, "0")
    assert main(["train", "--config", config, "--set", "max_steps=1",
                 "--run-dir", str(tmp_path / "anyway")]) == 0  # fmt: skip


def test_loading_a_model_too_big_to_hold_is_refused(memory, monkeypatch) -> None:
    memory(1 * GB)
    forbid_building_models(monkeypatch)
    with pytest.raises(ConfigError, match=r"model gpt2-xl needs about 12\.5 GB to load, this"):
        load_spec("preset:gpt2-xl", device="cpu")


@pytest.mark.parametrize(
    ("field", "value"), [("context_length", 1_048_576), ("vocab_size", 2_000_000)]
)
def test_a_checkpoint_asking_for_an_absurd_shape_is_refused_before_allocating(
    field: str, value: int, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    ckpt = checkpoint_at(tmp_path / "run" / "checkpoints" / "step-000001", step=1)
    forbid_building_models(monkeypatch)
    meta = json.loads((ckpt / "meta.json").read_text())
    meta["model_config"][field] = value
    (ckpt / "meta.json").write_text(json.dumps(meta))

    with pytest.raises(CheckpointError, match="more than its weights.safetensors") as info:
        load_checkpoint(ckpt)
    assert "\n" not in str(info.value) and "field 'model_config'" in str(info.value)
    with pytest.raises(CheckpointError, match="parameters"):
        load_model(ckpt)
    assert main(["generate", "--checkpoint", str(ckpt), "--prompt", "a"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "can hold" in err and "Traceback" not in err
    assert main(["train", "--resume", str(ckpt)]) == 2
    assert "can hold" in capsys.readouterr().err


def test_available_memory_reads_the_kernel_and_knows_no_mps() -> None:
    cpu = sysinfo.available_memory("cpu")
    if Path("/proc/meminfo").exists():
        assert cpu is not None and cpu > 0
    assert sysinfo.available_memory("mps") is None


def test_init_weights_too_big_to_train_are_refused_from_their_config(
    memory, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch
) -> None:
    # GPT-2 XL's config.json (the weights file is never read: the check comes first).
    folder = tmp_path / "xl"
    folder.mkdir()
    xl = {"model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024, "n_embd": 1600,
          "n_head": 25, "n_layer": 48}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(xl))
    (folder / "model.safetensors").write_bytes(b"")
    memory(21.3 * GB)
    forbid_building_models(monkeypatch)
    assert main(["train", "--config", "quick", "--init", f"weights:{folder}"]) == 2
    err = capsys.readouterr().err
    assert "model gpt2-xl needs about" in err and "to train at batch 4 x grad_accum 1" in err
    assert not runs_dir().exists() or list(runs_dir().iterdir()) == []
