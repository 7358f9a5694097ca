"""The downloader against a local HTTP server on 127.0.0.1 (never the network)."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.data.verdict import VERDICT_URL_ENV, fetch_verdict
from gptcore.errors import CheckpointError, DownloadError
from gptcore.util.download import (
    DownloadCancelled,
    DownloadProgress,
    RetryPolicy,
    Timeouts,
    download_file,
)
from gptcore.weights.downloads import (
    HF_URL_ENV,
    OPENAI_URL_ENV,
    download_gpt2,
    list_local,
    local_status,
    remote_files,
)
from gptcore.weights.gpt2 import OPENAI_FILES, gpt2_dir
from gptcore.weights.hf_export import export_hf
from gptcore.weights.modelspec import model_from_spec

FAST = RetryPolicy(retries=2, backoff=0.01)
SHORT = Timeouts(connect=2.0, read=0.3)
BLOB = bytes(range(256)) * 1024  # 256 KiB, distinct bytes per offset


class Server:
    """Serves `files[path]` with optional misbehaviour per path; records every request."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.behaviour: dict[str, list[str]] = {}  # path -> one behaviour per request, then "ok"
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.redirects: dict[str, str] = {}
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def count(self, path: str) -> int:
        return sum(1 for p, _ in self.requests if p == path)

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        rng = h.headers.get("Range")
        with self.lock:
            self.requests.append((h.path, rng))
            queue = self.behaviour.get(h.path, [])
            mode = queue.pop(0) if queue else "ok"
        if h.path in self.redirects:  # as Hugging Face does, to its CDN
            h.send_response(302)
            h.send_header("Location", self.redirects[h.path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        data = self.files.get(h.path)
        if data is None or mode == "404":
            h.send_error(404, "Not Found")
            return
        if mode == "500":
            h.send_error(500, "Internal Server Error")
            return
        start = (
            int(rng.removeprefix("bytes=").split("-")[0])
            if rng and mode not in ("norange", "truncate")
            else 0
        )
        if start >= len(data) and start:
            h.send_response(416)
            h.send_header("Content-Range", f"bytes */{len(data)}")
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        body = data[start:]
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        if mode == "slow":  # headers, then silence longer than the client's read timeout
            time.sleep(1.0)
            return
        # drop: a third then hang up; truncate: the same, but Range is ignored every time.
        if mode in ("drop", "truncate"):
            h.wfile.write(body[: len(body) // 3])
            h.wfile.flush()
            h.close_connection = True
            return
        if mode == "trickle":  # small pieces with pauses, so a cancel lands mid-file
            for i in range(0, len(body), 16384):
                h.wfile.write(body[i : i + 16384])
                h.wfile.flush()
                time.sleep(0.01)
            return
        h.wfile.write(body)

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_complete_file_with_progress_events(server, tmp_path):
    server.files["/a.bin"] = BLOB
    events: list[DownloadProgress] = []
    dest = download_file(
        server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB), sha256=_sha(BLOB),
        on_progress=events.append, retry=FAST, timeouts=SHORT,
    )  # fmt: skip
    assert dest.read_bytes() == BLOB
    assert not (tmp_path / "a.bin.part").exists()
    assert events[-1].done == events[-1].total == len(BLOB)
    assert all(b.done >= a.done for a, b in zip(events, events[1:], strict=False))
    assert events[-1].speed > 0 and events[-1].eta_s == 0
    # Already complete and verified: no second request.
    download_file(server.url + "/a.bin", dest, size=len(BLOB), sha256=_sha(BLOB))
    assert server.count("/a.bin") == 1


def test_resumes_with_range_after_dropped_connection(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["drop"]
    dest = download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                         retry=FAST, timeouts=SHORT)  # fmt: skip
    assert dest.read_bytes() == BLOB
    (first, r1), (_, r2) = server.requests
    assert r1 is None and r2 == f"bytes={len(BLOB) // 3}-"


def test_follows_redirects_and_keeps_range_when_resuming(server, tmp_path):
    server.files["/cdn/a.bin"] = BLOB
    server.redirects["/a.bin"] = "/cdn/a.bin"
    server.behaviour["/cdn/a.bin"] = ["drop"]
    dest = download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                         retry=FAST, timeouts=SHORT)  # fmt: skip
    assert dest.read_bytes() == BLOB
    assert server.requests[-1] == ("/cdn/a.bin", f"bytes={len(BLOB) // 3}-")


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["drop", "norange"]
    dest = download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                         sha256=_sha(BLOB), retry=FAST, timeouts=SHORT)  # fmt: skip
    assert dest.read_bytes() == BLOB


def test_truncated_body_never_gets_the_final_name(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["truncate"] * 10
    with pytest.raises(DownloadError, match="closed early"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", retry=FAST, timeouts=SHORT)
    assert not (tmp_path / "a.bin").exists()


def test_wrong_size_is_refused_without_retrying(server, tmp_path):
    server.files["/a.bin"] = BLOB
    with pytest.raises(DownloadError, match=f"is {len(BLOB):,} bytes, expected 1,000") as info:
        download_file(server.url + "/a.bin", tmp_path / "a.bin", size=1000, retry=FAST)
    assert not info.value.offline  # the server answered, with the wrong file
    assert server.count("/a.bin") == 1
    assert not (tmp_path / "a.bin").exists()


def test_wrong_hash_is_refused(server, tmp_path):
    server.files["/a.bin"] = BLOB
    with pytest.raises(DownloadError, match="sha256"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", sha256="0" * 64, retry=FAST)
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_404_fails_at_once_and_mirror_is_tried(server, tmp_path):
    server.files["/mirror/a.bin"] = BLOB
    with pytest.raises(DownloadError, match=r"HTTP 404.*/nope\.bin"):
        download_file(server.url + "/nope.bin", tmp_path / "x.bin", retry=FAST)
    assert server.count("/nope.bin") == 1
    dest = download_file(
        [server.url + "/missing.bin", server.url + "/mirror/a.bin"], tmp_path / "a.bin",
        retry=FAST,
    )  # fmt: skip
    assert dest.read_bytes() == BLOB


def test_500_then_success_on_retry(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["500"]
    dest = download_file(server.url + "/a.bin", tmp_path / "a.bin", retry=FAST)
    assert dest.read_bytes() == BLOB
    assert server.count("/a.bin") == 2


def test_slow_server_hits_the_read_timeout(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["slow"] * 5
    start = time.monotonic()
    with pytest.raises(DownloadError, match="timed out"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", retry=FAST, timeouts=SHORT)
    assert time.monotonic() - start < 5
    assert server.count("/a.bin") == 3  # first try + 2 retries
    assert not (tmp_path / "a.bin").exists()


def test_cancel_keeps_the_part_file_and_a_rerun_resumes(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.behaviour["/a.bin"] = ["trickle"]
    cancel = threading.Event()

    def on_progress(event: DownloadProgress) -> None:
        if event.done >= 50_000:
            cancel.set()

    with pytest.raises(DownloadCancelled):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                      cancel=cancel, on_progress=on_progress, retry=FAST)  # fmt: skip
    part = tmp_path / "a.bin.part"
    assert not (tmp_path / "a.bin").exists()
    kept = part.stat().st_size
    assert 50_000 <= kept < len(BLOB)
    dest = download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                         sha256=_sha(BLOB), retry=FAST)  # fmt: skip
    assert dest.read_bytes() == BLOB
    assert server.requests[-1][1] == f"bytes={kept}-"


def test_offline_fails_fast_naming_urls_and_folder():
    url = f"http://127.0.0.1:{_free_port()}"
    start = time.monotonic()
    # Refused connections get one quick retry, not the whole ladder (0.3+0.6+1.2+2.4 s).
    ladder = RetryPolicy(retries=4, backoff=0.3)
    with pytest.raises(DownloadError) as info:
        download_gpt2("124M", "openai", base_url=url, retry=ladder, timeouts=SHORT)
    assert time.monotonic() - start < 2
    assert info.value.offline  # no server answered: the screens say "No network?"
    msg = str(info.value)
    assert f"{url}/124M/checkpoint (connection refused)" in msg
    assert str(gpt2_dir("124M", "openai")) in msg and "model.ckpt.index" in msg
    assert list_local() == []  # nothing left that looks like weights


def _serve_hf_export(server: Server, tmp_path: Path, tiny_config) -> dict[str, bytes]:
    from gptcore.model.gpt import GPTModel
    from gptcore.settings.model import GPTConfig

    cfg = GPTConfig(**{**tiny_config.to_dict(), "qkv_bias": True, "tie_embeddings": True})
    out = export_hf(GPTModel(cfg), tmp_path / "src")
    files = {p.name: p.read_bytes() for p in out.iterdir()}
    for name, data in files.items():
        server.files[f"/openai-community/gpt2/resolve/main/{name}"] = data
    return files


def test_hf_download_then_load_and_models_listing(
    server, tmp_path, tiny_config, monkeypatch, capsys, gpt2_shape
):
    gpt2_shape(tiny_config)  # served where 124M would be
    files = _serve_hf_export(server, tmp_path, tiny_config)
    weights = "/openai-community/gpt2/resolve/main/model.safetensors"
    server.behaviour[weights] = ["drop"]  # resumed transparently
    monkeypatch.setenv(HF_URL_ENV, server.url)
    assert main(["download", "gpt2", "--size", "124M", "--source", "hf", "--retries", "2"]) == 0
    folder = gpt2_dir("124M", "hf")
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == files
    assert "--init gpt2:124M" in capsys.readouterr().out
    model = model_from_spec("gpt2:124M")
    assert model.config.emb_dim == tiny_config.emb_dim

    assert main(["models", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["size"] == "124M" and row["source"] == "hf" and row["complete"] is True
    assert row["bytes"] == sum(len(v) for v in files.values())


def test_models_shows_partial_downloads(
    server, tmp_path, tiny_config, monkeypatch, capsys, gpt2_shape
):
    gpt2_shape(tiny_config)  # served where 124M would be
    files = _serve_hf_export(server, tmp_path, tiny_config)
    weights = "/openai-community/gpt2/resolve/main/model.safetensors"
    server.behaviour[weights] = ["drop"] * 10
    monkeypatch.setenv(HF_URL_ENV, server.url)
    code = main(["download", "gpt2", "--source", "hf", "--retries", "0", "--timeout", "0.5"])
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "closed early" in err and "put these files into" in err
    status = local_status("124M", "hf")
    assert not status.complete and status.partial == ("model.safetensors",)
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "124M" in out and "partial: model.safetensors" in out
    with pytest.raises(CheckpointError, match="not downloaded"):
        model_from_spec("gpt2:124M")
    # Running the download again finishes it from where it stopped.
    server.behaviour[weights] = []
    assert main(["download", "gpt2", "--source", "hf"]) == 0
    assert (gpt2_dir("124M", "hf") / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_openai_layout_files_and_known_sizes(server, monkeypatch):
    # 774M's shared files have known sizes; serve one with the wrong length.
    monkeypatch.setenv(OPENAI_URL_ENV, server.url)
    mirror = f"{server.url}/mirror"
    remote = {f.name: f for f in remote_files("774M", "openai", mirror=mirror)}
    assert sorted(remote) == sorted(OPENAI_FILES)
    assert remote["vocab.bpe"].size == 456_318
    assert remote["checkpoint"].urls == (
        f"{server.url}/774M/checkpoint",
        f"{mirror}/774M/checkpoint",
    )
    server.files["/774M/checkpoint"] = b"x" * 80
    with pytest.raises(DownloadError, match="is 80 bytes, expected 77"):
        download_gpt2("774M", "openai", retry=FAST, timeouts=SHORT)


def test_verdict_download_checks_size_and_hash(server, monkeypatch, verdict_path, capsys):
    from gptcore.util.paths import verdict_file

    monkeypatch.setenv(VERDICT_URL_ENV, server.url + "/the-verdict.txt")
    server.files["/the-verdict.txt"] = verdict_path.read_bytes()[:-1] + b"?"  # same size
    assert main(["download", "verdict", "--retries", "0"]) == 2
    assert "sha256" in capsys.readouterr().err and not verdict_file().exists()
    server.files["/the-verdict.txt"] = verdict_path.read_bytes()
    assert main(["download", "verdict"]) == 0
    assert verdict_file().read_bytes() == verdict_path.read_bytes()


def test_fetch_verdict_reports_progress_resumes_and_keeps_an_intact_copy(server, verdict_path):
    """The engine's fetch (what `download verdict` and the Corpus screen's v call)."""
    from gptcore.util.paths import verdict_file

    data = verdict_path.read_bytes()
    server.files["/v.txt"] = data
    server.behaviour["/v.txt"] = ["drop"]  # a third, then the connection drops
    events: list[DownloadProgress] = []
    path = fetch_verdict(server.url + "/v.txt", retry=FAST, on_progress=events.append)
    assert path == verdict_file() and path.read_bytes() == data
    assert [r for p, r in server.requests] == [None, f"bytes={len(data) // 3}-"]  # resumed
    assert events[-1].done == events[-1].total == len(data)
    # An intact copy is used as it is: no request at all, even to a dead server.
    dead = f"http://127.0.0.1:{_free_port()}/v.txt"
    assert fetch_verdict(dead, retry=FAST) == path and len(server.requests) == 2


def test_fetch_verdict_offline_says_so_and_where_to_put_the_file():
    from gptcore.util.paths import verdict_file

    with pytest.raises(DownloadError) as caught:
        fetch_verdict(f"http://127.0.0.1:{_free_port()}/v.txt", retry=FAST, timeouts=SHORT)
    assert caught.value.offline
    assert str(caught.value).endswith(f"To install by hand, save the file as {verdict_file()}")


def test_non_ascii_destination(server, tmp_path):
    server.files["/a.bin"] = BLOB
    dest = download_file(server.url + "/a.bin", tmp_path / "Gewichte ü 重み" / "a.bin")
    assert dest.read_bytes() == BLOB


def test_download_and_models_commands_do_not_import_torch():
    # `gpt-tui download` / `models` must start instantly, also on machines where torch is slow.
    import subprocess
    import sys

    code = (
        "import sys, gptcore.weights.downloads, gptcore.commands.download, gptcore.commands.models; "
        "sys.exit('torch' in sys.modules)"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
