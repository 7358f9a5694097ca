"""Sampling settings built from user text: every field, errors as data (field,
message, unreachable), and the CLI and the app rejecting a value the same way."""

from __future__ import annotations

import pickle
from dataclasses import replace

import pytest
import torch
from textual.widgets import Input

from gptcore.cli import build_parser, main
from gptcore.errors import FieldError, GenerationError, GptTuiError
from gptcore.model.gpt import GPTModel
from gptcore.model.inference import check_precision
from gptcore.model.tokenizer import END_OF_TEXT_ID
from gptcore.sampling.from_text import (
    inspect_settings_from_text,
    messages_by_label,
    settings_from_text,
)
from gptcore.sampling.stream import generate
from gptcore.settings.sampling import (
    MAX_DRAWS,
    MAX_NEW_TOKENS_LIMIT,
    GenerationSettings,
    InspectSettings,
)
from tests.tui_helpers import host_app, run_async, wait_for
from tui.screens.chat import ChatPane
from tui.screens.inspector import InspectorScreen


def _error(call, *args, **kwargs) -> GenerationError:
    with pytest.raises(GenerationError) as info:
        call(*args, **kwargs)
    assert isinstance(info.value, GptTuiError)  # the CLI prints it as one line, exit 2
    return info.value


# ---------------------------------------------------------------- generation fields


@pytest.mark.parametrize(
    ("field", "text", "value"),
    [
        ("temperature", "0.7", 0.7),
        ("temperature", "0", 0.0),
        ("top_k", "40", 40),
        ("top_k", "", None),
        ("top_k", "off", None),
        ("top_p", "0.9", 0.9),
        ("top_p", " ", None),
        ("max_new_tokens", "20", 20),
        ("max_new_tokens", "0", 0),
        ("seed", "5", 5),
        ("seed", "", None),
        ("seed", "random", None),
        ("num_samples", "2", 2),
        ("context_keep", "8", 8),
        ("context_keep", "", None),
    ],
)
def test_valid_and_blank_fields(field: str, text: str, value: object) -> None:
    # The field takes the typed value; every other field keeps the engine's default.
    expected = replace(GenerationSettings(), **{field: value})
    assert settings_from_text({field: text}, context_length=32) == expected


@pytest.mark.parametrize(
    ("field", "text", "message", "unreachable"),
    [
        ("temperature", "", "temperature is required", False),
        ("temperature", "hot", "temperature must be a number, got 'hot'", False),
        ("temperature", "-1", "temperature must be a finite number >= 0, got -1.0", False),
        ("temperature", "nan", "temperature must be a finite number >= 0", False),
        ("temperature", "1e-40", "temperature 1e-40 is too close to 0", True),
        ("top_k", "x", "top_k must be an integer, got 'x'", False),
        ("top_k", "2.5", "top_k must be an integer, got '2.5'", False),
        ("top_k", "0", "top_k must be an integer in [1, 50257], got 0", False),
        ("top_k", "50258", "top_k must be an integer in [1, 50257], got 50258", True),
        ("top_p", "x", "top_p must be a number, got 'x'", False),
        ("top_p", "0", "top_p must be a number in (0, 1], got 0.0", False),
        ("top_p", "1.5", "top_p must be a number in (0, 1], got 1.5", False),
        ("max_new_tokens", "", "max_new_tokens is required", False),
        ("max_new_tokens", "many", "max_new_tokens must be an integer, got 'many'", False),
        ("max_new_tokens", "-1", "max_new_tokens must be an integer in [0, ", False),
        ("max_new_tokens", str(MAX_NEW_TOKENS_LIMIT + 1), "max_new_tokens must be", False),
        ("seed", "x", "seed must be an integer, got 'x'", False),
        ("seed", "-1", "seed must be an integer in [0, ", False),
        ("num_samples", "", "num_samples is required", False),
        ("num_samples", "0", "num_samples must be an integer in [1, 64], got 0", False),
        ("num_samples", "65", "num_samples must be an integer in [1, 64], got 65", False),
        ("context_keep", "x", "context_keep must be an integer, got 'x'", False),
        ("context_keep", "0", "context_keep must be an integer in [1, 32], got 0", False),
        ("context_keep", "33", "context_keep must be an integer in [1, 32], got 33", True),
        ("top_kk", "3", "unknown setting 'top_kk'", False),
    ],
)
def test_invalid_fields_are_named(field: str, text: str, message: str, unreachable: bool) -> None:
    error = _error(settings_from_text, {field: text}, context_length=32)
    assert [e.field for e in error.errors] == [field]
    assert message in error.errors[0].message
    assert error.errors[0].unreachable is unreachable
    assert error.by_field() == {field: error.errors[0].message}


