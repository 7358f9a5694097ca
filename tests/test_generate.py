"""The generation engine: book-exact samplers, top-p, stops, UTF-8 streaming, KV-cache exactness."""

from __future__ import annotations

import math
import threading

import pytest
import torch

from gptcore.errors import GenerationError, GptTuiError
from gptcore.model.gpt import GPTModel
from gptcore.model.inference import prepare_for_inference
from gptcore.model.tokenizer import END_OF_TEXT_ID, decode, encode, get_tokenizer
from gptcore.sampling.chain import filter_logits, sampling_distribution, select_next
from gptcore.sampling.decode import generate_token_ids
from gptcore.sampling.stream import generate, sample_text, stream
from gptcore.settings.model import GPTConfig
from gptcore.settings.sampling import MAX_NEW_TOKENS_LIMIT, GenerationSettings

from .test_model import BOOK_GREEDY

TOY = [4.51, 0.89, -1.90, 6.75, 1.63, -1.62, -1.89, 6.28, 1.79]


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    """Tiny models gain nothing from threads, and on a busy machine every parallel
    op can wait a whole time slice for a descheduled worker."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make_model(config: GPTConfig, seed: int = 123) -> GPTModel:
    torch.manual_seed(seed)
    return GPTModel(config).eval()


@pytest.fixture
def tiny(tiny_config: GPTConfig) -> GPTModel:
    return make_model(tiny_config)


class Scripted(GPTModel):
    """A GPTModel whose every forward call predicts the next token of a script.

    Lets tests drive exact token sequences (split UTF-8 characters, stop
    strings, eos) through the real decoding loop and cache bookkeeping.
    """

    def __init__(self, config: GPTConfig, script: list[int]) -> None:
        super().__init__(config)
        self.script = script
        self.calls = 0

    def forward(self, idx: torch.Tensor, cache=None, last_only: bool = False) -> torch.Tensor:  # type: ignore[override]
        b, t = idx.shape
        logits = torch.zeros(b, t, self.config.vocab_size)
        logits[:, -1, self.script[min(self.calls, len(self.script) - 1)]] = 10.0
        self.calls += 1
        if cache is not None:
            cache.length += t
        return logits


def book_greedy(model: GPTModel, ids: list[int], new: int) -> list[int]:
    """The book's generate_text_simple: recompute the whole (cropped) context every step."""
    idx = torch.tensor([ids])
    ctx = model.config.context_length
    with torch.no_grad():
        for _ in range(new):
            logits = model(idx[:, -ctx:])[:, -1, :]
            idx = torch.cat([idx, logits.argmax(-1, keepdim=True)], dim=1)
    return idx[0, len(ids) :].tolist()


# ---------------------------------------------------------------- samplers


def distribution(logits: torch.Tensor, **settings: float) -> torch.Tensor:
    """What the sampler draws from under these settings (temperature 1 unless given)."""
    return sampling_distribution(logits, GenerationSettings(**{"temperature": 1.0, **settings}))


def test_toy_top3_probabilities_match_the_book() -> None:
    probs = distribution(torch.tensor([TOY]), temperature=1.0, top_k=3)[0]
    expected = [0.0615, 0, 0, 0.5775, 0, 0, 0, 0.3610, 0]
    assert [round(p, 4) for p in probs.tolist()] == expected


def test_top_k_masks_below_kth_and_temperature_scales() -> None:
    logits = filter_logits(torch.tensor([TOY]), temperature=2.0, top_k=3)[0]
    kept = [i for i, v in enumerate(logits.tolist()) if math.isfinite(v)]
    assert kept == [0, 3, 7]
    assert logits[3].item() == pytest.approx(6.75 / 2)


def test_temperature_zero_is_argmax_even_with_filters() -> None:
    logits = torch.tensor([TOY, list(reversed(TOY))])
    settings = GenerationSettings(temperature=0.0, top_k=2, top_p=0.1)
    assert select_next(logits, settings).tolist() == [3, 5]


def test_top_p_one_keeps_everything() -> None:
    logits = torch.tensor([TOY])
    assert torch.allclose(distribution(logits, top_p=1.0), torch.softmax(logits, -1))


def test_tiny_top_p_keeps_only_the_most_likely() -> None:
    probs = distribution(torch.tensor([TOY]), top_p=1e-9)[0]
    assert probs.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(("p", "kept"), [(0.49, 1), (0.51, 2), (0.79, 2), (0.85, 3), (1.0, 4)])
def test_top_p_keeps_smallest_set_reaching_p(p: float, kept: int) -> None:
    logits = torch.log(torch.tensor([[0.3, 0.5, 0.05, 0.15]]))
    probs = distribution(logits, top_p=p)[0]
    assert int((probs > 0).sum()) == kept
    assert probs[1] > 0  # the most likely token always survives
    assert probs.sum().item() == pytest.approx(1.0)


