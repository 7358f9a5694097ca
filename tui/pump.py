"""From training events (worker thread) to Textual messages (UI thread), throttled.

The Trainer calls the listener on its own thread for every event. Step events
arrive far faster than a terminal can draw, so they are batched: at most about
ten messages a second reach the UI, each carrying every event since the last
one. Evaluations, samples, checkpoints and the end of a run flush at once, so
none of them is ever late or lost.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message
from textual.message_pump import MessagePump

from gptcore.runs.events import Event, StepEnd
from gptcore.util.throttle import Throttle

from .runhandle import RunHandle


class TrainEvents(Message):
    """A batch of training events, in order, from the run `handle` stands for."""

    def __init__(self, events: list[Event], handle: RunHandle | None) -> None:
        super().__init__()
        self.events = events
        self.handle = handle


class EventPump:
    """A trainer listener that posts the events of the run `handle` stands for to
    `target` as TrainEvents, throttled.

    `clock` is injectable so tests can check the throttle without sleeping.
    """

    def __init__(
        self,
        target: MessagePump,
        handle: RunHandle,
        interval: float = 0.1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.target = target
        self.handle = handle
        self._throttle = Throttle(interval, clock)
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self.posted = 0  # messages posted, for tests and diagnostics

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._pending.append(event)
            if not self._throttle.ready(force=not isinstance(event, StepEnd)):
                return  # a step, coalesced into the next message
            batch, self._pending = self._pending, []
            self.posted += 1
        self.target.post_message(TrainEvents(batch, self.handle))

    def flush(self) -> None:
        """Post whatever is pending (the worker calls this when the run returns)."""
        with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                self._throttle.ready(force=True)  # the next step waits a full interval
                self.posted += 1
        if batch:
            self.target.post_message(TrainEvents(batch, self.handle))
