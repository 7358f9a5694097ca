"""The downloader against hostile or broken servers (issue 14, Deliver 5).

Every server here is a local one on 127.0.0.1 (tests.test_download.Server with
extra misbehaviours). Each misbehaviour is bounded on the server side too
(a handful of seconds per answer, at most CAP requests, then 404), so a
regression fails the test instead of hanging it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest

from gptcore.cli import main
from gptcore.errors import CheckpointError, DownloadError
from gptcore.util.download import RetryPolicy, Timeouts, download_file
from gptcore.weights.downloads import HF_URL_ENV, download_gpt2, find_gpt2, local_status
from gptcore.weights.gpt2 import gpt2_dir
from tests.test_download import BLOB, SHORT, Server, _serve_hf_export

FAST = RetryPolicy(retries=4, backoff=0.01)
HF = "/openai-community/gpt2/resolve/main/"


class HostileServer(Server):
    """Server plus misbehaviours that last for every request to a path (`modes`)."""

    CAP = 200  # requests in all; later ones get 404, so a looping client still ends

    def __init__(self) -> None:
        super().__init__()
        self.modes: dict[str, str] = {}

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        mode = self.modes.get(h.path)
        if mode is None and len(self.requests) < self.CAP:
            super().handle(h)
            return
        rng = h.headers.get("Range")
        with self.lock:
            self.requests.append((h.path, rng))
            over = len(self.requests) > self.CAP
        if over:
            h.send_error(404, "Not Found")
            return
        with contextlib.suppress(OSError):  # the client hung up: the point of most tests
            getattr(self, f"_{mode}")(h, self.files[h.path], rng)

    @staticmethod
    def _bad_range(h: BaseHTTPRequestHandler, data: bytes, rng: str | None) -> None:
        """The whole file announced, a third sent; a resume gets bytes from 0 as a 206."""
        h.send_response(206 if rng else 200)
        if rng:
            h.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data[: len(data) // 3])
        h.close_connection = True

    @staticmethod
    def _nibble(h: BaseHTTPRequestHandler, data: bytes, rng: str | None) -> None:
        """Honours Range but sends only 1 KiB per request: progress every time, never done."""
        start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
        h.send_response(206 if start else 200)
        if start:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.send_header("Content-Length", str(len(data) - start))
        h.end_headers()
        h.wfile.write(data[start : start + 1024])
        h.close_connection = True

    @staticmethod
    def _drip(h: BaseHTTPRequestHandler, data: bytes, rng: str | None) -> None:
        """One byte every 0.1 s (at most 30 of them), well inside any read timeout."""
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        for byte in data[:30]:
            h.wfile.write(bytes([byte]))
            h.wfile.flush()
            time.sleep(0.1)
        h.close_connection = True

    @staticmethod
    def _endless(h: BaseHTTPRequestHandler, data: bytes, rng: str | None) -> None:
        """No Content-Length, and far more bytes than the file (4 MiB at most)."""
        h.send_response(200)
        h.end_headers()
        for _ in range(16):
            h.wfile.write(data)
        h.close_connection = True


@pytest.fixture
def server() -> Iterator[HostileServer]:
    s = HostileServer()
    yield s
    s.close()


def test_wrong_content_range_restarts_and_ends_within_the_deadline(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.modes["/a.bin"] = "bad_range"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="could not download a.bin"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", retry=FAST,
                      timeouts=Timeouts(connect=2.0, read=1.0, total=10.0))  # fmt: skip
    assert time.monotonic() - start < 10
    assert 2 <= len(server.requests) <= FAST.max_requests
    # Each wrong answer to a resume restarts the file from zero (no Range next time).
    ranges = [r for _, r in server.requests]
    assert all(b is None for a, b in zip(ranges, ranges[1:], strict=False) if a is not None), ranges
    assert not (tmp_path / "a.bin").exists()


def test_request_budget_holds_even_with_progress(server, tmp_path):
    server.files["/a.bin"] = BLOB  # 256 KiB at 1 KiB per request: 256 requests to finish
    server.modes["/a.bin"] = "nibble"
    with pytest.raises(DownloadError, match="gave up after 20 requests"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", size=len(BLOB),
                      retry=RetryPolicy(retries=2, backoff=0.0, max_requests=20),
                      timeouts=SHORT)  # fmt: skip
    assert server.count("/a.bin") == 20
    assert not (tmp_path / "a.bin").exists()


def test_trickle_hits_the_overall_deadline(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.modes["/a.bin"] = "drip"
    start = time.monotonic()
    with pytest.raises(DownloadError, match="overall deadline") as info:
        download_file(server.url + "/a.bin", tmp_path / "a.bin", retry=FAST,
                      timeouts=Timeouts(connect=2.0, read=1.0, total=0.5))  # fmt: skip
    assert time.monotonic() - start < 2.0
    assert "\n" not in str(info.value)
    assert server.count("/a.bin") == 1
    assert not (tmp_path / "a.bin").exists()


def test_default_deadline_grows_with_the_size():
    t = Timeouts()
    assert t.deadline_for(None) == 600
    assert t.deadline_for(6_400_000_000) == 6_400_000_000 / 50_000
    assert Timeouts(total=3).deadline_for(6_400_000_000) == 3


def test_endless_body_without_length_stops_at_the_cap(server, tmp_path):
    server.files["/a.bin"] = BLOB
    server.modes["/a.bin"] = "endless"
    with pytest.raises(DownloadError, match="limit for a file of unknown size") as info:
        download_file(server.url + "/a.bin", tmp_path / "a.bin", max_bytes=300_000,
                      retry=FAST, timeouts=SHORT)  # fmt: skip
    assert "\n" not in str(info.value)
    assert server.count("/a.bin") == 1  # not retried
    assert list(tmp_path.iterdir()) == []  # neither the file nor a .part


def test_announced_length_over_the_cap_is_refused_before_reading(server, tmp_path):
    server.files["/a.bin"] = BLOB
    with pytest.raises(DownloadError, match="more than the 1,000-byte limit"):
        download_file(server.url + "/a.bin", tmp_path / "a.bin", max_bytes=1000, retry=FAST)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------- Hugging Face files


def _hf_folder():
    return gpt2_dir("124M", "hf")


def test_hf_truncated_weights_never_get_the_final_name(server, tmp_path, tiny_config,
                                                        monkeypatch, gpt2_shape):  # fmt: skip
    gpt2_shape(tiny_config)
    files = _serve_hf_export(server, tmp_path, tiny_config)
    weights = files["model.safetensors"]
    server.files[HF + "model.safetensors"] = weights[: len(weights) // 2]  # a "complete" half
    monkeypatch.setenv(HF_URL_ENV, server.url)
    with pytest.raises(DownloadError, match="truncated or corrupted"):
        download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    folder = _hf_folder()
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]  # checked, kept
    status = local_status("124M", "hf")
    assert not status.complete and status.missing == ("model.safetensors",)
    # The server is fixed: a second download fetches the weights again.
    server.files[HF + "model.safetensors"] = weights
    download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    assert (folder / "model.safetensors").read_bytes() == weights
    assert local_status("124M", "hf").complete


def test_hf_html_config_is_refused_and_nothing_is_kept(server, tmp_path, tiny_config,
                                                       monkeypatch, capsys):  # fmt: skip
    _serve_hf_export(server, tmp_path, tiny_config)
    server.files[HF + "config.json"] = b"<!doctype html><html><body>Sign in</body></html>"
    monkeypatch.setenv(HF_URL_ENV, server.url)
    assert main(["download", "gpt2", "--source", "hf", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "config.json" in err
    folder = _hf_folder()
    assert not folder.exists() or list(folder.iterdir()) == []
    assert server.count(HF + "model.safetensors") == 0
    assert not local_status("124M", "hf").complete


def test_hf_weights_that_do_not_match_the_config_are_refused(server, tmp_path, tiny_config,
                                                             monkeypatch, gpt2_shape):  # fmt: skip
    gpt2_shape(dataclasses.replace(tiny_config, n_layers=tiny_config.n_layers + 1))
    files = _serve_hf_export(server, tmp_path, tiny_config)
    cfg = json.loads(files["config.json"])
    server.files[HF + "config.json"] = json.dumps({**cfg, "n_layer": cfg["n_layer"] + 1}).encode()
    monkeypatch.setenv(HF_URL_ENV, server.url)
    with pytest.raises(DownloadError, match="missing tensor"):
        download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    assert not (_hf_folder() / "model.safetensors").exists()


def test_redownload_replaces_a_bad_file_left_under_the_final_name(
    server, tmp_path, tiny_config, monkeypatch, gpt2_shape
):
    gpt2_shape(tiny_config)
    files = _serve_hf_export(server, tmp_path, tiny_config)
    folder = _hf_folder()
    folder.mkdir(parents=True)
    (folder / "config.json").write_bytes(files["config.json"])
    (folder / "model.safetensors").write_bytes(files["model.safetensors"][:-100])
    monkeypatch.setenv(HF_URL_ENV, server.url)
    download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    assert server.count(HF + "config.json") == 0  # valid: kept
    assert server.count(HF + "model.safetensors") == 1
    assert (folder / "model.safetensors").read_bytes() == files["model.safetensors"]


def test_status_never_calls_an_invalid_hf_folder_complete(server, tmp_path, tiny_config,
                                                          capsys):  # fmt: skip
    files = _serve_hf_export(server, tmp_path, tiny_config)
    folder = _hf_folder()
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("<html>not json</html>")
    (folder / "model.safetensors").write_bytes(files["model.safetensors"])
    status = local_status("124M", "hf")
    assert not status.complete and status.missing == ("config.json",)
    assert main(["models", "--json"]) == 0
    (row,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert row["complete"] is False
    with pytest.raises(CheckpointError, match="not downloaded"):
        find_gpt2("124M")
    # A valid config whose shapes the weights do not have is no better.
    cfg = json.loads(files["config.json"])
    (folder / "config.json").write_text(json.dumps({**cfg, "n_embd": cfg["n_embd"] * 2}))
    status = local_status("124M", "hf")
    assert not status.complete and status.missing == ("model.safetensors",)
    (folder / "config.json").write_bytes(files["config.json"])
    assert local_status("124M", "hf").complete
