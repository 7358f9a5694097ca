"""Which stop signal ended a run is recorded and shown, and what the first signal's
message says a second one does is what a second one does (issue 25, deliver 6)."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from gptcore.data.corpus import raw_topics_text
from gptcore.runs.events import Finished, StepEnd
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.stopsignals import StopRequest, StopSignals, stop_message
from gptcore.training.trainer import Trainer
from tui.runstate import RunState

MODEL = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0)
SIGNALS = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]


def stopped_run(tmp_path: Path, signum: int | None) -> tuple[Finished, dict]:
    """A tiny run stopped after its second step (by `signum`, or by a plain cancel):
    its Finished event and the closing line of its metrics.jsonl."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(raw_topics_text()[:1600], encoding="utf-8")
    cfg = TrainConfig(corpus=str(corpus), batch_size=2, max_length=16, stride=16, epochs=5,
                      eval_freq=5, eval_iter=1, sample_tokens=0, precision="fp32")  # fmt: skip
    holder: dict = {}

    def stop_at_step_1(event) -> None:
        if isinstance(event, StepEnd) and event.step == 1:
            holder["t"].cancel(signum)

    trainer = Trainer(MODEL, cfg, listeners=[stop_at_step_1], run_dir=tmp_path / "run")
    holder["t"] = trainer
    result = trainer.run()
    assert isinstance(result, Finished) and result.reason == "cancelled"
    closing = json.loads((tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[-1])
    return result, closing


@pytest.mark.parametrize("signum", SIGNALS, ids=[s.name for s in SIGNALS])
def test_the_closing_event_names_the_stop_signal(signum: int, tmp_path: Path) -> None:
    result, closing = stopped_run(tmp_path, signum)
    assert result.signal == signal.Signals(signum).name
    assert closing["event"] == "finished" and closing["signal"] == result.signal
    state = RunState()
    state.apply(result)
    assert state.state == "stopped"
    assert state.message == f"by {result.signal} at step {result.step:,}"
    assert state.short == f"by {result.signal}"


def test_a_stop_without_a_signal_is_by_the_user(tmp_path: Path) -> None:
    result, closing = stopped_run(tmp_path, None)
    assert result.signal is None and closing.get("signal") is None
    state = RunState()
    state.apply(result)
    assert state.message == f"by the user at step {result.step:,}"


def test_a_stop_request_keeps_the_first_signal() -> None:
    request = StopRequest()
    assert not request.is_set() and request.signal is None
    request.set_for_signal(signal.SIGTERM)
    request.set_for_signal(signal.SIGHUP)
    assert request.is_set() and request.signal == "SIGTERM"


@pytest.mark.parametrize("first", SIGNALS, ids=[s.name for s in SIGNALS])
@pytest.mark.parametrize("second", SIGNALS, ids=[s.name for s in SIGNALS])
def test_the_message_says_what_a_second_signal_does(first: int, second: int) -> None:
    stops: list[int] = []
    aborts: list[int] = []
    handler = StopSignals(stops.append, on_abort=aborts.append)
    handler._handle(first, None)  # as the signal would call it
    handler._handle(second, None)
    assert stops == [first]
    message = stop_message(first)
    assert message.startswith(f"{signal.Signals(first).name}: stopping after this step")
    if second == signal.SIGINT:  # every message says Ctrl-C aborts, and it does
        assert aborts == [second]
        assert "Ctrl-C again to abort" in message or "Ctrl-C aborts" in message
    else:
        assert aborts == []
        if second == first:  # "SIGTERM again to abort" was untrue: it is ignored
            assert f"another {signal.Signals(first).name} is ignored" in message
