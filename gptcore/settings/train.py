"""A training run's settings (TrainConfig): everything but the model's shape.

Each setting is declared once (gptcore.settings.declare). Defaults follow the
book's chapter-5 run where the book sets a value.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import Any

from gptcore.errors import ConfigError
from gptcore.settings.declare import check, refuse, setting
from gptcore.settings.model import GPT2_VOCAB_SIZE, WEIGHT_PRECISIONS, GPTConfig

PRECISIONS = ("auto", *WEIGHT_PRECISIONS)  # auto: chosen from what the device runs natively
ADAMW_IMPLS = ("auto", "fused", "foreach", "default")
DROPOUT_MASKS = ("torch", "fast")
LR_SCHEDULES = ("constant", "cosine")
SAMPLERS = ("sequential", "random")
DECODE_ERRORS = ("strict", "replace")
SPLITS = ("position", "documents")
DEVICE_KINDS = ("auto", "cpu", "cuda", "mps")
KEEP_OPTIMIZER = ("latest", "all")  # which checkpoints keep their optimizer state

# Upper bounds that stop a typo from failing late (after the run folder exists, or
# after a whole epoch) or from exhausting memory.
MAX_SAMPLE_TOKENS = 100_000  # also generation's cap on new tokens
MAX_START_CONTEXT = 100_000  # characters of the per-epoch sample's prompt
MAX_WINDOWS_PER_EPOCH = 100_000_000  # one epoch's order is a list of this many ints
MAX_EPOCHS = 1_000_000
MAX_TRAIN_SEED = 2**64 - 1  # torch.manual_seed's range (negative seeds are refused)
MIN_SPIKE_WINDOW = 10  # fewer past steps never judge a spike (gptcore.training.health)
MAX_SPIKE_WINDOW = 10_000  # each step's z-score reads the whole window
MIXTURE_PREFIX = "mix:"  # a corpus that is a weighted list of sources (gptcore.data.mixture)
_DEVICE = re.compile(r"^(auto|cpu|mps|cuda)(:\d+)?$")


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model's shape."""

    SETTINGS_PREFIX = "train."

    corpus: str = setting(
        "builtin",
        label="corpus",
        help="a file (text, .jsonl, .json, .parquet, each also .gz/.zst/.bz2/.xz), a "
        "folder of them, a saved dataset folder, hf:NAME[:CONFIG][@SPLIT], builtin, "
        "verdict (the book's text, fetched by `gpt-tui download verdict`), or a mixture "
        "mix:WEIGHT*SOURCE;... ([[train.corpus]] tables in a config)",
        metavar="PATH",
    )
    decode_errors: str = setting(
        "strict",
        label="bad UTF-8",
        help="replace decodes bad UTF-8 as U+FFFD",
        choices=DECODE_ERRORS,
        metavar="MODE",
    )
    train_ratio: float = setting(
        0.9,
        label="train ratio",
        help="the train split's share, by characters, as the book",
        low=0,
        low_open=True,
        high=1,
        high_open=True,
    )
    text_field: str = setting(
        "text",
        label="text field",
        help="the JSON field or Parquet / dataset column that holds a record's text",
        metavar="NAME",
    )
    split: str = setting(
        "position",
        label="split",
        help="position: cut the text at train_ratio (the book's); documents: whole "
        "documents to validation at random (split_seed), none cut",
        choices=SPLITS,
    )
    split_seed: int = setting(
        0, label="split seed", help="the seed of the documents split", low=0, cap=2**63 - 1
    )
    val_corpus: str | None = setting(
        None,
        label="val corpus",
        help="validate on this corpus instead (the whole corpus then trains), e.g. a "
        "held-out file or hf:NAME@validation",
        metavar="PATH",
    )
    batch_size: int | str = setting(
        2,
        label="batch size",
        help="windows per batch (per process under torchrun); auto: the largest that fits "
        "the device's free memory (gptcore.planner), grad_accum then keeps effective_batch",
        low=1,
        metavar="N",
        words=("auto",),
    )
    effective_batch: int | None = setting(
        None,
        label="eff. batch",
        help="windows per optimizer step (per process): grad_accum becomes effective_batch / "
        "batch_size (off: batch_size x grad_accum)",
        low=1,
        metavar="N",
    )
    max_length: int | None = setting(
        None, label="window", help="window length (off: the model's context length)", low=1
    )
    stride: int | None = setting(
        None,
        label="stride",
        help="step between windows (off: the window length, the book's)",
        low=1,
    )
    shuffle: bool = setting(True, label="shuffle", help="shuffle the train windows each epoch")
    drop_last: bool = setting(True, label="drop last", help="drop an incomplete last batch")
    sampler: str = setting(
        "sequential",
        label="sampler",
        help="random: samples_per_epoch windows at random offsets (large corpora)",
        choices=SAMPLERS,
    )
    samples_per_epoch: int | None = setting(
        None,
        label="samples",
        help="windows per epoch with sampler = random",
        low=1,
        cap=MAX_WINDOWS_PER_EPOCH,
    )
    epochs: int = setting(
        10, label="epochs", help="passes over the train split", low=1, cap=MAX_EPOCHS
    )
    max_steps: int | None = setting(
        None, label="max steps", help="stop after this many optimizer steps", low=1
    )
    max_time_s: float | None = setting(
        None, label="max time", help="stop after this many seconds", low=0, low_open=True
    )
    eval_freq: int = setting(5, label="eval every", help="evaluate after every N-th step", low=1)
    eval_iter: int = setting(5, label="eval iters", help="batches each evaluation averages", low=1)
    start_context: str = setting(
        "Every effort moves you",
        label="prompt",
        help="the per-epoch greedy sample's prompt",
        cap=MAX_START_CONTEXT,
    )
    sample_tokens: int = setting(
        50,
        label="sample len",
        help="tokens in the per-epoch sample (0 = none)",
        low=0,
        cap=MAX_SAMPLE_TOKENS,
    )
    lr: float = setting(
        4e-4, label="learn rate", help="AdamW's learning rate", low=0, low_open=True
    )
    weight_decay: float = setting(0.1, label="wt decay", help="AdamW's weight decay", low=0)
    beta1: float = setting(0.9, label="beta1", help="AdamW's beta1", low=0, high=1, high_open=True)
    beta2: float = setting(
        0.999, label="beta2", help="AdamW's beta2", low=0, high=1, high_open=True
    )
    lr_schedule: str = setting(
        "constant",
        label="schedule",
        help="cosine: linear warmup, then cosine decay to min_lr",
        choices=LR_SCHEDULES,
    )
    warmup_steps: int = setting(0, label="warmup", help="steps of linear warmup", low=0)
    min_lr: float = setting(0.0, label="min lr", help="where the cosine ends (<= lr)", low=0)
    grad_clip: float | None = setting(
        None, label="grad clip", help="clip the global gradient norm", low=0, low_open=True
    )
    grad_accum: int = setting(1, label="grad accum", help="micro-batches per optimizer step", low=1)
    seed: int = setting(
        123,
        label="seed",
        help="torch.manual_seed right before the model is built",
        low=0,
        cap=MAX_TRAIN_SEED,
    )
    device: str = setting(
        "auto",
        label="device",
        help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps",
        metavar="DEVICE",
    )
    precision: str = setting(
        "auto",
        label="precision",
        help="auto: bf16 autocast where the device runs it natively, else fp32 (fp16 with "
        "a grad scaler on CUDA without bf16), from a table, never a timing "
        "(GPT_TUI_CPU_BF16=1/0 overrides the CPU's detection); a resume keeps the "
        "precision its checkpoint recorded; the book's config sets fp32",
        choices=PRECISIONS,
    )
    compile: bool = setting(False, label="compile", help="torch.compile the model")
    adamw: str = setting(
        "auto",
        label="AdamW",
        help="auto (fused where available), fused, foreach, default (the book's)",
        choices=ADAMW_IMPLS,
    )
    dropout_masks: str = setting(
        "torch",
        label="dropout masks",
        help="fast: under CPU bf16 autocast, four masks to one random word (faster; not "
        "the book's draws, so not the book's curve)",
        choices=DROPOUT_MASKS,
    )
    checkpoint_every: int | None = setting(
        None, label="ckpt every", help="also save a checkpoint every N steps", low=1
    )
    keep_last: int = setting(
        3,
        label="keep last",
        help="automatic checkpoints kept (plus the best; manual and renamed ones are never pruned)",
        low=1,
    )
    keep_optimizer: str = setting(
        "latest",
        label="keep optimizer",
        help="latest: older automatic checkpoints keep weights only (a resume uses the "
        "newest, which keeps its AdamW state); all: every checkpoint keeps it (3x the disk)",
        choices=KEEP_OPTIMIZER,
    )
    init: str | None = setting(
        None,
        label="init from",
        help="start from pretrained weights: gpt2:124M or weights:DIR",
        metavar="SPEC",
    )
    # Health signals (gptcore.training.health): 0 turns each detector off.
    overfit_evals: int = setting(
        3,
        label="overfit evals",
        help="evaluations in a row with val loss up and train loss down before an "
        "overfitting event (0 = off)",
        low=0,
    )
    spike_window: int = setting(
        50,
        label="spike window",
        help="past steps a step's loss / gradient norm is compared with",
        low=MIN_SPIKE_WINDOW,
        cap=MAX_SPIKE_WINDOW,
    )
    spike_z: float = setting(
        6.0, label="spike z", help="z-score above which a step is a spike (0 = off)", low=0
    )
    skip_spikes: bool = setting(
        False, label="skip spikes", help="do not apply a spiking step's update"
    )

    def __post_init__(self) -> None:
        check(self)
        if not self.corpus.strip():  # an empty path would mean the current folder
            refuse(self, "corpus", 'is empty: give a file, a folder, "builtin" or "verdict"')
        if self.corpus.startswith(MIXTURE_PREFIX) and self.sampler != "random":
            refuse(
                self,
                "sampler",
                'must be "random" for a corpus mixture (windows are drawn by weight)',
            )
        if not self.text_field.strip():
            refuse(self, "text_field", "is empty: name the field or column holding the text")
        if self.min_lr > self.lr:
            refuse(
                self, "min_lr", f"must be at most train.lr, got lr={self.lr}, min_lr={self.min_lr}"
            )
        if self.effective_batch is not None and isinstance(self.batch_size, int):
            if self.effective_batch % self.batch_size:
                refuse(
                    self,
                    "effective_batch",
                    f"({self.effective_batch}) must be a multiple of train.batch_size "
                    f"({self.batch_size})",
                )
            if self.grad_accum not in (1, self.effective_batch // self.batch_size):
                refuse(
                    self,
                    "grad_accum",
                    f"({self.grad_accum}) disagrees with effective_batch / batch_size "
                    f"({self.effective_batch} / {self.batch_size}); leave it at 1",
                )
        if not _DEVICE.match(self.device.strip()):
            refuse(
                self,
                "device",
                f"must be one of {', '.join(DEVICE_KINDS)} (or cuda:N), got {self.device!r}",
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_trainable(model: GPTConfig, train: TrainConfig) -> None:
    """Raise ConfigError when `train` cannot run on `model`: the rules across the two
    that the Trainer (before it writes anything) and the app's Train form both apply."""
    if model.vocab_size < GPT2_VOCAB_SIZE:
        # Token ids of the corpus would index past the embedding (an IndexError mid-run).
        raise ConfigError(
            f"model.vocab_size must be at least {GPT2_VOCAB_SIZE}, the tokenizer's, "
            f"got {model.vocab_size}"
        )