def test_top_p_filters_each_row_independently() -> None:
    logits = torch.log(torch.tensor([[0.9, 0.05, 0.05], [0.4, 0.35, 0.25]]))
    probs = distribution(logits, top_p=0.8)
    assert (probs > 0).sum(-1).tolist() == [1, 3]


def test_tiny_top_p_sampling_equals_greedy(tiny: GPTModel) -> None:
    greedy = generate(tiny, "Hello", max_new_tokens=12, eos_id=None)
    nucleus = generate(
        tiny, "Hello", max_new_tokens=12, eos_id=None, temperature=1.0, top_p=1e-6, seed=3
    )
    assert nucleus.samples[0].token_ids == greedy.samples[0].token_ids


# ---------------------------------------------------------------- seeds and batches


def test_seed_reproduces_and_different_seeds_differ(tiny: GPTModel) -> None:
    kw = dict(max_new_tokens=8, temperature=1.0, top_k=200, eos_id=None)
    a = generate(tiny, "Every effort", seed=7, **kw).samples[0]
    b = generate(tiny, "Every effort", seed=7, **kw).samples[0]
    c = generate(tiny, "Every effort", seed=8, **kw).samples[0]
    assert a.token_ids == b.token_ids and a.text == b.text
    assert a.token_ids != c.token_ids


def test_unseeded_sampling_follows_torch_manual_seed_like_the_book(tiny: GPTModel) -> None:
    kw = dict(max_new_tokens=10, temperature=1.4, top_k=25, eos_id=None)
    torch.manual_seed(123)
    a = generate(tiny, "Every effort", **kw).samples[0].token_ids
    torch.manual_seed(123)
    b = generate(tiny, "Every effort", **kw).samples[0].token_ids
    assert a == b
    # A private seed draws the same stream as the global RNG seeded alike (CPU).
    assert generate(tiny, "Every effort", seed=123, **kw).samples[0].token_ids == a


def test_num_samples_are_a_reproducible_batch(tiny: GPTModel) -> None:
    kw = dict(max_new_tokens=8, temperature=1.0, eos_id=None, num_samples=3, seed=11)
    first = generate(tiny, "Hi", **kw)
    again = generate(tiny, "Hi", **kw)
    ids = [s.token_ids for s in first.samples]
    assert len(ids) == 3 and all(len(x) == 8 for x in ids)
    assert len({tuple(x) for x in ids}) == 3
    assert ids == [s.token_ids for s in again.samples]
    assert [s.text for s in first.samples] == [decode(x) for x in ids]


# ---------------------------------------------------------------- exactness


def test_kv_cache_matches_full_recompute_for_300_tokens_past_the_window() -> None:
    # A small vocabulary keeps the reference (full logits every step) fast.
    config = GPTConfig(
        vocab_size=512, context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0
    )
    model = make_model(config, seed=5)
    ids = torch.randint(0, 512, (10,), generator=torch.Generator().manual_seed(0)).tolist()
    settings = GenerationSettings(max_new_tokens=300, eos_id=None).validated(512, 32)
    cached = torch.cat(list(generate_token_ids(model, ids, settings))).tolist()
    assert len(cached) == 300
    assert cached == book_greedy(model, ids, 300)


def test_generate_matches_full_recompute_past_the_window_end_to_end(tiny: GPTModel) -> None:
    ids = encode("Every effort moves you")
    result = generate(tiny, "Every effort moves you", max_new_tokens=70, eos_id=None)
    assert len(ids) + 70 > 2 * tiny.config.context_length
    assert result.samples[0].token_ids == book_greedy(tiny, ids, 70)


def test_prompt_longer_than_context_keeps_its_tail_and_says_so(tiny_config: GPTConfig) -> None:
    model = make_model(tiny_config)
    prompt = " ".join(f"word{i}" for i in range(60))
    ids = encode(prompt)
    result = generate(model, prompt, max_new_tokens=5, eos_id=None)
    dropped = len(ids) - tiny_config.context_length
    assert result.prompt_tokens_dropped == dropped > 0
    assert result.notice is not None and f"first {dropped} were dropped" in result.notice
    assert result.samples[0].token_ids == book_greedy(model, ids, 5)


def test_shorter_context_keep_still_runs_past_the_window(tiny: GPTModel) -> None:
    ctx = tiny.config.context_length
    result = generate(
        tiny, "Hello there", max_new_tokens=3 * ctx, eos_id=None, context_keep=ctx // 2
    )
    assert len(result.samples[0].token_ids) == 3 * ctx
    # Until the window first fills, decoding is the book's.
    first = ctx - len(encode("Hello there")) + 1
    assert result.samples[0].token_ids[:first] == book_greedy(tiny, encode("Hello there"), first)


