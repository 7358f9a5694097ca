"""Pilot tests of the Models screen against a local HTTP server (never the network)."""

from __future__ import annotations

import socket

from textual.widgets import DataTable, Static

from gptcore.weights.downloads import HF_URL_ENV, OPENAI_URL_ENV, local_status
from gptcore.weights.gpt2 import HF_FILES, SIZES, gpt2_dir
from gptcore.weights.hf_export import export_hf
from tests.test_download import Server
from tests.tui_helpers import SLOW_WAIT_S, find_pane, host_app, run_async, tiny_model, wait_for
from tui.app import GptTuiApp
from tui.screens.chat import ChatPane
from tui.screens.models import ModelsPane
from tui.settings import Settings


def _serve_tiny_gpt2(server: Server, tmp_path, gpt2_shape) -> dict[str, bytes]:
    """A tiny model in the Hugging Face layout, served where GPT-2 124M would be (and
    expected there: `gpt2_shape` is conftest's fixture)."""
    model = tiny_model()
    gpt2_shape(model.config)
    folder = export_hf(model, tmp_path / "tiny-hf")
    files = {}
    for name in HF_FILES:
        data = (folder / name).read_bytes()
        server.files[f"/openai-community/gpt2/resolve/main/{name}"] = data
        files[name] = data
    return files


async def _ready(pilot) -> ModelsPane:
    pane = await find_pane(pilot, ModelsPane)
    await wait_for(pilot, lambda: pane.loaded)
    pane.query_one(DataTable).focus()
    await pilot.pause()
    return pane


def _status(pane: ModelsPane, key: str) -> str:
    return str(pane.query_one(DataTable).get_cell(key, "status"))


def test_download_shows_progress_resumes_after_a_drop_and_completes(
    tmp_path, monkeypatch, gpt2_shape
):
    server = Server()
    try:
        files = _serve_tiny_gpt2(server, tmp_path, gpt2_shape)
        weights = "/openai-community/gpt2/resolve/main/model.safetensors"
        server.behaviour[weights] = ["drop"]  # hang up a third of the way in
        monkeypatch.setenv(HF_URL_ENV, server.url)
        _download_flow(files)
        ranges = [r for p, r in server.requests if p == weights]
        assert ranges == [None, f"bytes={len(files['model.safetensors']) // 3}-"]
    finally:
        server.close()


@run_async
async def _download_flow(files: dict[str, bytes]) -> None:
    # Models and Chat only: the whole app's corpus loading would compete for the CPU.
    app = host_app(ModelsPane, ChatPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "absent")
        assert pane.current() == ("124M", "hf")
        await pilot.press("d")
        assert pane.downloading == ("124M", "hf")
        await wait_for(pilot, lambda: pane.downloading is None, timeout=SLOW_WAIT_S)
        assert pane.updates >= 1 and pane.progress is not None
        assert pane.progress.done == pane.progress.total == len(files["model.safetensors"])
        assert "model.safetensors (2/2)" in str(pane.query_one("#models-progress", Static).render())
        assert "is complete in" in pane.message
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "complete")
        for name, data in files.items():
            assert (gpt2_dir("124M", "hf") / name).read_bytes() == data
        # One key opens it in Chat, where the served model answers.
        await pilot.press("o")
        chat = app.query_one(ChatPane)
        await wait_for(pilot, lambda: chat.model is not None, timeout=SLOW_WAIT_S)
        assert chat.spec == "gpt2:124M" and chat.model.config.emb_dim == 32
        chat.query_one("#chat-max_new_tokens").value = "4"  # a busy 2-core machine
        await pilot.pause()
        assert chat.send("Hello")
        await wait_for(pilot, lambda: not chat.generating)
        assert chat.conversation.transcript[-1][0] == "continuation"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@run_async
async def test_offline_says_so_and_where_to_put_files(monkeypatch):
    monkeypatch.setenv(HF_URL_ENV, f"http://127.0.0.1:{_closed_port()}")
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        # One row per GPT-2 size and source, as gptcore.pretrained defines them.
        table = pane.query_one(DataTable)
        assert [key.value for key in table.rows] == [
            f"{size}/{source}" for size in SIZES for source in ("hf", "openai")
        ]
        assert str(table.get_cell("1558M/openai", "download")) == "~6.4 GB"
        await pilot.press("d")
        await wait_for(pilot, lambda: pane.downloading is None, timeout=SLOW_WAIT_S)
        shown = str(pane.query_one("#models-message", Static).render())
        assert shown.startswith("No network? The download server cannot be reached.")
        assert "connection refused" in shown
        assert f"put these files into {gpt2_dir('124M', 'hf')}" in shown
        hint = str(pane.query_one("#models-hint", Static).render())
        assert f"put config.json, model.safetensors into {gpt2_dir('124M', 'hf')}" in hint
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "absent")
        assert str(pane.query_one("#models-progress", Static).render()) == ""  # no "connecting …"


