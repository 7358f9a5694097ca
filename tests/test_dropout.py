"""Lane-mask dropout (gptcore.dropout): opt-in (train.dropout_masks = "fast"), used
only under CPU autocast, right in distribution and gradient, and never in the modes
that follow the book's run."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from gptcore.model import dropout as lanes
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig


def bf16_autocast() -> torch.autocast:
    return torch.autocast("cpu", dtype=torch.bfloat16)


def test_a_lane_mask_keeps_each_element_with_one_minus_p() -> None:
    torch.manual_seed(0)
    for p in (0.1, 0.5, 0.9):
        keep = lanes.keep_mask((1000, 1000), p, torch.device("cpu"))
        assert keep.dtype == torch.bool and keep.shape == (1000, 1000)
        # 1M Bernoulli draws: the standard error is at most 0.0005.
        assert abs(keep.float().mean().item() - (1 - p)) < 0.003
    odd = lanes.keep_mask((3, 5, 7), 0.1, torch.device("cpu"))  # not a multiple of 4 lanes
    assert odd.shape == (3, 5, 7)


def test_lane_dropout_scales_what_it_keeps_and_routes_gradients_through_the_mask() -> None:
    torch.manual_seed(1)
    x = torch.full((200_000,), 2.0, requires_grad=True)
    out = lanes.lane_dropout(x, 0.1)
    kept = out != 0
    scale = 65536 / (65536 - round(0.1 * 65536))
    assert torch.equal(out[kept], torch.full_like(out[kept], 2.0 * scale))
    assert abs(out.mean().item() - 2.0) < 0.01  # unbiased: the scale is 1 / keep probability
    out.sum().backward()
    assert torch.equal(x.grad, kept.float() * scale)


def test_extreme_probabilities_fall_back_to_torch_dropout() -> None:
    x = torch.ones(1000)
    assert torch.equal(lanes.lane_dropout(x, 1.0), torch.zeros(1000))
    torch.manual_seed(2)
    expected = F.dropout(x, 1e-6, True)
    torch.manual_seed(2)
    assert torch.equal(lanes.lane_dropout(x, 1e-6), expected)


def test_without_the_opt_in_dropout_draws_exactly_what_torch_draws() -> None:
    """The default and fp32 modes follow the book's seeded run: torch's own masks."""
    x = torch.randn(4, 64, 32)
    layer = lanes.Dropout(0.1).train()
    for context in (lanes.fast_masks, bf16_autocast):  # fp32 opted in; bf16 not
        with context():
            torch.manual_seed(3)
            ours = layer(x)
        torch.manual_seed(3)
        with context():
            assert torch.equal(ours, F.dropout(x, 0.1, True))
    assert torch.equal(layer.eval()(x), x)


def test_lane_masks_need_both_the_opt_in_and_cpu_autocast() -> None:
    x = torch.randn(4, 64, 32)
    assert not lanes.lane_masks_apply(x)
    with bf16_autocast():
        assert not lanes.lane_masks_apply(x)  # the default: torch's draws, as the book's
    with lanes.fast_masks():
        assert not lanes.lane_masks_apply(x)  # fp32
        with bf16_autocast():
            assert lanes.lane_masks_apply(x)
            with lanes.fast_masks(False):
                assert not lanes.lane_masks_apply(x)
            assert lanes.lane_masks_apply(x)
    with bf16_autocast():
        assert not lanes.lane_masks_apply(x)


def test_the_opt_in_is_the_calling_threads_only() -> None:
    import threading

    x = torch.randn(8)
    seen = []
    worker = threading.Thread(target=lambda: seen.append(lanes.lane_masks_apply(x)))
    with lanes.fast_masks(), bf16_autocast():
        worker.start()  # autocast is per thread too: the worker sees neither
        worker.join()
        assert lanes.lane_masks_apply(x)
    assert seen == [False]


def test_fast_masks_under_cpu_autocast_repeat_under_a_seed() -> None:
    x = torch.randn(4, 64, 32)
    layer = lanes.Dropout(0.1).train()
    with lanes.fast_masks(), bf16_autocast():
        torch.manual_seed(4)
        first = layer(x)
        torch.manual_seed(4)
        second = layer(x)
        torch.manual_seed(4)
        lane = lanes.lane_dropout(x, 0.1)
    torch.manual_seed(4)
    assert torch.equal(first, second) and torch.equal(first, lane)
    assert not torch.equal(first, F.dropout(x, 0.1, True))


def test_written_out_attention_is_causal_sdpa_when_every_weight_is_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    torch.manual_seed(5)
    q, k, v = (torch.randn(2, 3, 16, 8) for _ in range(3))
    monkeypatch.setattr(
        lanes, "keep_mask", lambda shape, p, device: torch.ones(shape, dtype=torch.bool)
    )
    scale = 65536 / (65536 - round(0.1 * 65536))
    with lanes.fast_masks(), bf16_autocast():
        ours = lanes.causal_attention_with_dropout(q, k, v, 0.1)
    expected = F.scaled_dot_product_attention(q, k, v, is_causal=True) * scale
    assert torch.allclose(ours.float(), expected, atol=0.03)  # bf16 rounding
    assert not torch.allclose(ours.float(), expected / scale, atol=0.03)


def test_written_out_attention_draws_the_masks_sdpa_draws() -> None:
    """Under CPU autocast without the opt-in, the model writes attention out: it must
    make the same draws as SDPA's math path, so the default mode follows the book."""
    torch.manual_seed(9)
    q, k, v = (torch.randn(2, 3, 32, 8) for _ in range(3))
    torch.manual_seed(10)
    ours = lanes.causal_attention_with_dropout(q, k, v, 0.1)
    after_ours = torch.randn(3)
    torch.manual_seed(10)
    expected = F.scaled_dot_product_attention(q, k, v, dropout_p=0.1, is_causal=True)
    assert torch.allclose(ours, expected, atol=1e-5)
    assert torch.equal(after_ours, torch.randn(3))  # the stream goes on in step


