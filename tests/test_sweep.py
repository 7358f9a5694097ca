"""Sweeps (issue 28): the sweep file's checks, samplers and pruners on a fake
objective, the leaderboard and its exports, run tags, two processes on one study."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from gptcore.cli import main
from gptcore.errors import ConfigError
from gptcore.runs.events import Pruned, from_record
from gptcore.runs.table import filter_rows, run_state, run_table
from gptcore.runs.tags import RunTags, read_tags, write_tags
from gptcore.settings.files import load_run_config
from gptcore.sweep.leaderboard import best_config_toml, board_csv, sweep_status
from gptcore.sweep.runner import Runner
from gptcore.sweep.spec import load_sweep

from .sweep_helpers import FAKE_STEPS, FakeTrainer, new_folder, write_sweep

REPO = Path(__file__).resolve().parents[1]
LR_GRID = "[space]\nlr = [0.0003, 0.001, 0.003, 0.01, 0.03, 0.1]\n"


# ---------------------------------------------------------------- the sweep file


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("[space]\nlearning_rate = [0.1]\n", "space.learning_rate: unknown setting"),
        ("[space]\nmodel.widthh = [1]\n", "space.model.widthh: unknown setting"),
        ("[space]\nlr = { low = 0.01, high = 0.001 }\n", "space.lr: empty range"),
        ("[space]\nwarmup_steps = { low = 5, high = 5 }\n", "space.warmup_steps: empty range"),
        ("[space]\nlr = []\n", "space.lr: choices must be a non-empty list"),
        (
            "[space]\nweight_decay = { low = 0.0, high = 0.1, log = true }\n",
            "space.weight_decay: a log range must stay above zero",
        ),
        (
            "[space]\nlr = [0.001, -0.1]\n",
            "space.lr: choice -0.1 is refused: train.lr must be positive",
        ),
        (
            "[space]\nlr_schedule = ['cosine', 'linear']\n",
            "space.lr_schedule: choice 'linear' is refused: train.lr_schedule must be one of",
        ),
        (
            '[space]\n"model.n_heads" = [2, 3]\n',
            "space.model.n_heads: choice 3 is refused: model.emb_dim (16) must be divisible",
        ),
        (
            "[space]\nbatch_size = { low = 0, high = 4 }\n",
            "space.batch_size: range end 0 is refused: train.batch_size must be positive",
        ),
        (
            'sampler = "bayes"\n[space]\nlr = [0.1]\n',
            "sampler must be one of grid, random, tpe, got 'bayes'",
        ),
        (
            'pruner = "asha"\n[space]\nlr = [0.1]\n',
            "pruner must be one of successive-halving, hyperband, median, none",
        ),
        (
            'sampler = "grid"\n[space]\nlr = { low = 0.001, high = 0.1, log = true }\n',
            "space.lr: the grid sampler needs choices",
        ),
        ("[budget]\ntrials = 0\n[space]\nlr = [0.1]\n", "budget.trials must be positive"),
        ("[space]\nlr = { low = 0.001, hihg = 0.1 }\n", "space.lr: unknown key 'hihg'"),
        (
            "[space]\ncorpus = { low = 1, high = 2 }\n",
            "space.corpus: a range needs a number setting",
        ),
        ("[space]\n", "[space] is empty"),
        ("seeds = 0\n[space]\nlr = [0.1]\n", "seeds must be positive"),
        ('sampler = "random"\n[space]\nlr = [0.1, 0.2]\n', "give a [budget]"),
    ],
)
def test_a_bad_sweep_file_stops_with_one_line_naming_the_field_before_any_trial(
    tmp_path: Path, isolated_home: Path, capsys: pytest.CaptureFixture, body: str, field: str
) -> None:
    path = write_sweep(tmp_path, body)
    code = main(["sweep", str(path), "--dir", str(tmp_path / "sweep")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and field in err, err
    assert str(path) in err and "Traceback" not in err
    assert not (tmp_path / "sweep").exists()  # nothing was started
    assert not (isolated_home / "data" / "runs").exists()


def test_a_space_parses_choices_int_and_log_float_ranges(tmp_path: Path) -> None:
    body = (
        'sampler = "tpe"\n[budget]\ntrials = 3\n[space]\n'
        "lr = { low = 1e-4, high = 1e-2, log = true }\n"
        "warmup_steps = { low = 0, high = 40, step = 10 }\n"
        '"model.drop_rate" = [0.0, 0.1]\n'
        "batch_size = [2, 4]\n"
    )
    spec = load_sweep(write_sweep(tmp_path, body))
    kinds = {p.name: (p.kind, p.log) for p in spec.space}
    assert kinds == {
        "lr": ("float", True),
        "warmup_steps": ("int", False),
        "model.drop_rate": ("choices", False),
        "batch_size": ("choices", False),
    }
    assert spec.grid_size is None  # a log range is continuous
    model, train = spec.configs({"lr": 0.002, "model.drop_rate": 0.1, "batch_size": 4}, 2)
    assert (train.lr, train.batch_size, model.drop_rate) == (0.002, 4, 0.1)
    assert train.seed == 123 + 2  # the seed index offsets the base's seed


# ---------------------------------------------------------------- samplers and pruners


def _run_fake(tmp_path: Path, body: str) -> tuple[Runner, FakeTrainer]:
    folder = new_folder(write_sweep(tmp_path, body), tmp_path / "sweep")
    fake = FakeTrainer()
    runner = Runner(folder, seed_trainer=fake)
    summary = runner.run()
    assert summary.reason in ("grid", "budget")
    return runner, fake


def test_the_grid_sampler_visits_every_configuration_once(tmp_path: Path) -> None:
    body = 'sampler = "grid"\npruner = "none"\n' + LR_GRID
    body += "warmup_steps = { low = 0, high = 10, step = 10 }\n"
    runner, fake = _run_fake(tmp_path, body)
    trials = runner.study.get_trials()
    assert len(trials) == 12 == len(fake.runs)
    assert len({(t.params["lr"], t.params["warmup_steps"]) for t in trials}) == 12
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)
    assert runner.study.best_params["lr"] == 0.003


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_random_and_tpe_stop_at_the_trial_budget_and_find_the_low_region(
    tmp_path: Path, sampler: str
) -> None:
    body = f'sampler = "{sampler}"\npruner = "none"\nstartup_trials = 3\n[budget]\ntrials = 8\n'
    body += "[space]\nlr = { low = 1e-4, high = 0.3, log = true }\n"
    runner, fake = _run_fake(tmp_path, body)
    assert len(runner.study.get_trials()) == 8 == len(fake.runs)
    assert 0.0003 < runner.study.best_params["lr"] < 0.03


def test_the_token_budget_stops_starting_trials(tmp_path: Path) -> None:
    body = 'sampler = "grid"\npruner = "none"\n[budget]\ntokens = 10000\n' + LR_GRID
    runner, fake = _run_fake(tmp_path, body)
    # 4,000 tokens per trial: the third trial starts at 8,000 and the fourth never does.
    assert len(fake.runs) == 3


@pytest.mark.parametrize("pruner", ["median", "successive-halving", "hyperband"])
def test_each_pruner_prunes_bad_trials_and_keeps_the_best(tmp_path: Path, pruner: str) -> None:
    body = f'sampler = "grid"\npruner = "{pruner}"\nstartup_trials = 1\nprune_after = 500\n'
    body += "[space]\nlr = [0.003, 0.1, 0.0003, 0.03, 0.00003, 0.3, 0.001, 0.01]\n"
    runner, _fake = _run_fake(tmp_path, body)
    trials = runner.study.get_trials()
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    assert len(trials) == 8 and pruned
    best = runner.study.best_trial
    assert best.params["lr"] == 0.003 and best.state == optuna.trial.TrialState.COMPLETE
    for trial in pruned:
        reason = trial.user_attrs["pruned_reason"]
        step = trial.user_attrs["pruned_step"]
        tokens = (step + 1) * 100  # the fake objective's
        assert f"pruned at step {step} ({tokens:,} tokens) by the {pruner} pruner" in reason
        assert max(trial.intermediate_values) < (FAKE_STEPS - 5) * 100  # stopped early (tokens)


def test_seeds_repeat_a_configuration_and_the_board_shows_mean_and_spread(
    tmp_path: Path,
) -> None:
    body = 'sampler = "grid"\npruner = "none"\nseeds = 3\n[space]\nlr = [0.003, 0.03]\n'
    runner, fake = _run_fake(tmp_path, body)
    assert sorted(fake.runs) == [(t, s) for t in (0, 1) for s in range(3)]
    status = sweep_status(runner.folder)
    best = status.best
    assert best is not None and best.params == {"lr": 0.003}
    assert len(best.seed_values) == 3 and best.spread is not None and best.spread > 0
    assert best.value == pytest.approx(sum(best.seed_values) / 3)


# ---------------------------------------------------------------- leaderboard and exports


def test_show_prints_json_csv_and_writes_a_trainable_best_config(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    body = 'sampler = "grid"\npruner = "median"\nstartup_trials = 1\n' + LR_GRID
    runner, _ = _run_fake(tmp_path, body)
    folder = str(runner.folder.path)
    best_toml = tmp_path / "best.toml"
    assert main(["sweep", "show", folder, "--json", "--best-config", str(best_toml)]) == 0
    records = json.loads(capsys.readouterr().out)
    assert [r["trial"] for r in records][0] == runner.study.best_trial.number
    assert records[0]["state"] == "complete" and records[0]["params"] == {"lr": 0.003}
    assert {r["state"] for r in records} == {"complete", "pruned"}
    model, train = load_run_config(best_toml)
    assert train.lr == 0.003 and model.emb_dim == 16  # the base config with the best lr

    assert main(["sweep", "show", folder, "--csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("trial,state,val_loss,val_loss_std,lr,tokens,steps")
    assert len(lines) == 7

    assert main(["sweep", "show", folder]) == 0
    out = capsys.readouterr().out
    assert "best: trial" in out and "trials 6 of 6 (0 left)" in out


def test_best_config_comes_from_the_base_and_the_trial(tmp_path: Path) -> None:
    body = 'sampler = "grid"\npruner = "none"\n[space]\nlr = [0.003]\n"model.n_layers" = [2]\n'
    runner, _ = _run_fake(tmp_path, body)
    status = sweep_status(runner.folder)
    text = best_config_toml(status.spec, status.best)
    path = tmp_path / "best.toml"
    path.write_text(text)
    model, train = load_run_config(path)
    assert model.n_layers == 2 and train.lr == 0.003
    assert "trial,state" in board_csv(status.rows, ["lr"])


# ---------------------------------------------------------------- runs are tagged


def test_trial_runs_are_tagged_and_filtered_by_sweep_and_trial(tmp_path: Path) -> None:
    for trial, name in ((0, "sw-t000"), (1, "sw-t001")):
        write_tags(tmp_path / name, RunTags("sw", trial, 0))
        (tmp_path / name / "config.toml").write_text('[model]\npreset = "tiny"\n')
    write_tags(tmp_path / "other", RunTags())
    (tmp_path / "other" / "config.toml").write_text('[model]\npreset = "tiny"\n')
    rows = run_table(tmp_path)
    assert [r.name for r in filter_rows(rows, "sweep=sw trial=1")] == ["sw-t001"]
    assert len(filter_rows(rows, "sweep=sw")) == 2
    assert read_tags(tmp_path / "other") == RunTags()
    (tmp_path / "other" / "tags.json").write_text('{"trial": "x"}')
    assert read_tags(tmp_path / "other") == RunTags()  # damaged tags: an untagged run


def test_a_pruned_event_round_trips_and_closes_the_run_as_pruned() -> None:
    from gptcore.runs.events import Finished, to_record

    event = Pruned(10, 0, 5.5, "median", "pruned at step 10 by the median pruner", "sw", 3)
    assert from_record(json.loads(json.dumps(to_record(event)))) == event
    assert run_state(Finished(11, 0, "pruned", 100, 1.0), held=False) == "pruned"


# ---------------------------------------------------------------- processes sharing a study

_WORKER = """
import sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from gptcore.sweep.folder import SweepFolder
from gptcore.sweep.runner import Runner
from tests.sweep_helpers import FakeTrainer

