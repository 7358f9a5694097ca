import pytest

from gptcore.config import (
    TrainConfig,
    load_run_config,
    parse_override,
    run_config_from_dict,
)
from gptcore.errors import ConfigError


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


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=fast", "lr must be a number"),
        ("batch_size=0", "batch_size must be positive"),
        ("batch_size=2.5", "batch_size must be an integer"),
        ("shuffle=1", "shuffle must be true or false"),
        ("precision=fp8", "precision must be one of"),
        ("train_ratio=1.5", "train_ratio must be between 0 and 1"),
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
