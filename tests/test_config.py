import importlib.resources
from pathlib import Path

import pytest

from gptcore.errors import ConfigError
from gptcore.settings.declare import parse_override
from gptcore.settings.files import (
    load_run_config,
    resolve_config_path,
    run_config_from_dict,
    shipped_configs,
)
from gptcore.settings.train import TrainConfig


def test_toml_with_preset_table_and_overrides(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[model]\npreset = "tiny"\nn_layers = 3\n\n[train]\nlr = 1e-3\nepochs = 2\n')
    model, train = load_run_config(path, ["max_steps=20", "model.drop_rate=0.2", "corpus=builtin"])
    assert (model.n_layers, model.emb_dim, model.drop_rate) == (3, 64, 0.2)
    assert (train.lr, train.epochs, train.max_steps, train.corpus) == (1e-3, 2, 20, "builtin")


def test_defaults_are_the_books_run():
    train = TrainConfig()
    assert (train.lr, train.weight_decay, train.batch_size, train.epochs) == (4e-4, 0.1, 2, 10)
    assert (train.eval_freq, train.eval_iter, train.seed) == (5, 5, 123)
    assert train.start_context == "Every effort moves you"


def test_unknown_key_names_key_and_file(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: \[train\]: unknown key 'learning_rate'"):
        load_run_config(path)


def test_unknown_table(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[optimizer]\nlr = 1\n")
    with pytest.raises(ConfigError, match=r"unknown table \[optimizer\]"):
        load_run_config(path)


def test_invalid_toml_names_the_file(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text("[train\nlr = ")
    with pytest.raises(ConfigError, match="invalid TOML in .*broken.toml"):
        load_run_config(path)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found"):
        load_run_config("/no/such/file.toml")


REPO_CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_shipped_presets_are_the_repos_configs_folder():
    shipped = shipped_configs()
    assert list(shipped) == sorted(p.stem for p in REPO_CONFIGS.glob("*.toml"))
    assert {"book", "tiny", "gpt2-124m-continue"} <= set(shipped)
    assert all(path.is_file() and path.suffix == ".toml" for path in shipped.values())


def test_config_by_name_with_or_without_suffix():
    tiny = shipped_configs()["tiny"]
    assert resolve_config_path("tiny") == resolve_config_path("tiny.toml") == tiny
    model, train = load_run_config("tiny", ["max_steps=4"])
    assert load_run_config(tiny, ["max_steps=4"]) == (model, train)
    assert (model.emb_dim, train.sampler, train.max_steps) == (64, "random", 4)


def test_a_file_wins_over_a_preset_name(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("tiny.toml").write_text("[train]\nepochs = 7\n")
    assert resolve_config_path("tiny.toml") == Path("tiny.toml")
    assert load_run_config("tiny.toml")[1].epochs == 7
    assert resolve_config_path("tiny") == shipped_configs()["tiny"]  # no file called "tiny"


@pytest.mark.parametrize("value", ["nope", "nope.toml", "elsewhere/tiny.toml"])
def test_unknown_name_lists_the_presets(value):
    with pytest.raises(ConfigError) as err:
        resolve_config_path(value)
    message = str(err.value)
    assert f"config file not found: {value}" in message
    assert "shipped presets: book, gpt2-124m-continue, quick, tiny" in message


def test_presets_are_found_in_a_checkout_that_is_not_installed(monkeypatch):
    def not_installed(package):
        raise ModuleNotFoundError(package)

    monkeypatch.setattr(importlib.resources, "files", not_installed)
    assert shipped_configs() == {p.stem: p for p in sorted(REPO_CONFIGS.glob("*.toml"))}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=fast", "lr must be a number"),
        ("batch_size=0", "batch_size must be positive"),
        ("batch_size=2.5", "batch_size must be an integer"),
        ("shuffle=1", "shuffle must be true or false"),
        ("precision=fp8", "precision must be one of"),
        ("train_ratio=1.5", "train_ratio must be a number in \\(0, 1\\)"),
        ("max_steps=-3", "max_steps must be positive"),
        ("model.n_heads=5", "divisible"),
        ("model=gpt5", "unknown model preset"),
    ],
)
def test_wrong_type_or_range_is_named(override, message):
    with pytest.raises(ConfigError, match=message):
        run_config_from_dict({"model": "tiny"}, "cfg", [override])


def test_parse_override_reads_toml_values():
    assert parse_override("lr=3e-4") == ("lr", 3e-4)
    assert parse_override("shuffle=false") == ("shuffle", False)
    assert parse_override('start_context="Hi there"') == ("start_context", "Hi there")
    assert parse_override("corpus=/data/x.txt") == ("corpus", "/data/x.txt")
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("lr")
