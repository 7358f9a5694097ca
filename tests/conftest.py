"""Shared fixtures: an isolated GPT_TUI_HOME per test, the book's corpus, tiny configs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gptcore.settings.model import GPTConfig

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("GPT_TUI_SHARED", REPO.parent / "shared"))
VERDICT = SHARED / "corpora" / "the-verdict.txt"


@pytest.fixture(autouse=True)
def isolated_home(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """Every test gets its own settings/data/cache folders: nothing touches ~."""
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("GPT_TUI_HOME", str(home))
    # GPT-2's download servers: a closed local port unless a test serves them, so the
    # Models screen's offline probe (and any download) never reaches the network.
    for env in ("GPT_TUI_HF_URL", "GPT_TUI_OPENAI_URL"):
        monkeypatch.setenv(env, "http://127.0.0.1:9")
    monkeypatch.delenv("GPT_TUI_GPT2_MIRROR", raising=False)
    # The run-time probe steps for seconds to be sure on a busy machine; a test that
    # does not time anything takes its minimum steps (test_estimate sets its own).
    import gptcore.planner.timing as timing

    monkeypatch.setattr(timing, "PROBE_SECONDS", 0.0)
    return home


@pytest.fixture
def verdict_path() -> Path:
    if not VERDICT.exists():
        pytest.skip(f"the book's corpus is not at {VERDICT}")
    return VERDICT


@pytest.fixture
def gpt2_shape(monkeypatch: pytest.MonkeyPatch):
    """`gpt2_shape(config)`: downloads of every GPT-2 size expect `config`'s shape, so a
    test can serve a tiny model where GPT-2 would be (the real ones weigh 0.5-6 GB)."""

    def expect(config: GPTConfig) -> None:
        monkeypatch.setattr("gptcore.weights.downloads.preset_for", lambda _size: config)

    return expect


@pytest.fixture
def tiny_config() -> GPTConfig:
    """Small enough for a forward/backward pass in milliseconds."""
    return GPTConfig(context_length=32, emb_dim=32, n_heads=4, n_layers=2, drop_rate=0.0)


@pytest.fixture
def lane_mask_shapes(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of the lane masks (gptcore.dropout.keep_mask) drawn while a test runs."""
    from gptcore.model import dropout

    shapes: list[tuple[int, ...]] = []
    original = dropout.keep_mask

    def counting(shape: tuple[int, ...], p: float, device: object) -> object:
        shapes.append(tuple(shape))
        return original(shape, p, device)

    monkeypatch.setattr(dropout, "keep_mask", counting)
    return shapes
