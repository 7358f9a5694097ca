"""Checkpoints: round trip, atomic saves under kill -9, refusing pickles, corruption, lookup."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gptcore.errors import CheckpointError
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import load_checkpoint, safe_torch_load, save_checkpoint
from gptcore.runs.checkpoints import (
    list_checkpoints,
    load_model,
    rename_checkpoint,
)
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.checkpoint_policy import prune_checkpoints
from gptcore.weights.book import export_book_pth, import_book_pth
from gptcore.weights.modelspec import checkpoint_path

CFG = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.0)
REPO = Path(__file__).resolve().parents[1]


def make(run: Path, step: int, val_loss: float | None = None, config: GPTConfig = CFG, **kw):
    torch.manual_seed(step)
    model = GPTModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.zeros(1, 4, dtype=torch.long)).sum().backward()
    opt.step()
    path = save_checkpoint(
        run / "checkpoints" / f"step-{step:06d}",
        model,
        train_config=TrainConfig().to_dict(),
        step=step,
        epoch=1,
        tokens_seen=step * 10,
        optimizer=opt,
        val_loss=val_loss,
        rng={"torch": torch.get_rng_state()},
        **kw,
    )
    return path, model, opt


def test_round_trip(tmp_path: Path) -> None:
    path, model, opt = make(tmp_path / "run", 7, val_loss=3.5)
    assert sorted(p.name for p in path.iterdir()) == [
        "meta.json",
        "optimizer.pt",
        "weights.safetensors",
    ]
    loaded, ckpt = load_model(path)
    assert ckpt.step == 7 and ckpt.tokens_seen == 70 and ckpt.val_loss == 3.5
    assert ckpt.model_config == CFG
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v)
    state = ckpt.optimizer_state()["optimizer"]
    assert torch.equal(state["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    assert not any(p.name.startswith(".") for p in path.parent.iterdir())  # no temp left


def test_tied_embeddings_round_trip(tmp_path: Path) -> None:
    tied = GPTConfig(context_length=8, emb_dim=8, n_heads=2, n_layers=1, tie_embeddings=True)
    path, model, _ = make(tmp_path / "run", 1, config=tied)
    loaded, _ = load_model(path)
    assert loaded.out_head.weight is loaded.tok_emb.weight
    assert torch.equal(loaded.tok_emb.weight, model.tok_emb.weight)


def test_same_name_is_never_overwritten(tmp_path: Path) -> None:
    first, *_ = make(tmp_path / "run", 3)
    second, *_ = make(tmp_path / "run", 3)
    assert first.name == "step-000003" and second.name == "step-000003-2"
    load_checkpoint(first)


SAVER = textwrap.dedent(
    """
    import sys, torch
    from pathlib import Path
    from gptcore.runs.checkpoint import save_checkpoint
    from gptcore.settings.model import GPTConfig
    from gptcore.model.gpt import GPTModel
    run = Path(sys.argv[1])
    model = GPTModel(GPTConfig(context_length=64, emb_dim=128, n_heads=2, n_layers=4))
    opt = torch.optim.AdamW(model.parameters())
    print("ready", flush=True)
    step = 100
    while True:  # save over and over until killed
        save_checkpoint(run / "checkpoints" / f"step-{step:06d}", model, train_config={},
                        step=step, epoch=0, tokens_seen=0, optimizer=opt)
        step += 1
    """
)


def test_kill_9_mid_save_leaves_only_whole_checkpoints(tmp_path: Path) -> None:
    run = tmp_path / "run"
    old, model, _ = make(run, 1)
    script = tmp_path / "saver.py"
    script.write_text(SAVER)
    proc = subprocess.Popen(
        [sys.executable, str(script), str(run)], stdout=subprocess.PIPE, cwd=REPO
    )
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.monotonic() + 60
        # Kill it while a temporary (unfinished) checkpoint folder exists.
        while time.monotonic() < deadline:
            if any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir()):
                break
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    leftovers = [p for p in (run / "checkpoints").iterdir() if p.name.startswith(".tmp-")]
    assert leftovers, "the kill did not land mid-save"
    infos = list_checkpoints(tmp_path)
    assert infos and all(i.error is None for i in infos)  # temp folders are not listed
    for info in infos:
        load_checkpoint(info.path)  # every visible checkpoint is whole (hashes verified)
    loaded, _ = load_model(old)
    assert torch.equal(loaded.tok_emb.weight, model.tok_emb.weight)
    make(run, 2)  # the next save sweeps the dead process's temp folder
    assert not any(p.name.startswith(".tmp-") for p in (run / "checkpoints").iterdir())


class Bomb:
    def __reduce__(self):
        return (os.system, (f"touch {Bomb.marker}",))


def test_pickle_bomb_is_refused_without_running(tmp_path: Path) -> None:
    Bomb.marker = str(tmp_path / "pwned")
    path, *_ = make(tmp_path / "run", 1)
    # An attacker who also rewrites the recorded hash still gets nothing run.
    torch.save({"optimizer": Bomb()}, path / "optimizer.pt")
    meta = json.loads((path / "meta.json").read_text())
    import hashlib

    meta["files"]["optimizer.pt"] = hashlib.sha256((path / "optimizer.pt").read_bytes()).hexdigest()
    meta["sizes"]["optimizer.pt"] = (path / "optimizer.pt").stat().st_size
    (path / "meta.json").write_text(json.dumps(meta))
    ckpt = load_checkpoint(path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        ckpt.optimizer_state()
    pth = tmp_path / "model.pth"
    torch.save({"model_state_dict": Bomb()}, pth)
    with pytest.raises(CheckpointError, match="refusing to load"):
        import_book_pth(pth, CFG)
    assert not Path(Bomb.marker).exists()


def test_corrupted_truncated_and_foreign(tmp_path: Path) -> None:
    path, *_ = make(tmp_path / "run", 1)
    weights = path / "weights.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted.*weights.safetensors"):
        load_checkpoint(path)
    weights.write_bytes(data)
    (path / "meta.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_checkpoint(path)
    (path / "meta.json").write_text(json.dumps({"hello": 1}))
    with pytest.raises(CheckpointError, match="not a gpt-tui checkpoint"):
        load_checkpoint(path)
    with pytest.raises(CheckpointError, match="meta.json is missing"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "nope")
    (tmp_path / "junk.pt").write_bytes(b"\x00garbage")
    with pytest.raises(CheckpointError, match="truncated or not a PyTorch file"):
        safe_torch_load(tmp_path / "junk.pt")
    good, *_ = make(tmp_path / "run", 2)
    (tmp_path / "run" / "checkpoints" / "stray").mkdir()
    infos = {i.name: i for i in list_checkpoints(tmp_path)}
    assert infos["step-000002"].error is None and infos["step-000002"].step == 2
    assert "not a gpt-tui checkpoint" in infos["step-000001"].error
    assert "missing" in infos["stray"].error


def test_resolve_latest_best_and_names(tmp_path: Path, isolated_home: Path) -> None:
    run = isolated_home / "data" / "runs" / "myrun"
    a, *_ = make(run, 5, val_loss=2.0)
    b, *_ = make(run, 9, val_loss=3.0)
    assert checkpoint_path(run) == b
    assert checkpoint_path(f"{run}:latest") == b
    assert checkpoint_path(f"{run}:best") == a
    assert checkpoint_path("myrun:best") == a  # a run name under the runs folder
    assert checkpoint_path(a) == a
    with pytest.raises(CheckpointError, match="no run or checkpoint named"):
        checkpoint_path("nosuchrun")
    empty = tmp_path / "empty"
    (empty / "checkpoints").mkdir(parents=True)
    with pytest.raises(CheckpointError, match="no usable checkpoint"):
        checkpoint_path(empty)


def test_retention_keeps_newest_best_and_renamed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    best, *_ = make(run, 1, val_loss=1.0, reason="epoch")
    for step in range(2, 6):
        make(run, step, val_loss=5.0, reason="periodic")
    make(run, 0, val_loss=6.0, reason="manual")  # asked for: never pruned
    pinned = rename_checkpoint(run / "checkpoints" / "step-000002", "keep-me")
    removed = prune_checkpoints(run, keep_last=2)
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["keep-me", "step-000000", "step-000001", "step-000004", "step-000005"]
    assert run / "checkpoints" / "step-000003" in removed and pinned.exists()
    with pytest.raises(CheckpointError, match="already exists"):
        rename_checkpoint(run / "checkpoints" / "step-000004", "keep-me")


def test_book_pth_export_import(tmp_path: Path) -> None:
    path, model, _ = make(tmp_path / "run", 1)
    out = export_book_pth(path, tmp_path / "model_and_optimizer.pth")
    data = torch.load(out, weights_only=True)
    assert set(data) == {"model_state_dict", "optimizer_state_dict"}
    sd = data["model_state_dict"]
    # The book's names: LayerNorm scale/shift and each attention's causal mask buffer.
    assert "trf_blocks.0.norm1.scale" in sd and "final_norm.shift" in sd
    assert not any(k.endswith("norm1.weight") for k in sd)
    assert torch.equal(sd["trf_blocks.1.att.mask"], torch.triu(torch.ones(16, 16), diagonal=1))
    assert "trf_blocks.0.ff.layers.0.weight" in sd and "trf_blocks.0.att.W_query.weight" in sd
    n_book = sum(1 for _ in model.state_dict()) + CFG.n_layers
    assert len(sd) == n_book
    back, opt = import_book_pth(out, CFG)
    for k, v in model.state_dict().items():
        assert torch.equal(back.state_dict()[k], v)
    assert opt is not None and len(opt["state"]) == len(list(model.parameters()))
    with pytest.raises(CheckpointError, match="does not match the model configuration"):
        import_book_pth(out, GPTConfig(context_length=16, emb_dim=32, n_heads=2, n_layers=2))