@pytest.mark.slow
def test_book_untrained_example_ids() -> None:
    from gptcore.settings.model import get_preset

    model = make_model(get_preset("book-124m"), seed=123)
    ids = encode("Every effort moves you")
    out = generate(model, "Every effort moves you", max_new_tokens=10).samples[0].token_ids
    assert ids + out == BOOK_GREEDY


# ---------------------------------------------------------------- eos, stop strings


def test_eos_stops_early_and_is_left_out(tiny_config: GPTConfig) -> None:
    script = encode(" one two three") + [END_OF_TEXT_ID] + encode(" four")
    result = generate(Scripted(tiny_config, script), "x", max_new_tokens=20)
    sample = result.samples[0]
    assert sample.finish_reason == "eos"
    assert sample.token_ids == encode(" one two three")
    assert sample.text == " one two three"


def test_eos_can_be_turned_off(tiny_config: GPTConfig) -> None:
    script = encode(" a") + [END_OF_TEXT_ID] + encode(" b")
    sample = generate(Scripted(tiny_config, script), "x", max_new_tokens=3, eos_id=None).samples[0]
    assert sample.finish_reason == "length"
    assert sample.text == " a<|endoftext|> b"


def test_stop_string_stops_and_is_never_streamed(tiny_config: GPTConfig) -> None:
    script = encode(" Hello world. The end is here")
    text_stream = stream(Scripted(tiny_config, script), "x", max_new_tokens=30, stop=["end", "zzz"])
    pieces = [d.text for d in text_stream]
    sample = text_stream.result.samples[0]
    assert sample.finish_reason == "stop"
    assert sample.text == " Hello world. The "
    assert "".join(pieces) == sample.text
    assert not any("e" in p and "end" in p for p in pieces)


def test_stop_string_split_across_tokens(tiny_config: GPTConfig) -> None:
    script = encode("abc ###") + encode("## def")
    sample = generate(
        Scripted(tiny_config, script), "x", max_new_tokens=20, stop=("####",)
    ).samples[0]
    assert sample.finish_reason == "stop" and sample.text == "abc "


def test_partial_stop_match_is_held_back_then_released(tiny_config: GPTConfig) -> None:
    script = encode(" the en") + encode("d? no, the enigma")
    text_stream = stream(
        Scripted(tiny_config, script), "x", max_new_tokens=len(script), stop=["end!"]
    )
    pieces = [d.text for d in text_stream]
    sample = text_stream.result.samples[0]
    assert sample.finish_reason == "length"
    assert "".join(pieces) == sample.text == decode(script)


# ---------------------------------------------------------------- UTF-8 streaming


def _has_split_characters(ids: list[int]) -> bool:
    enc = get_tokenizer()
    for i in ids:
        try:
            enc.decode_single_token_bytes(i).decode("utf-8")
        except UnicodeDecodeError:
            return True
    return False


@pytest.mark.parametrize("text", [" Hi 😀🎉 ok", " 東京タワーと富士山", " café 👩‍👩‍👧 ñandú 漢字"])
def test_streaming_never_shows_a_replacement_character(tiny_config: GPTConfig, text: str) -> None:
    script = encode(text)
    assert _has_split_characters(script)  # the case under test really occurs
    text_stream = stream(
        Scripted(tiny_config, script), "", max_new_tokens=len(script), num_samples=2
    )
    deltas = list(text_stream)
    for i in range(2):
        pieces = [d.text for d in deltas if d.sample == i]
        assert all("\ufffd" not in p for p in pieces)
        assert "".join(pieces) == text_stream.result.samples[i].text == text


def test_stream_shows_replacement_only_where_the_final_text_has_it(tiny_config: GPTConfig) -> None:
    emoji = encode(" 😀")
    assert len(emoji) > 1
    script = encode(" ok") + emoji[:-1]  # generation stops inside the emoji
    text_stream = stream(Scripted(tiny_config, script), "x", max_new_tokens=len(script))
    pieces = [d.text for d in text_stream]
    final = text_stream.result.samples[0].text
    assert final == decode(script) and final.endswith("\ufffd")
    assert "".join(pieces) == final
    assert "\ufffd" not in "".join(pieces[:-1])


# ---------------------------------------------------------------- cancel, prompt, API


def test_cancel_event_stops_between_tokens(tiny: GPTModel) -> None:
    cancel = threading.Event()
    text_stream = stream(tiny, "Hello", max_new_tokens=40, eos_id=None, cancel=cancel)
    for seen, _ in enumerate(text_stream, start=1):
        if seen == 3:
            cancel.set()
    sample = text_stream.result.samples[0]
    assert sample.finish_reason == "cancelled"
    assert 3 <= len(sample.token_ids) < 40


