"""Decoding token ids with the model's KV cache: the loop behind every generation.

Each new token costs one position rather than a full recompute. When the context
window is full, the window slides: the last `context_keep` tokens (default: the
whole context, which reproduces the book's recompute-every-step output exactly)
are re-fed to rebuild the cache. A cancel check runs between tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

import torch

from gptcore.model.gpt import GPTModel, KVCache, model_device
from gptcore.sampling.chain import select_next
from gptcore.settings.sampling import GenerationSettings

CancelCheck = threading.Event | Callable[[], bool] | None


# Called with a step's raw logits [batch, vocab] and the tokens so far [batch, n].
StepHook = Callable[[torch.Tensor, torch.Tensor], None]


def _is_cancelled(cancel: CancelCheck) -> bool:
    if cancel is None:
        return False
    if isinstance(cancel, threading.Event):
        return cancel.is_set()
    return bool(cancel())


def generate_token_ids(
    model: GPTModel,
    prompt_ids: list[int],
    settings: GenerationSettings,
    cancel: CancelCheck = None,
    on_step: StepHook | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token ids [num_samples] (on the model's device), one step each.

    `on_step(logits, history)` (opt-in: token-confidence records) sees each
    step's raw last-position logits and the tokens so far, before the draw.

    Stops after `max_new_tokens` steps or when `cancel` fires (checked before
    every step). Stopping on eos/stop strings is the caller's business, since
    it is per sample. Settings must already be validated.
    """
    config = model.config
    ctx = config.context_length
    keep = settings.context_keep or ctx
    device = model_device(model)
    generator = None
    if settings.seed is not None:
        generator = torch.Generator(device=device).manual_seed(settings.seed)
    # The embeddings' dtype is the activations' (a quantized head has no .weight).
    cache = KVCache(config, settings.num_samples, device, model.tok_emb.weight.dtype)
    window = torch.tensor(prompt_ids[-ctx:], dtype=torch.long, device=device)
    window = window.unsqueeze(0).expand(settings.num_samples, -1)

    def forward(ids: torch.Tensor) -> torch.Tensor:
        # Grad mode and train/eval are set per call, never across a yield: the
        # consumer's code runs between tokens, and may abandon the stream.
        was_training = model.training
        if was_training:
            model.eval()
        try:
            with torch.inference_mode():
                return model(ids, cache, last_only=True)[:, -1, :]
        finally:
            if was_training:
                model.train()

    if settings.max_new_tokens == 0 or _is_cancelled(cancel):
        return
    logits = forward(window)
    for step in range(settings.max_new_tokens):
        if on_step is not None:
            on_step(logits, window)
        next_ids = select_next(logits, settings, generator, window)
        yield next_ids
        if step + 1 == settings.max_new_tokens or _is_cancelled(cancel):
            return
        new = next_ids.unsqueeze(1)
        window = torch.cat([window, new], dim=1)[:, -ctx:]
        if cache.length < ctx:
            logits = forward(new)
        else:
            # Window full: positions are absolute, so every cached key is
            # stale once the window moves; rebuild the cache from the tail.
            cache.reset()
            logits = forward(window[:, -keep:])
