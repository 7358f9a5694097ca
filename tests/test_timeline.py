"""The sample timeline: one prompt and seed from each checkpoint of a run, equal to
`gpt-tui generate --checkpoint`, cached in RUN/timeline.json; its CLI and its screen."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from textual.app import App
from textual.widgets import Input, Static

import gptcore.sampling.timeline
from gptcore.cli import main
from gptcore.sampling.timeline import TimelineEntry, sample_timeline
from gptcore.settings.sampling import GenerationSettings
from tui.screens.timeline import TimelineScreen

from .run_helpers import write_tiny_run_config
from .tui_helpers import run_async, settle

PROMPT = "Every effort moves you"
SEED = 5
# Sampled (not greedy), so the seed matters; short, so the tests stay quick.
SETTINGS = GenerationSettings(max_new_tokens=8, temperature=1.0)
FLAGS = ["--max-new-tokens", "8", "--temperature", "1"]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny run trained for 3 epochs: a checkpoint after each (trained once per module)."""
    folder = tmp_path_factory.mktemp("trained")
    config = write_tiny_run_config(folder / "tiny.toml", sample_tokens=0)
    run = folder / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GPT_TUI_HOME", str(folder / "home"))
        args = ["train", "--config", str(config), "--run-dir", str(run)]
        assert main([*args, "--set", "epochs=3", "--set", "lr=0.01"]) == 0
    assert len(list((run / "checkpoints").iterdir())) == 3
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A fresh copy of the trained run (no timeline.json yet)."""
    return Path(shutil.copytree(trained, tmp_path / "run"))


def generate_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """The text `gpt-tui generate ... --json` prints for these model flags."""
    capsys.readouterr()
    base = ["generate", *args, "--prompt", PROMPT, "--sample-seed", str(SEED), *FLAGS]
    assert main([*base, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["samples"][0]["text"]


def count_generations(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count the timeline's calls of the generation engine."""
    calls: list[int] = []
    real = gptcore.sampling.timeline.generate

    def counted(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(gptcore.sampling.timeline, "generate", counted)
    return calls


def test_each_entry_equals_gpt_tui_generate(run: Path, capsys) -> None:
    entries = sample_timeline(run, PROMPT, SEED, SETTINGS, other="preset:tiny")
    assert [e.checkpoint.name for e in entries] == ["step-000011", "step-000022", "step-000033"]
    assert [e.step for e in entries] == [11, 22, 33]
    assert [e.tokens_seen for e in entries] == [352, 704, 1056]
    assert all(e.val_loss is not None and e.error is None for e in entries)
    assert entries[0].label == "run/step-000011"
    for entry in entries:
        assert entry.text == generate_json(["--checkpoint", str(entry.checkpoint)], capsys)
    assert len({e.text for e in entries}) > 1  # the model changes as it trains
    other = generate_json(["--preset", "tiny"], capsys)
    assert {e.other_text for e in entries} == {other}


def test_samples_are_cached_per_checkpoint_and_settings(
    run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = count_generations(monkeypatch)
    first = sample_timeline(run, PROMPT, SEED, SETTINGS)
    assert len(calls) == 3 and (run / "timeline.json").is_file()
    assert sample_timeline(run, PROMPT, SEED, SETTINGS) == first
    assert len(calls) == 3  # every sample came from the cache
    sample_timeline(run, PROMPT, SEED + 1, SETTINGS)
    assert len(calls) == 6  # another seed: generated again
    longer = GenerationSettings(max_new_tokens=9, temperature=1.0)
    sample_timeline(run, PROMPT, SEED, longer)
    assert len(calls) == 9  # another setting too
    # A checkpoint replaced under the same name is generated again, and only it.
    middle = run / "checkpoints" / "step-000022"
    shutil.rmtree(middle)
    shutil.copytree(run / "checkpoints" / "step-000011", middle)
    again = sample_timeline(run, PROMPT, SEED, SETTINGS)
    assert len(calls) == 10
    assert again[1].text == first[0].text and again[1].step == 11


def test_progress_and_cancel(run: Path) -> None:
    seen: list[tuple[int, int]] = []
    entries = sample_timeline(
        run, PROMPT, SEED, SETTINGS, progress=lambda done, total: seen.append((done, total))
    )
    assert seen == [(0, 3), (1, 3), (2, 3), (3, 3)] and len(entries) == 3
    (run / "timeline.json").unlink()
    done: list[int] = []
    cut = sample_timeline(
        run,
        PROMPT,
        SEED,
        SETTINGS,
        progress=lambda d, t: done.append(d),
        cancel=lambda: bool(done) and done[-1] >= 1,
    )
    assert [e.text for e in cut] == [entries[0].text]
    cached = json.loads((run / "timeline.json").read_text(encoding="utf-8"))["samples"]
    assert len(cached) == 1  # what was finished is kept


def test_damaged_checkpoints_get_their_error(run: Path) -> None:
    weights = run / "checkpoints" / "step-000022" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-1] + b"\0")  # same size, one byte flipped
    (run / "checkpoints" / "broken").mkdir()
    (run / "checkpoints" / "broken" / "meta.json").write_text("{not json", encoding="utf-8")
    entries = sample_timeline(run, PROMPT, SEED, SETTINGS)
    by_name = {e.checkpoint.name: e for e in entries}
    # Damaged ones last (they have no step to place them by).
    names = ["step-000011", "step-000033", "broken", "step-000022"]
    assert [e.checkpoint.name for e in entries] == names
    assert by_name["step-000022"].text is None
    assert "does not match its recorded sha256" in by_name["step-000022"].error
    assert by_name["broken"].text is None and "not valid JSON" in by_name["broken"].error
    assert by_name["step-000011"].text and by_name["step-000011"].error is None


