"""benchmarks/gpu_check.py without a GPU: it runs to the end, says why, exits 0;
its parent records a failing or hanging child instead of dying with it."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_cuda_prints_json_and_exits_0(gpu_check, monkeypatch, capsys) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    start = time.monotonic()
    assert gpu_check.main([]) == 0
    assert time.monotonic() - start < 10
    report = json.loads(capsys.readouterr().out)
    assert report["cuda"] is False
    assert report["reason"]
    assert report["torch"] == torch.__version__


def test_the_variants_cover_precisions_compile_and_padding(gpu_check) -> None:
    variants = gpu_check.VARIANTS
    assert {v["precision"] for v in variants} == {"fp32", "bf16", "fp16"}
    assert any(v["compile"] for v in variants) and any(not v["compile"] for v in variants)
    assert {v["vocab_multiple"] for v in variants if v["precision"] == "bf16"} == {1, 64}


def test_pytest_counts(gpu_check) -> None:
    line = "5 passed, 2 skipped, 1 failed, 1 error in 3.10s"
    assert gpu_check.pytest_counts(line) == {"passed": 5, "skipped": 2, "failed": 1, "errors": 1}
    assert gpu_check.pytest_counts("7 skipped in 0.2s") == {"skipped": 7}


def test_a_failing_or_hanging_child_is_recorded(gpu_check) -> None:
    oom = (
        "import sys; sys.stderr.write('torch.OutOfMemoryError: CUDA out of memory\\n'); sys.exit(1)"
    )
    result = gpu_check.run_child([sys.executable, "-c", oom], 30)
    assert result["ok"] is False
    assert "exit code 1" in result["error"] and "CUDA out of memory" in result["error"]
    hang = gpu_check.run_child([sys.executable, "-c", "import time; time.sleep(30)"], 1)
    assert hang["ok"] is False and hang["error"] == "timed out after 1 s"
    mark = gpu_check.RESULT_MARK
    ok = f"print('noise'); print({mark!r} + '{{\"tokens_per_s\": 5}}')"
    result = gpu_check.run_child([sys.executable, "-c", ok], 30)
    assert result["ok"] is True and result["tokens_per_s"] == 5
