"""Downloads verified against what their source publishes and the size's shape (issue 25):
Hugging Face's sha256 (X-Linked-Etag on the redirect to its CDN), Azure's Content-MD5,
the shape of the size asked for, a deadline that covers the headers, a nested config.
Every server is a local one on 127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from gptcore.cli import main
from gptcore.errors import DownloadError
from gptcore.model.gpt import GPTModel
from gptcore.settings.model import GPTConfig
from gptcore.util.download import RetryPolicy, Timeouts, download_file
from gptcore.weights.downloads import (
    HF_URL_ENV,
    OPENAI_URL_ENV,
    azure_md5,
    download_gpt2,
    hf_sha256,
    local_status,
    remote_files,
    tf_data_bytes,
)
from gptcore.weights.gpt2 import OPENAI_FILES, SIZES, gpt2_dir, preset_for
from gptcore.weights.hf_export import export_hf

FAST = RetryPolicy(retries=0, backoff=0.01)
SHORT = Timeouts(connect=2.0, read=2.0)
HF = "/openai-community/gpt2/resolve/main/"
TINY = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0,
                 qkv_bias=True, tie_embeddings=True)  # fmt: skip


@dataclass
class Route:
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    status: int = 200
    drip_headers: bool = False  # the status line and headers one byte a second


class Server:
    """Answers each path with its Route; records requests and when a dripping client hung up."""

    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[str] = []
        self.dripped: list[int] = []  # bytes sent before the client was gone, per drip
        self.drips_done = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                server.handle(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()

    def handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests.append(h.path)
        route = self.routes.get(h.path)
        if route is None:
            h.send_error(404)
            return
        if route.drip_headers:
            self._drip(h, route)
            return
        h.send_response(route.status)
        for key, value in route.headers.items():
            h.send_header(key, value)
        h.send_header("Content-Length", str(len(route.body)))
        h.end_headers()
        h.wfile.write(route.body)

    def _drip(self, h: BaseHTTPRequestHandler, route: Route) -> None:
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(route.body)}\r\n\r\n".encode()
        sent = 0
        try:
            for byte in head[:30]:  # bounded: 30 s at most, even against a client that waits
                h.wfile.write(bytes([byte]))
                h.wfile.flush()
                sent += 1
                time.sleep(1.0)
        except OSError:
            pass  # the client hung up: what the test wants to see
        finally:
            self.dripped.append(sent)
            self.drips_done.set()
        h.close_connection = True

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    yield s
    s.close()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode()


def _flip_last_byte(data: bytes) -> bytes:
    return data[:-1] + bytes([data[-1] ^ 0xFF])


def _hf_files(tmp_path: Path, config: GPTConfig = TINY) -> dict[str, bytes]:
    folder = export_hf(GPTModel(config), tmp_path / "export")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def _serve_hf(server: Server, files: dict[str, bytes], weights: bytes, sha: str) -> None:
    """As Hugging Face does: config.json straight from git (a sha1 ETag), the LFS weights
    through a redirect to the CDN that states their sha256 in X-Linked-Etag."""
    server.routes[HF + "config.json"] = Route(files["config.json"], {"ETag": '"' + "a" * 40 + '"'})
    server.routes[HF + "model.safetensors"] = Route(
        status=302,
        headers={"Location": "/cdn/weights", "X-Linked-Etag": f'"{sha}"', "X-Linked-Size": "1"},
    )
    server.routes["/cdn/weights"] = Route(weights, {"ETag": '"cdn-etag-not-a-hash"'})


def test_hugging_face_sha256_refuses_same_size_wrong_bytes(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpt2_shape
) -> None:
    gpt2_shape(TINY)
    monkeypatch.setenv(HF_URL_ENV, server.url)
    files = _hf_files(tmp_path)
    good = files["model.safetensors"]
    wrong = _flip_last_byte(good)  # a valid file of the right shapes: only the hash tells
    _serve_hf(server, files, wrong, _sha(good))
    with pytest.raises(DownloadError) as info:
        download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    message = str(info.value)
    assert "does not match" in message and "X-Linked-Etag" in message and "\n" not in message
    folder = gpt2_dir("124M", "hf")
    assert sorted(p.name for p in folder.iterdir()) == ["config.json"]  # no weights, no .part
    assert not local_status("124M", "hf").complete

    # The right bytes under the same published sha256 are accepted.
    _serve_hf(server, files, good, _sha(good))
    download_gpt2("124M", "hf", retry=FAST, timeouts=SHORT)
    assert (folder / "model.safetensors").read_bytes() == good
    assert local_status("124M", "hf").complete


def test_openai_content_md5_refuses_same_size_wrong_bytes(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, gpt2_shape
) -> None:
    gpt2_shape(TINY)
    monkeypatch.setenv(OPENAI_URL_ENV, server.url)
    sizes = {f.name: f.size for f in remote_files("124M", "openai")}
    assert sizes["model.ckpt.data-00000-of-00001"] == tf_data_bytes(TINY)
    hparams = {"n_vocab": 50257, "n_ctx": 16, "n_embd": 16, "n_head": 2, "n_layer": 1}
    files = {name: bytes([i]) * (sizes[name] or 100) for i, name in enumerate(OPENAI_FILES)}
    files["hparams.json"] = json.dumps(hparams).encode().ljust(sizes["hparams.json"])
    for name, data in files.items():
        server.routes[f"/124M/{name}"] = Route(data, {"Content-MD5": _md5_b64(data)})
    data_file = "/124M/model.ckpt.data-00000-of-00001"
    server.routes[data_file].body = _flip_last_byte(files["model.ckpt.data-00000-of-00001"])

    assert main(["download", "gpt2", "--size", "124M", "--retries", "0"]) == 2
    folder = gpt2_dir("124M", "openai")
    assert not (folder / "model.ckpt.data-00000-of-00001").exists()
    assert not list(folder.glob("*.part"))
    # Fixed: the whole download completes (every file's MD5 matched).
    server.routes[data_file].body = files["model.ckpt.data-00000-of-00001"]
    download_gpt2("124M", "openai", retry=FAST, timeouts=SHORT)
    assert local_status("124M", "openai").complete


def test_the_published_digest_headers_are_read_only_where_they_mean_the_file() -> None:
    from email.message import Message

    def headers(**values: str) -> Message:
        m = Message()
        for k, v in values.items():
            m[k.replace("_", "-")] = v
        return m

    sha = "ab" * 32
    assert hf_sha256(headers(X_Linked_Etag=f'"{sha}"'), 302).hexdigest == sha
    assert hf_sha256(headers(ETag=f'W/"{sha.upper()}"'), 200).hexdigest == sha
    assert hf_sha256(headers(ETag='"' + "a" * 40 + '"'), 200) is None  # git's sha1
    md5 = base64.b64encode(bytes(range(16))).decode()
    assert azure_md5(headers(Content_MD5=md5), 200).hexdigest == bytes(range(16)).hex()
    assert azure_md5(headers(Content_MD5=md5), 206) is None  # a range's MD5, not the file's
    assert azure_md5(headers(x_ms_blob_content_md5=md5), 206).algorithm == "md5"
    assert azure_md5(headers(Content_MD5="not base64!"), 200) is None


def test_a_smaller_model_served_as_a_size_is_refused(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    # A valid 1-layer GPT-2 served where 124M is: refused at its config.json.
    monkeypatch.setenv(HF_URL_ENV, server.url)
    files = _hf_files(tmp_path)
    _serve_hf(server, files, files["model.safetensors"], _sha(files["model.safetensors"]))
    assert main(["download", "gpt2", "--size", "124M", "--source", "hf", "--retries", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "config.json is not GPT-2 124M: layers 1 (GPT-2 124M has 12), width 16" in err
    assert HF + "model.safetensors" not in server.requests
    assert not local_status("124M", "hf").complete

    # OpenAI's layout: a 1-layer hparams.json is refused the same way.
    monkeypatch.setenv(OPENAI_URL_ENV, server.url)
    hparams = {"n_vocab": 50257, "n_ctx": 1024, "n_embd": 768, "n_head": 12, "n_layer": 1}
    for name in OPENAI_FILES:
        size = SIZES["124M"].openai_bytes[name]
        server.routes[f"/124M/{name}"] = Route(b"x" * size)
    server.routes["/124M/hparams.json"] = Route(json.dumps(hparams).encode()[:90].ljust(90))
    with pytest.raises(DownloadError, match=r"hparams.json is not GPT-2 124M: layers 1 \(GPT-2"):
        download_gpt2("124M", "openai", retry=FAST, timeouts=SHORT)
    # The data file must hold exactly the size's tensors: known for every size.
    assert {s: tf_data_bytes(preset_for(s)) for s in ("124M", "355M")} == {
        s: SIZES[s].openai_bytes["model.ckpt.data-00000-of-00001"] for s in ("124M", "355M")
    }


def test_a_header_sent_a_byte_a_second_is_stopped_at_the_deadline(
    server: Server, tmp_path: Path
) -> None:
    server.routes["/slow"] = Route(b"x" * 100, drip_headers=True)
    with pytest.raises(DownloadError, match="overall deadline") as info:
        download_file(server.url + "/slow", tmp_path / "slow.bin", retry=FAST,
                      timeouts=Timeouts(connect=5.0, read=5.0, total=2.0))  # fmt: skip
    assert "\n" not in str(info.value)
    assert server.drips_done.wait(40)
    # The server saw the connection go before its 30-byte header was out: the client
    # stopped reading the header at its deadline, not at the end of the header.
    assert server.dripped and server.dripped[0] < 30
    assert not (tmp_path / "slow.bin").exists() and server.requests == ["/slow"]


def test_the_cli_deadline_covers_the_headers(
    server: Server, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv(HF_URL_ENV, server.url)
    server.routes[HF + "config.json"] = Route(b"{}", drip_headers=True)
    assert main(["download", "gpt2", "--source", "hf", "--retries", "0", "--deadline", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "overall deadline" in err
    assert server.drips_done.wait(40) and server.dripped[0] < 30
    assert main(["download", "gpt2", "--deadline", "0"]) == 2
    assert "--deadline must be a positive" in capsys.readouterr().err


@pytest.mark.parametrize("source", ["hf", "openai"])
def test_a_deeply_nested_config_is_a_clear_error_and_leaves_nothing(
    source: str, server: Server, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    nested = b"[" * 200_000 + b"]" * 200_000
    if source == "hf":
        monkeypatch.setenv(HF_URL_ENV, server.url)
        server.routes[HF + "config.json"] = Route(nested)
    else:
        monkeypatch.setenv(OPENAI_URL_ENV, server.url)
        for name in OPENAI_FILES:
            server.routes[f"/124M/{name}"] = Route(b"x" * SIZES["124M"].openai_bytes[name])
        server.routes["/124M/hparams.json"] = Route(b"[" * 45 + b"]" * 45)  # its 90 bytes
        # ... and a server that sends a long one without announcing its size.
        monkeypatch.setitem(SIZES["124M"].openai_bytes, "hparams.json", len(nested))
        server.routes["/124M/hparams.json"] = Route(nested)
    args = ["download", "gpt2", "--source", source, "--retries", "0"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "nested too deeply" in err
    folder = gpt2_dir("124M", source)
    assert not list(folder.glob("*.part")) and not (folder / "config.json").exists()
    assert not (folder / "hparams.json").exists()
