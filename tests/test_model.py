import sys

import pytest
import torch

from gptcore.errors import ConfigError
from gptcore.model.gpt import GPTModel, KVCache
from gptcore.model.tokenizer import decode
from gptcore.settings.model import PRESETS, GPTConfig, get_preset

from .conftest import SHARED

BOOK_GREEDY = [
    6109,
    3626,
    6100,
    345,
    34245,
    5139,
    2492,
    25405,
    17434,
    17853,
    5308,
    3398,
    13174,
    43071,
]


def greedy(model: GPTModel, ids: list[int], steps: int) -> list[int]:
    idx = torch.tensor([ids])
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(idx[:, -model.config.context_length :])[:, -1].argmax(-1, keepdim=True)
            idx = torch.cat([idx, nxt], dim=1)
    return idx[0].tolist()


@pytest.mark.slow
def test_seeded_book_model_reproduces_book_weights_and_greedy_text():
    torch.manual_seed(123)
    model = GPTModel(get_preset("book-124m")).eval()
    ids = greedy(model, [6109, 3626, 6100, 345], 10)
    assert ids == BOOK_GREEDY
    assert decode(ids) == "Every effort moves you rentingetic wasnم refres RexMeCHicular stren"

    bench = SHARED / "bench" / "book_style.py"
    if not bench.exists():
        pytest.skip(f"book-style reference not at {bench}")
    sys.path.insert(0, str(bench.parent))
    try:
        import book_style
    finally:
        sys.path.remove(str(bench.parent))
    torch.manual_seed(123)
    book = book_style.BookGPT(book_style.CFG_124M)
    ours = model.state_dict()
    for name, tensor in book.state_dict().items():
        if name.endswith(".mask"):
            continue
        mapped = name.replace(".scale", ".weight").replace(".shift", ".bias")
        mapped = mapped.replace(".ff.0.", ".ff.layers.0.").replace(".ff.2.", ".ff.layers.2.")
        assert torch.equal(ours[mapped], tensor), name


def test_book_parameter_counts_at_context_1024():
    cfg = GPTConfig(context_length=1024)
    with torch.device("meta"):
        model = GPTModel(cfg)
        tied = GPTModel(GPTConfig(context_length=1024, tie_embeddings=True))
    assert model.num_parameters() == 163_009_536
    assert tied.num_parameters() == 124_412_160


def test_tied_head_shares_the_embedding(tiny_config):
    cfg = GPTConfig(**{**tiny_config.to_dict(), "tie_embeddings": True})
    model = GPTModel(cfg)
    assert model.out_head.weight is model.tok_emb.weight


def test_kv_cache_matches_full_forward(tiny_config):
    torch.manual_seed(0)
    model = GPTModel(tiny_config).eval()
    idx = torch.randint(0, tiny_config.vocab_size, (2, 20))
    with torch.no_grad():
        full = model(idx)
        cache = KVCache(tiny_config, 2, "cpu")
        pieces = [model(idx[:, :7], cache), model(idx[:, 7:8], cache), model(idx[:, 8:20], cache)]
    assert cache.length == 20
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)


def test_too_many_positions_is_an_error(tiny_config):
    model = GPTModel(tiny_config)
    with pytest.raises(ValueError, match="exceed the context length"):
        model(torch.zeros(1, tiny_config.context_length + 1, dtype=torch.long))


def test_causal_mask_future_tokens_do_not_change_past_logits(tiny_config):
    torch.manual_seed(1)
    model = GPTModel(tiny_config).eval()
    a = torch.randint(0, 100, (1, 10))
    b = a.clone()
    b[0, 6:] = 7
    with torch.no_grad():
        torch.testing.assert_close(model(a)[:, :6], model(b)[:, :6])
        assert not torch.allclose(model(a)[:, 6:], model(b)[:, 6:])


def test_gradients_flow_to_every_parameter(tiny_config):
    model = GPTModel(tiny_config)
    logits = model(torch.randint(0, 100, (2, 8)))
    logits.float().logsumexp(-1).mean().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None]
    assert missing == []


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"emb_dim": 30, "n_heads": 4}, "emb_dim"),
        ({"n_layers": 0}, "n_layers"),
        ({"vocab_size": -1}, "vocab_size"),
        ({"drop_rate": 1.0}, "drop_rate"),
        ({"drop_rate": -0.1}, "drop_rate"),
        ({"context_length": 2.5}, "context_length"),
    ],
)
def test_invalid_model_config_names_the_field(changes, field):
    with pytest.raises(ConfigError, match=field):
        GPTConfig(**changes)


def test_presets_have_the_published_shapes():
    shapes = {name: (c.emb_dim, c.n_layers, c.n_heads) for name, c in PRESETS.items()}
    assert shapes["gpt2-small"] == (768, 12, 12)
    assert shapes["gpt2-medium"] == (1024, 24, 16)
    assert shapes["gpt2-large"] == (1280, 36, 20)
    assert shapes["gpt2-xl"] == (1600, 48, 25)
    book = get_preset("book-124m")
    assert (book.context_length, book.drop_rate, book.qkv_bias, book.tie_embeddings) == (
        256,
        0.1,
        False,
        False,
    )
    with pytest.raises(ConfigError, match="unknown model preset"):
        get_preset("gpt5")
