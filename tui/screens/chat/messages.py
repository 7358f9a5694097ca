"""What Chat's workers post to the pane. Each carries the number of the load or the
generation it belongs to, so the pane can drop a message a newer one made stale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from gptcore.errors import GptTuiError

if TYPE_CHECKING:
    import torch

    from gptcore.model.gpt import GPTModel
    from gptcore.sampling.stream import GenerationResult
    from gptcore.settings.sampling import GenerationSettings
    from gptcore.weights.spec import ModelChoice


class ChatChoices(Message):
    """The models to offer (checkpoints, downloaded GPT-2) and the precisions this
    device runs."""

    def __init__(self, choices: list[ModelChoice], precisions: list[str]) -> None:
        super().__init__()
        self.choices, self.precisions = choices, precisions


class ModelLoaded(Message):
    def __init__(self, load: int, spec: str, model: GPTModel, precision: str) -> None:
        super().__init__()
        self.load, self.spec, self.model, self.precision = load, spec, model, precision


class ChatDelta(Message):
    """New text per sample since the last message (at most about ten a second)."""

    def __init__(self, generation: int, pieces: dict[int, str]) -> None:
        super().__init__()
        self.generation, self.pieces = generation, pieces


class ChatNote(Message):
    """A line about the generation (turns dropped, prompt cut) for the transcript."""

    def __init__(self, generation: int, text: str) -> None:
        super().__init__()
        self.generation, self.text = generation, text


class ChatDone(Message):
    def __init__(self, generation: int, result: GenerationResult | None) -> None:
        super().__init__()
        self.generation, self.result = generation, result


class InspectReady(Message):
    """The next-token logits for the inspector, computed on `context`: the token ids
    the next generation would read (the penalties' history too), sampled with
    `settings`. `note` says whether chat turns were dropped to fit."""

    def __init__(
        self,
        logits: torch.Tensor,
        context: tuple[int, ...],
        settings: GenerationSettings,
        source: str,
        note: str | None,
    ) -> None:
        super().__init__()
        self.logits, self.context, self.settings = logits, context, settings
        self.source, self.note = source, note


def describe_error(error: BaseException | None) -> str:
    """A user-facing line for a worker's failure: the engine's own message, else
    the kind of failure (out of memory, a bug) and its first line."""

    if isinstance(error, GptTuiError):
        return str(error)
    if error is None:
        return "unknown error"
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    if isinstance(error, MemoryError) or "out of memory" in text.lower():
        return f"out of memory: {text or 'try a smaller model or a lower precision'}"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
