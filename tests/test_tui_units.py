"""The app's plain-Python parts: settings TOML, the event pump, run state, form
validation, saved configs, the watch command's wiring, and lazy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from gptcore.cli import build_parser
from gptcore.cli import main as cli_main
from gptcore.errors import ConfigError, GptTuiError
from gptcore.runs.events import (
    CheckpointSaved,
    EvalEnd,
    Failed,
    Finished,
    RunStarted,
    Sample,
    StepEnd,
)
from gptcore.settings.files import shipped_configs
from gptcore.settings.model import PRESETS
from gptcore.settings.train import TrainConfig
from tui import configs
from tui.pump import EventPump, TrainEvents
from tui.runhandle import RunHandle
from tui.runstate import RunState
from tui.settings import Settings, load_settings, save_settings, settings_path


def step(n: int, total: int | None = 10, elapsed: float = 1.0) -> StepEnd:
    return StepEnd(n, 0, 5.0 - n * 0.1, 4e-4, (n + 1) * 64, 100.0, None, None, elapsed, total)


# ---------------------------------------------------------------- settings


def test_settings_persist_and_survive_a_damaged_file() -> None:
    assert load_settings() == Settings()  # nothing saved yet: defaults
    save_settings(Settings(corpus="/data/book.txt", config="preset:book-124m", theme="nord"))
    assert load_settings() == Settings("/data/book.txt", "preset:book-124m", "nord")
    settings_path().write_text("corpus = [not toml", encoding="utf-8")
    assert load_settings() == Settings()
    settings_path().write_text('corpus = 3\ntheme = "gruvbox"\nfuture = "x"\n', encoding="utf-8")
    assert load_settings() == Settings(theme="gruvbox")  # wrong types and unknown keys ignored


# ---------------------------------------------------------------- event pump


class Collector:
    def __init__(self) -> None:
        self.messages: list[TrainEvents] = []

    def post_message(self, message: TrainEvents) -> bool:
        self.messages.append(message)
        return True


def test_pump_coalesces_steps_and_never_delays_other_events() -> None:
    now = [0.0]
    target = Collector()
    handle = RunHandle("live")
    pump = EventPump(target, handle, interval=0.1, clock=lambda: now[0])  # type: ignore[arg-type]
    pump(step(0))  # the first step goes out at once
    for n in range(1, 50):  # 49 steps within 0.049 s: all held back
        now[0] += 0.001
        pump(step(n))
    assert len(target.messages) == 1
    evaluation = EvalEnd(49, 0, 4.0, 4.2, 3200)
    pump(evaluation)  # flushes the held steps with it, in order
    assert len(target.messages) == 2
    assert [type(e) for e in target.messages[1].events] == [StepEnd] * 49 + [EvalEnd]
    now[0] += 0.2
    pump(step(50))  # the interval has passed: posted
    now[0] += 0.01
    pump(step(51))
    pump.flush()
    sent = [e for m in target.messages for e in m.events]
    assert [e.step for e in sent if isinstance(e, StepEnd)] == list(range(52))  # none lost
    assert len(target.messages) == 4
    assert all(m.handle is handle for m in target.messages)  # the run they are about


def test_pump_posts_about_ten_messages_a_second_for_a_fast_loop() -> None:
    now = [0.0]
    target = Collector()
    pump = EventPump(target, RunHandle("live"), clock=lambda: now[0])  # type: ignore[arg-type]
    for n in range(10_000):  # 10,000 steps over 2 simulated seconds
        now[0] = n * 0.0002
        pump(step(n))
    assert 15 <= pump.posted <= 21


# ---------------------------------------------------------------- run state


def test_run_state_folds_a_run() -> None:
    state = RunState()
    state.apply(RunStarted("/runs/x", "cpu", "fp32", 10, 1000))
    assert state.state == "running" and "cpu" in state.message
    state.apply(step(4, total=10, elapsed=5.0))
    assert state.eta_s() == pytest.approx(5.0)  # 5 steps took 5 s, 5 to go
    state.apply(EvalEnd(4, 0, 4.0, 4.5, 320))
    state.apply(Sample(4, 0, "Every effort moves you"))
    state.apply(CheckpointSaved(5, 0, "/runs/x/checkpoints/step-5", "manual"))
    assert len(state.evals) == len(state.samples) == len(state.checkpoints) == 1
    state.apply(Finished(10, 1, "completed", 640, 9.0))
    assert state.state == "finished" and not state.active
    assert state.message == "all epochs done, step 10"


@pytest.mark.parametrize(
    ("event", "state", "words"),
    [
        (Finished(3, 0, "cancelled", 100, 1.0), "stopped", "by the user at step 3"),
        (Finished(9, 0, "max_steps", 100, 1.0), "finished", "max steps reached"),
        (Failed(7, 0, "loss is nan", "nan"), "nan", "NaN/inf loss detected at step 7"),
        (Failed(2, 0, "CUDA out of memory"), "error", "error at step 2: CUDA out of memory"),
    ],
)
def test_run_state_names_how_a_run_ended(event: object, state: str, words: str) -> None:
    run = RunState(state="running")
    run.apply(event)  # type: ignore[arg-type]
    assert run.state == state
    assert words in run.message
    run.fail("a later exception")  # does not hide the first reported failure
    assert run.state == (state if state in ("nan", "error") else "error")


# ---------------------------------------------------------------- configs and the form


def field(key: str) -> configs.Field:
    return next(f for f in configs.FIELDS if f.key == key)


@pytest.mark.parametrize(
    ("key", "text", "words"),
    [
        # Each reason names the field by the form's label, not its config key.
        ("batch_size", "0", "batch size must be positive"),
        ("batch_size", "two", "batch size must be an integer or auto, got 'two'"),
        ("batch_size", "2.5", "must be an integer"),
        ("batch_size", "", "is required"),
        ("lr", "-1", "learn rate must be positive"),
        ("model.context_length", "-4", "context must be positive"),
        ("lr", "1e400", "must be finite"),
        ("device", "gpu", "device must be one of auto, cpu, cuda, mps"),
        ("max_steps", "0", "max steps must be positive"),
    ],
)
def test_invalid_inputs_are_rejected_with_a_reason(key: str, text: str, words: str) -> None:
    reason = configs.validate_field(field(key), text, PRESETS["tiny"], TrainConfig())
    assert reason is not None and words in reason
    assert reason.startswith(field(key).label + " ")  # named as the form labels it


def test_valid_inputs_pass_and_empty_optional_means_unset() -> None:
    tiny, train = PRESETS["tiny"], TrainConfig()
    for key, text in [
        ("batch_size", "8"),
        ("lr", "0.002"),
        ("max_steps", ""),
        ("device", "cuda:1"),
    ]:
        assert configs.validate_field(field(key), text, tiny, train) is None
    assert configs.parse_field(field("max_steps"), " ") is None
    assert configs.parse_field(field("start_context"), "  12 ") == "12"  # text stays text
    model, run = configs.build_configs(
        tiny, train, {"model.context_length": 32, "batch_size": 8}, corpus="/c.txt"
    )
    assert (model.context_length, run.batch_size, run.corpus) == (32, 8, "/c.txt")
    with pytest.raises(ConfigError, match="divisible"):
        configs.build_configs(tiny, train, {"model.emb_dim": 66})  # a rule across fields


def test_config_choices_and_saved_configs_round_trip() -> None:
    keys = [key for _label, key in configs.list_configs()]
    assert "preset:tiny" in keys and "preset:book-124m" in keys
    shipped = [str(path) for path in shipped_configs().values()]  # what `--config NAME` finds
    # The first-run config leads (the Train form opens on it), then the others in order.
    first = configs.first_run_config()
    assert first.endswith("quick.toml") and keys[0] == first
    assert keys[: len(shipped)] == [first] + [key for key in shipped if key != first]
    model, train = configs.load_config("preset:tiny")
    assert model == PRESETS["tiny"] and train == TrainConfig()
    saved = configs.save_config("my run", model, TrainConfig(batch_size=3, max_steps=7))
    assert str(saved) in [key for _label, key in configs.list_configs()]
    assert configs.load_config(str(saved)) == (model, TrainConfig(batch_size=3, max_steps=7))
    with pytest.raises(ConfigError, match="not a valid file name"):
        configs.save_config("../escape", model, train)
    bad = saved.with_name("bad.toml")
    bad.write_text("[train]\nbatch_size = 0\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="batch_size must be positive"):
        configs.load_config(str(bad))


# ---------------------------------------------------------------- PNG export


def test_png_export_writes_a_png_or_says_what_to_install(tmp_path: Path) -> None:
    from tui.export import export_loss_png

    state = RunState()
    with pytest.raises(GptTuiError, match="no evaluation yet"):
        export_loss_png(state, tmp_path / "loss.png")
    for i in range(4):
        state.apply(EvalEnd(i * 5, i // 2, 5.0 - i, 5.5 - i, (i + 1) * 320))
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        with pytest.raises(GptTuiError, match=r"pip install 'gpt-tui\[plot\]'"):
            export_loss_png(state, tmp_path / "loss.png")
        assert not (tmp_path / "loss.png").exists()
    else:
        out = export_loss_png(state, tmp_path / "loss.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------- the watch command


def test_watch_command_hands_the_run_dir_to_the_app(tmp_path: Path) -> None:
    seen = []
    code = cli_main(["watch", str(tmp_path)], open_app=lambda args: seen.append(args) or 0)
    assert code == 0
    assert seen[0].command == "watch" and seen[0].run_dir == str(tmp_path)
    assert "watch" in build_parser().format_help()


def test_watch_of_a_missing_folder_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from tui.launch import main

    assert main(["watch", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("gpt-tui: error: no such folder") and err.count("\n") == 1


def test_import_boundaries() -> None:
    """gptcore never loads Textual; the app's modules never load torch at import."""
    code = (
        "import sys\n"
        "import gptcore.cli, gptcore.commands.watch, gptcore.runs.rundir\n"
        "gptcore.cli.build_parser()\n"
        "assert 'textual' not in sys.modules, 'gptcore imported textual'\n"
        "import tui.app\n"
        "assert 'torch' not in sys.modules, 'tui.app imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


# ---------------------------------------------------------------- Corpus helpers


def test_corpus_tree_shows_folders_and_text_files_only(tmp_path: Path) -> None:
    from tui.screens.corpus.sources import TextTree

    for name in ("a.txt", "b.md", "c.bin", "d.png", ".hidden.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / ".git").mkdir()
    shown = TextTree.filter_paths(None, sorted(tmp_path.iterdir()))  # type: ignore[arg-type]
    assert sorted(p.name for p in shown) == ["a.txt", "b.md", "sub"]


def test_window_report_counts_and_explains_a_short_split() -> None:
    from tui.screens.corpus import CorpusInfo, window_report

    info = CorpusInfo("x", "x", 1, 1000, 900, 100, 1000, 900, 100, "")
    lines, problem = window_report(info, PRESETS["tiny"], TrainConfig(batch_size=2))
    assert problem is None and "windows  train " in lines and "per epoch" in lines
    # A corpus that cannot train: why, and no batch plan beside it (issue 25).
    info = CorpusInfo("x", "x", 1, 1000, 900, 100, 340, 300, 40, "")
    lines, problem = window_report(info, PRESETS["tiny"], TrainConfig(batch_size=2))
    assert problem is not None and "validation split has 40 tokens" in problem
    assert lines == "batch plan: none, this corpus cannot train with this config"
    assert "windows" not in lines and "steps" not in lines
    info = CorpusInfo("x", "x", 1, 1000, 900, 100, 400, 300, 100, "")
    lines, problem = window_report(info, PRESETS["tiny"], TrainConfig(batch_size=8))
    assert problem is not None and "fewer than one step's batch_size 8" in problem
    assert "batches" not in lines
