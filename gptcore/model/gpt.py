"""GPTModel: the GPT-2 architecture of the book's chapter 4, made fast.

Parameters are created in the book's order (token embedding, position
embedding, then per block query/key/value/output projections and the two
feed-forward layers, then the final norm and the output head) with PyTorch's
default initialisation, so `torch.manual_seed(123)` right before construction
gives the book's initial weights (`init = "book"`). `init = "gpt2"` then redraws
them with GPT-2's recipe (`init_gpt2`). Attention runs through PyTorch's fused
`scaled_dot_product_attention`; LayerNorm and tanh-GELU are the native modules.
`train.dropout_masks = "fast"` draws dropout masks faster under CPU autocast (`dropout.py`).
A `KVCache` lets generation feed one new token at a time.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from gptcore.model.dropout import Dropout, causal_attention_with_dropout, cpu_autocast_on
from gptcore.settings.model import GPTConfig


class KVCache:
    """Per-layer key/value buffers for incremental decoding.

    Buffers are allocated once for the whole context window; `length` is the
    number of positions already filled. The caller must keep
    `length + new tokens <= context_length` (generation slides the window).
    """

    def __init__(
        self,
        config: GPTConfig,
        batch_size: int,
        device: torch.device | str,
        dtype: torch.dtype = torch.float32,
    ) -> None:
        shape = (batch_size, config.n_heads, config.context_length, config.head_dim)
        self.keys = [torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)]
        self.values = [
            torch.empty(shape, device=device, dtype=dtype) for _ in range(config.n_layers)
        ]
        self.capacity = config.context_length
        self.length = 0

    def reset(self) -> None:
        self.length = 0


class MultiHeadAttention(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.emb_dim
        self.n_heads = config.n_heads
        self.head_dim = config.head_dim
        # Separate q/k/v projections, created in this order, as in the book.
        self.W_query = nn.Linear(d, d, bias=config.qkv_bias)
        self.W_key = nn.Linear(d, d, bias=config.qkv_bias)
        self.W_value = nn.Linear(d, d, bias=config.qkv_bias)
        self.out_proj = nn.Linear(d, d)
        self.dropout_p = config.drop_rate

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        b, t, _ = x.shape
        return x.view(b, t, self.n_heads, self.head_dim).transpose(1, 2)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = (
            self._heads(self.W_query(x)),
            self._heads(self.W_key(x)),
            self._heads(self.W_value(x)),
        )
        dropout = self.dropout_p if self.training else 0.0
        if cache is None and dropout > 0 and cpu_autocast_on(x):
            # SDPA's CPU path with dropout, written out: the same masks, fewer passes.
            out = causal_attention_with_dropout(q, k, v, dropout)
        elif cache is None:
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        else:
            start, end = cache.length, cache.length + t
            cache.keys[layer][:, :, start:end] = k
            cache.values[layer][:, :, start:end] = v
            k_all, v_all = cache.keys[layer][:, :, :end], cache.values[layer][:, :, :end]
            if t == 1:  # one new token attends to everything before it: no mask
                mask = None
            else:  # new token i (absolute start+i) sees keys 0..start+i
                rows = torch.arange(start, end, device=x.device).unsqueeze(1)
                mask = torch.arange(end, device=x.device).unsqueeze(0) <= rows
            out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, dropout_p=dropout)
        return self.out_proj(out.transpose(1, 2).reshape(b, t, d))


class FeedForward(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        d = config.emb_dim
        self.layers = nn.Sequential(
            nn.Linear(d, 4 * d), nn.GELU(approximate="tanh"), nn.Linear(4 * d, d)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class TransformerBlock(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.att = MultiHeadAttention(config)
        self.ff = FeedForward(config)
        self.norm1 = nn.LayerNorm(config.emb_dim, eps=1e-5)
        self.norm2 = nn.LayerNorm(config.emb_dim, eps=1e-5)
        self.drop_shortcut = Dropout(config.drop_rate)

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, layer: int = 0
    ) -> torch.Tensor:
        x = x + self.drop_shortcut(self.att(self.norm1(x), cache, layer))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        # padded_vocab_size is vocab_size unless the config pads it (vocab_multiple).
        self.tok_emb = nn.Embedding(config.padded_vocab_size, config.emb_dim)
        self.pos_emb = nn.Embedding(config.context_length, config.emb_dim)
        self.drop_emb = Dropout(config.drop_rate)
        self.trf_blocks = nn.ModuleList(TransformerBlock(config) for _ in range(config.n_layers))
        self.final_norm = nn.LayerNorm(config.emb_dim, eps=1e-5)
        self.out_head = nn.Linear(config.emb_dim, config.padded_vocab_size, bias=False)
        if config.tie_embeddings:
            # Created (and its RNG draws consumed) as in the book, then shared.
            self.out_head.weight = self.tok_emb.weight
        if config.init == "gpt2":  # after construction, so "book" draws exactly as before
            init_gpt2(self)

    def forward(
        self, idx: torch.Tensor, cache: KVCache | None = None, last_only: bool = False
    ) -> torch.Tensor:
        """Logits [batch, tokens, vocab_size] for token ids [batch, tokens].

        With a cache, `idx` holds only the new tokens; their positions continue
        from `cache.length`, and the cache advances past them. `last_only`
        returns just the last position's logits [batch, 1, vocab] (generation
        needs no others, and the output head is the costliest layer per token).
        """
        t = idx.shape[1]
        start = cache.length if cache is not None else 0
        if start + t > self.config.context_length:
            raise ValueError(
                f"{start + t} positions exceed the context length {self.config.context_length}"
            )
        pos = torch.arange(start, start + t, device=idx.device)
        x = self.drop_emb(self.tok_emb(idx) + self.pos_emb(pos))
        for i, block in enumerate(self.trf_blocks):
            x = block(x, cache, i)
        if cache is not None:
            cache.length += t
        if last_only:
            x = x[:, -1:]
        logits = self.out_head(self.final_norm(x))
        if self.config.padded_vocab_size != self.config.vocab_size:
            # Padding rows are no tokens: the loss, sampler and inspector never see them.
            logits = logits[..., : self.config.vocab_size]
        return logits

    def num_parameters(self) -> int:
        """Parameter count with tied tensors counted once."""
        return sum(p.numel() for p in self.parameters())


def init_gpt2(model: GPTModel) -> None:
    """GPT-2's initialisation (as nanoGPT and llm.c do it), in place.

    Linear and embedding weights ~ normal(0, 0.02), biases 0, LayerNorm scale 1 and
    shift 0; the two projections that write into the residual stream (attention's
    out_proj, the feed-forward's second Linear) use 0.02 / sqrt(2 * n_layers) so the
    stream's variance stays put as layers add up. A tied head shares the embedding.
    """
    residual_std = 0.02 / math.sqrt(2 * model.config.n_layers)
    residual = set()
    for block in model.trf_blocks:
        residual.update((block.att.out_proj, block.ff.layers[2]))
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                std = residual_std if module in residual else 0.02
                if not (module is model.out_head and model.config.tie_embeddings):
                    module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 0.02)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()


def model_device(model: GPTModel) -> torch.device:
    """The device a model's weights are on."""
    return model.tok_emb.weight.device
