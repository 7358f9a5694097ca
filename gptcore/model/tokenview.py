"""How text becomes GPT-2 tokens, shown honestly.

A byte-level BPE token can hold part of a multibyte character (an emoji is
often two or three tokens). Such a token is shown as its bytes (`<e6 bc>`),
never as a replacement character, and the round trip is checked.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptcore.model.tokenizer import END_OF_TEXT, get_tokenizer


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
        """Printable form: the text with whitespace made visible, or the raw bytes."""
        text = self.text
        if text is None:
            return "<" + " ".join(f"{b:02x}" for b in self.data) + ">"
        return text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")


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