def test_written_out_attention_never_looks_ahead() -> None:
    torch.manual_seed(6)
    q, k, v = (torch.randn(1, 2, 12, 8) for _ in range(3))
    k2, v2 = k.clone(), v.clone()
    k2[..., 6:, :] += 5.0
    v2[..., 6:, :] -= 3.0
    torch.manual_seed(7)
    first = lanes.causal_attention_with_dropout(q, k, v, 0.2)
    torch.manual_seed(7)
    second = lanes.causal_attention_with_dropout(q, k2, v2, 0.2)
    assert torch.allclose(first[..., :6, :], second[..., :6, :])
    assert not torch.allclose(first[..., 6:, :], second[..., 6:, :])


def test_the_model_trains_through_lane_masks_only_when_asked_under_cpu_autocast(
    lane_mask_shapes: list[tuple[int, ...]],
) -> None:
    config = GPTConfig(
        vocab_size=64, context_length=16, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.1
    )
    torch.manual_seed(8)
    model = GPTModel(config).train()
    idx = torch.randint(0, 64, (2, 16))
    calls = lane_mask_shapes
    model(idx).sum().backward()
    with bf16_autocast():
        model(idx).float().sum().backward()
    with lanes.fast_masks():
        model(idx).sum().backward()
    assert calls == []  # torch's dropout and SDPA: the draws the book's run makes
    with lanes.fast_masks(), bf16_autocast():
        logits = model(idx)
    logits.float().sum().backward()
    # Embedding dropout, then per block attention weights and two shortcut dropouts.
    assert calls[0] == (2, 16, 32)
    assert calls.count((2, 4, 16, 16)) == config.n_layers
    assert len(calls) == 1 + 3 * config.n_layers
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
