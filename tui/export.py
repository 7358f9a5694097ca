"""The book's loss plot as a PNG: train and val loss against epochs, tokens seen on top.

matplotlib is an optional extra (`pip install 'gpt-tui[plot]'`), imported only here.
"""

from __future__ import annotations

from pathlib import Path

from gptcore.errors import GptTuiError
from gptcore.util.fsutil import atomic_open

from .runstate import RunState


def export_loss_png(state: RunState, path: Path) -> Path:
    """Write the loss chart of `state` to `path`; GptTuiError if impossible."""
    if not state.evals:
        raise GptTuiError("no evaluation yet: the chart needs at least one train/val loss")
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display needed (SSH, tests)
        import matplotlib.pyplot as plt
    except ImportError:
        raise GptTuiError("exporting a PNG needs matplotlib: pip install 'gpt-tui[plot]'") from None
    evals = state.evals
    n = len(evals)
    last_epoch = evals[-1].epoch + 1
    # As the book does: spread the evaluations evenly over the epochs seen.
    epochs = [last_epoch * i / max(1, n - 1) for i in range(n)] if n > 1 else [0.0]
    fig, ax1 = plt.subplots(figsize=(5, 3))
    ax1.plot(epochs, [e.train_loss for e in evals], label="Training loss")
    ax1.plot(epochs, [e.val_loss for e in evals], linestyle="-.", label="Validation loss")
    ax1.set_xlabel("Epochs")
    ax1.set_ylabel("Loss")
    ax1.legend(loc="upper right")
    ax2 = ax1.twiny()
    ax2.plot([e.tokens_seen for e in evals], [e.train_loss for e in evals], alpha=0)
    ax2.set_xlabel("Tokens seen")
    fig.tight_layout()
    path = Path(path)
    try:
        with atomic_open(path, "wb") as f:  # written whole, or not at all
            fig.savefig(f, format="png")
    finally:
        plt.close(fig)
    return path
