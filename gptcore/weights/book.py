"""The book's `model_and_optimizer.pth`: exporting a checkpoint to it and reading
one back (weights and AdamW state, with the book's parameter names), loaded with
torch's weights-only unpickler and checked against the model before use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import torch

from gptcore.errors import CheckpointError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import Checkpoint, load_checkpoint, safe_torch_load
from gptcore.settings.model import GPTConfig
from gptcore.util.fsutil import atomic_open
from gptcore.weights.modelspec import checkpoint_path


def _to_book_name(name: str) -> str:
    if "norm" in name and name.endswith(".weight"):
        return name[: -len("weight")] + "scale"
    if "norm" in name and name.endswith(".bias"):
        return name[: -len("bias")] + "shift"
    return name


def _from_book_name(name: str) -> str:
    if "norm" in name and name.endswith(".scale"):
        return name[: -len("scale")] + "weight"
    if "norm" in name and name.endswith(".shift"):
        return name[: -len("shift")] + "bias"
    return name


def export_book_pth(
    ckpt: str | Path | Checkpoint,
    out_path: str | Path,
    on_read: Callable[[], None] | None = None,
) -> Path:
    """Write {"model_state_dict", "optimizer_state_dict"} as the book saves it, with
    the book's names (LayerNorm scale/shift, att.mask buffers) so the book's
    GPTModel loads it with strict=True. `on_read()` is called once the checkpoint's
    files are read, before the (as long) write: a progress report's midpoint."""
    if not isinstance(ckpt, Checkpoint):
        ckpt = load_checkpoint(checkpoint_path(ckpt))
    config = ckpt.model_config
    state = {_to_book_name(k): v for k, v in ckpt.state_dict().items()}
    padded = config.padded_vocab_size != config.vocab_size
    for key in ("tok_emb.weight", "out_head.weight"):
        if padded or (config.tie_embeddings and key == "out_head.weight"):
            # The book's model has vocab_size rows; a tied head needs its own tensor.
            state[key] = state[key][: config.vocab_size].clone()
    # The book also saves each attention's causal mask (a persistent buffer).
    book_state = dict(state)
    n = config.context_length
    for i in range(config.n_layers):
        book_state[f"trf_blocks.{i}.att.mask"] = torch.triu(torch.ones(n, n), diagonal=1)
    payload: dict[str, Any] = {"model_state_dict": book_state}
    opt = ckpt.optimizer_state() if ckpt.has_optimizer else None
    if opt is not None and not config.tie_embeddings and not padded:  # shapes fit the book's
        payload["optimizer_state_dict"] = opt["optimizer"]
    if on_read is not None:
        on_read()
    out_path = Path(out_path)
    with atomic_open(out_path, "wb") as f:
        torch.save(payload, f)
    return out_path


def import_book_pth(
    pth_path: str | Path, model_config: GPTConfig
) -> tuple[GPTModel, dict[str, Any] | None]:
    """(model, optimizer_state_dict or None) from a book .pth (or a bare state dict).

    The optimizer state is checked against the model's parameters (see
    _check_book_optimizer) and refused when it does not fit them."""
    path = Path(pth_path)
    data = safe_torch_load(path)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} does not hold a state dict")
    state = data.get("model_state_dict", data)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path} has no model_state_dict of tensors")
    if not all(isinstance(k, str) for k in state):
        raise CheckpointError(f"{path} has a model_state_dict whose keys are not all names")
    ours = {_from_book_name(k): v for k, v in state.items() if not re.search(r"\.att\.mask$", k)}
    model = GPTModel(model_config)
    try:
        model.load_state_dict(ours, strict=True)
    except RuntimeError as exc:
        lines = str(exc).strip().splitlines()
        raise CheckpointError(
            f"{path} does not match the model configuration: {' '.join(lines[:3])}"
        ) from None
    opt = data.get("optimizer_state_dict")
    if opt is None:
        return model, None
    _check_book_optimizer(opt, model, path)
    return model, opt


ADAMW_GROUP_KEYS = ("lr", "betas", "eps", "weight_decay")


def _check_book_optimizer(opt: Any, model: GPTModel, path: Path) -> None:
    """Refuse an optimizer_state_dict that does not fit `model` as an AdamW state.

    torch's Optimizer.load_state_dict pairs the saved groups' parameter ids, in
    order, with the optimizer's parameters and copies each id's state unchanged.
    The book's model and ours create their parameters in the same order, so the
    counts must agree and every state tensor must have its parameter's shape."""

    def refuse(why: str) -> NoReturn:
        raise CheckpointError(f"the optimizer_state_dict in {path} does not fit the model: {why}")

    if not isinstance(opt, dict):
        refuse("it is not a dict")
    states, groups = opt.get("state"), opt.get("param_groups")
    if not isinstance(states, dict) or not isinstance(groups, list):
        refuse("it needs a 'state' dict and a 'param_groups' list, as torch's state_dict() has")
    ids: list[Any] = []
    for group in groups:
        if not isinstance(group, dict) or not isinstance(group.get("params"), list):
            refuse("a parameter group has no 'params' list")
        if not all(isinstance(i, int) for i in group["params"]):
            refuse("a parameter group lists something other than parameter numbers")
        # AdamW's step reads these from each group: a state without them would import
        # and then fail on the first resumed step.
        missing = [k for k in ADAMW_GROUP_KEYS if k not in group]
        if missing:
            refuse(f"a parameter group has no {', '.join(missing)} (AdamW's settings)")
        ids.extend(group["params"])
    params = list(model.named_parameters())
    if len(ids) != len(params):
        refuse(f"its groups list {len(ids)} parameters, the model has {len(params)}")
    if len(set(ids)) != len(ids):
        refuse("a parameter is listed twice")
    if set(states) - set(ids):
        refuse("it holds state for parameters that are in no group")
    for pid, (name, param) in zip(ids, params, strict=True):
        state = states.get(pid)
        if state is None:
            continue  # a parameter that never had a gradient has no state yet
        book_name = _to_book_name(name)
        adam = ("exp_avg", "exp_avg_sq")
        if not isinstance(state, dict) or not all(
            isinstance(state.get(k), torch.Tensor) for k in adam
        ):
            refuse(f"{book_name} has no exp_avg / exp_avg_sq (AdamW state is needed)")
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape != param.shape:
                refuse(
                    f"{key} of {book_name} has shape {tuple(value.shape)}, "
                    f"the parameter {tuple(param.shape)}"
                )