def test_every_bad_field_is_reported_at_once() -> None:
    text = {"temperature": "abc", "top_k": "0", "top_p": "2", "max_new_tokens": "5",
            "seed": "", "num_samples": "x"}  # fmt: skip
    error = _error(settings_from_text, text)
    assert set(error.by_field()) == {"temperature", "top_k", "top_p", "num_samples"}
    assert str(error).count("; ") == 3  # one line for the CLI


def test_context_keep_is_open_ended_until_the_context_is_known() -> None:
    assert settings_from_text({"context_keep": "5000"}).context_keep == 5000
    error = _error(settings_from_text, {"context_keep": "5000"}, context_length=1024)
    assert error.errors[0] == FieldError(
        "context_keep", "context_keep must be an integer in [1, 1024], got 5000", True
    )


def test_stop_at_eos_and_stop_strings() -> None:
    assert settings_from_text({}).eos_id == END_OF_TEXT_ID
    assert settings_from_text({}, stop_at_eos=False).eos_id is None
    # A vocabulary without <|endoftext|>: nothing to stop at.
    assert settings_from_text({}, vocab_size=100).eos_id is None
    assert settings_from_text({}, stop=["\nUser:"]).stop == ("\nUser:",)
    error = _error(settings_from_text, {}, stop=[""])
    assert [e.field for e in error.errors] == ["stop"]


def test_the_chat_defaults_build_the_expected_settings() -> None:
    from tui.screens.chat import CONTROLS

    settings = settings_from_text({f.name: f.initial for f in CONTROLS})
    assert settings == GenerationSettings(temperature=1.0, top_k=40, max_new_tokens=50)


# ---------------------------------------------------------------- inspector fields


def test_inspect_settings_defaults_and_values() -> None:
    assert inspect_settings_from_text({}, 9) == InspectSettings()
    got = inspect_settings_from_text(
        {"temperature": "0.5", "top_k": "3", "top_p": "", "temperatures": "1; 0.1, 5",
         "draws": "0", "seed": "7"}, 9,
    )  # fmt: skip
    sampling = replace(InspectSettings().sampling, temperature=0.5, top_k=3, top_p=None)
    assert got == InspectSettings(sampling, (1.0, 0.1, 5.0), 0, 7)


@pytest.mark.parametrize(
    ("field", "text", "message", "unreachable"),
    [
        ("temperature", "-1", "temperature must be a finite number >= 0", False),
        ("top_k", "10", "top_k must be an integer in [1, 9], got 10", True),
        ("top_p", "1.5", "top_p must be a number in (0, 1], got 1.5", False),
        ("temperatures", "1, hot", "temperatures must be numbers separated by commas", False),
        ("temperatures", "1, -2", "temperatures must be a finite number >= 0, got -2.0", False),
        ("temperatures", " , ", "give at least one temperature", False),
        ("draws", "-1", "draws must be an integer in [0, 100000], got -1", False),
        ("draws", str(MAX_DRAWS + 1), "draws must be an integer in [0, 100000]", False),
        ("draws", "", "draws is required", False),
        ("seed", "", "seed is required", False),
        ("seed", "x", "seed must be an integer, got 'x'", False),
    ],
)
def test_invalid_inspector_fields_are_named(
    field: str, text: str, message: str, unreachable: bool
) -> None:
    error = _error(inspect_settings_from_text, {field: text}, 9)
    assert [e.field for e in error.errors] == [field]
    assert message in error.errors[0].message
    assert error.errors[0].unreachable is unreachable


