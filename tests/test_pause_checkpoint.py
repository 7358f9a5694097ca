"""`k` while paused: the checkpoint is saved at once, between the two steps the pause
sits between, not one step after the resume (issue 25)."""

from __future__ import annotations

import threading
from pathlib import Path

from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.events import CheckpointSaved, Finished, StepEnd
from gptcore.training.trainer import Trainer

from .test_train import MODEL, settings
from .test_train import corpus_file as corpus_file  # the fixture, shared

GUARD_S = 120.0  # only against a hang: the pause is lifted by then whatever happened


def test_a_checkpoint_asked_for_while_paused_is_saved_before_the_next_step(
    corpus_file: Path,
    tmp_path: Path,  # noqa: F811
) -> None:
    cfg = settings(corpus_file, epochs=1, checkpoint_every=2)
    seen: list = []
    at_manual: dict = {}
    holder: dict = {}

    def listener(event) -> None:
        trainer = holder["trainer"]
        seen.append(event)
        if isinstance(event, CheckpointSaved) and event.reason == "periodic" and event.step == 2:
            # After step 2's own saves: pause, then ask for a checkpoint (the `p`, `k` keys).
            trainer.pause()
            trainer.request_checkpoint()
            guard = threading.Timer(GUARD_S, trainer.unpause)
            guard.daemon = True
            guard.start()
        if isinstance(event, CheckpointSaved) and event.reason == "manual":
            steps = [e.step for e in seen if isinstance(e, StepEnd)]
            at_manual.update(paused=trainer.paused, last_step=steps[-1], path=event.path)
            trainer.unpause()

    trainer = Trainer(MODEL, cfg, listeners=[listener], run_dir=tmp_path / "run")
    holder["trainer"] = trainer
    result = trainer.run()

    assert isinstance(result, Finished) and result.reason == "completed"
    # Saved while the run was still paused, after the second step (index 1) and before
    # the third: the checkpoint holds the two steps done.
    assert at_manual["paused"] is True
    assert at_manual["last_step"] == 1
    assert load_checkpoint(at_manual["path"], verify=False).step == 2
