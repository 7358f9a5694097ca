"""The Corpus screen: the pane (pane.py), its sources (sources.py) and what it shows
about a loaded corpus (info.py)."""

from .info import CorpusInfo, window_report
from .pane import CorpusPane

__all__ = ["CorpusInfo", "CorpusPane", "window_report"]
