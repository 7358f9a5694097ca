"""Importing the book's model_and_optimizer.pth keeps everything it holds (issue 14, Deliver 6).

The file holds the weights and the AdamW state. The imported run keeps both and
records train settings that resume under the config it was trained with, so
continuing it in gpt-tui matches the book's code continuing from the same file.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import torch

from gptcore.cli import main
from gptcore.data.corpus import raw_topics_text
from gptcore.model.gpt import GPTModel
from gptcore.runs.checkpoint import decode_rng, load_checkpoint, save_checkpoint
from gptcore.runs.events import EvalEnd
from gptcore.runs.metrics import read_metrics
from gptcore.runs.rundir import RunDir
from gptcore.settings.files import load_run_config
from gptcore.settings.model import GPTConfig
from gptcore.settings.train import TrainConfig
from gptcore.training.evaluate import calc_loss_batch
from gptcore.training.resume import check_resume
from gptcore.util.paths import runs_dir
from gptcore.util.tomlwrite import toml_value
from gptcore.weights.book import export_book_pth

from .conftest import SHARED
from .run_helpers import book_train_model_simple

BOOK_STYLE = SHARED / "bench" / "book_style.py"
TINY = GPTConfig(context_length=16, emb_dim=16, n_heads=2, n_layers=1, drop_rate=0.0, init="gpt2")
TINY_SETS = ["--preset", "tiny"] + [
    arg
    for key in ("context_length=16", "emb_dim=16", "n_heads=2", "n_layers=1")
    for arg in ("--set", f"model.{key}")
]
LR, WEIGHT_DECAY, SEED = 4e-4, 0.1, 123
EPOCHS, EVAL_FREQ, EVAL_ITER = 2, 3, 2

# The book's settings at a tiny scale: batch 2, windows of the context length, shuffled
# train loader with drop_last, fp32 and torch's own AdamW update.
BOOK_LIKE_RUN = f"""
[model]
context_length = 16
emb_dim = 16
n_heads = 2
n_layers = 1
drop_rate = 0.0

[train]
corpus = {{corpus}}
train_ratio = 0.9
batch_size = 2
max_length = 16
stride = 16
shuffle = true
drop_last = true
epochs = {EPOCHS}
eval_freq = {EVAL_FREQ}
eval_iter = {EVAL_ITER}
sample_tokens = 0
lr = {LR}
weight_decay = {WEIGHT_DECAY}
seed = {SEED}
device = "cpu"
precision = "fp32"
adamw = "default"
"""


@pytest.fixture
def run_config(tmp_path: Path) -> Path:
    """A book-like run config training TINY on 1,000 characters (7 steps per epoch)."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text(raw_topics_text()[:1000], encoding="utf-8")
    path = tmp_path / "book-like.toml"
    path.write_text(BOOK_LIKE_RUN.format(corpus=toml_value(str(corpus))), encoding="utf-8")
    return path


