"""How text becomes GPT-2 tokens, and how gpt-tui shows a token as text.

`token_label` is the one convention for showing a token, used by every table and
view that names tokens (the inspector and `gpt-tui inspect`, the Chat confidence
view and `generate --logprobs`, the Tokens view and `gpt-tui tokens`):

- a token whose bytes are whole UTF-8 characters shows as its text, with its
  whitespace made visible: space `␣`, newline `⏎`, tab `⇥`, carriage return `␍`
  (a view that marks token edges itself, such as the Tokens view's alternating
  backgrounds, keeps spaces as spaces: `spaces=False`);
- a token whose bytes are not whole UTF-8 characters (byte-level BPE splits
  many characters, an emoji into two or three tokens) shows as its bytes in hex,
  `<f0 9f>`: never as a replacement character, never with doubled backslashes;
  so does a control character inside a token (`<1b>`), which a terminal would act on.

`token_text` is a token's text as data (JSON output): decoded exactly, the bytes
of a partial character as `\\xNN` escapes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from gptcore.model.tokenizer import END_OF_TEXT, get_tokenizer

VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
ELLIPSIS = "…"


def _hex(data: bytes) -> str:
    return "<" + " ".join(f"{b:02x}" for b in data) + ">"


def token_label(data: bytes, width: int | None = None, *, spaces: bool = True) -> str:
    """A token's bytes as gpt-tui shows them (see the module docstring), cut to
    `width` characters with a trailing `…` when longer (None: never cut)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        label = _hex(data)
    else:
        parts = []
        for ch in text:
            if ch in VISIBLE and (spaces or ch != " "):
                parts.append(VISIBLE[ch])
            elif ch != " " and unicodedata.category(ch) == "Cc":
                parts.append(_hex(ch.encode("utf-8")))
            else:
                parts.append(ch)
        label = "".join(parts)
    if width is not None and len(label) > width:
        label = label[: max(width - 1, 0)] + ELLIPSIS
    return label


def token_bytes(token_id: int) -> bytes | None:
    """A GPT-2 token's bytes; None for an id the tokenizer lacks (a padded vocabulary)."""
    try:
        return get_tokenizer().decode_single_token_bytes(token_id)
    except KeyError:
        return None


def label_of(token_id: int, width: int | None = None) -> str:
    """The label of GPT-2 token `token_id` (token_label); `<id N>` for an id
    beyond the tokenizer's (a model whose vocabulary is padded)."""
    data = token_bytes(token_id)
    return f"<id {token_id}>" if data is None else token_label(data, width)


def token_text(data: bytes) -> str:
    """A token's text as data: its bytes decoded as UTF-8, the bytes of a partial
    character as `\\xNN` escapes (so the texts of a whole answer join back up)."""
    return data.decode("utf-8", errors="backslashreplace")


@dataclass(frozen=True)
class TokenPiece:
    id: int
    data: bytes
    special: bool

    @property
    def text(self) -> str | None:
        """The token's text, or None when its bytes are not whole UTF-8 characters."""
        try:
            return self.data.decode("utf-8")
        except UnicodeDecodeError:
            return None

    @property
    def label(self) -> str:
        """The token as the Tokens view and `gpt-tui tokens` show it: token_label,
        spaces kept as spaces (the view's alternating backgrounds show the edges)."""
        return token_label(self.data, spaces=False)


@dataclass(frozen=True)
class TokenView:
    text: str
    pieces: list[TokenPiece]

    @property
    def round_trip(self) -> str:
        return b"".join(p.data for p in self.pieces).decode("utf-8", errors="replace")

    @property
    def round_trip_ok(self) -> bool:
        return self.round_trip == self.text


def view_tokens(text: str) -> TokenView:
    """Split `text` into its tokens (`<|endoftext|>` in the text is the special token)."""
    enc = get_tokenizer()
    ids = enc.encode(text, allowed_special={END_OF_TEXT})
    specials = {enc.eot_token}
    pieces = [TokenPiece(i, enc.decode_single_token_bytes(i), i in specials) for i in ids]
    return TokenView(text, pieces)
