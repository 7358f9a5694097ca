"""The system line: CPU and RSS of this process, GPU fields only where CUDA is in
use, utilisation only with pynvml, and a describe() line of the present metrics."""

from __future__ import annotations

import importlib.util
import time
from types import SimpleNamespace

import pytest

from gptcore.hardware.sysinfo import SystemStats, describe, system_stats


def _busy(seconds: float) -> None:
    end = time.monotonic() + seconds
    x = 0
    while time.monotonic() < end:
        x += 1


def test_cpu_and_rss_are_measured_here() -> None:
    system_stats()  # starts the interval
    _busy(0.2)
    stats = system_stats()
    assert stats.cpu_percent is not None and stats.cpu_percent > 0
    assert stats.rss_bytes is not None and stats.rss_bytes > 1_000_000
    line = describe(stats)
    assert line.startswith("cpu ") and " · rss " in line


def test_no_gpu_fields_without_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    stats = system_stats("cuda")
    assert (stats.gpu_name, stats.gpu_mem_used, stats.gpu_mem_total, stats.gpu_util) == (None,) * 4
    assert "GB/" not in describe(stats) and "util" not in describe(stats)


def _fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i: "NVIDIA H200")
    # 12 GB of 150 GB in use on the device
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda i: (138 * 10**9, 150 * 10**9))
    monkeypatch.setattr(torch.cuda, "utilization", lambda i: 87)


def test_gpu_fields_through_torch_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: SimpleNamespace() if name == "pynvml" else real_find_spec(name, *a),
    )
    stats = system_stats("cuda:0")
    assert stats.gpu_name == "NVIDIA H200"
    assert (stats.gpu_mem_used, stats.gpu_mem_total) == (12 * 10**9, 150 * 10**9)
    assert stats.gpu_util == 87.0
    assert "H200 12.0 GB/150 GB · util 87%" in describe(stats)
    assert system_stats("cpu").gpu_name is None  # a CPU run: its GPU is not reported


def test_no_utilisation_without_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_cuda(monkeypatch)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "pynvml" else real_find_spec(name, *a),
    )
    stats = system_stats()
    assert stats.gpu_name == "NVIDIA H200" and stats.gpu_util is None
    assert "util" not in describe(stats)


def test_cuda_is_never_initialised_for_the_stats(monkeypatch: pytest.MonkeyPatch) -> None:
    """Watching must not create a CUDA context of its own (it takes GPU memory)."""
    _fake_cuda(monkeypatch)
    monkeypatch.setattr("torch.cuda.is_initialized", lambda: False)
    assert system_stats().gpu_name is None


def test_describe_shows_only_present_metrics() -> None:
    assert describe(SystemStats()) == ""
    assert describe(SystemStats(rss_bytes=1_100_000_000)) == "rss 1.1 GB"
    assert describe(SystemStats(cpu_percent=187.4)) == "cpu 187%"


def test_each_meter_measures_its_own_interval() -> None:
    from gptcore.hardware.sysinfo import CpuMeter

    mine, other = CpuMeter(), CpuMeter()
    end = time.monotonic() + 0.2
    while time.monotonic() < end:  # busy: this process uses CPU
        pass
    assert (other.percent() or 0) > 20
    # The other meter's reading did not reset this one: it still sees the busy work.
    assert (mine.percent() or 0) > 20


def test_the_trainer_reports_its_own_use_in_metrics(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What `gpt-tui watch` shows of a run in another process: its SystemSample lines."""
    import gptcore.training.trainer
    from gptcore.runs.events import StepEnd, SystemSample
    from gptcore.runs.metrics import read_metrics
    from gptcore.runs.rundir import RunDir
    from gptcore.settings.train import TrainConfig
    from gptcore.training.trainer import Trainer

    from .tui_helpers import FAST_MODEL, write_corpus

    monkeypatch.setattr(
        gptcore.training.trainer, "SYSTEM_EVERY_S", 0.0
    )  # a sample after every step
    cfg = TrainConfig(
        corpus=str(write_corpus(tmp_path)),
        batch_size=2,
        max_steps=3,
        eval_freq=100,
        eval_iter=1,
        sample_tokens=0,
        precision="fp32",
    )
    Trainer(FAST_MODEL, cfg, run_dir=tmp_path / "run").run()
    events = read_metrics(RunDir(tmp_path / "run").metrics)
    samples = [e for e in events if isinstance(e, SystemSample)]
    steps = [e.step for e in events if isinstance(e, StepEnd)]
    assert [s.step for s in samples] == steps == [0, 1, 2]
    assert all(s.rss_bytes and s.rss_bytes > 2**20 for s in samples)
    assert all(s.cpu_percent is not None and s.cpu_percent >= 0 for s in samples)
    assert all(s.gpu_name is None for s in samples)  # no GPU here, none faked