def book_style() -> ModuleType:
    if not BOOK_STYLE.exists():
        pytest.skip(f"the book-style reference model is not at {BOOK_STYLE}")
    spec = importlib.util.spec_from_file_location("book_style", BOOK_STYLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# book_style.py names its feed-forward nn.Sequential `ff.N`; the book's FeedForward
# holds it as `ff.layers.N`, which is what the book's .pth contains.
def to_book_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {re.sub(r"\.ff\.(\d+)\.", r".ff.layers.\1.", k): v for k, v in state.items()}


def from_book_names(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {re.sub(r"\.ff\.layers\.(\d+)\.", r".ff.\1.", k): v for k, v in state.items()}


def book_train(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    corpus_file: Path,
    max_steps: int | None = None,
) -> list[tuple[int, float, float]]:
    """The book's train_model_simple with this file's settings."""
    return book_train_model_simple(
        model, optimizer, corpus_file, EPOCHS, EVAL_FREQ, EVAL_ITER, max_steps
    )


def book_cfg(book: ModuleType) -> dict:
    return dict(book.CFG_124M, **{k: v for k, v in TINY.to_dict().items() if k in book.CFG_124M})


def book_continue(pth: Path, book: ModuleType, corpus_file: Path) -> list[tuple[int, float, float]]:
    """The book's code continuing from its file (its exercise 5.4 solution): model, load,
    AdamW, load, then torch.manual_seed(123), the loaders and train_model_simple."""
    checkpoint = torch.load(pth, weights_only=True)
    model = book.BookGPT(book_cfg(book))
    model.load_state_dict(from_book_names(checkpoint["model_state_dict"]))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    optimizer.load_state_dict(checkpoint["optimizer_state_dict"])
    torch.manual_seed(SEED)
    return book_train(model, optimizer, corpus_file)


def make_book_pth(book: ModuleType, corpus_file: Path, path: Path) -> Path:
    """A few steps of the book's run with its model code, saved as the book saves it."""
    torch.manual_seed(SEED)
    model = book.BookGPT(book_cfg(book))
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    book_train(model, optimizer, corpus_file, max_steps=3)
    state = {
        "model_state_dict": to_book_names(model.state_dict()),
        "optimizer_state_dict": optimizer.state_dict(),
    }
    torch.save(state, path)
    return path


def test_imported_pth_continues_like_the_books_code(
    run_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Before: the optimizer state was dropped (a fresh AdamW) and resuming the import
    under its config was refused (train.max_length None vs 16)."""
    book = book_style()
    corpus_file = tmp_path / "corpus.txt"
    pth = make_book_pth(book, corpus_file, tmp_path / "model_and_optimizer.pth")

    args = ["checkpoints", "import", str(pth), "--config", str(run_config), "--name", "imp"]
    assert main(args) == 0
    imported = Path(capsys.readouterr().out.strip())
    assert main(["train", "--resume", str(imported), "--config", str(run_config)]) == 0
    run = RunDir.of_checkpoint(imported)
    assert run is not None
    ours = [
        (e.step, e.train_loss, e.val_loss)
        for e in read_metrics(run.metrics)
        if isinstance(e, EvalEnd)
    ]

    theirs = book_continue(pth, book, corpus_file)
    assert [s for s, *_ in ours] == [s for s, *_ in theirs] == [0, 3, 6, 9, 12]
    # The models differ only in float rounding (SDPA vs explicit softmax attention).
    for (step, our_train, our_val), (_, book_train_loss, book_val) in zip(
        ours, theirs, strict=True
    ):
        assert our_train == pytest.approx(book_train_loss, abs=1e-5), step
        assert our_val == pytest.approx(book_val, abs=1e-5), step


def tiny_pth(tmp_path: Path) -> tuple[Path, torch.optim.Optimizer]:
    """A book .pth written by export_book_pth after 3 AdamW steps of a tiny GPTModel."""
    torch.manual_seed(SEED)
    model = GPTModel(TINY)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    ids = torch.randint(0, TINY.vocab_size, (2, 17))
    for _ in range(3):
        optimizer.zero_grad()
        calc_loss_batch(ids[:, :-1], ids[:, 1:], model, "cpu").backward()
        optimizer.step()
    ckpt = save_checkpoint(
        tmp_path / "src" / "checkpoints" / "step-000003",
        model,
        train_config=TrainConfig().to_dict(),
        step=3,
        epoch=0,
        tokens_seen=96,
        optimizer=optimizer,
    )
    return export_book_pth(ckpt, tmp_path / "model_and_optimizer.pth"), optimizer


def test_import_writes_optimizer_state_and_resumes_under_the_book_settings(
    run_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pth, optimizer = tiny_pth(tmp_path)
    assert main(["checkpoints", "import", str(pth), *TINY_SETS]) == 0
    imported = Path(capsys.readouterr().out.strip())

    assert (imported / "optimizer.pt").is_file()
    ckpt = load_checkpoint(imported)
    assert ckpt.has_optimizer and ckpt.reason == "imported"
    assert (ckpt.step, ckpt.epoch, ckpt.step_in_epoch, ckpt.tokens_seen) == (0, 0, 0, 0)
    # The RNG the run continues with is freshly seeded, as the book's code seeds it.
    fresh = torch.Generator().manual_seed(SEED).get_state()
    assert torch.equal(decode_rng(ckpt.rng)["torch"], fresh)
    saved = ckpt.optimizer_state()["optimizer"]
    original = optimizer.state_dict()
    assert saved["param_groups"][0]["params"] == original["param_groups"][0]["params"]
    assert saved["param_groups"][0]["lr"] == LR
    for pid, state in original["state"].items():
        for key in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(saved["state"][pid][key], state[key]), (pid, key)

    # Without --config the recorded settings are the book's (configs/book.toml) with
    # windows of the model's context length: resuming under them is not refused.
    _, book_settings = load_run_config("book", ["max_length=16", "stride=16"])
    check_resume(ckpt, TINY, book_settings)
    assert load_run_config(RunDir.of_checkpoint(imported).config) == (TINY, book_settings)

    # And the command line resumes it under a config with the same data settings.
    assert (
        main(
            [
                "train",
                "--resume",
                str(imported),
                "--config",
                str(run_config),
                "--set",
                "max_steps=2",
            ]
        )
        == 0
    )
    assert load_checkpoint(RunDir.of_checkpoint(imported).checkpoint(2)).step == 2


def _drop_last_param(opt: dict) -> None:
    opt["param_groups"][0]["params"].pop()


def _wrong_shape(opt: dict) -> None:
    state = opt["state"][2]  # trf_blocks.0.att.W_query.weight (16 x 16)
    state["exp_avg"] = state["exp_avg"][:, :8]


def _not_adamw(opt: dict) -> None:
    opt["state"] = {pid: {"momentum_buffer": s["exp_avg"]} for pid, s in opt["state"].items()}


@pytest.mark.parametrize(
    ("corrupt", "message"),
    [
        (_drop_last_param, "its groups list 17 parameters, the model has 18"),
        (_wrong_shape, "exp_avg of trf_blocks.0.att.W_query.weight has shape (16, 8)"),
        (_not_adamw, "has no exp_avg / exp_avg_sq"),
    ],
)
def test_import_refuses_an_optimizer_state_that_does_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture, corrupt, message: str
) -> None:
    pth, _ = tiny_pth(tmp_path)
    data = torch.load(pth, weights_only=True)
    corrupt(data["optimizer_state_dict"])
    torch.save(data, pth)
    capsys.readouterr()
    assert main(["checkpoints", "import", str(pth), *TINY_SETS]) == 2
    err = capsys.readouterr().err
    assert "optimizer_state_dict" in err and message in err
    assert not runs_dir().exists() or not any(runs_dir().iterdir())  # nothing written


def test_a_model_only_file_imports_with_a_note(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    pth, _ = tiny_pth(tmp_path)
    data = torch.load(pth, weights_only=True)
    torch.save({"model_state_dict": data["model_state_dict"]}, pth)
    assert main(["checkpoints", "import", str(pth), *TINY_SETS]) == 0
    out = capsys.readouterr()
    assert "AdamW starts afresh" in out.err
    assert not load_checkpoint(Path(out.out.strip())).has_optimizer
