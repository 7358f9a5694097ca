"""Global options (`--home`) work before or after any subcommand, nested ones included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gptcore.cli import build_parser, main
from gptcore.util.paths import HOME_ENV


@pytest.mark.parametrize(
    "argv",
    [
        ["--home", "H", "train", "--config", "tiny"],
        ["train", "--home", "H", "--config", "tiny"],
        ["train", "--config", "tiny", "--home", "H"],
        ["--home", "H", "checkpoints", "list"],
        ["checkpoints", "--home", "H", "list"],
        ["checkpoints", "list", "--home", "H"],
        ["download", "gpt2", "--size", "124M", "--home", "H"],
        ["--home", "H"],
    ],
)
def test_home_is_read_before_or_after_the_subcommand(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).home == "H"


def test_the_later_home_wins_and_none_given_means_none() -> None:
    assert build_parser().parse_args(["--home", "A", "eval", "--home", "B"]).home == "B"
    assert build_parser().parse_args(["--home", "A", "checkpoints", "list"]).home == "A"
    assert getattr(build_parser().parse_args(["checkpoints"]), "home", None) is None


@pytest.mark.parametrize("before", [True, False])
def test_main_uses_home_from_either_position(
    before: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.delenv(HOME_ENV)
    home = str(tmp_path / "home")
    argv = ["--home", home, "models"] if before else ["models", "--home", home]
    assert main(argv) == 0
    assert os.environ[HOME_ENV] == home
    assert home in capsys.readouterr().out  # the weights folder it lists is under DIR


def test_info_names_every_folder_under_home_with_its_size(tmp_path, capsys) -> None:
    import json

    from gptcore.cli import main

    home = tmp_path / "home"
    runs = home / "data" / "runs" / "r1"
    runs.mkdir(parents=True)
    (runs / "metrics.jsonl").write_bytes(b"x" * 1000)
    (home / "data" / "runs" / "link").symlink_to("/usr")  # not followed, not counted
    assert main(["info", "--json", "--home", str(home)]) == 0
    places = json.loads(capsys.readouterr().out)
    assert set(places) >= {"config", "data", "runs", "weights", "cache"}
    assert all(Path(p["path"]).is_relative_to(home) for p in places.values())
    assert places["runs"]["bytes"] == places["data"]["bytes"] == 1000
    assert places["weights"]["bytes"] is None  # not created yet
    assert main(["info", "--home", str(home)]) == 0
    out = capsys.readouterr().out
    assert f"{home / 'data' / 'runs'}  (1.0 kB)" in out and "not yet created" in out
