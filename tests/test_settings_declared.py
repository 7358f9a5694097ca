"""Every setting is declared once (gptcore.settings): its CLI flag, its form field, its
checks and its docs row come from that declaration, and nothing else spells them."""

from __future__ import annotations

import argparse
import ast
import copy
from dataclasses import dataclass
from pathlib import Path

import pytest

from gptcore.cli import build_parser
from gptcore.errors import ConfigError
from gptcore.settings.declare import (
    add_flags,
    check,
    declared,
    field_message,
    flag_texts,
    from_mapping,
    parse_text,
    problems,
    setting,
    settings_table,
)
from gptcore.settings.model import GPTConfig
from gptcore.settings.reference import settings_markdown
from gptcore.settings.sampling import GenerationSettings, InspectSettings, sampler_names
from gptcore.settings.train import TrainConfig
from tui.fields import setting_fields

REPO = Path(__file__).resolve().parents[1]
CLASSES = (GPTConfig, TrainConfig, GenerationSettings, InspectSettings)


@dataclass(frozen=True)
class Toy:
    """A settings class that exists only in this test: one new declaration each."""

    SETTINGS_PREFIX = "toy."

    alpha: float | None = setting(
        None, label="alpha mix", help="how much alpha goes in", low=0, high=2, group="sampler"
    )
    count: int = setting(3, label="count", help="how many times", low=1, cap=10, unset=None)

    def __post_init__(self) -> None:
        check(self)


def test_a_new_declaration_reaches_the_flags_the_form_the_checks_and_the_docs() -> None:
    parser = argparse.ArgumentParser()
    add_flags(parser, Toy, ["alpha", "count"])
    args = parser.parse_args(["--alpha", "0.5"])
    assert flag_texts(args, ["alpha", "count"]) == {"alpha": "0.5"}
    helps = {a.dest: a.help for a in parser._actions}
    assert "how much alpha goes in" in helps["alpha"] and "[0, 2]" in helps["alpha"]
    assert "how many times" in helps["count"] and "default: 3" in helps["count"]

    # The form's field: the declared label, help and starting text.
    alpha, count = setting_fields(Toy, ["alpha", "count"])
    assert (alpha.label, alpha.initial, count.initial) == ("alpha mix", "", "3")
    assert "how much alpha goes in" in alpha.help

    # Typed text: blank leaves an optional setting unset; a required one must be given.
    assert parse_text(Toy, {"alpha": " "}) == ({"alpha": None}, [])
    values, errors = parse_text(Toy, {"alpha": "lots", "count": ""})
    assert values == {} and [e.field for e in errors] == ["alpha", "count"]
    assert field_message(errors[0], alpha.label) == "alpha mix must be a number, got 'lots'"

    # The checks, in the settings' own words and in the form's.
    with pytest.raises(ConfigError) as info:
        Toy(alpha=3.0)
    assert str(info.value) == "toy.alpha must be a number in [0, 2], got 3.0"
    assert field_message(info.value.errors[0], "alpha mix").startswith("alpha mix must be")
    zero = copy.copy(Toy())
    object.__setattr__(zero, "count", 0)  # past __post_init__, as a damaged file would be
    assert [p.message for p in problems(zero)] == ["toy.count must be positive, got 0"]
    with pytest.raises(ConfigError, match="toy.count must be at most 10, got 11"):
        Toy(count=11)

    # Untrusted key/value data (a TOML table) and the docs row.
    with pytest.raises(ConfigError, match="cfg: count must be an integer, got 'x'"):
        from_mapping(Toy, {"count": "x"}, "cfg")
    table = settings_table(Toy)
    assert "| `toy.alpha` | `off` | [0, 2] | how much alpha goes in |" in table
    assert "| `toy.count` | `3` | >= 1, <= 10 | how many times |" in table


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: c.__name__)
def test_every_lower_bound_is_enforced_and_named(cls: type) -> None:
    """For each declared number with a lower bound, a value below it is refused with a
    message that names the setting: the bound lives in the declaration alone."""
    base = cls()
    prefix = getattr(cls, "SETTINGS_PREFIX", "")
    checked = 0
    for name, decl in declared(cls).items():
        low = decl.setting.low
        if low is None or decl.base_type not in (int, float):
            continue
        below = low - 1 if decl.base_type is int else float(low) - 0.5
        bad = copy.copy(base)
        object.__setattr__(bad, name, below)  # past __post_init__: problems() must see it
        found = problems(bad, {"vocab_size": 50257, "last_token": 50256})
        assert any(p.field == name and p.message.startswith(prefix + name) for p in found), name
        checked += 1
    assert checked >= 2


