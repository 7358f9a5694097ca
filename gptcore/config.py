"""Model configuration, named presets and validated loading from dicts / TOML.

`dataclass_from_dict` is the one place that turns untrusted key/value data (a
TOML file, `--set key=value` overrides, a checkpoint's JSON) into a config
dataclass: unknown keys, wrong types and out-of-range values raise ConfigError
naming the key and where it came from.
"""

from __future__ import annotations

import dataclasses
import importlib.resources
import math
import sys
import types
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

from .errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

T = TypeVar("T")


# "book": PyTorch's default initialisation in the book's parameter order (its seeded
# numbers reproduce). "gpt2": GPT-2's recipe (nanoGPT, llm.c): normal(0, 0.02) weights,
# residual output projections scaled by 1/sqrt(2 * n_layers), zero biases.
INIT_SCHEMES = ("book", "gpt2")


@dataclass(frozen=True)
class GPTConfig:
    """GPT-2 architecture hyperparameters (the book's GPT_CONFIG_124M keys)."""

    vocab_size: int = 50257
    context_length: int = 256
    emb_dim: int = 768
    n_heads: int = 12
    n_layers: int = 12
    drop_rate: float = 0.1
    qkv_bias: bool = False
    tie_embeddings: bool = False
    # Weight initialisation (see INIT_SCHEMES); "book" keeps the book's seeded numbers.
    init: str = "book"
    # The embedding and output head get vocab_size rounded up to a multiple of this
    # (64: 50,304 rows), which GPU matmul kernels run faster; the padding rows never
    # reach the logits (GPTModel.forward slices them off). 1 = no padding, the book's.
    vocab_multiple: int = 1

    def __post_init__(self) -> None:
        for name in ("vocab_size", "context_length", "emb_dim", "n_heads", "n_layers"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"model.{name} must be a positive integer, got {value!r}")
        multiple = self.vocab_multiple
        if isinstance(multiple, bool) or not isinstance(multiple, int) or not 1 <= multiple <= 4096:
            raise ConfigError(f"model.vocab_multiple must be between 1 and 4096, got {multiple!r}")
        if self.emb_dim % self.n_heads != 0:
            raise ConfigError(
                f"model.emb_dim ({self.emb_dim}) must be divisible by model.n_heads ({self.n_heads})"
            )
        rate = self.drop_rate
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ConfigError(f"model.drop_rate must be in [0, 1), got {rate!r}")
        if self.init not in INIT_SCHEMES:
            raise ConfigError(
                f"model.init must be one of {', '.join(map(repr, INIT_SCHEMES))}, got {self.init!r}"
            )

    @property
    def head_dim(self) -> int:
        return self.emb_dim // self.n_heads

    @property
    def padded_vocab_size(self) -> int:
        """Rows of the token embedding and output head: vocab_size rounded up to a
        multiple of vocab_multiple (50,257 -> 50,304 with 64)."""
        return -(-self.vocab_size // self.vocab_multiple) * self.vocab_multiple

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, GPTConfig] = {
    # The book's GPT_CONFIG_124M: short context, dropout, no qkv bias, untied head.
    "book-124m": GPTConfig(),
    "gpt2-small": GPTConfig(
        context_length=1024, drop_rate=0.0, qkv_bias=True, tie_embeddings=True, init="gpt2"
    ),
    "gpt2-medium": GPTConfig(
        context_length=1024,
        emb_dim=1024,
        n_layers=24,
        n_heads=16,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    "gpt2-large": GPTConfig(
        context_length=1024,
        emb_dim=1280,
        n_layers=36,
        n_heads=20,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    "gpt2-xl": GPTConfig(
        context_length=1024,
        emb_dim=1600,
        n_layers=48,
        n_heads=25,
        drop_rate=0.0,
        qkv_bias=True,
        tie_embeddings=True,
        init="gpt2",
    ),
    # Small enough to train for a few epochs in under a minute on 2 CPU cores.
    "tiny": GPTConfig(
        context_length=64, emb_dim=64, n_heads=4, n_layers=2, drop_rate=0.0, init="gpt2"
    ),
}


def describe_model(config: GPTConfig) -> str:
    """A model's preset name when it matches one, else its shape ("4x128 ctx128").

    The init scheme is ignored: it names how training started, not the model's shape
    (and checkpoints written before the setting existed read back as "book").
    A padded vocabulary is named after the shape: "gpt2-small (padded to 50,304)".
    """
    padded = ""
    if config.padded_vocab_size != config.vocab_size:
        padded = f" (padded to {config.padded_vocab_size:,})"
    for name, preset in PRESETS.items():
        same = dataclasses.replace(preset, init=config.init, vocab_multiple=config.vocab_multiple)
        if same == config:
            return name + padded
    return f"{config.n_layers}x{config.emb_dim} ctx{config.context_length}{padded}"


def get_preset(name: str) -> GPTConfig:
    known = ", ".join(PRESETS)
    if not isinstance(name, str) or name not in PRESETS:  # a TOML list or table is no name
        raise ConfigError(f"unknown model preset {name!r}; choose one of: {known}")
    return PRESETS[name]


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp`; ints are accepted for floats."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        names = " or ".join(_type_name(a) for a in args)
        raise ConfigError(f"{where} must be {names}, got {value!r}")
    if origin in (list, tuple):
        (item_tp, *_) = typing.get_args(tp) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if tp is Any:
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where} must be finite, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    return value


def dataclass_from_dict(cls: type[T], data: dict[str, Any], where: str = "") -> T:
    """Build `cls` from `data`, rejecting unknown keys and wrong types.

    `where` prefixes messages (e.g. "configs/x.toml: [train]") so users know
    which file and table the bad key is in.
    """
    prefix = f"{where}: " if where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix}expected a table of settings, got {data!r}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(
            f"{prefix}unknown key {unknown[0]!r} (known keys: {', '.join(sorted(known))})"
        )
    values = {k: _coerce(v, hints[k], f"{prefix}{k}") for k, v in data.items()}
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one `--set key=value` override; the value is read as TOML."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set expects key=value, got {text!r}")
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()  # bare words are strings: --set corpus=builtin
    return key, value


def load_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML file with errors that name the file."""
    path = Path(path)
    try:
        # surrogateescape: config.toml holds a non-UTF-8 path as its bytes on disk
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"invalid TOML in {path}: {exc}") from None


def model_config_from(value: str | dict[str, Any], where: str = "model") -> GPTConfig:
    """A model config from a preset name or a table (optionally `preset` + overrides)."""
    if not isinstance(value, dict):
        return get_preset(value)  # type: ignore[arg-type]
    value = dict(value)
    base = get_preset(value.pop("preset")) if "preset" in value else GPTConfig()
    merged = {**base.to_dict(), **value}
    return dataclass_from_dict(GPTConfig, merged, where)


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
    from .tokenizer import VOCAB_SIZE  # tiktoken loads lazily: configs stay light

    if model.vocab_size < VOCAB_SIZE:
        # Token ids of the corpus would index past the embedding (an IndexError mid-run).
        raise ConfigError(
            f"model.vocab_size must be at least {VOCAB_SIZE}, the tokenizer's, "
            f"got {model.vocab_size}"
        )


def run_config_from_dict(
    data: dict[str, Any], where: str = "config", overrides: list[str] | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """(model, train) configs from a {"model": ..., "train": ...} mapping.

    `overrides` are `--set` strings: `key=value` for train keys, or
    `model.key=value` for model keys (`model=NAME` picks a preset).
    """
    unknown = sorted(set(data) - {"model", "train"})
    if unknown:
        raise ConfigError(f"{where}: unknown table [{unknown[0]}] (known: [model], [train])")
    model_data: Any = data.get("model", "book-124m")
    model_data = dict(model_data) if isinstance(model_data, dict) else {"preset": model_data}
    train_data = data.get("train", {})
    if not isinstance(train_data, dict):
        raise ConfigError(f"{where}: [train] must be a table of settings, got {train_data!r}")
    train_data = dict(train_data)
    for text in overrides or []:
        key, value = parse_override(text)
        if key == "model":  # a preset name, or a whole table (`model={preset="tiny"}`)
            model_data = dict(value) if isinstance(value, dict) else {"preset": value}
        elif key.startswith("model."):
            model_data[key.removeprefix("model.")] = value
        else:
            train_data[key.removeprefix("train.")] = value
    model = model_config_from(model_data, f"{where}: [model]")
    train = dataclass_from_dict(TrainConfig, train_data, f"{where}: [train]")
    return model, train


def shipped_configs() -> dict[str, Path]:
    """The run presets that ship with gpt-tui (the repository's configs/), by name.

    They are package data (gptcore.configs), so a wheel install has them too.
    """
    try:
        folder = Path(str(importlib.resources.files("gptcore.configs")))
    except ModuleNotFoundError:
        # A checkout used without (re)installing it: the folder next to gptcore/.
        folder = Path(__file__).resolve().parents[1] / "configs"
    return {path.stem: path for path in sorted(folder.glob("*.toml"))}


def resolve_config_path(name_or_path: str | Path) -> Path:
    """The file a `--config` value means: an existing file, else a shipped preset.

    A preset is named bare, with or without its suffix ("tiny" or "tiny.toml");
    anything else that is not a file is a ConfigError listing the presets.
    """
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_configs()
    name = path.name.removesuffix(".toml")
    if path.parent == Path(".") and name in shipped:
        return shipped[name]
    names = ", ".join(shipped) or "none found"
    raise ConfigError(f"config file not found: {name_or_path} (shipped presets: {names})")


def load_run_config(
    name_or_path: str | Path, overrides: list[str] | None = None
) -> tuple[GPTConfig, TrainConfig]:
    """Read a run config TOML (tables [model] and [train]) with `--set` overrides.

    `name_or_path` is a file or a shipped preset's name (see resolve_config_path).
    """
    path = resolve_config_path(name_or_path)
    return run_config_from_dict(load_toml(path), str(path), overrides)
