"""Importing the book's model_and_optimizer.pth as a run (gptcore.weights.book_import).

The file is made here the way the book makes it: the book's GPTModel (the book-style
model in ../shared/bench/book_style.py, with the book's parameter names), one AdamW
step, then torch.save({"model_state_dict", "optimizer_state_dict"}). Continuing such
a run against the book's own code is tests/test_hostile_import.py's job; this file
checks what the import writes and what it refuses.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch

from gptcore.errors import GptTuiError
from gptcore.runs.checkpoint import load_checkpoint
from gptcore.runs.checkpoints import list_checkpoints
from gptcore.runs.rundir import RunDir
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.training.resume import check_resume, prepare_run
from gptcore.util.paths import runs_dir
from gptcore.weights import book_import
from gptcore.weights.book_import import import_book_run, import_configs

from .conftest import SHARED

BOOK_STYLE = SHARED / "bench" / "book_style.py"
# The book's model (configs/book.toml: dropout 0.1) at a tiny size.
MODEL = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=2, drop_rate=0.1)
LR, WEIGHT_DECAY = 4e-4, 0.1


@pytest.fixture(scope="module")
def book() -> ModuleType:
    if not BOOK_STYLE.exists():
        pytest.skip(f"the book-style reference model is not at {BOOK_STYLE}")
    spec = importlib.util.spec_from_file_location("book_style", BOOK_STYLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def book_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """book_style.py keeps its feed-forward layers as `ff.N`; the book's FeedForward
    holds them as `ff.layers.N`, which is what the book's file contains."""
    return {re.sub(r"\.ff\.(\d+)\.", r".ff.layers.\1.", k): v for k, v in state.items()}


