"""The inspector's views of a next-token analysis (gptcore.sampling.analysis) as
Rich Text: the candidates before and after the controls, the summary line, the
stages of the sampler chain, the temperature comparison and the sampling lab.

Pure functions of the analysis: the screen only decides when to draw. Tokens are
named by the engine's one label (gptcore.model.tokenview.token_label), bars and
percentages are the engine's (gptcore.util.bars).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.text import Text

from gptcore.util.bars import bar, percent

if TYPE_CHECKING:
    from gptcore.sampling.analysis import NextTokenAnalysis

LABEL = 12  # cells of a token's label in the lists
BAR = 14  # cells of a probability bar in the lists
TEMPS_SHOWN = 10  # candidates in the temperature comparison
TEMP_LABEL = 14
TEMP_BAR = 40
TEMP_STYLES = ("cyan", "magenta", "yellow", "green", "blue", "red")
STAGE_LABEL = 10


def title_text(a: NextTokenAnalysis, source: str) -> Text:
    """`Inspector · SOURCE · T 1 · top-k 40 · top-p off`."""
    c = a.controls.sampling
    settings = (
        f"T {c.temperature:g} · top-k {c.top_k if c.top_k is not None else 'off'} · "
        f"top-p {c.top_p if c.top_p is not None else 'off'}"
    )
    return Text(f"Inspector · {source} · {settings}")


def distribution_text(a: NextTokenAnalysis) -> Text:
    """The candidates: id, logit, raw probability and the probability after the controls."""
    out = Text()
    out.append(
        f"{'token':<{LABEL}} {'id':>6} {'logit':>7} {'prob':>7} {'':<{BAR}}   "
        f"{'after':>7} {'':<{BAR}}\n",
        style="bold",
    )
    for c in a.candidates:
        out.append(f"{a.label(c.id, LABEL):<{LABEL}} {c.id:>6} {c.logit:7.2f} ")
        out.append(f"{percent(c.raw_prob)} ")
        out.append(bar(c.raw_prob, BAR), style="cyan")
        out.append(" │ ")
        if c.kept:
            out.append(f"{percent(c.prob)} ")
            out.append(bar(c.prob, BAR), style="green")
        else:
            out.append(f"{'masked':>7}", style="dim strike")
        out.append("\n")
    out.rstrip()
    return out


def summary_text(a: NextTokenAnalysis) -> Text:
    """How much the candidates cover, the entropies, how many tokens can be drawn."""
    d = a.distribution
    return Text(
        f"the top {len(a.candidates)} cover {percent(a.covered).strip()} of the probability · "
        f"entropy {d.raw_entropy:.3f} nats, after the controls {d.entropy:.3f} · "
        f"{a.drawable:,} of {d.logits.numel():,} tokens can be drawn",
        style="italic",
    )


def stages_text(a: NextTokenAnalysis) -> Text:
    """The top tokens after each active stage of the sampler chain, in its order."""
    lines = ["after each stage of the sampler chain (top 5):"]
    for stage in a.stages:
        cells = "  ".join(f"{a.label(i, STAGE_LABEL)} {q:.0%}" for i, q in stage.top if q > 0)
        lines.append(f"{stage.name:<18} {cells}")
    return Text("\n".join(lines))


def temperatures_text(a: NextTokenAnalysis) -> Text:
    """Each top candidate's probability at each compared temperature (figure 5.14)."""
    temperatures = a.controls.temperatures
    out = Text()
    out.append(
        "probability of each candidate at each temperature (the book's figure 5.14)\n",
        style="bold",
    )
    width = max(len(f"T={t:g}") for t in temperatures)
    for row, cand in enumerate(a.candidates[:TEMPS_SHOWN]):
        out.append(a.label(cand.id, TEMP_LABEL) + "\n", style="bold")
        for i, t in enumerate(temperatures):
            p = a.temperatures[t][row]
            out.append(f"  {f'T={t:g}':<{width}} {percent(p)} ")
            out.append(bar(p, TEMP_BAR), style=TEMP_STYLES[i % len(TEMP_STYLES)])
            out.append("\n")
    return out


def lab_text(a: NextTokenAnalysis) -> Text:
    """The sampling lab: how often each token was drawn beside its probability
    (while the draws run, a line that says so)."""
    c = a.controls
    if not c.draws:
        return Text("no draws: set draws above 0 to run the sampling lab", style="italic")
    if a.counts is None:
        return Text(f"drawing {c.draws:,} samples (seed {c.seed}) …", style="italic")
    out = Text()
    out.append(
        f"{c.draws:,} draws with seed {c.seed} under these settings "
        "(ctrl+r: draw again with the next seed)\n",
        style="bold",
    )
    out.append(
        f"{'token':<{LABEL}} {'count':>6} {'freq':>7} {'':<{BAR}}   {'prob':>7} {'':<{BAR}}\n",
        style="bold",
    )
    for token in a.lab_ids():
        n = a.counts.get(token, 0)
        p = a.probability(token)
        out.append(f"{a.label(token, LABEL):<{LABEL}} {n:>6} {percent(n / c.draws)} ")
        out.append(bar(n / c.draws, BAR), style="yellow")
        out.append(f" │ {percent(p)} ")
        out.append(bar(p, BAR), style="green")
        out.append("\n")
    return out
