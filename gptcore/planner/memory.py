"""A memory model of one training step (and of generation) for any GPT config.

The peak of a step is found by walking the step the way autograd runs it and
adding up, at each point, the tensors alive there:

- the end of the forward pass: every activation the backward pass will need, plus
  the logits, their fp32 copy and their log-softmax (the largest single tensors at
  small scale: tokens x 50,257);
- the start of the backward pass: the log-softmax, its gradient and the gradient
  of the logits (3 x tokens x vocab x 4 bytes) on top of every activation;
- layer by layer back down: each layer frees its activations and adds its weight
  gradients and short-lived gradients of its own intermediates;
- the optimizer step: gradients and AdamW's two moments (plus foreach's temporaries).

Steady state is modelled (the second and later steps): AdamW's state exists from
the first step on, and `zero_grad` frees the gradients before each step, so with
`grad_accum` > 1 the gradients of earlier micro-batches are alive in later ones.

The activations each op saves for the backward pass were counted with
torch.autograd.graph.saved_tensors_hooks on GPTModel (torch 2.13, CPU), per layer in
bytes per token x emb_dim:

    fused attention (SDPA flash)    fp32 64: input, norm, q, k, v, attention out,
                                    residual, norm, the 4x-wide hidden before and
                                    after GELU (16 floats); bf16 40 (the residual
                                    stream stays fp32 under autocast, the matmul
                                    inputs are bf16 casts)
    explicit attention (dropout on a CPU: SDPA's math path in fp32, the model's
    own `causal_attention_with_dropout` under bf16 autocast): the same plus the
    softmax, its dropout mask and the dropped weights, 3 x heads x context^2 values
    per sequence
    dropout masks                   a CPU's masks are in the activation dtype (a
                                    float per value); CUDA's are bytes

CUDA always runs fused attention (flash / memory-efficient kernels have dropout),
so it keeps no heads x context^2 tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

from gptcore.model.counts import block_parameters, parameter_count
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.util.fmt import format_bytes

FP32 = 4
INDEX = 8  # int64 token ids
ADAMW_IMPLS = ("fused", "foreach", "single")  # single: torch's per-tensor loop


@dataclass(frozen=True)
class StepShape:
    """What a training step's memory depends on (one process of a run).

    `precision`: "fp32", "bf16" or "fp16" (the autocast dtype; weights stay fp32).
    `adamw`: "fused", "foreach" or "single" (see `adamw_impl`).
    """

    model: GPTConfig
    batch: int
    context: int
    precision: str = "fp32"
    grad_accum: int = 1
    adamw: str = "fused"
    world: int = 1
    device_type: str = "cpu"  # "cpu" or "cuda" (attention path, mask bytes)
    byte_masks: bool = False  # CPU lane masks (train.dropout_masks = "fast" under bf16)

    @property
    def tokens(self) -> int:
        return self.batch * self.context

    @property
    def act_bytes(self) -> int:
        """Bytes per value of what autocast computes in (matmul outputs)."""
        return FP32 if self.precision == "fp32" else 2

    @property
    def explicit_attention(self) -> bool:
        """Whether attention materialises heads x context^2 (dropout on a CPU)."""
        return self.device_type == "cpu" and self.model.drop_rate > 0


@dataclass(frozen=True)
class MemoryEstimate:
    """The peak of a step and what is alive at that moment, by named part (bytes)."""

    parts: dict[str, int]
    phase: str  # where in the step the peak falls
    shape: StepShape | None = None

    @property
    def peak(self) -> int:
        return sum(self.parts.values())

    def largest(self, n: int = 3) -> list[tuple[str, int]]:
        return sorted(self.parts.items(), key=lambda kv: -kv[1])[:n]

    def summary(self) -> str:
        """One line naming the largest parts: "logits 1.6 GB of 5.1 GB (weights ...)"."""
        (name, size), *rest = self.largest(3)
        others = ", ".join(f"{n} {format_bytes(b)}" for n, b in rest if b > 0)
        tail = f" ({others})" if others else ""
        return f"{name} {format_bytes(size)} of {format_bytes(self.peak)}{tail}"


# ---------------------------------------------------------------- weights


def matmul_weights(model: GPTConfig) -> int:
    """Values autocast casts each forward: the Linear layers' weights and biases."""
    d = model.emb_dim
    per_block = block_parameters(model) - 2 * 2 * d  # everything but the norms
    return model.n_layers * per_block + model.padded_vocab_size * d


# ---------------------------------------------------------------- activations


def layer_activation_bytes(shape: StepShape) -> int:
    """What one transformer block saves for its backward pass (see the module doc)."""
    m, a = shape.model, shape.act_bytes
    d, t = m.emb_dim, shape.tokens
    per_token_d = 64 if a == FP32 else 40  # fused attention, no dropout
    # Small per-token tensors: LayerNorm mean/rstd (2 norms) and attention's logsumexp.
    per_token = 2 * 2 * FP32 + m.n_heads * FP32
    total = t * d * per_token_d + t * per_token
    if m.drop_rate > 0:
        mask = 1 if shape.device_type == "cuda" or shape.byte_masks else a
        total += 2 * t * d * mask  # the two residual dropouts
    if shape.explicit_attention:
        attn = shape.batch * m.n_heads * shape.context**2
        total += attn * 3 * a  # softmax out, its dropout mask, the dropped weights
    return total


def outside_activation_bytes(shape: StepShape) -> int:
    """Saved outside the blocks (logits aside): token ids and targets, the dropped
    embedding's mask, the final norm's input and output."""
    m, a, t = shape.model, shape.act_bytes, shape.tokens
    d = m.emb_dim
    total = 2 * t * INDEX + t * d * FP32 + t * d * a + 2 * t * FP32
    if m.drop_rate > 0:
        total += t * d * (1 if shape.device_type == "cuda" else FP32)
    return total


