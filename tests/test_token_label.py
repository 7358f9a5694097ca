"""One token label (gptcore.model.tokenview.token_label) and one bar renderer
(gptcore.util.bars), and the Chat confidence panel that shows both kinds of token."""

from __future__ import annotations

import math

import pytest

from gptcore.model.tokenizer import encode, get_tokenizer
from gptcore.model.tokenview import label_of, token_label, token_text, view_tokens
from gptcore.sampling.stream import TokenChoice, TokenRecord
from gptcore.util.bars import bar, percent
from tui.screens.chat.confidence import confidence_panel


@pytest.mark.parametrize(
    ("data", "label"),
    [
        (b" the", "␣the"),
        (b"\n\n", "⏎⏎"),
        (b"\t\r", "⇥␍"),
        (b"<|endoftext|>", "<|endoftext|>"),
        (b"[/b]", "[/b]"),
        ("é".encode(), "é"),
        (b"\xe6\xbc", "<e6 bc>"),  # part of a character: its bytes
        (b" \xf0\x9f", "<20 f0 9f>"),
        (b"a\x1bb", "a<1b>b"),  # a control character a terminal would act on
    ],
)
def test_a_token_shows_as_its_text_whitespace_visible_or_as_its_bytes(data, label) -> None:
    assert token_label(data) == label
    assert "\\" not in token_label(data)


def test_labels_are_cut_with_an_ellipsis_and_spaces_can_stay_spaces() -> None:
    assert token_label(b" elephant", 5) == "␣ele…"
    assert token_label(b" elephant", 9) == "␣elephant"
    assert token_label(b" a\n", spaces=False) == " a⏎"
    assert [p.label for p in view_tokens("I am").pieces] == ["I", " am"]  # the Tokens view


def test_gpt2_ids_have_labels_and_texts() -> None:
    (the,) = encode(" the")
    assert label_of(the) == "␣the" and label_of(the, 3) == "␣t…"
    assert label_of(60_000) == "<id 60000>"  # a padded vocabulary's extra ids
    partial = get_tokenizer().decode_single_token_bytes(encode("😀")[0])
    assert token_text(partial).startswith("\\x")  # data: escapes that join back up


def test_bars_fill_eighths_of_a_cell_and_stay_their_width() -> None:
    assert bar(0.5, 8) == "████    "
    assert bar(1 / 64, 8) == "▏       "
    assert bar(0.07, 8) == "▌       "
    assert bar(1.0, 4) == "████"
    for odd in (-1.0, 2.0, math.nan, math.inf):
        assert len(bar(odd, 6)) == 6
    assert bar(2.0, 3) == "███" and bar(math.nan, 3) == "   "
    assert bar(0.5, 0) == ""
    assert (percent(0.5775), percent(0.0), percent(1e-6)) == (" 57.75%", "  0.00%", " <0.01%")


def _choice(token: str | bytes, prob: float) -> TokenChoice:
    data = token if isinstance(token, bytes) else token.encode()
    return TokenChoice(get_tokenizer().encode_single_token(data), token_text(data), prob, prob)


def test_the_confidence_panel_shows_partial_bytes_without_doubled_backslashes() -> None:
    partial = _choice(b"\xf0\x9f", 0.4)
    record = TokenRecord(partial, (partial, _choice(" the", 0.3)), 0)
    lines = confidence_panel(record, "1/1").plain.splitlines()
    assert lines[1].startswith("#1/1 <f0 9f> p 0.400")
    assert lines[2].startswith("▸ <f0 9f> ") and lines[3].startswith("  ␣the ")
    assert "\\" not in confidence_panel(record, "1/1").plain