def test_cli_json_and_text(run: Path, capsys) -> None:
    args = ["timeline", str(run), "--sample-seed", str(SEED), *FLAGS, "--against", "preset:tiny"]
    assert main([*args, "--json"]) == 0
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["step"] for r in records] == [11, 22, 33]
    assert set(records[0]) == {
        "checkpoint",
        "label",
        "step",
        "tokens_seen",
        "val_loss",
        "text",
        "other_text",
        "error",
    }
    first = records[0]["checkpoint"]
    assert records[0]["text"] == generate_json(["--checkpoint", first], capsys)
    assert records[0]["other_text"] == generate_json(["--preset", "tiny"], capsys)

    assert main(args) == 0
    out = capsys.readouterr().out
    assert "--- tiny (untrained) (against)" in out
    assert "--- run/step-000033  step 33  tokens 1,056  val loss " in out
    assert PROMPT + records[2]["text"] in out

    assert main(["timeline", str(run), "--sample-seed", "x", "--top-k", "0"]) == 2
    err = capsys.readouterr().err
    assert "--sample-seed: seed must be an integer" in err and "--top-k: top_k must be" in err


# ---------------------------------------------------------------- the screen


class Host(App[None]):
    def __init__(self, run: Path, other: str | None = None) -> None:
        super().__init__()
        self.run_path, self.other = run, other  # (App.run is taken)

    def on_mount(self) -> None:
        self.push_screen(TimelineScreen(self.run_path, self.other))


def shown(screen: TimelineScreen) -> str:
    return "\n".join(str(s.render()) for s in screen.query("#timeline-entries Static"))


@run_async
async def test_screen_lists_entries_recomputes_and_closes(run: Path) -> None:
    app = Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, TimelineScreen)
        text = shown(screen)
        expected = sample_timeline(run, PROMPT, 123, GenerationSettings())
        for entry in expected:
            assert f"run/{entry.checkpoint.name}" in text
            assert PROMPT + entry.text in text
        assert "step 33 · 1,056 tokens · val " in text
        # A new prompt, then Enter: the timeline of that prompt.
        screen.query_one("#timeline-prompt", Input).value = "[b]Hello"
        screen.query_one("#timeline-prompt", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        hello = sample_timeline(run, "[b]Hello", 123, GenerationSettings())
        assert "[b]Hello" + hello[0].text in shown(screen)  # verbatim, not markup
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, TimelineScreen)


@run_async
async def test_screen_shows_a_bad_seed(run: Path) -> None:
    app = Host(run)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        screen = app.screen
        seed = screen.query_one("#timeline-seed", Input)
        seed.value = "x"
        seed.focus()
        await pilot.press("enter")
        await settle(pilot)
        status = str(screen.query_one("#timeline-status", Static).render())
        assert "seed must be an integer" in status and seed.has_class("-invalid")


PINNED = [
    TimelineEntry(
        Path("/runs/demo/checkpoints/step-000010"),
        "demo/step-000010",
        10,
        1280,
        9.912,
        " the the the the, and the [/b]",
        " was not that the picture",
    ),
    TimelineEntry(
        Path("/runs/demo/checkpoints/step-000020"),
        "demo/step-000020",
        20,
        2560,
        7.25,
        ' forward," he said, and the picture was',
        " was not that the picture",
    ),
    TimelineEntry(
        Path("/runs/demo/checkpoints/broken"),
        "demo/broken",
        None,
        None,
        None,
        None,
        None,
        "/runs/demo/checkpoints/broken/meta.json is corrupted (not valid JSON)",
    ),
]


def test_timeline_snapshot(snap_compare, monkeypatch: pytest.MonkeyPatch) -> None:
    """The screen at 80x24 with pinned entries (no model runs)."""
    # The screen's worker imports sample_timeline from the engine module when it runs.
    monkeypatch.setattr(gptcore.sampling.timeline, "sample_timeline", lambda *a, **k: PINNED)

    async def before(pilot) -> None:
        await settle(pilot)

    app = Host(Path("/runs/demo"), "gpt2:124M")
    assert snap_compare(app, terminal_size=(80, 24), run_before=before)


def test_the_default_prompt_is_the_runs_own(run: Path, tmp_path: Path, capsys) -> None:
    import dataclasses

    from gptcore.runs.rundir import RunDir, run_prompt, write_run_config
    from gptcore.sampling.timeline import DEFAULT_PROMPT
    from gptcore.settings.files import load_run_config

    model, train = load_run_config(RunDir(run).config)
    own = "I HAD always"  # not the book's prompt: the run's own is used
    write_run_config(run, model, dataclasses.replace(train, start_context=own))
    assert run_prompt(run) == own
    assert run_prompt(tmp_path / "no-config") == DEFAULT_PROMPT
    assert main(["timeline", str(run), *FLAGS]) == 0  # no --prompt
    blocks = capsys.readouterr().out.split("--- ")[1:]
    assert len(blocks) == 3 and all(b.splitlines()[1].startswith(own) for b in blocks)