def test_docs_settings_page_is_the_declarations() -> None:
    page = (REPO / "docs" / "settings.md").read_text(encoding="utf-8")
    assert page == settings_markdown(), (
        "docs/settings.md is stale: python -m gptcore.settings.reference > docs/settings.md"
    )


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


def test_every_sampler_is_a_flag_of_generate_and_inspect_and_a_chat_control() -> None:
    from tui.screens.chat import SAMPLER_CONTROLS

    decls = declared(GenerationSettings)
    for command in ("generate", "inspect"):
        actions = {a.dest: a for a in _subparser(command)._actions}
        for name in sampler_names():
            assert name in actions, f"{command} lacks the {name} flag"
            assert decls[name].flag in actions[name].option_strings
            assert decls[name].setting.help in actions[name].help
    assert [f.name for f in SAMPLER_CONTROLS] == sampler_names()
    assert [f.label for f in SAMPLER_CONTROLS] == [decls[n].setting.label for n in sampler_names()]


def test_every_form_field_is_a_declared_setting_with_its_declared_label() -> None:
    from tui.configs import FIELDS
    from tui.screens.chat import CONTROLS
    from tui.screens.inspector import inspector_fields
    from tui.screens.timeline import FIELDS as TIMELINE_FIELDS

    for field in FIELDS:  # the Train form
        decl = declared(field.settings_class)[field.name]
        assert field.label == decl.setting.label
    for fields, cls in ((CONTROLS, GenerationSettings), (TIMELINE_FIELDS, GenerationSettings)):
        for f in fields:
            assert f.label == declared(cls)[f.name].setting.label
    for f in inspector_fields():
        owner = GenerationSettings if f.name in declared(GenerationSettings) else InspectSettings
        if f.name in ("seed",):  # the lab's seed is the inspector's own setting
            owner = InspectSettings
        assert f.label == declared(owner)[f.name].setting.label


def _string_literals(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def _label_texts(path: Path) -> set[str]:
    """The constant texts given to Textual's Label(...) in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.args[0].value
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and getattr(node.func, "id", getattr(node.func, "attr", "")) == "Label"
        and node.args
        and isinstance(node.args[0], ast.Constant)
        and isinstance(node.args[0].value, str)
    }


def test_no_front_end_spells_a_declared_flag_or_label_again() -> None:
    """No front end writes a declared setting's flag as a string, nor its label in a
    Label(...): both come from the declaration, never written twice."""
    flags, labels = set(), set()
    for cls in CLASSES:
        for decl in declared(cls).values():
            flags.add(decl.flag)
            labels.add(decl.setting.label)
    sources = [*(REPO / "tui").rglob("*.py"), *(REPO / "gptcore" / "commands").glob("*.py")]
    found = {
        f"{path.relative_to(REPO)}: {text!r}"
        for path in sources
        for text in (_string_literals(path) & flags) | (_label_texts(path) & labels)
    }
    # The Speed Lab's --compile adds the torch.compile rung to its ladder: a choice of
    # what to measure, not the run setting train.compile.
    found.discard("gptcore/commands/speedlab.py: '--compile'")
    # plan's --device also names a GPU that is not here ("H100 80GB"): the device a
    # plan is for, not the run setting train.device (which --set device=... changes).
    found.discard("gptcore/commands/plan.py: '--device'")
    assert not found, sorted(found)
