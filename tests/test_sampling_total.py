"""The sampler chain is total: every accepted setting gives a distribution, and
top-p keeps exactly the tokens exact (float64) arithmetic keeps."""

from __future__ import annotations

import math

import numpy as np
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from gptcore.sampling.chain import chain_stages, filter_logits, sampling_distribution, select_next
from gptcore.settings.sampling import GenerationSettings

VOCAB = 12


def _reference_kept(row: np.ndarray, top_p: float) -> tuple[int, float]:
    """How many tokens top-p keeps on one float32 row, in float64 with correctly
    rounded sums, and the smallest distance between p and a running mass (the margin
    inside which float64 itself could not tell)."""
    x = row.astype(np.float64)
    weights = np.exp(x - x.max())
    total = math.fsum(weights)
    probs = sorted((w / total for w in weights), reverse=True)
    kept, margin = 0, math.inf
    for i in range(len(probs)):
        mass_before = math.fsum(probs[:i])
        margin = min(margin, abs(mass_before - top_p))
        if i == 0 or mass_before < top_p:
            kept += 1
    return kept, margin


def _rows(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(2, 400))
    kind = draw(st.sampled_from(["flat", "peaked"]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "flat":  # near-flat: the running sum of many equal small terms
        row = rng.uniform(0, draw(st.sampled_from([1e-6, 1e-3, 0.1])), n)
    else:  # one or a few tokens take most of the mass
        row = rng.normal(0, 1, n)
        row[: draw(st.integers(1, 3))] += draw(st.floats(3, 30))
    return row.astype(np.float32)


def _running_mass(row: np.ndarray, i: int) -> float:
    x = row.astype(np.float64)
    weights = np.exp(x - x.max())
    total = math.fsum(weights)
    return math.fsum(sorted((w / total for w in weights), reverse=True)[:i])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_top_p_keeps_exactly_what_float64_keeps(data: st.DataObject) -> None:
    row = data.draw(st.composite(lambda draw: _rows(draw))())
    if data.draw(st.booleans()):
        top_p = data.draw(st.floats(1e-9, 1.0, exclude_max=True))
    else:  # just above or below a running mass: where float32 sums decide wrongly
        mass = _running_mass(row, data.draw(st.integers(1, len(row) - 1)))
        top_p = mass + data.draw(st.sampled_from([-1, 1])) * data.draw(st.floats(1e-10, 1e-6))
        assume(0 < top_p < 1)
    expected, margin = _reference_kept(row, top_p)
    assume(margin > 1e-12)  # inside this even float64 rounding decides
    kept = torch.isfinite(filter_logits(torch.from_numpy(row)[None], top_p=top_p)[0])
    assert int(kept.sum()) == expected
    values = torch.from_numpy(row)
    assert values[kept].min() >= values[~kept].max() if (~kept).any() else True


def test_top_p_on_a_flat_row_keeps_the_tokens_float32_sums_dropped() -> None:
    # 10,000 equal tokens: p = 0.5 keeps exactly 5,000 (float32's running sum drifts).
    logits = torch.zeros(1, 10_000)
    kept = torch.isfinite(filter_logits(logits, top_p=0.5000001)[0])
    assert int(kept.sum()) == 5001
    kept = torch.isfinite(filter_logits(logits, top_p=0.4999999)[0])
    assert int(kept.sum()) == 5000


def test_a_top_p_below_float32s_range_keeps_the_top_token() -> None:
    logits = torch.tensor([[0.5, 3.0, -1.0, 2.0]])
    settings = GenerationSettings(temperature=1.0, top_p=1e-300, eos_id=None)
    probs = sampling_distribution(logits, settings)
    assert probs.tolist() == [[0.0, 1.0, 0.0, 0.0]]
    assert select_next(logits, settings).tolist() == [1]


def test_a_repetition_penalty_below_float32s_range_favours_the_seen_positive_tokens() -> None:
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0, 5.0]])
    history = torch.tensor([[0, 2, 3]])  # token 0 positive, 2 zero, 3 negative
    for penalty in (1e-320, 5e-324, 1e-30):
        settings = GenerationSettings(temperature=1.0, repetition_penalty=penalty, eos_id=None)
        probs = sampling_distribution(logits, settings, history)
        # 1.0 / 1e-320 overflows: token 0 wins outright, the limit of the softmax.
        assert probs.tolist() == [[1.0, 0.0, 0.0, 0.0, 0.0]], penalty
        assert select_next(logits, settings, history=history).tolist() == [0]


