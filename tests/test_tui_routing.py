"""Panes talk through the app: no screen reaches into another pane; open-in-Chat and
resume go out as app-level messages that the app routes; deleting files runs in a
worker thread and its result comes back as a message."""

from __future__ import annotations

import ast
import threading
from pathlib import Path

from textual.widgets import DataTable

from gptcore.util.paths import runs_dir
from gptcore.weights.gpt2 import gpt2_dir
from tests.tui_helpers import find_pane, host_app, make_checkpoint, run_async, wait_for
from tui.app import PANE_CSS, SCREENS, PaneRouter
from tui.messages import OpenInChat, ResumeRun
from tui.screens.chat import ChatPane
from tui.screens.checkpoints import CheckpointsPane
from tui.screens.models import ModelsPane

SCREENS_DIR = Path(__file__).resolve().parents[1] / "tui" / "screens"
PANES = {pane.__name__ for _tab, _title, _key, pane in SCREENS}


def _classes(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}


def test_no_screen_names_or_queries_another_pane() -> None:
    problems = []
    # A screen is a module, or a package whose modules together make its pane.
    for path in sorted(SCREENS_DIR.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        if path.parent == SCREENS_DIR:
            own = _classes(path)
        else:
            own = set().union(*(_classes(p) for p in path.parent.glob("*.py")))
        for node in ast.walk(tree):
            name = None
            if isinstance(node, ast.Name):
                name = node.id
            elif isinstance(node, ast.alias):
                name = node.asname or node.name
            if name in PANES - own:
                problems.append(f"{path.relative_to(SCREENS_DIR)}:{node.lineno} uses {name}")
            # self.app.query(...) / self.app.query_one(...): reaching across the app.
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("query", "query_one", "query_exactly_one")
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "app"
            ):
                problems.append(
                    f"{path.relative_to(SCREENS_DIR)}:{node.lineno} queries the app's widgets"
                )
    assert problems == []


class Recorder(PaneRouter):
    """A bare app with Checkpoints and Chat that also records what it routed."""

    CSS_PATH = PANE_CSS

    def __init__(self) -> None:
        super().__init__()
        self.routed: list[object] = []

    def compose(self):
        yield CheckpointsPane(id="checkpoints")
        yield ChatPane(id="chat")

    # PaneRouter's handlers run too: Textual calls every class's handler in the MRO.
    def on_open_in_chat(self, message: OpenInChat) -> None:
        self.routed.append(message)

    def on_resume_run(self, message: ResumeRun) -> None:
        self.routed.append(message)


@run_async
async def test_open_and_continue_are_app_messages_the_app_routes() -> None:
    path = make_checkpoint(name="step-5")
    app = Recorder()
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await find_pane(pilot, CheckpointsPane)
        await wait_for(pilot, lambda: pane.loaded)
        pane.query_one(DataTable).focus()
        await pilot.pause()
        await pilot.press("o")
        chat = app.query_one(ChatPane)
        await wait_for(pilot, lambda: chat.model is not None)
        assert chat.spec == str(path)
        await pilot.press("t")  # a dialog shows the command and offers to start it here
        await pilot.pause()
        await pilot.press("y")  # no Train screen here: the app gives the command instead
        await wait_for(pilot, lambda: len(app.routed) == 2)
        opened, resumed = app.routed
        assert isinstance(opened, OpenInChat) and opened.spec == str(path)
        assert isinstance(resumed, ResumeRun) and resumed.checkpoint == path
        await wait_for(
            pilot, lambda: any("gpt-tui train --resume" in n.message for n in app._notifications)
        )


@run_async
async def test_deleting_a_checkpoint_runs_in_a_worker_and_the_ui_stays_responsive(
    monkeypatch,
) -> None:
    import gptcore.runs.checkpoints

    make_checkpoint(name="step-5")
    make_checkpoint(name="step-10", step=10)
    release = threading.Event()
    deleters: list[threading.Thread] = []
    delete = gptcore.runs.checkpoints.delete_checkpoint

    def slow_delete(path: Path) -> object:
        deleters.append(threading.current_thread())
        release.wait(30)  # a slow disk: on the UI thread this would freeze the app
        return delete(path)

    monkeypatch.setattr(gptcore.runs.checkpoints, "delete_checkpoint", slow_delete)
    app = host_app(CheckpointsPane, ChatPane)
    async with app.run_test(size=(140, 30)) as pilot:
        pane = await find_pane(pilot, CheckpointsPane)
        await wait_for(pilot, lambda: pane.loaded)
        table = pane.query_one(DataTable)
        table.focus()
        table.move_cursor(row=table.get_row_index(str(runs_dir() / "tiny-run/checkpoints/step-10")))
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: bool(deleters))
        # The deletion is still going on, and the screen still answers keys.
        sort_by = pane.sort_by
        await pilot.press("s")
        assert pane.sort_by != sort_by
        assert any(i.name == "step-10" for i in pane.infos)
        release.set()
        # The result arrives as a message; the app has the lists re-read.
        await wait_for(pilot, lambda: [i.name for i in pane.infos] == ["step-5"])
        assert deleters[0] is not threading.main_thread()
        assert any("deleted tiny-run/step-10" in n.message for n in app._notifications)


@run_async
async def test_deleting_downloaded_weights_runs_in_a_worker(monkeypatch) -> None:
    import tui.screens.models.pane as models_pane

    folder = gpt2_dir("124M", "hf")
    folder.mkdir(parents=True)
    (folder / "model.safetensors.part").write_bytes(b"partial")
    deleters: list[threading.Thread] = []
    delete_gpt2 = models_pane.delete_gpt2

    def recording_delete(size: str, source: str):  # noqa: ANN202
        deleters.append(threading.current_thread())
        return delete_gpt2(size, source)

    monkeypatch.setattr(models_pane, "delete_gpt2", recording_delete)
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await find_pane(pilot, ModelsPane)
        await wait_for(pilot, lambda: pane.loaded)
        pane.query_one(DataTable).focus()
        await pilot.pause()
        assert pane.current() == ("124M", "hf")
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: pane.message == "deleted GPT-2 124M (hf)")
        assert not folder.exists()
        assert deleters and threading.main_thread() not in deleters
