"""Train and validation loss against steps, drawn in the terminal with plotext."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..runstate import RunState


class LossChart(PlotextPlot):
    """Redrawn from a RunState whenever a new evaluation arrives."""

    def on_mount(self) -> None:
        self.show_run(RunState())

    def show_run(self, state: RunState) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title("loss")
        plt.xlabel("step")
        evals = state.evals
        if evals:
            steps = [e.step for e in evals]
            plt.plot(steps, [e.train_loss for e in evals], label="train", marker="braille")
            plt.plot(steps, [e.val_loss for e in evals], label="val", marker="braille")
        self.refresh()
