"""`gpt-tui generate`: model sources, prompt sources, streaming, --json and errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from gptcore.cli import main
from gptcore.model.gpt import GPTModel
from gptcore.model.tokenizer import decode
from gptcore.sampling.stream import generate
from gptcore.settings.model import get_preset

BASE = ["generate", "--preset", "tiny", "--max-new-tokens", "6", "--no-eos"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine every parallel
    op can wait a whole time slice for a descheduled worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def run_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> dict:
    assert main(args + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def tiny_reference(prompt: str, n: int = 6, seed: int = 123) -> list[int]:
    torch.manual_seed(seed)
    model = GPTModel(get_preset("tiny"))
    return generate(model, prompt, max_new_tokens=n, eos_id=None).samples[0].token_ids


def test_json_output(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(BASE + ["--prompt", "Every effort moves you"], capsys)
    assert data["prompt"] == "Every effort moves you"
    (sample,) = data["samples"]
    assert sample["token_ids"] == tiny_reference("Every effort moves you")
    assert sample["text"] == decode(sample["token_ids"])
    assert sample["finish_reason"] == "length"


def test_preset_seed_changes_the_model(capsys: pytest.CaptureFixture[str]) -> None:
    data = run_json(BASE + ["--prompt", "Hello", "--seed", "7"], capsys)
    assert data["samples"][0]["token_ids"] == tiny_reference("Hello", seed=7)
    assert data["samples"][0]["token_ids"] != tiny_reference("Hello", seed=123)


def test_streaming_prints_prompt_and_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(BASE + ["--prompt", "Every effort moves you", "--stream"]) == 0
    out, err = capsys.readouterr()
    expected = "Every effort moves you" + decode(tiny_reference("Every effort moves you"))
    assert out == expected + "\n"
    assert "6 tokens in" in err


def test_no_stream_prints_the_same_text(capsys: pytest.CaptureFixture[str]) -> None:
    threads = str(torch.get_num_threads())  # unchanged: other tests share this process
    assert main(BASE + ["--prompt", "Hi", "--no-stream", "--threads", threads]) == 0
    assert capsys.readouterr().out == "Hi" + decode(tiny_reference("Hi")) + "\n"


def test_prompt_from_stdin_and_file(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("From stdin"))
    assert run_json(BASE, capsys)["prompt"] == "From stdin"
    path = tmp_path / "prompt.txt"
    path.write_text("From a file ✓", encoding="utf-8")
    data = run_json(BASE + ["--prompt-file", str(path)], capsys)
    assert data["prompt"] == "From a file ✓"


def test_sampling_flags_with_sample_seed_reproduce(capsys: pytest.CaptureFixture[str]) -> None:
    args = BASE + ["--prompt", "Hi", "--temperature", "1.2", "--top-k", "50", "--top-p", "0.9"]
    args += ["--num-samples", "2", "--sample-seed", "5"]
    first = run_json(args, capsys)
    again = run_json(args, capsys)
    assert len(first["samples"]) == 2
    assert first == again
    assert first["samples"][0]["token_ids"] != first["samples"][1]["token_ids"]


def test_several_samples_as_text(capsys: pytest.CaptureFixture[str]) -> None:
    args = BASE + ["--prompt", "Hi", "--temperature", "1", "--num-samples", "2", "--no-stream"]
    assert main(args + ["--sample-seed", "1"]) == 0
    out = capsys.readouterr().out
    assert "--- sample 1 ---\nHi" in out and "--- sample 2 ---\nHi" in out


def test_long_prompt_notice_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    prompt = " ".join(f"w{i}" for i in range(80))
    assert main(BASE + ["--prompt", prompt, "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["prompt"] == prompt
    assert "gpt-tui: note:" in err and "dropped" in err


def test_checkpoint_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from gptcore.runs.checkpoint import save_checkpoint

    torch.manual_seed(9)
    model = GPTModel(get_preset("tiny"))
    path = save_checkpoint(
        tmp_path / "ckpt", model, train_config={}, step=1, epoch=0, tokens_seen=0
    )
    expected = generate(model, "Every effort moves you", max_new_tokens=6, eos_id=None)
    args = ["generate", "--checkpoint", str(path), "--prompt", "Every effort moves you"]
    data = run_json(args + ["--max-new-tokens", "6", "--no-eos"], capsys)
    assert data["samples"][0]["token_ids"] == expected.samples[0].token_ids


def test_weights_source(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from gptcore.weights.hf_export import export_hf

    torch.manual_seed(4)
    model = GPTModel(get_preset("tiny"))
    out_dir = export_hf(model, tmp_path / "hf")
    expected = generate(model, "Hello", max_new_tokens=6, eos_id=None).samples[0].token_ids
    data = run_json(
        [
            "generate",
            "--weights",
            str(out_dir),
            "--prompt",
            "Hello",
            "--max-new-tokens",
            "6",
            "--no-eos",
        ],
        capsys,
    )
    assert data["samples"][0]["token_ids"] == expected


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--temperature", "-1"], "temperature must be a finite number >= 0"),
        (["--temperature", "nan"], "temperature must be a finite number >= 0"),
        (["--top-k", "0"], "top_k must be an integer in [1, 50257]"),
        (["--top-p", "0"], "top_p must be a number in (0, 1]"),
        (["--max-new-tokens", "-5"], "max_new_tokens must be an integer"),
        (["--num-samples", "0"], "num_samples must be an integer"),
        (["--context-keep", "65"], "context_keep must be an integer in [1, 64]"),
        (["--stop", ""], "stop strings must be non-empty"),
        (["--precision", "fp16"], "fp16 inference needs a CUDA or MPS device"),
        (["--threads", "0"], "--threads must be in [1, "),
        (
            ["--prompt-file", "/nonexistent/prompt.txt"],
            "prompt file /nonexistent/prompt.txt does not exist",
        ),
    ],
)
def test_bad_flags_exit_2_with_one_line(
    capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = ["generate", "--preset", "tiny"] + extra
    if "--prompt-file" not in extra:
        args += ["--prompt", "Hi"]
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("gpt-tui: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_missing_checkpoint_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert main(["generate", "--checkpoint", str(tmp_path / "nope"), "--prompt", "Hi"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt-tui: error: ") and "nope" in err


def test_a_model_source_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["generate", "--prompt", "Hi"])
    assert info.value.code == 2
    assert "--checkpoint" in capsys.readouterr().err