def test_every_token_filtered_falls_back_to_greedy_without_a_banned_token() -> None:
    logits = torch.tensor([[9.0, 1.0, 3.0, 2.0, 0.5, 4.0]])
    history = torch.tensor([[1, 2, 3, 4, 5]])  # no-repeat-ngram 1 bans all of them
    for temperature in (0.0, 1.0):
        settings = GenerationSettings(
            temperature=temperature, no_repeat_ngram=1, ban=(0,), eos_id=None
        )
        stages = chain_stages(logits, history, settings)
        assert stages[-1][0] == "fallback"
        # Token 0 is the most likely but banned: the fallback is token 5 (logit 4).
        assert sampling_distribution(logits, settings, history).tolist() == [
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        ]
        assert select_next(logits, settings, history=history).tolist() == [5]


def test_no_fallback_stage_when_a_token_is_left() -> None:
    logits = torch.tensor([[9.0, 1.0, 3.0]])
    settings = GenerationSettings(temperature=1.0, no_repeat_ngram=1, eos_id=None)
    names = [name for name, _ in chain_stages(logits, torch.tensor([[0, 1]]), settings)]
    assert "fallback" not in names


_positive = st.one_of(
    st.sampled_from([5e-324, 1e-320, 1e-300, 1e-30, 1e-8, 1.0, 100.0]),
    st.floats(1e-12, 100.0),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    logits=st.lists(st.floats(-1e4, 1e4, width=32), min_size=VOCAB, max_size=VOCAB),
    history=st.lists(st.integers(0, VOCAB - 1), min_size=0, max_size=30),
    temperature=st.one_of(st.just(0.0), st.sampled_from([1e-30, 1e-5]), st.floats(1e-3, 50)),
    top_k=st.none() | st.integers(1, VOCAB),
    top_p=st.none() | _positive.filter(lambda p: p <= 1),
    min_p=st.none() | st.floats(0, 1),
    repetition_penalty=st.none() | _positive,
    frequency_penalty=st.none() | st.floats(-2, 2),
    no_repeat_ngram=st.none() | st.integers(1, 4),
    ban=st.sets(st.integers(0, VOCAB - 1), max_size=VOCAB - 1),
)
def test_every_accepted_setting_gives_a_distribution(
    logits: list[float],
    history: list[int],
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    min_p: float | None,
    repetition_penalty: float | None,
    frequency_penalty: float | None,
    no_repeat_ngram: int | None,
    ban: set[int],
) -> None:
    settings = GenerationSettings(
        temperature=temperature,
        top_k=top_k,
        top_p=top_p,
        min_p=min_p,
        repetition_penalty=repetition_penalty,
        frequency_penalty=frequency_penalty,
        no_repeat_ngram=no_repeat_ngram,
        ban=tuple(sorted(ban)),
        eos_id=None,
    ).validated(VOCAB, None)
    row = torch.tensor([logits])
    past = torch.tensor([history], dtype=torch.long).reshape(1, -1)
    probs = sampling_distribution(row, settings, past)
    assert torch.isfinite(probs).all() and (probs >= 0).all()
    assert abs(float(probs.sum()) - 1.0) < 1e-5
    assert all(float(probs[0, t]) == 0.0 for t in ban)
    token = int(select_next(row, settings, torch.Generator().manual_seed(0), past)[0])
    assert token not in ban and float(probs[0, token]) > 0