# ---------------------------------------------------------------- the engine's own checks


def test_the_engine_raises_the_same_structured_error(tiny_config) -> None:
    model = GPTModel(tiny_config)
    error = _error(generate, model, "Hi", top_k=0, num_samples=0)
    assert {e.field for e in error.errors} == {"top_k", "num_samples"}
    error = _error(generate, model, "Hi", context_keep=33)
    assert error.errors == (
        FieldError("context_keep", "context_keep must be an integer in [1, 32], got 33", True),
    )
    error = _error(generate, model, "Hi", top_kk=3)
    assert [e.field for e in error.errors] == ["top_kk"]
    error = _error(check_precision, "fp16", torch.device("cpu"))
    assert error.errors[0].field == "precision" and error.errors[0].unreachable
    error = _error(check_precision, "fp8", torch.device("cpu"))
    assert error.errors[0].field == "precision" and not error.errors[0].unreachable
    # Errors travel between processes intact.
    copy = pickle.loads(pickle.dumps(error))
    assert copy.errors == error.errors and str(copy) == str(error)


def test_messages_by_label_name_fields_as_a_screen_does() -> None:
    with pytest.raises(GenerationError) as caught:
        settings_from_text({"top_k": "0", "num_samples": "0", "temperature": "x"})
    labels = {"top_k": "top-k", "num_samples": "samples"}
    assert messages_by_label(caught.value, labels) == {
        "top_k": "top-k must be an integer in [1, 50257], got 0",
        "num_samples": "samples must be an integer in [1, 64], got 0",
        "temperature": "temperature must be a number, got 'x'",  # no label given: as is
    }


def test_a_tiny_temperature_is_refused_rather_than_crashing(tiny_config) -> None:
    error = _error(generate, GPTModel(tiny_config), "Hi", temperature=1e-40, max_new_tokens=2)
    assert error.errors[0].field == "temperature" and error.errors[0].unreachable
    assert settings_from_text({"temperature": "1e-30"}).temperature == 1e-30


# ---------------------------------------------------------------- CLI and app agree


@run_async
async def test_cli_and_app_reject_the_same_value_with_the_same_field(capsys) -> None:
    cli_errors = {}
    for argv in (
        ["generate", "--preset", "tiny", "--prompt", "Hi", "--top-p", "1.5"],
        ["inspect", "--toy", "--top-p", "1.5"],
    ):
        args = build_parser().parse_args(argv)
        cli_errors[argv[0]] = _error(args.func, args).by_field()
        assert main(argv) == 2
        assert f"gpt-tui: error: {cli_errors[argv[0]]['top_p']}\n" == capsys.readouterr().err
    # The same field and rule; the CLI leads the message with the flag the user typed.
    assert (
        cli_errors["generate"]
        == cli_errors["inspect"]
        == {"top_p": "--top-p: top_p must be a number in (0, 1], got 1.5"}
    )

    app = host_app(ChatPane)
    async with app.run_test(size=(100, 40)) as pilot:
        chat = app.query_one(ChatPane)
        await wait_for(pilot, lambda: chat.controls.active)  # validated once shown
        chat.query_one("#chat-top_p", Input).value = "1.5"
        await pilot.pause()
        # The same rule, in the app's words: the field's label on screen.
        assert chat.controls.errors == {"top_p": "top-p must be a number in (0, 1], got 1.5"}
        assert chat.query_one("#chat-top_p", Input).has_class("-invalid")
        assert chat.settings is None

        app.push_screen(InspectorScreen())
        await pilot.pause()
        screen = app.screen
        screen.query_one("#insp-top_p", Input).value = "1.5"
        await pilot.pause()
        assert screen.errors == chat.controls.errors
        assert screen.query_one("#insp-top_p", Input).has_class("-invalid")