@run_async
async def test_offline_notice_shows_on_opening_without_pressing_a_key(monkeypatch):
    """A quick probe on first show (here: closed local ports, never the network)."""
    port = _closed_port()
    monkeypatch.setenv(HF_URL_ENV, f"http://127.0.0.1:{port}")
    monkeypatch.setenv(OPENAI_URL_ENV, f"http://localhost:{port}")
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        await wait_for(pilot, lambda: pane.probed)
        assert pane.downloading is None and pane.updates == 0
        shown = str(pane.query_one("#models-message", Static).render())
        assert shown.startswith("No network? The download servers cannot be reached")
        assert "127.0.0.1: connection refused; localhost: connection refused" in shown
        assert pane.query_one("#models-message").has_class("-error")


def test_no_offline_notice_when_a_download_server_answers(monkeypatch):
    server = Server()  # answers the probe's HEAD (with an error status: still an answer)
    try:
        monkeypatch.setenv(HF_URL_ENV, server.url)
        _probe_answered()
    finally:
        server.close()


@run_async
async def _probe_answered() -> None:
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        await wait_for(pilot, lambda: pane.probed)
        assert pane.message == ""


def _notes(app) -> list[str]:
    return [n.message for n in app._notifications]


@run_async
async def test_keys_that_cannot_act_say_why():
    folder = gpt2_dir("124M", "hf")
    folder.mkdir(parents=True)  # left empty, as a failed first download leaves it
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        assert pane.current() == ("124M", "hf") and _status(pane, "124M/hf") == "absent"
        await pilot.press("o")
        await pilot.pause()
        assert _notes(app)[-1] == "GPT-2 124M (hf) is not downloaded: press d to download it"
        await pilot.press("delete")
        await pilot.pause()
        assert len(app.screen_stack) == 1  # no "Delete ... 0 B?" question
        assert _notes(app)[-1] == "GPT-2 124M (hf) is not downloaded: there is nothing to delete"
        await pilot.press("x")
        await pilot.pause()
        assert _notes(app)[-1] == "no download is running: d starts one"

        (folder / "model.safetensors.part").write_bytes(b"partial")
        await pilot.press("g")
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "partial: d resumes")
        await pilot.press("o")
        await pilot.pause()
        assert (
            _notes(app)[-1] == "GPT-2 124M (hf) is only partly downloaded: d resumes the download"
        )


def test_cancel_keeps_the_partial_file_and_delete_asks(tmp_path, monkeypatch, gpt2_shape):
    server = Server()
    try:
        files = _serve_tiny_gpt2(server, tmp_path, gpt2_shape)
        weights = "/openai-community/gpt2/resolve/main/model.safetensors"
        server.behaviour[weights] = ["trickle"]
        monkeypatch.setenv(HF_URL_ENV, server.url)
        _cancel_flow(len(files["model.safetensors"]))
    finally:
        server.close()


@run_async
async def _cancel_flow(size: int) -> None:
    app = host_app(ModelsPane)
    async with app.run_test(size=(100, 30)) as pilot:
        pane = await _ready(pilot)
        await pilot.press("d")
        await wait_for(
            pilot, lambda: pane.progress is not None and pane.progress.name == "model.safetensors"
        )
        await pilot.press("x")
        await wait_for(pilot, lambda: pane.downloading is None, timeout=SLOW_WAIT_S)
        assert pane.message.startswith("download cancelled; the partial files are kept")
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "partial: d resumes")
        part = gpt2_dir("124M", "hf") / "model.safetensors.part"
        assert 0 < part.stat().st_size < size
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert part.exists()
        await pilot.press("delete")
        await pilot.pause()
        await pilot.press("y")
        await wait_for(pilot, lambda: _status(pane, "124M/hf") == "absent")
        assert not gpt2_dir("124M", "hf").exists()
        assert not local_status("124M", "hf").bytes


def test_snapshot_models(snap_compare, monkeypatch):
    from tests.tui_helpers import fixed_home

    fixed_home(monkeypatch)

    async def run_before(pilot):
        models = await find_pane(pilot, ModelsPane)
        await pilot.press("5")
        await wait_for(pilot, lambda: models.loaded and models.probed)
        await pilot.pause()

    assert snap_compare(
        GptTuiApp(settings=Settings()), terminal_size=(80, 24), run_before=run_before
    )
