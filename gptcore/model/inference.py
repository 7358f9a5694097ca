"""A model ready to generate from: the precisions a device can run it in, and the
model cast (or, on a CPU, int8-quantized) for inference.
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
