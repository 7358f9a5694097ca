"""Who hears a run's events: the listeners the Trainer calls, in order.

A listener that fails must not stop training: its error is logged once and the
run goes on. The one exception is the run's own metrics.jsonl writer: a file that
cannot be written (a full disk) ends the run, with one line and no traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from gptcore.errors import GptTuiError
from gptcore.runs.events import Event, Failed, Finished, Listener

log = logging.getLogger(__name__)


class Listeners:
    """The listeners of one run; `emit` calls each with an event."""

    def __init__(self, listeners: Sequence[Listener] = ()) -> None:
        self._listeners: list[Listener] = list(listeners)
        self._broken: set[int] = set()  # ids of listeners whose failure was logged
        self._required: Listener | None = None

    def add(self, fn: Listener) -> None:
        """Call `fn` after the listeners already there (any thread)."""
        self._listeners.append(fn)

    def add_required(self, fn: Listener) -> None:
        """Call `fn` first, and let its GptTuiError end the run (except on the
        closing event, which is reported, never raised)."""
        self._required = fn
        self._listeners.insert(0, fn)

    def emit(self, event: Event) -> None:
        for fn in list(self._listeners):
            try:
                fn(event)
            except GptTuiError as exc:
                if fn is self._required and not isinstance(event, Finished | Failed):
                    raise
                if self._first_failure(fn):
                    log.error("%s", exc)
            except Exception:  # a broken listener must not stop training
                if self._first_failure(fn):
                    log.exception("a training event listener failed; training goes on")

    def _first_failure(self, fn: Listener) -> bool:
        """True the first time `fn` fails: each broken listener is logged once."""
        if id(fn) in self._broken:
            return False
        self._broken.add(id(fn))
        return True
