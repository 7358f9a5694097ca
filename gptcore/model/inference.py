"""The one text-generation engine: epoch samples, the CLI and the TUI chat.

Sampling follows the book's `generate`: top-k sets every logit below the k-th
largest to -inf, then logits are divided by the temperature and a token is drawn
with `torch.multinomial`; temperature 0 is greedy argmax. Nucleus (top-p)
filtering is applied after temperature scaling.

The whole chain (`apply_chain`, each stage off by default): logit bias and bans
-> repetition penalty -> frequency/presence penalties -> no-repeat-ngram ->
top-k -> temperature -> min-p -> top-p -> draw. The history stages read the
tokens in the context window (prompt included); the penalties only its last
`repetition_window` tokens.

Decoding uses the model's KV cache, so each new token costs one position rather
than a full recompute. When the context window is full, the window slides: the
last `context_keep` tokens (default: the whole context, which reproduces the
book's recompute-every-step output exactly) are re-fed to rebuild the cache.

Text is decoded incrementally with a UTF-8 decoder that holds back incomplete
multibyte sequences, because GPT-2's byte-level BPE can split one character
across tokens; a stream never shows a replacement character that the final
text lacks.
"""

from __future__ import annotations

import torch

from gptcore.errors import FieldError, GenerationError
from gptcore.model.gpt import GPTModel, model_device
from gptcore.settings.model import INFERENCE_PRECISIONS

PRECISIONS = INFERENCE_PRECISIONS


def check_precision(precision: str, device: torch.device) -> None:
    """Raise GenerationError (field "precision") unless `precision` can run on `device`."""
    if precision not in PRECISIONS:
        choices = ", ".join(PRECISIONS)
        raise GenerationError(
            FieldError("precision", f"unknown precision {precision!r}; choose one of: {choices}")
        )
    if precision == "fp16" and device.type not in ("cuda", "mps"):
        problem = f"fp16 inference needs a CUDA or MPS device, not {device.type}"
    elif precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        problem = "this CUDA device does not support bf16; use fp16 or fp32"
    elif precision == "int8" and device.type != "cpu":
        problem = f"int8 dynamic quantization runs on the CPU only, not {device.type}"
    else:
        return
    raise GenerationError(FieldError("precision", problem, unreachable=True))


def prepare_for_inference(model: GPTModel, precision: str = "fp32") -> GPTModel:
    """The model in eval mode at `precision`, for generation only.

    fp32/bf16/fp16 convert the model in place. int8 returns a copy whose Linear
    layers are dynamically quantized (int8 weights, activations quantized per
    call) with torch.ao.quantization.quantize_dynamic, which PyTorch has marked
    deprecated in favour of torchao; its warnings are silenced here.
    """
    device = model_device(model)
    check_precision(precision, device)
    model.eval()
    if precision == "fp32":
        return model.float()
    if precision == "bf16":
        return model.to(torch.bfloat16)
    if precision == "fp16":
        return model.half()
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return quantize_dynamic(model.float(), {torch.nn.Linear}, dtype=torch.qint8, inplace=False)