@pytest.fixture(scope="module")
def book_file(book: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """model_and_optimizer.pth as the book's chapter 5 saves it, after one AdamW step."""
    torch.manual_seed(123)
    cfg = dict(book.CFG_124M, **{k: getattr(MODEL, k) for k in book.CFG_124M})
    model = book.BookGPT(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    ids = torch.randint(0, MODEL.vocab_size, (2, MODEL.context_length + 1))
    logits = model(ids[:, :-1])
    torch.nn.functional.cross_entropy(logits.flatten(0, 1), ids[:, 1:].flatten()).backward()
    optimizer.step()
    path = tmp_path_factory.mktemp("book") / "model_and_optimizer.pth"
    state = {
        "model_state_dict": book_names(model.state_dict()),
        "optimizer_state_dict": optimizer.state_dict(),
    }
    torch.save(state, path)
    return path


def book_name(ours: str) -> str:
    """The book's name of one of our parameters: its LayerNorm holds scale and shift."""
    return re.sub(
        r"norm(\d?)\.weight$", r"norm\1.scale", re.sub(r"norm(\d?)\.bias$", r"norm\1.shift", ours)
    )


def model_sets() -> list[str]:
    """`--set` strings that give MODEL's shape."""
    return [
        f"model.{k}={getattr(MODEL, k)}"
        for k in ("context_length", "emb_dim", "n_heads", "n_layers")
    ]


def book_state(path: Path) -> dict:
    return torch.load(path, weights_only=True)


# ------------------------------------------------------------------ what the import writes


def test_the_import_is_a_run_holding_the_books_weights_and_optimizer(book_file: Path) -> None:
    model, train = import_configs(None, None, model_sets())
    assert model == MODEL
    path = import_book_run(book_file, model, train, name="from the book")

    run = RunDir.of_checkpoint(path)
    assert run is not None and run.path.parent == runs_dir()
    assert run.name.endswith("-from-the-book")  # a folder name made safe
    assert load_run_config(run.config) == (model, train)  # resumes under its own config

    ckpt = load_checkpoint(path)  # every file's sha256 verified
    assert (ckpt.reason, ckpt.step, ckpt.epoch, ckpt.tokens_seen) == ("imported", 0, 0, 0)
    assert ckpt.model_config == model and ckpt.train_config == train.to_dict()
    assert ckpt.val_loss is None and ckpt.best_val_loss is None

    source = book_state(book_file)
    theirs = source["model_state_dict"]
    ours = ckpt.state_dict()
    masks = [k for k in theirs if k.endswith(".att.mask")]
    assert len(masks) == MODEL.n_layers  # the book's causal-mask buffers: not weights
    assert sorted(book_name(k) for k in ours) == sorted(set(theirs) - set(masks))
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[book_name(name)]), name

    saved = ckpt.optimizer_state()
    assert saved is not None and saved["scaler"] is None
    opt, original = saved["optimizer"], source["optimizer_state_dict"]
    assert opt["param_groups"][0]["lr"] == LR  # the book's hyperparameters come along
    assert opt["param_groups"][0]["weight_decay"] == WEIGHT_DECAY
    assert sorted(opt["state"]) == sorted(original["state"])
    for pid, state in original["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(opt["state"][pid][key], state[key]), (pid, key)


def test_an_imported_run_is_listed_and_resumes_under_its_settings(book_file: Path) -> None:
    model, train = import_configs(None, None, model_sets())
    path = import_book_run(book_file, model, train, name="imp")
    (info,) = list_checkpoints()
    assert (info.path, info.step, info.epoch, info.error) == (path, 0, 1, None)

    prepared = prepare_run(resume=RunDir.of_checkpoint(path).name)
    assert prepared.checkpoint is not None and prepared.checkpoint.path == path
    assert (prepared.model_config, prepared.train_config) == (model, train)
    check_resume(prepared.checkpoint, prepared.model_config, prepared.train_config)


def test_each_import_is_a_new_run(book_file: Path) -> None:
    model, train = import_configs(None, None, model_sets())
    first = import_book_run(book_file, model, train, name="same")
    second = import_book_run(book_file, model, train, name="same")
    assert RunDir.of_checkpoint(first) != RunDir.of_checkpoint(second)
    assert first.exists() and second.exists()


def test_the_recorded_settings_are_the_books_with_windows_of_the_context(tmp_path: Path) -> None:
    """Without a config: configs/book.toml, windows of the model's context length (the
    book's max_length = stride = context_length); a --set still wins over them."""
    model, train = import_configs(None, None, model_sets())
    _, book = load_run_config("book")
    assert (train.max_length, train.stride) == (16, 16)
    assert train == dataclasses.replace(book, max_length=16, stride=16)
    _, strided = import_configs(None, None, [*model_sets(), "stride=8"])
    assert (strided.max_length, strided.stride) == (16, 8)
    # With the config the file was trained with, that config is recorded as it is.
    config = tmp_path / "run.toml"
    config.write_text(
        "[model]\ncontext_length = 16\nemb_dim = 16\nn_heads = 2\nn_layers = 2\n"
        "[train]\nbatch_size = 4\nmax_length = 8\n",
        encoding="utf-8",
    )
    assert import_configs(config) == load_run_config(config)
    model, train = import_configs(config, preset="tiny")  # --preset replaces its model
    assert (model, train.batch_size) == (load_run_config("tiny")[0], 4)


# ------------------------------------------------------------------ what it refuses


def refused(path: Path, model: GPTConfig = MODEL) -> str:
    """The one-line error importing `path` gives; nothing may be written."""
    _, train = import_configs(None, None, model_sets())
    with pytest.raises(GptTuiError) as info:
        import_book_run(path, model, train)
    assert not runs_dir().exists() or not any(runs_dir().iterdir()), "a run was written"
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_file_for_another_model_shape_is_refused(book_file: Path) -> None:
    wider = GPTConfig(context_length=16, emb_dim=32, n_heads=2, n_layers=2, drop_rate=0.0)
    message = refused(book_file, wider)
    assert "does not match the model configuration" in message and "size mismatch" in message
    deeper = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=3, drop_rate=0.0)
    assert "trf_blocks.2" in refused(book_file, deeper)  # names what is missing


def test_a_hugging_face_gpt2_state_dict_is_refused(tmp_path: Path) -> None:
    """A foreign layout (transformers' GPT2LMHeadModel names) is not the book's."""
    path = tmp_path / "pytorch_model.pth"
    torch.save(
        {
            "transformer.wte.weight": torch.zeros(50257, 16),
            "lm_head.weight": torch.zeros(50257, 16),
        },
        path,
    )
    message = refused(path)
    assert "does not match the model configuration" in message
    assert "Unexpected key(s)" in message and "transformer.wte.weight" in message


@pytest.mark.parametrize(
    ("payload", "words"),
    [
        ([torch.zeros(2)], "does not hold a state dict"),
        (torch.zeros(2), "does not hold a state dict"),
        ({"model_state_dict": {"tok_emb.weight": [1.0, 2.0]}}, "no model_state_dict of tensors"),
        ({"model_state_dict": "weights.bin"}, "no model_state_dict of tensors"),
        ({"optimizer_state_dict": {"state": {}, "param_groups": []}}, "model_state_dict"),
    ],
    ids=["list", "tensor", "lists-not-tensors", "a-string", "optimizer-only"],
)
def test_a_pytorch_file_without_the_books_weights_is_refused(
    tmp_path: Path, payload: object, words: str
) -> None:
    path = tmp_path / "model.pth"
    torch.save(payload, path)
    assert words in refused(path)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "truncated or not a PyTorch file"),
        (b"this is not a model\n", "truncated or not a PyTorch file"),
        (b"PK\x03\x04" + b"\x00" * 64, "truncated or not a PyTorch file"),  # a broken zip
    ],
    ids=["empty", "text", "broken-zip"],
)
def test_a_file_that_is_not_pytorch_is_refused(tmp_path: Path, content: bytes, words: str) -> None:
    path = tmp_path / "model.pth"
    path.write_bytes(content)
    assert words in refused(path)