def test_cancel_callable_before_start_generates_nothing(tiny: GPTModel) -> None:
    result = generate(tiny, "Hello", max_new_tokens=10, cancel=lambda: True)
    assert result.samples[0].token_ids == [] and result.samples[0].finish_reason == "cancelled"


def test_stream_runs_in_a_worker_thread_and_can_be_cancelled(tiny: GPTModel) -> None:
    cancel, got = threading.Event(), []

    def work() -> None:
        for delta in stream(
            tiny, "Hi", max_new_tokens=MAX_NEW_TOKENS_LIMIT, eos_id=None, cancel=cancel
        ):
            got.append(delta.text)
            if len(got) == 5:
                cancel.set()

    worker = threading.Thread(target=work)
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive()
    assert 5 <= len(got) < 50


def test_empty_prompt_starts_from_endoftext(tiny: GPTModel) -> None:
    result = generate(tiny, "", max_new_tokens=4, eos_id=None)
    assert result.prompt_ids == [END_OF_TEXT_ID]
    assert result.samples[0].token_ids == book_greedy(tiny, [END_OF_TEXT_ID], 4)


def test_zero_new_tokens(tiny: GPTModel) -> None:
    result = generate(tiny, "Hello", max_new_tokens=0)
    assert result.samples[0].token_ids == [] and result.samples[0].text == ""


def test_sample_text_is_prompt_plus_greedy_and_restores_train_mode(tiny: GPTModel) -> None:
    tiny.train()
    text = sample_text(tiny, "Every effort moves you", 6, eos_id=None)
    assert tiny.training
    ids = encode("Every effort moves you")
    assert text == decode(ids + book_greedy(tiny.eval(), ids, 6))


def test_result_to_dict_shape(tiny: GPTModel) -> None:
    data = generate(tiny, "Hi", max_new_tokens=3, eos_id=None).to_dict()
    assert data["prompt"] == "Hi"
    assert data["samples"][0]["token_ids"] and isinstance(data["samples"][0]["text"], str)


# ---------------------------------------------------------------- precision


def test_bf16_and_int8_generate_close_to_fp32(tiny_config: GPTConfig) -> None:
    ids = torch.tensor([encode("Every effort moves you")])
    ref = make_model(tiny_config)
    with torch.no_grad():
        base = ref(ids)[0, -1]
    for precision, tol in (("bf16", 0.5), ("int8", 0.5)):
        model = prepare_for_inference(make_model(tiny_config), precision)
        with torch.no_grad():
            logits = model(ids)[0, -1].float()
        assert (logits - base).abs().max().item() < tol
        assert len(generate(model, "Hi", max_new_tokens=40, eos_id=None).samples[0].token_ids) == 40


def test_precision_errors(tiny: GPTModel) -> None:
    with pytest.raises(GenerationError, match="unknown precision 'fp8'"):
        prepare_for_inference(tiny, "fp8")
    with pytest.raises(GenerationError, match="fp16 inference needs a CUDA or MPS device"):
        prepare_for_inference(tiny, "fp16")


# ---------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"temperature": -0.1}, "temperature"),
        ({"temperature": float("nan")}, "temperature"),
        ({"temperature": float("inf")}, "temperature"),
        ({"temperature": "hot"}, "temperature"),
        ({"top_k": 0}, "top_k"),
        ({"top_k": 50258}, "top_k"),
        ({"top_k": 2.5}, "top_k"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_p": 1.01}, "top_p"),
        ({"top_p": float("nan")}, "top_p"),
        ({"max_new_tokens": -1}, "max_new_tokens"),
        ({"max_new_tokens": MAX_NEW_TOKENS_LIMIT + 1}, "max_new_tokens"),
        ({"num_samples": 0}, "num_samples"),
        ({"context_keep": 0}, "context_keep"),
        ({"context_keep": 33}, "context_keep"),
        ({"eos_id": 50257}, "eos_id"),
        ({"seed": -1}, "seed"),
        ({"stop": [""]}, "stop"),
        ({"top_kk": 3}, "unknown generation setting"),
    ],
)
def test_every_invalid_setting_is_named(tiny: GPTModel, kwargs: dict, message: str) -> None:
    with pytest.raises(GenerationError, match=message) as info:
        generate(tiny, "Hi", **kwargs)
    assert isinstance(info.value, GptTuiError)


def test_prompt_must_be_text(tiny: GPTModel) -> None:
    with pytest.raises(GenerationError, match="prompt must be text"):
        generate(tiny, 42)  # type: ignore[arg-type]


def test_consumer_code_between_tokens_runs_with_normal_grad_mode(tiny: GPTModel) -> None:
    tiny.train()
    for delta in stream(tiny, "Hi", max_new_tokens=3, eos_id=None):
        assert delta.text
        assert torch.is_grad_enabled() and not torch.is_inference_mode_enabled()
        assert tiny.training  # restored between steps, not only at the end
