"""Stop signals: a run survives what a remote session throws at it.

SIGINT (Ctrl-C), SIGTERM (`docker stop`, systemd, Slurm preemption, torchrun
forwarding its own) and SIGHUP (the terminal went away: an SSH drop) all mean
"stop after this step, save a checkpoint, write the closing event". A second
Ctrl-C aborts at once; a repeated SIGTERM or SIGHUP is ignored (the stop is on
its way), so a hang-up arriving twice can't lose the checkpoint. The process then exits with 128 + the signal's number:
130 for SIGINT, 143 for SIGTERM, 129 for SIGHUP.

After SIGHUP the terminal is gone and writing to it fails (EIO), so the file
descriptors that were a terminal are pointed at os.devnull first: the shutdown
prints nothing anyone could read, but nothing it prints can crash it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType

# SIGHUP does not exist on Windows.
STOP_SIGNALS: tuple[int, ...] = tuple(
    getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def exit_code(signum: int) -> int:
    """The shell's convention for a process stopped by a signal: 128 + its number."""
    return 128 + int(signum)


def signal_name(signum: int) -> str:
    """`SIGTERM` for 15."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def stop_message(signum: int, doing: str = "stopping after this step to save a checkpoint") -> str:
    """What a front end says on the first stop signal, with what a second one does
    (StopSignals: only Ctrl-C aborts; a repeated SIGTERM or SIGHUP is ignored)."""
    name = signal_name(signum)
    if signum == signal.SIGINT:
        then = "Ctrl-C again to abort"
    else:
        then = f"another {name} is ignored; Ctrl-C aborts"
    return f"{name}: {doing} ({then})"


class StopRequest(threading.Event):
    """A run's stop flag that remembers which stop signal set it: the Trainer's
    closing event records it (`Finished.signal`). `signal` stays None for a stop
    asked for otherwise (a key in the app, Trainer.cancel())."""

    def __init__(self) -> None:
        super().__init__()
        self.signal: str | None = None

    def set_for_signal(self, signum: int) -> None:
        """Stop because of `signum`; the first signal's name is kept."""
        if self.signal is None:
            self.signal = signal_name(signum)
        self.set()


def _abort(signum: int) -> None:
    raise KeyboardInterrupt


class StopSignals:
    """A context manager that routes the stop signals to `on_stop(signum)` (the
    first one) and `on_abort(signum)` (any later one; by default it raises
    KeyboardInterrupt, as a second Ctrl-C does). The previous handlers come back
    on exit. Outside the main thread (where Python cannot install handlers) it
    does nothing.

    The callbacks run in the signal handler, on the main thread, between two
    bytecodes of whatever it was doing: they should only set events or schedule
    work (threading.Event.set, loop.call_soon_threadsafe).
    """

    def __init__(
        self,
        on_stop: Callable[[int], None],
        on_abort: Callable[[int], None] = _abort,
        signals: tuple[int, ...] = STOP_SIGNALS,
    ) -> None:
        self.on_stop = on_stop
        self.on_abort = on_abort
        self.signals = signals
        self.received: int | None = None  # the first stop signal, once one came
        self._previous: dict[int, object] = {}
        self._terminal_fds: list[int] = []

    @property
    def exit_code(self) -> int | None:
        """128 + the first signal's number, or None when none came."""
        return None if self.received is None else exit_code(self.received)

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        # Which of stdout/stderr are a terminal, asked now: once the terminal has
        # hung up, isatty() on it fails too.
        self._terminal_fds = [fd for fd in (1, 2) if _isatty(fd)]
        for signum in self.signals:
            self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for signum, previous in self._previous.items():
            signal.signal(signum, previous)  # type: ignore[arg-type]
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            detach_from_terminal(self._terminal_fds)
        if self.received is not None:
            # Only a person aborts (a second Ctrl-C). Machines repeat themselves: an
            # SSH drop can deliver SIGHUP more than once, systemd sends SIGTERM then
            # SIGHUP; none of that may cost the checkpoint being saved.
            if signum == signal.SIGINT:
                self.on_abort(signum)
            return
        self.received = signum
        self.on_stop(signum)


def detach_from_terminal(fds: list[int]) -> None:
    """Point `fds` (a hung-up terminal's) at os.devnull so later writes succeed."""
    if not fds:
        return
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            for fd in fds:
                os.dup2(null, fd)
        finally:
            os.close(null)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