def test_a_truncated_book_file_is_refused(book_file: Path, tmp_path: Path) -> None:
    cut = tmp_path / "cut.pth"
    data = book_file.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    assert "truncated or not a PyTorch file" in refused(cut)


def test_a_missing_file_or_a_folder_is_refused(tmp_path: Path) -> None:
    assert "file not found" in refused(tmp_path / "nowhere.pth")
    assert "is a folder, not a regular file" in refused(tmp_path)


class Payload:
    """A pickle that would run a command when loaded without weights_only."""

    marker = ""

    def __reduce__(self):
        import os

        return (os.system, (f"touch {Payload.marker}",))


def test_an_optimizer_state_that_runs_code_is_refused_without_running_it(
    book_file: Path, tmp_path: Path
) -> None:
    Payload.marker = str(tmp_path / "ran")
    data = book_state(book_file)
    data["optimizer_state_dict"]["param_groups"][0]["hook"] = Payload()
    hostile = tmp_path / "model_and_optimizer.pth"
    torch.save(data, hostile)
    assert "refusing to load" in refused(hostile)
    assert not Path(Payload.marker).exists()


def test_a_failed_save_leaves_no_half_run(book_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(book_import, "save_checkpoint", full_disk)
    model, train = import_configs(None, None, model_sets())
    with pytest.raises(OSError, match="No space left"):
        import_book_run(book_file, model, train, name="full")
    assert list(runs_dir().iterdir()) == []  # the run folder it made is gone again


def test_state_dict_keys_that_are_not_names_are_refused(book_file: Path, tmp_path: Path) -> None:
    data = torch.load(book_file, weights_only=True)
    data["model_state_dict"][7] = torch.zeros(1)
    path = tmp_path / "int-key.pth"
    torch.save(data, path)
    assert "keys are not all names" in refused(path)


def test_an_optimizer_state_without_adamw_settings_is_refused(
    book_file: Path, tmp_path: Path
) -> None:
    # It would import, then fail on the first resumed step (KeyError: 'betas').
    data = torch.load(book_file, weights_only=True)
    for group in data["optimizer_state_dict"]["param_groups"]:
        del group["betas"]
    path = tmp_path / "no-betas.pth"
    torch.save(data, path)
    assert "has no betas (AdamW's settings)" in refused(path)
