"""A GPT's parameter count from its shape alone: no tensor is made, so an absurd shape
costs nothing to count (model.summary counts the real tensors; a test holds the two
equal for every preset)."""

from __future__ import annotations

from gptcore.settings.model import GPTConfig


def block_parameters(model: GPTConfig) -> int:
    """One transformer block: q/k/v (with their biases when qkv_bias), the output
    projection, the 4x-wide feed-forward and two LayerNorms."""
    d = model.emb_dim
    qkv = 3 * d * d + (3 * d if model.qkv_bias else 0)
    return qkv + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d) + 2 * 2 * d


def parameter_count(model: GPTConfig) -> int:
    """All parameters, a tied output head counted once (as GPTModel.num_parameters)."""
    d, vocab = model.emb_dim, model.padded_vocab_size
    head = 0 if model.tie_embeddings else vocab * d
    return (
        vocab * d
        + model.context_length * d
        + model.n_layers * block_parameters(model)
        + 2 * d
        + head
    )
