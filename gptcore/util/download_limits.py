"""How long and how often one file's download may try (gptcore.util.download):
the timeouts, the retry policy, and the budget that keeps them over all attempts,
with a watchdog that closes the connection when the overall deadline passes."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass

from gptcore.util.fmt import format_duration

# The default overall deadline per file: 10 minutes, or the time the file takes
# at 50 kB/s where that is longer.
MIN_DEADLINE_S = 600.0
MIN_SPEED = 50_000


@dataclass(frozen=True)
class Timeouts:
    connect: float = 10.0  # seconds to open the connection
    read: float = 30.0  # seconds without any byte arriving
    # Seconds for the whole file, every attempt included; None: the default above.
    total: float | None = None

    def deadline_for(self, size: int | None) -> float:
        if self.total is not None:
            return self.total
        return max(MIN_DEADLINE_S, (size or 0) / MIN_SPEED)


@dataclass
class RetryPolicy:
    retries: int = 4  # extra attempts after the first, per stretch without progress
    backoff: float = 0.5  # first wait; doubles each time
    max_backoff: float = 8.0
    max_requests: int = 50  # per file, all URLs and attempts together, progress or not


class BudgetSpent(Exception):
    """The file's overall deadline or request budget is spent: stop trying every URL."""


class Budget:
    """One file's limits over all its attempts: an overall deadline and a request count.

    A socket timeout bounds only the wait for each byte, so a server that sends its
    headers (or body) a byte at a time would outlast any deadline checked between
    reads. A watchdog timer therefore shuts down the sockets it was given when the
    deadline passes, which ends whatever read is blocked; `close()` stops it.
    """

    def __init__(self, timeouts: Timeouts, retry: RetryPolicy, size: int | None) -> None:
        self.timeouts = timeouts
        self.max_requests = retry.max_requests
        self.start = time.monotonic()
        self.seconds = timeouts.deadline_for(size)
        self.requests = 0
        self.expired = False
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer: threading.Timer | None = None
        self._arm()

    def _arm(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(max(self.left(), 0.0), self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def watch(self, sock: socket.socket) -> None:
        """Shut `sock` down when the deadline passes (at once if it has)."""
        with self._lock:
            if not self.expired:
                self._sockets = [s for s in self._sockets if s.fileno() != -1] + [sock]
                return
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
            self._sockets = []

    def learn_size(self, total: int) -> None:
        """A server announced the size (within the size limit): the default deadline grows."""
        longer = max(self.seconds, self.timeouts.deadline_for(total))
        if longer > self.seconds and not self.expired:
            self.seconds = longer
            self._arm()

    def left(self) -> float:
        return self.start + self.seconds - time.monotonic()

    def check_time(self) -> None:
        if self.expired or self.left() <= 0:
            took = format_duration(self.seconds)
            raise BudgetSpent(f"no complete file within {took} (the overall deadline)")

    def next_request(self) -> None:
        self.check_time()
        if self.requests >= self.max_requests:
            raise BudgetSpent(f"gave up after {self.requests} requests")
        self.requests += 1