class Slow(FakeTrainer):
    def __call__(self, job, prune, cancel):
        time.sleep(0.3)  # trials overlap between the two processes
        return super().__call__(job, prune, cancel)

Runner(SweepFolder({folder!r}), seed_trainer=Slow(Path({log!r}))).run()
"""


def test_two_processes_share_one_sqlite_study_without_running_a_trial_twice(
    tmp_path: Path, isolated_home: Path
) -> None:
    body = 'sampler = "random"\npruner = "none"\n[budget]\ntrials = 10\n'
    body += "[space]\nlr = { low = 1e-4, high = 0.3, log = true }\n"
    folder = new_folder(write_sweep(tmp_path, body), tmp_path / "sweep")
    log = tmp_path / "runs.log"
    script = _WORKER.format(repo=str(REPO), folder=str(folder.path), log=str(log))
    env = {**os.environ, "GPT_TUI_HOME": str(isolated_home)}
    procs = [
        subprocess.Popen([sys.executable, "-c", script], env=env, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    ran = [line.split()[0] for line in log.read_text().splitlines()]
    assert sorted(ran, key=int) == [str(n) for n in range(len(ran))]  # each trial once
    assert 10 <= len(ran) <= 11  # the budget is checked before each trial, by each process
    status = sweep_status(folder)
    assert all(r.state == "complete" for r in status.rows)


def test_missing_optuna_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    from gptcore.errors import GptTuiError
    from gptcore.sweep import study

    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna raises ImportError
    with pytest.raises(GptTuiError, match=r"pip install 'gpt-tui\[sweep\]'"):
        study.require_optuna()


def test_an_existing_sweep_folder_is_not_overwritten(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, 'sampler = "grid"\n[space]\nlr = [0.1]\n')
    folder = new_folder(path, tmp_path / "sweep")
    with pytest.raises(ConfigError, match="already holds a sweep; continue it with"):
        new_folder(path, folder.path)


def test_docs_sweeps_page_lists_every_sweep_file_setting() -> None:
    from gptcore.settings.declare import settings_table
    from gptcore.sweep.spec import SweepBudget, SweepOptions

    page = (REPO / "docs" / "sweeps.md").read_text(encoding="utf-8")
    assert settings_table(SweepOptions) in page and settings_table(SweepBudget) in page


def test_the_shipped_example_sweeps_load_by_name() -> None:
    from gptcore.sweep.spec import resolve_sweep_path

    quick = load_sweep(resolve_sweep_path("quick-lr"))
    assert [p.name for p in quick.space] == ["lr", "warmup_steps", "batch_size"]
    assert quick.budget.wall_time_s == 900 and quick.base_model["emb_dim"] == 128
    book = load_sweep(resolve_sweep_path("book-grid.toml"))
    assert book.grid_size == 96 and book.base_model["emb_dim"] == 768