def layer_backward_transient(shape: StepShape) -> int:
    """Gradients of a block's own intermediates, alive while its backward runs."""
    m, a, t = shape.model, shape.act_bytes, shape.tokens
    d = m.emb_dim
    total = 8 * t * d * a + 2 * t * d * FP32  # the 4x hidden's two gradients, the stream's
    if shape.explicit_attention:
        total += 2 * shape.batch * m.n_heads * shape.context**2 * a
    return total


# ---------------------------------------------------------------- the step, walked


def adamw_impl(setting: str, device_type: str) -> str:
    """The AdamW update a TrainConfig.adamw setting runs (gptcore.hardware.perf.make_adamw)."""
    if setting in ("auto", "fused"):
        return "fused"
    if setting == "foreach" or device_type == "cuda":  # torch's default is foreach on CUDA
        return "foreach"
    return "single"


def training_memory(shape: StepShape) -> MemoryEstimate:
    """The peak of a steady-state training step and its parts (see the module doc)."""
    m = shape.model
    d, vocab, t = m.emb_dim, m.vocab_size, shape.tokens
    params = parameter_count(m)
    weights = params * FP32
    optimizer = 2 * weights
    copies = matmul_weights(m) * shape.act_bytes if shape.precision != "fp32" else 0
    base = {"weights": weights, "optimizer": optimizer}
    if copies:
        base["autocast copies"] = copies
    if shape.world > 1:
        base["DDP buckets"] = weights
    base["data batch"] = 2 * t * INDEX
    earlier_grads = weights if shape.grad_accum > 1 else 0
    layer_act = layer_activation_bytes(shape)
    outside = outside_activation_bytes(shape)
    all_act = m.n_layers * layer_act + outside
    head_grad = m.padded_vocab_size * d * FP32

    phases: list[tuple[str, dict[str, int]]] = []

    def at(phase: str, **alive: int) -> None:
        parts = {**base, **{k.replace("_", " "): v for k, v in alive.items() if v}}
        phases.append((phase, parts))

    fwd_logits = (shape.act_bytes + FP32 + (FP32 if shape.precision != "fp32" else 0)) * t * vocab
    at("forward end", gradients=earlier_grads, activations=all_act, logits=fwd_logits)
    at("backward start", gradients=earlier_grads, activations=all_act, logits=3 * FP32 * t * vocab)
    grads = max(earlier_grads, head_grad)
    head_tmp = m.padded_vocab_size * d * shape.act_bytes if shape.precision != "fp32" else 0
    at(
        "output head backward",
        gradients=grads,
        activations=all_act,
        logits=shape.act_bytes * t * vocab,
        backward_temporaries=head_tmp,
    )
    layer_grad = block_parameters(m) * FP32
    for i in range(m.n_layers):
        remaining = (m.n_layers - i) * layer_act + outside
        grads = max(earlier_grads, head_grad + (i + 1) * layer_grad)
        transient = layer_backward_transient(shape) + layer_grad * (shape.grad_accum > 1)
        at("layer backward", gradients=grads, activations=remaining, backward_temporaries=transient)
    # The embeddings' gradients: a tied (or accumulated) one is added to an existing
    # gradient from a fresh vocab x emb tensor.
    embed_tmp = head_grad if (m.tie_embeddings or shape.grad_accum > 1) else 0
    at("embedding backward", gradients=weights, activations=outside, backward_temporaries=embed_tmp)
    opt_tmp = {"fused": 0, "foreach": weights, "single": head_grad}[shape.adamw]
    at("optimizer step", gradients=weights, optimizer_temporaries=opt_tmp)

    phase, parts = max(phases, key=lambda p: sum(p[1].values()))
    return MemoryEstimate(parts=parts, phase=phase, shape=shape)


def step_shape(
    model: GPTConfig, train: TrainConfig, device_kind: str, precision: str, world: int = 1
) -> StepShape:
    """The memory model's view of one process's step of this run (batch "auto" as 1)."""
    batch = train.batch_size if isinstance(train.batch_size, int) else 1
    return StepShape(
        model,
        batch=batch,
        context=train.max_length or model.context_length,
        precision=precision,
        grad_accum=train.grad_accum,
        adamw=adamw_impl(train.adamw, device_kind),
        world=world,
        device_type="cpu" if device_kind == "cpu" else "cuda",
        byte_masks=train.dropout_masks == "fast" and precision == "bf16",
    )


def training_peak_bytes(
    model: GPTConfig, train: TrainConfig, device_kind: str, precision: str, world: int = 1
) -> int:
    """The predicted peak of one process's training step of this run, in bytes:
    `device_kind` "cpu" or "cuda" (a torch.device's .type), `precision` as
    resolve_precision gives it ("fp32", "bf16", "fp16"). Batch "auto" counts as 1."""
    return training_memory(step_shape(model, train, device_kind, precision, world)).peak


# ---------------------------------------------------------------- generation


def generation_memory(
    model: GPTConfig, batch: int = 1, context: int | None = None, weight_bytes: float = FP32
) -> MemoryEstimate:
    """Weights + the KV cache for `context` positions + the prompt pass's largest
    temporaries (generation keeps only the last position's logits)."""
    context = context or model.context_length
    d = model.emb_dim
    a = 2 if weight_bytes < FP32 else FP32
    kv = 2 * model.n_layers * batch * context * d * a
    prefill = batch * context * d * 4 * a * 2 + batch * model.vocab_size * FP32
    parts = {
        "weights": int(parameter_count(model) * weight_bytes),
        "KV cache": kv,
        "prompt pass": prefill,
    }
    return MemoryEstimate(parts=parts, phase="generation")
