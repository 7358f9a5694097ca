"""Watch mode on the Train screen: follow a run started elsewhere (tmux, torchrun,
another machine) read-only, by reading its metrics.jsonl.

A timer starts a thread worker every POLL_S; the worker reads what the run appended
and whether a process still holds the run's lock, and posts it as WatchedRunRead
(with the run's config, once, as RunConfigRead). A run whose lock nobody holds and
that never wrote its closing event is "stopped": its process died (kill -9, a
crash). That is the run table's one state machine (gptcore.runs.table.run_state),
so the Runs tab, `gpt-tui runs`, the watch picker and this screen agree.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.message_pump import MessagePump
from textual.timer import Timer

from gptcore.errors import GptTuiError
from gptcore.hardware.sysinfo import SystemStats, describe
from gptcore.runs.events import Event
from gptcore.runs.lock import lock_holder
from gptcore.runs.metrics import MetricsFollower
from gptcore.runs.rundir import RunDir
from gptcore.runs.table import run_state
from gptcore.settings.files import load_run_config
from gptcore.util.fmt import format_duration

from ...runhandle import RunHandle
from ...runstate import RunState
from ..open_run import OpenRunScreen
from .messages import RunConfigRead, WatchedRunRead

if TYPE_CHECKING:
    from .form import TrainForm

POLL_S = 0.25  # how often a watched metrics.jsonl is read


def read_watched(
    target: MessagePump,
    handle: RunHandle,
    follower: MetricsFollower,
    config: Path | None,
    held_before: bool | None,
    told: str | None = None,
) -> None:
    """One read of the watched run (in a worker thread): its `config` file if given
    and present, then its lock and new events. Posts only what changed: `told` is the
    problem already shown (a damaged line or an unreadable file; typed reader)."""
    if config is not None and os.path.lexists(config):  # a FIFO too: refused, not opened
        label = f"{RunDir(handle.run_dir).name} (watched)"
        try:
            configs = load_run_config(config)
        except GptTuiError as exc:
            target.post_message(RunConfigRead(handle, label, None, str(exc)))
        else:
            target.post_message(RunConfigRead(handle, label, configs))
    # The lock before and after the events: a run that closes meanwhile has written
    # its closing event by the time they are read, and one that (re)starts meanwhile
    # holds the lock after; neither is taken for a dead one.
    held = lock_holder(handle.run_dir) is not None
    events = follower.poll()  # never raises: a damaged line is skipped and counted
    held = held or lock_holder(handle.run_dir) is not None
    problem = follower.problem or follower.first_damage
    if events or held != held_before or problem != told:
        target.post_message(WatchedRunRead(handle, events, held, problem))


class WatchMode:
    """The TrainPane's watch mode. A mixin: TrainPane provides `handle`, `state`,
    `form`, `live`, `follow()`, `apply_events()`, `announce_end()`, `render_state()`
    and `_refused()`."""

    handle: RunHandle | None
    state: RunState
    form: TrainForm
    _follower: MetricsFollower | None = None  # the watched metrics.jsonl, read on from its offset
    _timer: Timer | None = None
    _held: bool | None = None  # whether a process held the watched run's lock at the last read
    _last_event: Event | None = None  # the watched run's last event so far
    _told: str | None = None  # the watched metrics' problem last shown

    @property
    def watching(self) -> Path | None:
        """The folder of the run followed read-only, or None."""
        handle = self.handle
        return handle.run_dir if handle is not None and handle.kind == "watch" else None

    def action_watch(self) -> None:
        if self._refused("watch"):
            return

        def opened(path: str | None) -> None:
            if path:
                self.watch_run(Path(path))

        self.app.push_screen(OpenRunScreen(), opened)

    def watch_run(self, run_dir: Path) -> None:
        """Follow RUN_DIR/metrics.jsonl read-only (a run started elsewhere)."""
        if self.live:
            self.notify("stop the current run before watching another", severity="warning")
            return
        handle = RunHandle("watch", run_dir=Path(run_dir), catching_up=True)
        self.follow(handle, RunState(message="waiting for events …"))
        self.form.show_watched(handle.run_dir.name)
        self._follower = MetricsFollower(RunDir(handle.run_dir).metrics)
        self._held = self._last_event = self._told = None
        self._timer = self.set_interval(POLL_S, self.poll_watched)
        self.poll_watched()
        self.notify(
            f"watching {handle.run_dir.name} read-only: w leaves watch mode",
            title="Watch",
            markup=False,
        )

    def action_leave_watch(self) -> None:
        """Stop following the watched run: the form is the user's again."""
        name = self.watching.name if self.watching is not None else None
        if name is None:
            return
        self.follow(None, RunState(message="pick a config and press s to start"))
        self.form.show_own_config()
        self.notify(f"stopped watching {name}: the form is yours again", markup=False)

    def stop_watching(self) -> None:
        """Stop reading the watched run (following another run or none now)."""
        if self._timer is not None:
            self._timer.stop()
        self._timer = self._follower = None

    def poll_watched(self) -> None:
        """Read what the watched run added, in a worker (the timer calls this)."""
        handle = self.handle
        if self._follower is None or handle is None or handle.kind != "watch":
            return
        if any(w.group == "watch" and not w.is_finished for w in self.workers):
            return  # one read at a time: the follower keeps the file offset
        # Its config too, until read: the run writes config.toml as it starts.
        config = RunDir(handle.run_dir).config if self.form.config_problem is not None else None
        self._read_watched(handle, self._follower, config, self._held, self._told)

    @work(thread=True, exclusive=True, exit_on_error=False, group="watch")
    def _read_watched(
        self,
        handle: RunHandle,
        follower: MetricsFollower,
        config: Path | None,
        held_before: bool | None,
        told: str | None,
    ) -> None:
        read_watched(self, handle, follower, config, held_before, told)

    def on_watched_run_read(self, message: WatchedRunRead) -> None:
        handle = message.handle
        if handle is not self.handle:
            return  # a run no longer watched
        self._held = message.held
        if message.problem != self._told:
            self._told = message.problem
            if message.problem is not None:  # shown, not fatal: the readable lines go on
                self.notify(message.problem, title="Watch", severity="warning", markup=False)
        if message.events:
            self._last_event = message.events[-1]
            self.apply_events(message.events)
        # No closing event and no process holding the lock: the run table says stopped.
        if self.state.active and run_state(self._last_event, message.held) == "stopped":
            self.state.process_gone()
            if not handle.catching_up:
                self.announce_end()
            self.render_state()
        handle.catching_up = False

    def reported_system(self) -> str:
        """What the watched run's process last reported using (SystemSample events)."""
        sample = self.state.system
        if sample is None:
            return ""
        fields = {f: getattr(sample, f) for f in SystemStats.__dataclass_fields__}
        age = max(0.0, time.time() - sample.time)
        line = describe(SystemStats(**fields))
        return f"run: {line} · {format_duration(age)} ago" if line else ""
