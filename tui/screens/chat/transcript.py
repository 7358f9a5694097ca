"""The conversation: what was said (for saving, copying and chat mode's context)
and the scrolling log that shows it, answers streaming in as they are generated.

Model output is shown as Text, never markup: `[/b]` from the model shows as typed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from gptcore.sampling.chat import ASSISTANT, USER
from gptcore.util.fsutil import atomic_write_text
from gptcore.util.paths import transcripts_dir

if TYPE_CHECKING:
    from gptcore.sampling.stream import GenerationResult, TokenRecord

# How a saved transcript names each role: chat mode's in the prompt format.
ROLE_NAMES = {"user": USER, "assistant": ASSISTANT, "prompt": "Prompt:"}
CONTINUATION = "Continuation:"
Answer = tuple[Static, str, "list[TokenRecord]"]  # a sample's block, text and token records


def result_line(result: GenerationResult) -> str:
    """`12 tokens · 85.3 tok/s`, led by `stopped ·` when Esc cut it short."""
    line = f"{result.new_tokens} tokens · {result.tokens_per_s:,.1f} tok/s"
    if any(s.finish_reason == "cancelled" for s in result.samples):
        line = "stopped · " + line
    return line


def save_transcript(text: str) -> Path:
    """Write a transcript to the transcripts folder, named by the time; returns its path."""

    path = transcripts_dir() / time.strftime("chat-%Y%m%d-%H%M%S.txt")
    atomic_write_text(path, text)
    return path


@dataclass
class Conversation:
    """The turns so far. `history` holds chat mode's (user, assistant) pairs, fed
    back as context; `transcript` every (role, text) shown, roles "prompt" and
    "continuation" in continue mode, "user" and "assistant" in chat mode."""

    history: list[tuple[str, str]] = field(default_factory=list)
    transcript: list[tuple[str, str]] = field(default_factory=list)
    last_answer: str = ""
    pending_user: str | None = None  # chat mode: the message being answered

    def ask(self, prompt: str, chat: bool) -> None:
        self.pending_user = prompt if chat else None
        self.transcript.append(("user" if chat else "prompt", prompt))

    def answered(self, texts: list[str]) -> None:
        """The samples generated for the last prompt (the first is the answer)."""
        chat = self.pending_user is not None
        self.last_answer = texts[0].strip() if chat and texts else "".join(texts[:1])
        role = "assistant" if chat else "continuation"
        self.transcript += [(role, text) for text in texts]
        if chat and texts:
            self.history.append((self.pending_user, texts[0].strip()))  # type: ignore[arg-type]
        self.pending_user = None

    def clear(self) -> None:
        self.history.clear()
        self.transcript.clear()
        self.last_answer = ""

    def text(self, model_name: str) -> str:
        """The turns as the model saw them: chat mode's `User:` / `Assistant:` lines
        (the prompt format), continue mode's `Prompt:` / `Continuation:`."""
        parts = [f"# gpt-tui chat with {model_name}\n"]
        parts += [
            f"{ROLE_NAMES.get(role, CONTINUATION)} {text.strip()}" for role, text in self.transcript
        ]
        return "\n".join(parts) + "\n"


class ChatLog(VerticalScroll, can_focus=False):
    """The transcript on screen: one block per prompt, answer and note.

    Not focusable: focus that leaves the model menu lands on the prompt.
    `live` holds the blocks of the answer being generated, one per sample.
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.live: dict[int, Static] = {}
        self.live_text: dict[int, str] = {}

    def add_block(self, text: str, kind: str) -> Static:
        """Append a block of class `chat-{kind}` (user, model, note, sample)."""
        block = Static(Text(text), classes=f"chat-{kind}", markup=False)
        self.mount(block)
        self.scroll_end(animate=False)
        return block

    def start_turn(self, prompt: str, samples: int) -> None:
        """The prompt's block, then empty blocks for the answer's samples (titled
        when there are several)."""
        self.add_block(prompt or "(empty prompt: starting from <|endoftext|>)", "user")
        self.live, self.live_text = {}, {}
        for i in range(samples):
            if samples > 1:
                self.add_block(f"sample {i + 1}", "sample")
            self.live[i] = self.add_block("", "model")
            self.live_text[i] = ""

    def add_pieces(self, pieces: dict[int, str]) -> None:
        for sample, piece in pieces.items():
            if sample in self.live:
                self.live_text[sample] += piece
                self.live[sample].update(Text(self.live_text[sample]))
        self.scroll_end(animate=False)

    def live_texts(self) -> list[str]:
        return [self.live_text[i] for i in sorted(self.live_text)]

    def finish_answer(self, result: GenerationResult) -> list[Answer]:
        """Show the finished samples' texts (a stop string's tail is cut off);
        returns each shown sample's block, text and token records."""
        answers = []
        for i, sample in enumerate(result.samples):
            if i in self.live:
                self.live_text[i] = sample.text
                self.live[i].update(Text(sample.text))
                answers.append((self.live[i], sample.text, sample.tokens or []))
        return answers

    def clear(self) -> None:
        self.live, self.live_text = {}, {}
        self.remove_children()
