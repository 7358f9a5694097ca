"""What the next generation reads: the prompt's token ids and, in chat mode, the turn.

Chat mode keeps a `User:` / `Assistant:` transcript and feeds it back as the
prompt, ending in `Assistant:` for the model to continue; the answer stops at the
next `\\nUser:`. When the transcript no longer fits the prompt budget (room for the
answer, but never under half the window), the oldest turns are dropped, and the
turn says how many. `next_turn` is the one place this is decided: the Chat
screen's generation and its next-token inspector both call it, so the inspector
shows exactly the context the next answer is generated from.

No torch here: the app imports this module for the transcript format.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

from gptcore.errors import FieldError, GenerationError
from gptcore.model.tokenizer import END_OF_TEXT_ID, encode
from gptcore.settings.sampling import GenerationSettings

USER, ASSISTANT = "User:", "Assistant:"
STOP_AT_USER = "\n" + USER  # the model starting the user's next line ends its answer

Turns = Sequence[tuple[str, str]]  # (user, assistant) pairs, oldest first


def encode_prompt(prompt: str) -> list[int]:
    """Prompt token ids; an empty prompt starts from `<|endoftext|>` as GPT-2 does."""
    if not isinstance(prompt, str):
        raise GenerationError(
            FieldError("prompt", f"the prompt must be text, got {type(prompt).__name__}")
        )
    ids = encode(prompt)
    return ids if ids else [END_OF_TEXT_ID]


def prompt_budget(context_length: int, max_new_tokens: int) -> int:
    """Tokens the chat transcript may take: the window less room for the answer,
    but at least half the window (a long answer must not leave no history)."""
    return max(context_length - max_new_tokens, context_length // 2)


def render_transcript(history: Turns, message: str) -> str:
    """The turns and the new message in the prompt format, ending in `Assistant:`."""
    lines = [f"{USER} {user}\n{ASSISTANT} {answer}\n" for user, answer in history]
    return "".join(lines) + f"{USER} {message}\n{ASSISTANT}"


@dataclass(frozen=True)
class ChatPrompt:
    text: str
    dropped_turns: int


def chat_prompt(history: Turns, message: str, budget_tokens: int) -> ChatPrompt:
    """The transcript as a prompt, oldest turns dropped until it fits `budget_tokens`
    (the newest message always stays, even when it alone is longer)."""
    turns = list(history)
    dropped = 0
    text = render_transcript(turns, message)
    while turns and len(encode(text)) > budget_tokens:
        turns.pop(0)
        dropped += 1
        text = render_transcript(turns, message)
    return ChatPrompt(text, dropped)


@dataclass(frozen=True)
class NextTurn:
    """The input of the next generation.

    `prompt` is the text generation is given (chat mode: the transcript) and
    `settings` how it samples (chat mode: `\\nUser:` added to the stop strings).
    `context` holds the token ids the model reads for the first new token, the last
    `context_length` of the prompt's: what generation is fed, and the history its
    penalties read. `dropped_turns` counts the oldest chat turns left out.
    """

    prompt: str
    settings: GenerationSettings
    context: tuple[int, ...]
    context_length: int
    dropped_turns: int = 0

    @property
    def note(self) -> str | None:
        """The line that tells the user turns were dropped (None when none were)."""
        if not self.dropped_turns:
            return None
        return (
            f"history truncated: the {self.dropped_turns} oldest turn(s) no longer fit "
            f"the model's {self.context_length}-token window"
        )


def next_turn(
    message: str,
    settings: GenerationSettings,
    context_length: int,
    history: Turns | None = None,
) -> NextTurn:
    """The next generation's input for `message`: as typed (continue mode,
    `history` None), or as the next chat turn after `history`."""
    prompt, dropped = message, 0
    if history is not None:
        built = chat_prompt(
            history, message, prompt_budget(context_length, settings.max_new_tokens)
        )
        prompt, dropped = built.text, built.dropped_turns
        settings = replace(settings, stop=(*settings.stop, STOP_AT_USER))
    context = tuple(encode_prompt(prompt)[-context_length:])
    return NextTurn(prompt, settings, context, context_length, dropped)
