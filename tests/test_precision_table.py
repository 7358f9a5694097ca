"""precision = "auto" is decided from a table of what the device supports, never from a
timing (issue 25): the same config gets the same precision however busy the machine is,
the run records it, and a resume keeps it unless the user sets another (said in one line)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.errors import CheckpointError
from gptcore.hardware import perf
from gptcore.hardware.precision import resolve_precision, resume_precision_notice
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.settings.files import load_run_config
from gptcore.training.resume import prepare_run

from .run_helpers import tiny_corpus

CPU = torch.device("cpu")


@pytest.fixture
def cpu_flags(monkeypatch: pytest.MonkeyPatch):
    """Set the CPU's /proc/cpuinfo flags as the table reads them (no override)."""
    monkeypatch.delenv(perf.NATIVE_BF16_ENV, raising=False)

    def set_flags(*flags: str) -> None:
        monkeypatch.setattr(perf, "cpu_flags", lambda: frozenset(flags))

    return set_flags


def _no_clock(*_args: object) -> float:
    raise AssertionError("the precision was timed")


@pytest.mark.parametrize("config", ["tiny", "quick", "gpt2-124m-continue"])
def test_a_shipped_config_gets_one_precision_whatever_the_load(
    config: str, cpu_flags, monkeypatch: pytest.MonkeyPatch
) -> None:
    setting = load_run_config(config)[1].precision
    assert setting == "auto"
    for flags, expected in ((("avx512f", "avx512_bf16"), "bf16"), (("avx512f", "avx2"), "fp32")):
        cpu_flags(*flags)
        idle = resolve_precision(setting, CPU)[0]
        # A machine so loaded that any timing would say "slow": no clock is read at all.
        with monkeypatch.context() as busy:
            busy.setattr(time, "perf_counter", _no_clock)
            busy.setattr(time, "monotonic", _no_clock)
            busy.setattr(time, "time", _no_clock)
            loaded = [resolve_precision(setting, CPU)[0] for _ in range(3)]
        assert idle == expected and loaded == [expected] * 3


def test_the_table(cpu_flags, monkeypatch: pytest.MonkeyPatch) -> None:
    cpu_flags("amx_bf16")
    assert perf.default_precision(CPU) == "bf16"
    cpu_flags("avx512f", "avx512bw")  # AVX-512 without bf16: emulated, slower than fp32
    assert perf.default_precision(CPU) == "fp32"
    assert perf.default_precision(torch.device("mps")) == "fp32"
    for native, expected in ((True, "bf16"), (False, "fp16")):
        monkeypatch.setattr(
            torch.cuda, "is_bf16_supported", lambda including_emulation=True, n=native: n
        )
        assert perf.default_precision(torch.device("cuda")) == expected


def test_the_environment_overrides_the_detection(cpu_flags, monkeypatch) -> None:
    cpu_flags("avx512_bf16")
    monkeypatch.setenv(perf.NATIVE_BF16_ENV, "0")
    assert resolve_precision("auto", CPU) == ("fp32", None)
    cpu_flags()
    monkeypatch.setenv(perf.NATIVE_BF16_ENV, "1")
    assert resolve_precision("auto", CPU) == ("bf16", torch.bfloat16)


def test_cpu_flags_are_read_from_proc_cpuinfo() -> None:
    perf.cpu_flags.cache_clear()
    flags = perf.cpu_flags()
    proc = Path("/proc/cpuinfo")
    if proc.exists() and "flags" in proc.read_text():
        assert "fpu" in flags  # every x86 CPU lists it
    else:
        assert flags == frozenset()


def test_a_recorded_precision_is_kept_by_auto_and_overridden_by_a_setting(cpu_flags) -> None:
    cpu_flags("avx512_bf16")
    assert resolve_precision("auto", CPU, recorded="fp32") == ("fp32", None)
    cpu_flags()
    assert resolve_precision("auto", CPU, recorded="bf16") == ("bf16", torch.bfloat16)
    # Trained in fp16 on a GPU, resumed on a CPU: it cannot, so the table's answer.
    assert resolve_precision("auto", CPU, recorded="fp16") == ("fp32", None)
    assert resolve_precision("bf16", CPU, recorded="fp32") == ("bf16", torch.bfloat16)
    assert resume_precision_notice("auto", "bf16") is None
    assert resume_precision_notice("fp32", "fp32") is None
    assert resume_precision_notice("fp32", None) is None
    note = resume_precision_notice("fp32", "bf16")
    assert note is not None and "\n" not in note
    assert "fp32 as set" in note and "trained in bf16" in note


AUTO_RUN = """
[model]
context_length = 16
emb_dim = 16
n_heads = 2
n_layers = 1
drop_rate = 0.1

[train]
corpus = "{corpus}"
batch_size = 2
max_length = 16
epochs = 2
eval_freq = 3
eval_iter = 2
sample_tokens = 0
"""


def auto_config(folder: Path) -> Path:
    path = folder / "auto.toml"
    path.write_text(AUTO_RUN.format(corpus=tiny_corpus(folder)))
    return path


def test_the_run_records_its_precision_and_a_resume_says_when_it_changes(
    tmp_path: Path, cpu_flags, capsys: pytest.CaptureFixture
) -> None:
    cpu_flags("avx512_bf16")
    run = tmp_path / "run"
    assert main(["train", "--config", str(auto_config(tmp_path)), "--run-dir", str(run),
                 "--set", "max_steps=2"]) == 0  # fmt: skip
    first = load_checkpoint(run / "checkpoints" / "step-000002")
    assert first.precision == "bf16" and first.meta["precision"] == "bf16"
    started = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert started["event"] == "started" and started["precision"] == "bf16"
    capsys.readouterr()

    # On a machine without native bf16, "auto" keeps the run in bf16 (no notice).
    cpu_flags("avx2")
    assert prepare_run(resume=str(run)).notice is None
    assert main(["train", "--resume", str(run), "--set", "max_steps=3"]) == 0
    assert "as set" not in capsys.readouterr().err
    assert load_checkpoint(run / "checkpoints" / "step-000003").precision == "bf16"

    # A precision set explicitly wins, and is said in one line on stderr.
    assert main(["train", "--resume", str(run), "--set", "max_steps=4",
                 "--set", 'precision="fp32"']) == 0  # fmt: skip
    err = [line for line in capsys.readouterr().err.splitlines() if "as set" in line]
    assert err == [
        "gpt-tui: training in fp32 as set (the checkpoint trained in bf16; "
        'precision = "auto" would keep that)'
    ]
    assert load_checkpoint(run / "checkpoints" / "step-000004").precision == "fp32"


def test_a_recorded_precision_that_is_no_precision_is_a_damaged_meta(tmp_path: Path) -> None:
    from tests.test_delete_safety import checkpoint_at

    ckpt = checkpoint_at(tmp_path / "run" / "checkpoints" / "step-000001", step=1)
    meta = json.loads((ckpt / "meta.json").read_text())
    assert meta["precision"] is None  # saved outside a run: not recorded
    meta["precision"] = "fp8"
    (ckpt / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="damaged: field 'precision'"):
        load_checkpoint(ckpt)
