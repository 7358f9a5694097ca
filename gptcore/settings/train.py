"""Model configuration, named presets and validated loading from dicts / TOML.

`dataclass_from_dict` is the one place that turns untrusted key/value data (a
TOML file, `--set key=value` overrides, a checkpoint's JSON) into a config
dataclass: unknown keys, wrong types and out-of-range values raise ConfigError
naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from typing import Any

from gptcore.errors import ConfigError
from gptcore.settings.model import GPTConfig

if sys.version_info >= (3, 11):
    pass
else:  # pragma: no cover - exercised on Python 3.10 only
    pass


PRECISIONS = ("auto", "fp32", "bf16", "fp16")


# Upper bounds that stop a typo from failing late (after the run folder exists, or
# after a whole epoch) or from exhausting memory.
MAX_SAMPLE_TOKENS = 100_000  # also generation's cap on new tokens (generate.py)


MAX_START_CONTEXT = 100_000  # characters of the per-epoch sample's prompt


MAX_WINDOWS_PER_EPOCH = 100_000_000  # one epoch's order is a list of this many ints


MAX_EPOCHS = 1_000_000


MAX_TRAIN_SEED = 2**64 - 1  # torch.manual_seed's range (negative seeds are refused)


ADAMW_IMPLS = ("auto", "fused", "foreach", "default")


DROPOUT_MASKS = ("torch", "fast")


LR_SCHEDULES = ("constant", "cosine")


SAMPLERS = ("sequential", "random")


MIN_SPIKE_WINDOW = 10  # fewer past steps never judge a spike (gptcore.health)


MAX_SPIKE_WINDOW = 10_000  # each step's z-score reads the whole window


@dataclass(frozen=True)
class TrainConfig:
    """Everything about a training run except the model's shape.

    Defaults follow the book's chapter-5 run where the book sets a value.
    """

    corpus: str = "builtin"  # a path, "builtin", or "verdict" (the book's text in the data dir)
    decode_errors: str = "strict"  # or "replace"
    train_ratio: float = 0.9
    batch_size: int = 2
    max_length: int | None = None  # window length; None = the model's context length
    stride: int | None = None  # None = max_length (the book's setting)
    shuffle: bool = True
    drop_last: bool = True
    sampler: str = "sequential"  # "random": random-offset windows for large corpora
    samples_per_epoch: int | None = None  # windows per epoch with sampler = "random"
    epochs: int = 10
    max_steps: int | None = None
    max_time_s: float | None = None
    eval_freq: int = 5
    eval_iter: int = 5
    start_context: str = "Every effort moves you"
    sample_tokens: int = 50
    lr: float = 4e-4
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.999
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0
    grad_clip: float | None = None
    grad_accum: int = 1
    seed: int = 123
    device: str = "auto"
    precision: str = "auto"
    compile: bool = False
    adamw: str = (
        "auto"  # "auto" (fused where available), "fused", "foreach", "default" (the book's)
    )
    # "fast": dropout masks four to a random word under CPU autocast (gptcore.dropout);
    # ~10% faster bf16 steps, but other draws than the book's run (its curve differs).
    dropout_masks: str = "torch"
    checkpoint_every: int | None = None  # steps; a checkpoint is also saved after each epoch
    keep_last: int = 3
    init: str | None = None  # e.g. "gpt2:124M" or "weights:DIR" to continue pretraining
    # Health signals (gptcore.health): 0 turns each detector off.
    overfit_evals: int = 3  # evals in a row with val loss up and train loss down
    spike_window: int = 50  # steps whose loss / grad norm a new one is compared with
    spike_z: float = 6.0  # z-score above which a step is a spike
    skip_spikes: bool = False  # do not apply the update of a spiking step

    def __post_init__(self) -> None:
        positive = ("batch_size", "epochs", "eval_freq", "eval_iter", "grad_accum", "keep_last")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"train.{name} must be positive, got {getattr(self, name)}")
        for name in ("max_length", "stride", "max_steps", "samples_per_epoch", "checkpoint_every"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise ConfigError(f"train.{name} must be positive, got {value}")
        for name in ("sample_tokens", "warmup_steps", "overfit_evals", "spike_z"):
            if getattr(self, name) < 0:
                raise ConfigError(f"train.{name} must be >= 0, got {getattr(self, name)}")
        limits = {
            "sample_tokens": MAX_SAMPLE_TOKENS,
            "samples_per_epoch": MAX_WINDOWS_PER_EPOCH,
            "epochs": MAX_EPOCHS,
            "seed": MAX_TRAIN_SEED,
            "spike_window": MAX_SPIKE_WINDOW,
        }
        for name, high in limits.items():
            value = getattr(self, name)
            if value is not None and value > high:
                raise ConfigError(f"train.{name} must be at most {high:,}, got {value:,}")
        if self.spike_window < MIN_SPIKE_WINDOW:
            raise ConfigError(
                f"train.spike_window must be at least {MIN_SPIKE_WINDOW} (the points a "
                f"spike is judged against), got {self.spike_window}"
            )
        if self.seed < 0:
            raise ConfigError(f"train.seed must be >= 0, got {self.seed}")
        if len(self.start_context) > MAX_START_CONTEXT:
            raise ConfigError(
                f"train.start_context must be at most {MAX_START_CONTEXT:,} characters, "
                f"got {len(self.start_context):,}"
            )
        if not self.corpus.strip():
            # An empty path would mean the current folder.
            raise ConfigError(
                'train.corpus is empty: give a file, a folder, "builtin" or "verdict"'
            )
        if self.max_time_s is not None and self.max_time_s <= 0:
            raise ConfigError(f"train.max_time_s must be positive, got {self.max_time_s}")
        if not 0 < self.train_ratio < 1:
            raise ConfigError(f"train.train_ratio must be between 0 and 1, got {self.train_ratio}")
        if self.lr <= 0 or self.min_lr < 0 or self.min_lr > self.lr:
            raise ConfigError(
                f"train.lr must be > 0 and 0 <= train.min_lr <= lr, got lr={self.lr}, min_lr={self.min_lr}"
            )
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        for name in ("beta1", "beta2"):
            if not 0 <= getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(f"train.grad_clip must be positive, got {self.grad_clip}")
        choices = {
            "precision": PRECISIONS,
            "lr_schedule": LR_SCHEDULES,
            "sampler": SAMPLERS,
            "decode_errors": ("strict", "replace"),
            "adamw": ADAMW_IMPLS,
            "dropout_masks": DROPOUT_MASKS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(
                    f"train.{name} must be one of {', '.join(allowed)}, got {getattr(self, name)!r}"
                )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def check_trainable(model: GPTConfig, train: TrainConfig) -> None:
    """Raise ConfigError when `train` cannot run on `model`: the rules across the two
    that the Trainer (before it writes anything) and the app's Train form both apply."""
    from gptcore.model.tokenizer import VOCAB_SIZE

    if model.vocab_size < VOCAB_SIZE:
        # Token ids of the corpus would index past the embedding (an IndexError mid-run).
        raise ConfigError(
            f"model.vocab_size must be at least {VOCAB_SIZE}, the tokenizer's, "
            f"got {model.vocab_size}"
        )
