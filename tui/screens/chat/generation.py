"""Chat's worker bodies: stream an answer, and compute the inspector's logits.

Both run in thread workers and only post messages (tui/screens/chat/messages.py).
Both build their input with gptcore.sampling.chat.next_turn from the same message,
settings and history, so the inspector's context is the one the answer would be
generated from (built in the worker: fitting a long history tokenizes it repeatedly).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual.message import Message

from gptcore.model.tokenizer import decode
from gptcore.sampling.chat import next_turn
from gptcore.util.throttle import Throttle

from .messages import ChatDelta, ChatDone, ChatNote, InspectReady

if TYPE_CHECKING:
    from gptcore.model.gpt import GPTModel
    from gptcore.sampling.chat import Turns
    from gptcore.settings.sampling import GenerationSettings

POST_INTERVAL_S = 0.1  # at most ~10 transcript updates a second
CONFIDENCE_TOP = 5  # alternatives recorded per generated token, for ctrl+f
SOURCE_TAIL = 36  # characters of the context the inspector's title shows

Post = Callable[[Message], object]


def stream_answer(
    post: Post,
    generation: int,
    model: GPTModel,
    message: str,
    settings: GenerationSettings,
    history: Turns | None,
    cancel: threading.Event,
) -> None:
    """Generate the answer to `message` (chat mode: after `history`; continue mode:
    None), posting its text about ten times a second."""
    from gptcore.sampling.stream import TextStream

    turn = next_turn(message, settings, model.config.context_length, history)
    if turn.note:
        post(ChatNote(generation, turn.note))
    # Recorded always (one softmax and top-k a token): ctrl+f can colour any answer.
    text_stream = TextStream(model, turn.prompt, turn.settings, cancel, logprobs=CONFIDENCE_TOP)
    pending: dict[int, str] = {}
    throttle = Throttle(POST_INTERVAL_S)
    throttle.ready()  # the first post waits one interval, like every later one
    for delta in text_stream:
        pending[delta.sample] = pending.get(delta.sample, "") + delta.text
        if throttle.ready():
            post(ChatDelta(generation, pending))
            pending = {}
    if pending:
        post(ChatDelta(generation, pending))
    result = text_stream.result
    if result is not None and result.notice:
        post(ChatNote(generation, result.notice))
    post(ChatDone(generation, result))


def inspect_turn(
    post: Post,
    model: GPTModel,
    message: str,
    settings: GenerationSettings,
    history: Turns | None,
    model_name: str,
) -> None:
    """Run the model once on the context the answer to `message` would start
    from (stream_answer's), for the next-token inspector."""
    from gptcore.sampling.nexttoken import next_token_logits

    turn = next_turn(message, settings, model.config.context_length, history)
    logits = next_token_logits(model, turn.context)
    tail = decode(list(turn.context))
    shown = tail if len(tail) <= SOURCE_TAIL else "…" + tail[-(SOURCE_TAIL - 1) :]
    source = f"{model_name} after {shown!r}"
    post(InspectReady(logits, turn.context, turn.settings, source, turn.note))
