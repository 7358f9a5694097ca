import torch

from gptcore.config import get_preset
from gptcore.perf import flops_per_token, matmul_parameters, mfu, peak_flops
from gptcore.summary import summarize_config


def test_matmul_parameters_are_all_but_embeddings_and_norms():
    for name in ("book-124m", "gpt2-small", "tiny"):
        config = get_preset(name)
        s = summarize_config(config)
        head = config.emb_dim * config.vocab_size
        expected = s.total - s.by_component["embeddings"] - s.by_component["norms"]
        if s.tied:
            expected += head  # the tied head still multiplies
        assert matmul_parameters(config) == expected


def test_flops_per_token_formula():
    c = get_preset("gpt2-small")
    n = matmul_parameters(c)
    assert flops_per_token(c, 1024) == 6 * n + 12 * 12 * 12 * 64 * 1024


def test_mfu_needs_a_known_peak():
    c = get_preset("gpt2-small")
    assert peak_flops(torch.device("cpu"), "fp32") is None
    assert mfu(1000.0, c, 1024, None) is None
    value = mfu(1e5, c, 1024, 989e12)
    assert value is not None and abs(value - 1e5 * flops_per_token(c, 1024) / 989e12) < 1e-12
